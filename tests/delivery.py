"""Real services for the canary and shadow tests: small real models (the pipeline's own code on
synthetic tables, like tests/serving_bundle.py), one retrained with another label definition (its
scores shift), the prod service started as ``flightdelay deploy`` starts it, a stand-in
upstream that answers 500, and cleanup of every process on the way out."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flightdelay.core.params import DeployParams
from flightdelay.loop import deploy, nginx
from flightdelay.loop.release import Release
from serving_bundle import build_model_dir

# Late = any delay (1 minute or more) instead of 30: most flights are late, the mean score goes
# from about 0.35 to 0.75 on the same requests.
SHIFTED = {"target_delay_minutes": 1}


def build_model(root: Path, repo_root: Path, **overrides: Any) -> Path:
    """Train on the synthetic months (featurize params overridden) into ``root / "model"``
    (trained once per session and set of overrides: :func:`serving.build_model_dir`)."""
    return build_model_dir(root, repo_root, **overrides)


def good_and_shifted(root: Path, repo_root: Path) -> dict[str, Path]:
    """The two models the delivery tests route between: ``good`` and ``shifted`` (SHIFTED)."""
    return {
        "good": build_model(root / "good", repo_root),
        "shifted": build_model(root / "shifted", repo_root, **SHIFTED),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def release_of(version: str, stage: str = "prod") -> Release:
    return Release(
        artifact="flight-delay",
        version=version,
        stage=stage,
        tag=f"flight-delay#{stage}#1",
        version_tag=f"flight-delay@{version}",
        commit="c" * 40,
        model_path="outputs/model",
        model_md5="m" * 32 + ".dir",
    )


def deploy_params() -> DeployParams:
    return DeployParams(
        host="127.0.0.1", ports={"staging": free_port(), "prod": free_port()}, ready_timeout_s=90
    )


def stop_everything(state_dir: Path) -> None:
    """Every service and nginx started under ``state_dir``, stopped (also after a failure)."""
    nginx.stop(state_dir, "prod")
    for path in (state_dir / "local").glob("*.json"):
        service = deploy.read_state(state_dir, path.stem)
        if service is not None:
            deploy.stop(service)


@contextmanager
def services_under(state_dir: Path) -> Iterator[Path]:
    """``state_dir``, and on the way out every service and nginx started under it, stopped."""
    yield state_dir
    stop_everything(state_dir)


class _Answering(http.server.BaseHTTPRequestHandler):
    """A stand-in service that answers every POST 200 with its name (for nginx's own tests)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"model_version": self.server.name}).encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def answering_upstream(name: str) -> Iterator[str]:
    """host:port of a stand-in that answers 200 {"model_version": name} to every POST."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answering)
    server.name = name  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


class _Failing(http.server.BaseHTTPRequestHandler):
    """A release gone wrong: ready and versioned, but every prediction is a 500."""

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/metrics":
            self._send(200, b"# no metrics\n", "text/plain")
        elif self.path in ("/ready", "/health"):
            self._send(200, b'{"status": "ok"}')
        else:
            self._send(200, json.dumps({"model_version": "v9.9.9"}).encode())

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._send(500, b'{"error": "internal server error"}')

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def failing_upstream() -> Iterator[str]:
    """URL of a stand-in service that answers every POST with HTTP 500."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def copy_model(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest
