"""Bounded request load for the canary and the shadow report: a sample of flights sent as
callers would, each answer recorded (route, status, latency, scores, warnings).

On a laptop or a CI runner nobody calls the local prod service, so the canary and the shadow
report bring their own callers: ``requests`` single-flight POST /predict, paced evenly over a
duration by ``concurrency`` threads. The flights come from the model's own schedule
(:func:`flightdelay.core.context.check_rows`: dates, carriers, tails and routes of its
context, with the unseen carriers, destinations and null tails real callers send too). Standard
library HTTP, a fresh connection per request, like independent callers.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Answer:
    """One request as the caller saw it."""

    request_id: str
    route: str  # X-Served-By (stable|canary) or "direct"
    status: int  # 0: no HTTP answer at all (connection refused, reset, timeout)
    latency_s: float
    score: float | None = None
    late: bool | None = None
    warned: bool | None = None  # the row came back with warnings
    version: str | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == 0 or self.status >= 500


def sample_flights(model_dir: Path, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` raw flights from the schedule in ``model_dir``'s context (repeated if it is short)."""
    from flightdelay.core.context import check_rows
    from flightdelay.core.flights import RAW_COLUMNS
    from flightdelay.core.model_io import CONTEXT_DIR, read_context

    rows = check_rows(read_context(model_dir / CONTEXT_DIR), n=n, seed=seed)
    records = rows.loc[:, list(RAW_COLUMNS)].to_dict("records")
    flights = [{k: _plain(v) for k, v in r.items()} for r in records]
    return [flights[i % len(flights)] for i in range(n)]


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def post(url: str, body: dict[str, Any], request_id: str, route: str = "direct") -> Answer:
    """POST ``body`` to ``url``/predict; never raises: a failure is an Answer with its error."""
    parts = urlsplit(url)
    started = time.perf_counter()
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port or 80, timeout=REQUEST_TIMEOUT_S
    )
    try:
        connection.request(
            "POST",
            "/predict",
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "X-Request-Id": request_id},
        )
        response = connection.getresponse()
        raw = response.read()
        latency = time.perf_counter() - started
        served_by = response.getheader("X-Served-By") or route
    except (OSError, http.client.HTTPException) as exc:
        return Answer(request_id, route, 0, time.perf_counter() - started, error=str(exc))
    finally:
        connection.close()
    if response.status != 200:
        return Answer(
            request_id,
            served_by,
            response.status,
            latency,
            error=raw[:200].decode(errors="replace"),
        )
    try:
        payload = json.loads(raw)
        (prediction,) = payload["predictions"]
        return Answer(
            request_id,
            served_by,
            200,
            latency,
            score=float(prediction["probability"]),
            late=bool(prediction["late"]),
            warned=bool(prediction["warnings"]),
            version=str(payload.get("model_version")),
        )
    except (ValueError, KeyError, TypeError) as exc:
        return Answer(request_id, served_by, 200, latency, error=f"unreadable answer: {exc}")


def drive(
    url: str,
    flights: Sequence[dict[str, Any]],
    duration_s: float,
    concurrency: int,
    id_prefix: str = "r",
    first: int = 0,
) -> list[Answer]:
    """Send every flight to ``url``, request i at ``i * duration_s / len(flights)`` seconds;
    request ids are ``<id_prefix><first + i>`` (the routing key). Answers in request order."""
    if not flights:
        return []
    start = time.monotonic()
    pace = duration_s / len(flights)

    def one(i: int) -> Answer:
        delay = start + i * pace - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return post(url, flights[i], f"{id_prefix}{first + i}")

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, range(len(flights))))
