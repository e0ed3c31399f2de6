"""How the service refuses a request (:class:`RequestError`: status, message, per-field
details), and the checks made before and beside schema validation: the bearer token, a JSON
content type in UTF-8, the body's size limit, no key repeated within an object, and a batch's
columns read without pydantic when every row certainly passes the schema (:func:`batch_columns`).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
from starlette.requests import ClientDisconnect, Request

from flightdelay.core.flights import RAW_COLUMNS
from flightdelay.core.schemas import (
    FLIGHT_BOUNDS,
    FLIGHT_PATTERNS,
    INTEGER_COLUMNS,
    NULLABLE_COLUMNS,
    all_match,
)
from flightdelay.serving.model_service import RowError


def check_content_type(header: str) -> None:
    """415 unless the body is declared JSON in UTF-8 (the only encoding JSON allows, RFC 8259)."""
    if header == "application/json":  # the usual header: no parsing
        return
    from email.message import Message

    message = Message()
    message["content-type"] = header
    media = message.get_content_type() if header.strip() else ""
    if media != "application/json":
        raise RequestError(415, f"Content-Type must be application/json, got {media or 'none'!r}")
    charset = message.get_param("charset")
    if charset is not None and str(charset).strip().lower() not in ("utf-8", "utf8"):
        raise RequestError(
            415, f"charset {str(charset)!r} is not supported: send JSON encoded as UTF-8"
        )


def duplicate_key(body: bytes, keys: int) -> tuple[tuple[int | str, ...], str] | None:
    """(location, key) of the first key repeated within one JSON object of a body that already
    validated as ``keys`` fields in all; None if there is none.

    Every key brings one ':' outside strings, so a body with exactly ``keys`` colons (the usual
    case, one memchr pass) cannot repeat one; only then is it parsed again by the standard
    library, which reports each object's key/value pairs in order."""
    if body.count(b":") <= keys:
        return None
    found: list[tuple[int, str]] = []
    objects = 0

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal objects
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and not found:
                found.append((objects, key))
            seen.add(key)
        objects += 1
        return dict(items)

    import json

    try:
        json.loads(body, object_pairs_hook=pairs)
    except ValueError:  # pydantic accepted it, so this cannot happen; never answer 500 for it
        return None
    if not found:
        return None
    row, key = found[0]
    return ((row, key) if body.lstrip()[:1] == b"[" else (key,)), key


class RequestError(Exception):
    """A request the service refuses: status, one-line message, per-field details."""

    def __init__(self, status: int, error: str, detail: Sequence[RowError] = ()) -> None:
        super().__init__(error)
        self.status, self.error, self.detail = status, error, list(detail)


def check_bearer(header: str, token: bytes | None) -> None:
    """401 unless the Authorization ``header`` is ``Bearer <token>`` (no check without a token)."""
    if token is None:
        return
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token):
        raise RequestError(
            401,
            "missing or invalid bearer token (header 'Authorization: "
            "Bearer <FLIGHTDELAY_API_TOKEN>')",
        )


async def read_json_body(request: Request, limit: int) -> bytes:
    """The body of a request declared as JSON in UTF-8 (415 otherwise), at most ``limit`` bytes
    (413 otherwise, before reading it when Content-Length says so); 408 if the client leaves."""
    check_content_type(request.headers.get("content-type", ""))
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(
            413,
            f"body of {int(declared)} bytes exceeds the limit of {limit} "
            "bytes (FLIGHTDELAY_MAX_BODY_BYTES)",
        )
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(
                    413,
                    f"body exceeds the limit of {limit} bytes (FLIGHTDELAY_MAX_BODY_BYTES)",
                )
            chunks.append(chunk)
    except ClientDisconnect:  # gone, or closed for being too slow (http_guard): no 500
        raise RequestError(408, "the client disconnected before sending the whole body") from None
    return b"".join(chunks)


_NUMBER = frozenset({int, float})


def batch_columns(body: bytes) -> dict[str, list[Any]] | None:
    """The columns (RAW_COLUMNS order, one list each) of a batch body, a JSON array of flights,
    when every row certainly passes :class:`flightdelay.core.schemas.Flight` (strict types,
    bounds, patterns, no extra, missing or repeated key): the values pydantic's validation gives,
    column by column, in a few vectorised passes. None whenever anything is unusual: the body
    must then be validated by pydantic, which names the errors (a body this accepts, pydantic
    accepts with the same values; the reverse need not hold)."""
    try:
        rows = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    width = len(RAW_COLUMNS)
    # Exactly `width` colons for `width` keys per row: no key repeated, no ':' inside a string.
    if type(rows) is not list or not rows or body.count(b":") != len(rows) * width:
        return None
    if set(map(type, rows)) != {dict} or set(map(len, rows)) != {width}:
        return None
    try:
        columns = {name: [row[name] for row in rows] for name in RAW_COLUMNS}
    except KeyError:  # `width` keys, but not the flight's
        return None
    for name, column in columns.items():
        if name in FLIGHT_PATTERNS:
            try:
                codes = set(column)
            except TypeError:  # an object or an array: pydantic says which
                return None
            if name in NULLABLE_COLUMNS:
                codes.discard(None)
            # all_match is False for anything but a str (None, a number): no type pass needed
            if not all_match(FLIGHT_PATTERNS[name], codes):
                return None
            continue
        types = set(map(type, column))
        low, high = FLIGHT_BOUNDS[name]
        if name in INTEGER_COLUMNS:
            if types != {int}:  # a bool, a float, a string, null: pydantic says which
                return None
            try:
                numbers = np.array(column, dtype=np.int64)
            except OverflowError:
                return None
        else:
            if not types <= _NUMBER:
                return None
            numbers = np.array(column, dtype=np.float64)
            if float in types and not np.isfinite(numbers).all():
                return None
            if int in types:  # pydantic's float field gives a float for a JSON integer
                columns[name] = numbers.tolist()
        if not ((numbers >= low) & (numbers <= high)).all():
            return None
    return columns
