"""How the service refuses a request (:class:`RequestError`: status, message, per-field
details), and the checks of its raw body that schema validation cannot make: a JSON content type
in UTF-8, no key repeated within an object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
