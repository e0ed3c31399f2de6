"""nginx in front of a stage's local services: the one edge to the ``nginx`` program.

A :class:`Front` says where nginx listens and which upstreams it routes to: ``stable``, an
optional ``canary`` that gets ``canary_share`` of the requests (``split_clients`` on the
caller's X-Request-Id, so one id always takes one route) and an optional ``shadow`` that gets a
``mirror`` of every request, whose answers nginx discards. Every answer carries ``X-Served-By:
stable|canary``.

nginx runs as an ordinary process with its own prefix under the deploy state directory
(``<state>/nginx/<stage>/``: nginx.conf, nginx.pid, logs/, temp/, front.json), rendered from
``templates/nginx.conf.j2``. A change of routing is a new rendering and ``nginx -s reload``:
the master starts new workers on the new configuration and lets the old ones finish their
requests, so no connection is dropped. :func:`apply` returns once the new configuration answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

TEMPLATE = "nginx.conf.j2"
STATE = "front.json"
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


class NginxError(RuntimeError):
    """nginx is missing, refused its configuration, or did not start, reload or stop."""


@dataclass(frozen=True)
class Front:
    """What nginx does for one stage; ``generation`` counts the renderings."""

    stage: str
    host: str
    port: int
    stable: str  # host:port of the stable service
    canary: str | None = None  # host:port of the new version, None: no canary
    canary_share: float = 0.0  # 0..1 of the requests to the canary
    shadow: str | None = None  # host:port that receives a mirror of every request
    generation: int = 1

    @property
    def host_port(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host_port}"


# ---------------------------------------------------------------- pure core


def render(front: Front, prefix: Path, user: str | None = None) -> str:
    """The nginx.conf of ``front`` with every path under ``prefix``."""
    if not 0 <= front.canary_share <= 1:
        raise NginxError(f"canary share must be within 0..1, got {front.canary_share}")
    if front.canary is None and front.canary_share > 0:
        raise NginxError("a canary share without a canary upstream")
    env = Environment(
        loader=PackageLoader("flightdelay", "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(TEMPLATE).render(
        front=front, prefix=prefix.resolve(), user=user, percent=round(front.canary_share * 100, 2)
    )


# ---------------------------------------------------------------- the nginx process


FALLBACKS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx")  # sbin is often not on a user's PATH


def binary() -> str:
    found = shutil.which("nginx") or next((p for p in FALLBACKS if Path(p).is_file()), None)
    if found is None:
        raise NginxError(
            "nginx is not installed (Debian: apt-get install nginx; `make system-deps`)"
        )
    return found


def prefix_of(state_dir: Path, stage: str) -> Path:
    return state_dir / "nginx" / stage


def _worker_user() -> str | None:
    """Run as root, nginx's workers drop to ``nobody``; as anyone else they stay that user."""
    if os.geteuid() != 0:
        return None
    nobody = pwd.getpwnam("nobody")
    return f"nobody {_group_name(nobody.pw_gid)}"


