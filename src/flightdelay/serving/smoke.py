"""``flightdelay smoke``: check a running prediction service end to end.

    flightdelay smoke --url http://127.0.0.1:8000 [--expect-version v1.2.0] [--token T]

Calls GET /health, GET /version and POST /predict with a known flight
(:data:`flightdelay.core.schemas.EXAMPLE_FLIGHT`); prints one line per check and exits 0 when all
pass, 1 with a message naming the failed check otherwise. The token defaults to
``$FLIGHTDELAY_API_TOKEN``. Standard library only, so it runs from any environment.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from flightdelay.core.schemas import EXAMPLE_FLIGHT


class SmokeError(RuntimeError):
    """A check of the running service failed."""


def call(
    url: str, path: str, token: str | None, body: Any = None, timeout: float = 10.0
) -> tuple[int, Any]:
    """(status, parsed JSON body) of one request; SmokeError if the service cannot be reached or
    does not answer JSON."""
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url.rstrip("/") + path,
        data=data,
        headers=headers,
        method="POST" if body is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SmokeError(f"{path}: cannot reach {url}: {reason}") from None
    try:
        return status, json.loads(raw)
    except ValueError:
        raise SmokeError(f"{path}: HTTP {status}, not JSON: {raw[:200]!r}") from None


def _expect_ok(path: str, status: int, payload: Any) -> None:
    if status != 200:
        error = payload.get("error") if isinstance(payload, dict) else payload
        raise SmokeError(f"{path}: HTTP {status}: {error}")


def smoke(
    url: str, expect_version: str | None = None, token: str | None = None, wait_seconds: float = 0.0
) -> list[str]:
    """Run the checks; return one line per passed check or raise SmokeError."""
    lines = []
    deadline = time.monotonic() + wait_seconds
    while True:  # a service that is still starting gets wait_seconds to answer /health
        try:
            status, payload = call(url, "/health", token)
            break
        except SmokeError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)
    _expect_ok("/health", status, payload)
    lines.append(f"ok /health: {payload.get('status')}")

    status, payload = call(url, "/version", token)
    _expect_ok("/version", status, payload)
    version = payload.get("version")
    if expect_version is not None and version != expect_version:
        raise SmokeError(f"/version: serves version {version!r}, expected {expect_version!r}")
    lines.append(
        f"ok /version: {payload.get('model')} {version} "
        f"(commit {payload.get('git_commit')}, data {payload.get('data_md5')}, "
        f"run {payload.get('mlflow_run_id')})"
    )

    status, payload = call(url, "/predict", token, body=EXAMPLE_FLIGHT)
    _expect_ok("/predict", status, payload)
    try:
        prediction = payload["predictions"][0]
        probability, late = prediction["probability"], prediction["late"]
    except (KeyError, IndexError, TypeError):
        raise SmokeError(f"/predict: unexpected answer {str(payload)[:200]}") from None
    if not (
        isinstance(probability, float)
        and math.isfinite(probability)
        and 0.0 <= probability <= 1.0
        and isinstance(late, bool)
    ):
        raise SmokeError(f"/predict: probability {probability!r} / late {late!r} out of range")
    if late != (probability >= payload["threshold"]):
        raise SmokeError(
            f"/predict: late={late} disagrees with probability {probability} and "
            f"threshold {payload['threshold']}"
        )
    if expect_version is not None and payload.get("model_version") != expect_version:
        raise SmokeError(
            f"/predict: answered with model_version {payload.get('model_version')!r}"
            f", expected {expect_version!r}"
        )
    lines.append(f"ok /predict: probability {probability:.4f}, late {late}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flightdelay smoke", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--expect-version", help="fail unless /version reports this tag")
    parser.add_argument(
        "--token",
        default=os.environ.get("FLIGHTDELAY_API_TOKEN") or None,
        help="bearer token (default $FLIGHTDELAY_API_TOKEN)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep trying /health this long while the service starts",
    )
    args = parser.parse_args(argv)
    try:
        for line in smoke(args.url, args.expect_version, args.token, args.wait):
            print(line)
    except SmokeError as exc:
        print(f"smoke: FAILED {exc}", file=sys.stderr)
        return 1
    print(f"smoke: {args.url} passed")
    return 0
