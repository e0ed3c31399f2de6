"""``flightdelay deploy``: run the released model (``outputs/release``) for its stage, smoke it.

Before anything starts, the released model is verified against its signature again
(:func:`flightdelay.loop.release.verify_release_dir`, the signer expected from the environment:
``FLIGHTDELAY_MODEL_PUBKEY`` or ``FLIGHTDELAY_MODEL_IDENTITY``); an unsigned one needs
``--allow-unsigned REASON``, as for the release. The service itself verifies it again at start.

Targets:

- ``local`` (default): one service per stage on loopback (``params.yaml`` ``deploy:``). The
  running one is stopped, the released model copied to ``.deploy/local/<stage>/<version>/`` and
  ``flightdelay serve`` started there; once ``/ready`` answers, ``flightdelay smoke`` checks it
  serves the released version. If the new service fails, the previous one is started again and
  the command fails. ``.deploy/local/<stage>.json`` records pid, port and version (``--stop``
  stops it).
- ``kubernetes``: renders ``deploy/kubernetes/*.yaml`` for the stage (namespace
  ``flight-delay-<stage>``, the given image, the version), ``kubectl apply``, ``kubectl rollout
  status``, then smoke-tests ``--url``. Needs a kubeconfig: ``$KUBECONFIG_DATA`` (its content, the
  GitHub environment secret) or ``$KUBECONFIG`` (a path).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flightdelay import MODEL_NAME
from flightdelay.core import model_io, signing, yamltext
from flightdelay.core.io import DataFileError
from flightdelay.core.params import DeployParams, ParamsError, load_params
from flightdelay.loop.release import (
    DEFAULT_OUT,
    SIGNATURE_DIR,
    SIGNATURE_FILE,
    Release,
    ReleaseError,
    verify_release_dir,
)

STATE_DIR = Path(".deploy")
MANIFESTS = Path("deploy/kubernetes")
CONTAINER = "serve"
STOP_TIMEOUT_S = 10.0


class DeployError(RuntimeError):
    """The release could not be deployed (or the previous one restored); the message says why."""


@dataclass(frozen=True)
class LocalService:
    """A service ``deploy --target local`` started: what the state file records."""

    stage: str
    version: str
    tag: str
    commit: str
    pid: int
    port: int
    url: str
    model_dir: str
    log: str
    started_at: str


# ---------------------------------------------------------------- pure cores


def namespace(stage: str) -> str:
    return f"{MODEL_NAME}-{stage}"


def signer_env(release: Release, expected: signing.Expected | None) -> dict[str, str]:
    """What the service needs to verify the model at start: the expected Sigstore identity (a
    public key must be mounted, see README), or, for a release overridden as unsigned, no check."""
    if release.unsigned_override:
        return {signing.REQUIRE_ENV: "false"}
    if expected is not None and expected.identity:
        return {signing.IDENTITY_ENV: expected.identity, signing.ISSUER_ENV: expected.issuer}
    return {}


def render(
    documents: Sequence[Mapping[str, Any]],
    release: Release,
    image: str,
    extra_env: Mapping[str, str] | None = None,
) -> list[dict]:
    """The manifests for ``release``: its namespace, image and version on every object.

    The container named ``serve`` gets the image, FLIGHTDELAY_MODEL_VERSION and ``extra_env``
    (:func:`signer_env`); a Deployment without it is an error (the manifests and this function
    would have drifted apart).
    """
    values = {**(extra_env or {}), "FLIGHTDELAY_MODEL_VERSION": release.version}
    labels = {
        "app.kubernetes.io/name": MODEL_NAME,
        "app.kubernetes.io/version": release.version,
        "flight-delay/stage": release.stage,
    }
    rendered = []
    for doc in documents:
        doc = json.loads(json.dumps(doc))  # deep copy: the templates stay untouched
        meta = doc.setdefault("metadata", {})
        meta["namespace"] = namespace(release.stage)
        meta.setdefault("labels", {}).update(labels)
        if doc.get("kind") == "Deployment":
            pod = doc["spec"]["template"]
            pod.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
            pod.setdefault("metadata", {}).setdefault("annotations", {})[
                "flight-delay/git-commit"
            ] = release.commit
            containers = [c for c in pod["spec"]["containers"] if c.get("name") == CONTAINER]
            if len(containers) != 1:
                raise DeployError(f"Deployment {meta.get('name')!r} has no container {CONTAINER!r}")
            container = containers[0]
            container["image"] = image
            env = [e for e in container.get("env", []) if e.get("name") not in values]
            container["env"] = [*env, *({"name": k, "value": v} for k, v in values.items())]
        rendered.append(doc)
    if not any(d.get("kind") == "Deployment" for d in rendered):
        raise DeployError("the manifests hold no Deployment")
    return rendered


def port_for(params: DeployParams, stage: str, override: int | None) -> int:
    if override is not None:
        return override
    if stage not in params.ports:
        raise DeployError(f"params.yaml deploy.ports has no port for stage {stage!r}")
    return params.ports[stage]


# ---------------------------------------------------------------- local target


def state_file(state_dir: Path, stage: str) -> Path:
    return state_dir / "local" / f"{stage}.json"


def read_state(state_dir: Path, stage: str) -> LocalService | None:
    path = state_file(state_dir, stage)
    if not path.is_file():
        return None
    try:
        return LocalService(**json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as exc:
        raise DeployError(f"{path}: unreadable deployment state ({exc}); delete it") from None


def is_our_service(pid: int, port: int) -> bool:
    """True if ``pid`` is alive and is a ``flightdelay serve`` on ``port`` (pids get reused)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        args = cmdline.read_bytes().decode(errors="replace").split("\0")
    else:  # no /proc (macOS): ask ps
        done = subprocess.run(
            ["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
        args = done.stdout.split()
    return "serve" in args and str(port) in args


def stop(service: LocalService) -> bool:
    """Stop a service this module started; True if it was running."""
    if not is_our_service(service.pid, service.port):
        return False
    os.killpg(service.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and is_our_service(service.pid, service.port):
        time.sleep(0.1)
    if is_our_service(service.pid, service.port):
        os.killpg(service.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(service.pid, 0)
    return True


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    """Poll ``url``/ready until it answers 200; raise DeployError if the process dies first."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DeployError(
                f"the service exited with status {process.returncode} before it "
                f"was ready; last lines of {log}:\n{tail(log)}"
            )
        try:
            with opener.open(f"{url}/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise DeployError(f"{url}/ready did not answer 200 within {timeout_s:.0f}s; see {log}")


def tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def start(
    release: Release, model_src: Path, host: str, port: int, state_dir: Path, timeout_s: float
) -> LocalService:
    """Copy the model next to the state file and start ``flightdelay serve`` on it."""
    home = state_dir / "local" / release.stage / release.version
    if home.exists():
        shutil.rmtree(home)
    model_dir = home / "model"
    shutil.copytree(model_src, model_dir)
    if model_io.provenance_path(model_src).is_file():  # /version's run id and commit
        shutil.copyfile(model_io.provenance_path(model_src), model_io.provenance_path(model_dir))
    for signature in (model_src.parent / SIGNATURE_DIR / SIGNATURE_FILE, _sibling_sig(model_src)):
        if signature.is_file():  # where serve looks by default: <model dir>.sig
            shutil.copyfile(signature, _sibling_sig(model_dir))
            break
    log = home / "serve.log"
    url = f"http://{'[::1]' if host == '::1' else host}:{port}"
    env = {**os.environ, "FLIGHTDELAY_MODEL_NAME": release.artifact}
    env.pop(signing.SIGNATURE_ENV, None)
    if release.unsigned_override:  # released unsigned by the operator's override: serve it so
        for name in (signing.PUBKEY_ENV, signing.IDENTITY_ENV, signing.REQUIRE_ENV):
            env.pop(name, None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flightdelay",
                "serve",
                "--model-dir",
                str(model_dir),
                "--host",
                host,
                "--port",
                str(port),
                "--model-version",
                release.version,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group: stop() ends it and its workers
        )
    service = LocalService(
        stage=release.stage,
        version=release.version,
        tag=release.tag,
        commit=release.commit,
        pid=process.pid,
        port=port,
        url=url,
        model_dir=str(model_dir),
        log=str(log),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    try:
        wait_ready(url, process, timeout_s, log)
    except DeployError:
        stop(service)
        raise
    return service


def _sibling_sig(model_dir: Path) -> Path:
    return model_dir.with_name(model_dir.name + signing.SIGNATURE_SUFFIX)


def smoke(url: str, version: str) -> None:
    """``flightdelay smoke`` against the live service; DeployError with its output on failure."""
    done = subprocess.run(
        [sys.executable, "-m", "flightdelay", "smoke", "--url", url, "--expect-version", version],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise DeployError(f"smoke test of {url} failed:\n{(done.stdout + done.stderr).strip()}")


def write_state(state_dir: Path, service: LocalService) -> None:
    path = state_file(state_dir, service.stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(service), indent=2) + "\n", encoding="utf-8")


def deploy_local(
    release: Release,
    model_src: Path,
    params: DeployParams,
    state_dir: Path,
    port: int | None = None,
) -> LocalService:
    """Replace the stage's local service with ``release``; restore the previous one on failure.

    A service that already runs exactly this release (a promoted canary) is kept, once its smoke
    test passes: restarting it would refuse the requests nginx sends it meanwhile."""
    previous = read_state(state_dir, release.stage)
    if (
        previous is not None
        and (previous.version, previous.commit) == (release.version, release.commit)
        and port in (None, previous.port)
        and is_our_service(previous.pid, previous.port)
    ):
        with contextlib.suppress(DeployError):
            smoke(previous.url, release.version)
            return previous
    port = port_for(
        params, release.stage, port if port is not None else (previous.port if previous else None)
    )
    if previous is not None:
        stop(previous)
    try:
        service = start(release, model_src, params.host, port, state_dir, params.ready_timeout_s)
        try:
            smoke(service.url, release.version)
        except DeployError:
            stop(service)
            raise
    except DeployError as exc:
        restored = _restore(previous, params, state_dir)
        raise DeployError(f"{exc}\n{restored}") from None
    write_state(state_dir, service)
    return service


def _restore(previous: LocalService | None, params: DeployParams, state_dir: Path) -> str:
    """Start the previous deployment again; say what happened."""
    if previous is None or not Path(previous.model_dir).is_dir():
        if previous is not None:
            state_file(state_dir, previous.stage).unlink(missing_ok=True)
        return "no previous deployment to restore: the stage is down"
    release = Release(
        artifact=MODEL_NAME,
        version=previous.version,
        stage=previous.stage,
        tag=previous.tag,
        commit=previous.commit,
        version_tag="",
        model_path="",
        model_md5="",
    )
    staged = Path(tempfile.mkdtemp(prefix="flightdelay-restore-"))
    try:
        shutil.copytree(previous.model_dir, staged / "model")
        if model_io.provenance_path(Path(previous.model_dir)).is_file():
            shutil.copyfile(
                model_io.provenance_path(Path(previous.model_dir)),
                model_io.provenance_path(staged / "model"),
            )
        if _sibling_sig(Path(previous.model_dir)).is_file():
            shutil.copyfile(_sibling_sig(Path(previous.model_dir)), _sibling_sig(staged / "model"))
        service = start(
            release, staged / "model", params.host, previous.port, state_dir, params.ready_timeout_s
        )
    except DeployError as exc:
        return f"restoring {previous.version} failed too: {exc}"
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    write_state(state_dir, service)
    return f"restored the previous deployment, {previous.version}, at {service.url}"


# ---------------------------------------------------------------- kubernetes target


@contextlib.contextmanager
def kubeconfig() -> Iterator[dict[str, str]]:
    """Environment for kubectl: $KUBECONFIG_DATA written to a private file, or $KUBECONFIG."""
    data = os.environ.get("KUBECONFIG_DATA", "")
    if data.strip():
        with tempfile.TemporaryDirectory(prefix="kubeconfig-") as tmp:
            path = Path(tmp) / "config"
            path.touch(mode=0o600)
            path.write_text(data, encoding="utf-8")
            yield {**os.environ, "KUBECONFIG": str(path)}
        return
    if os.environ.get("KUBECONFIG", "").strip():
        yield dict(os.environ)
        return
    raise DeployError(
        "target kubernetes needs a kubeconfig: set $KUBECONFIG_DATA (the GitHub "
        "environment secret KUBECONFIG_DATA) or $KUBECONFIG"
    )


def kubectl(env: Mapping[str, str], *args: str) -> str:
    try:
        done = subprocess.run(
            ["kubectl", *args], capture_output=True, text=True, env=env, check=False
        )
    except FileNotFoundError:
        raise DeployError("kubectl is not installed") from None
    if done.returncode != 0:
        raise DeployError(f"`kubectl {' '.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout


def deploy_kubernetes(
    release: Release,
    image: str,
    url: str,
    manifests: Path,
    out: Path,
    extra_env: Mapping[str, str] | None = None,
) -> Path:
    """Apply the rendered manifests, wait for the rollout, smoke-test ``url``."""
    if not image:
        raise DeployError("target kubernetes needs --image (the pushed serving image)")
    if not url:
        raise DeployError(
            "target kubernetes needs --url (or $DEPLOY_URL): the stage's "
            "endpoint, for the smoke test"
        )
    files = sorted(manifests.glob("*.yaml"))
    if not files:
        raise DeployError(f"{manifests}: no manifests (*.yaml)")
    documents = [d for f in files for d in yamltext.load_all(f.read_text()) if d]
    rendered = out / f"kubernetes-{release.stage}.yaml"
    rendered.write_text(yamltext.dump_all(render(documents, release, image, extra_env)))
    with kubeconfig() as env:
        kubectl(env, "apply", "-f", str(rendered))
        kubectl(
            env,
            "rollout",
            "status",
            f"deployment/{MODEL_NAME}",
            "--namespace",
            namespace(release.stage),
            "--timeout",
            "300s",
        )
    smoke(url, release.version)
    return rendered


# ---------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flightdelay deploy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--target", choices=["local", "kubernetes"], default="local")
    parser.add_argument(
        "--release",
        type=Path,
        default=DEFAULT_OUT,
        help="what `flightdelay release` wrote (default outputs/release)",
    )
    parser.add_argument("--port", type=int, help="local: port (default: params deploy.ports)")
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR)
    parser.add_argument(
        "--image",
        default=os.environ.get("IMAGE", ""),
        help="kubernetes: the serving image (default $IMAGE)",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("DEPLOY_URL", ""),
        help="kubernetes: the stage's endpoint (default $DEPLOY_URL)",
    )
    parser.add_argument(
        "--allow-unsigned",
        metavar="REASON",
        help="deploy a release that has no signature (as `flightdelay release --allow-unsigned`)",
    )
    parser.add_argument(
        "--stop", metavar="STAGE", help="local: stop the stage's service instead of deploying"
    )
    args = parser.parse_args(argv)
    try:
        if args.stop:
            service = read_state(args.state_dir, args.stop)
            stopped = service is not None and stop(service)
            state_file(args.state_dir, args.stop).unlink(missing_ok=True)
            print(
                f"deploy: {args.stop} "
                + (f"{service.version} stopped" if stopped and service else "was not running")
            )
            return 0
        expected = signing.expected_from_env()
        release = verify_release_dir(args.release, expected, args.allow_unsigned)
        print(
            f"deploy: model {release.model_md5} verified, signature: "
            + (
                signing.SignatureInfo.model_validate(release.signature).line()
                if release.signature
                else f"none (override: {release.unsigned_override})"
            )
        )
        if args.target == "local":
            params = load_params().deploy
            service = deploy_local(
                release, args.release / "model", params, args.state_dir, args.port
            )
            print(
                f"deploy: {release.artifact} {release.version} serving {release.stage} at "
                f"{service.url} (pid {service.pid}), smoke test passed"
            )
        else:
            rendered = deploy_kubernetes(
                release,
                args.image,
                args.url,
                MANIFESTS,
                args.release,
                signer_env(release, expected),
            )
            print(
                f"deploy: {release.version} rolled out to namespace "
                f"{namespace(release.stage)} ({rendered}), smoke test of {args.url} passed"
            )
    except (DeployError, ReleaseError, DataFileError, ParamsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