def _group_name(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name


def _write(front: Front, prefix: Path) -> Path:
    """Render ``front`` into ``prefix``/nginx.conf and check it with ``nginx -t``."""
    user = _worker_user()
    for name in ("logs", *(f"temp/{d}" for d in TEMP_DIRS)):
        (prefix / name).mkdir(parents=True, exist_ok=True)
    if user is not None:  # the workers write request bodies and buffers there
        nobody = pwd.getpwnam("nobody")
        for d in TEMP_DIRS:
            os.chown(prefix / "temp" / d, nobody.pw_uid, nobody.pw_gid)
    conf = prefix / "nginx.conf"
    candidate = prefix / "nginx.conf.new"
    candidate.write_text(render(front, prefix, user), encoding="utf-8")
    _run("-t", "-c", str(candidate.resolve()), prefix=prefix, what="configuration test")
    candidate.replace(conf)
    (prefix / STATE).write_text(json.dumps(asdict(front), indent=2) + "\n", encoding="utf-8")
    return conf


def _run(*args: str, prefix: Path, what: str) -> None:
    done = subprocess.run(
        [
            binary(),
            "-p",
            str(prefix.resolve()),
            "-e",
            str((prefix / "logs/error.log").resolve()),
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise NginxError(f"nginx {what} failed: {(done.stderr or done.stdout).strip()}")


def read_front(state_dir: Path, stage: str) -> Front | None:
    path = prefix_of(state_dir, stage) / STATE
    if not path.is_file():
        return None
    try:
        return Front(**json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as exc:
        raise NginxError(f"{path}: unreadable front state ({exc}); delete it") from None


def pid_of(prefix: Path) -> int | None:
    """The running master's pid, None when nginx does not run there."""
    try:
        pid = int((prefix / "nginx.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists() and b"nginx" not in cmdline.read_bytes():
        return None  # a reused pid
    return pid


def generation_served(front: Front) -> int | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{front.url}/_front", timeout=2) as answer:
            return int(answer.read().decode().strip())
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return None


def _wait_generation(front: Front, prefix: Path, process: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise NginxError(
                f"nginx exited with status {process.returncode}: {_tail(prefix / 'logs/error.log')}"
            )
        if generation_served(front) == front.generation:
            return
        time.sleep(0.05)
    raise NginxError(
        f"nginx did not serve configuration {front.generation} on {front.url} within "
        f"{READY_TIMEOUT_S:.0f}s: {_tail(prefix / 'logs/error.log')}"
    )


def _accepting_workers(master: int) -> set[int]:
    """Workers of ``master`` that still accept connections (not "shutting down")."""
    children = Path(f"/proc/{master}/task/{master}/children")
    if not children.exists():
        return set()
    workers = set()
    for pid in map(int, children.read_text().split()):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            if "worker process" in title and "shutting down" not in title:
                workers.add(pid)
    return workers


def _wait_workers_replaced(master: int, old: set[int]) -> None:
    """Until the workers of the old configuration stop accepting: after that every new
    connection is routed by the new one (they finish their own requests, then exit)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        now = _accepting_workers(master)
        if now and not now & old:
            return
        if not Path(f"/proc/{master}").exists():
            return
        time.sleep(0.02)
    raise NginxError(f"nginx's old workers {sorted(old)} still accept connections after reload")


def _tail(log: Path, lines: int = 5) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:]) or "(empty log)"
    except FileNotFoundError:
        return "(no log)"


def apply(front: Front, state_dir: Path) -> Front:
    """Start nginx for ``front.stage`` or, when it runs, reload it with ``front``; returns the
    front as served (its generation bumped past the running one's)."""
    prefix = prefix_of(state_dir, front.stage)
    running = pid_of(prefix)
    previous = read_front(state_dir, front.stage)
    if running is not None and previous is not None:
        front = replace(front, generation=previous.generation + 1)
        _write(front, prefix)
        old = _accepting_workers(running)
        _run(
            "-s",
            "reload",
            "-c",
            str((prefix / "nginx.conf").resolve()),
            prefix=prefix,
            what="reload",
        )
        _wait_generation(front, prefix, None)
        _wait_workers_replaced(running, old)
        return front
    _write(front, prefix)
    log = (prefix / "logs" / "nginx.out").open("wb")
    with log:
        process = subprocess.Popen(
            [
                binary(),
                "-p",
                str(prefix.resolve()),
                "-e",
                str((prefix / "logs/error.log").resolve()),
                "-c",
                str((prefix / "nginx.conf").resolve()),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the command that started it, like a service
        )
    try:
        _wait_generation(front, prefix, process)
    except NginxError:
        _kill(process.pid)
        raise
    return front


def stop(state_dir: Path, stage: str) -> bool:
    """Stop the stage's nginx gracefully (``nginx -s quit``); True if it was running."""
    prefix = prefix_of(state_dir, stage)
    pid = pid_of(prefix)
    if pid is None:
        (prefix / STATE).unlink(missing_ok=True)
        return False
    with contextlib.suppress(NginxError):
        _run("-s", "quit", "-c", str((prefix / "nginx.conf").resolve()), prefix=prefix, what="quit")
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    if _alive(pid):
        _kill(pid)
    (prefix / STATE).unlink(missing_ok=True)
    return True


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
