"""deploy: manifests for kubernetes, and real local services replaced, restored and stopped."""

from __future__ import annotations

import json
import os
import shutil
import stat
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from flightdelay.core import signing
from flightdelay.core.params import DeployParams
from flightdelay.loop import deploy
from flightdelay.loop.deploy import DeployError, render
from flightdelay.loop.release import Release
from ports import free_port
from serving_bundle import build_model_dir
from signing_keys import KeyPair

MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def release_of(version: str, stage: str = "prod") -> Release:
    return Release(
        artifact="flight-delay",
        version=version,
        stage=stage,
        tag=f"flight-delay#{stage}#7",
        version_tag=f"flight-delay@{version}",
        commit="c" * 40,
        model_path="outputs/model",
        model_md5="m" * 32 + ".dir",
    )


def templates() -> list[dict]:
    return [
        d for f in sorted(MANIFESTS.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d
    ]


# ---------------------------------------------------------------- kubernetes


def test_render_sets_namespace_image_version_and_commit() -> None:
    docs = render(templates(), release_of("v0.3.0"), "ghcr.io/o/r:v0.3.0")
    assert {d["kind"] for d in docs} >= {"Deployment", "Service"}
    assert {d["metadata"]["namespace"] for d in docs} == {"flight-delay-prod"}
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "serve")
    assert container["image"] == "ghcr.io/o/r:v0.3.0"
    assert {"name": "FLIGHTDELAY_MODEL_VERSION", "value": "v0.3.0"} in container["env"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/version"] == "v0.3.0"
    assert pod["metadata"]["annotations"]["flight-delay/git-commit"] == "c" * 40


def serve_env(docs: list[dict]) -> dict[str, str]:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_render_makes_the_pods_verify_the_expected_identity() -> None:
    identity = "https://github.com/o/r/.github/workflows/promote.yml@refs/heads/main"
    release = release_of("v0.3.0")
    env = serve_env(
        render(
            templates(),
            release,
            "img",
            deploy.signer_env(release, signing.Expected(identity=identity)),
        )
    )
    assert env["FLIGHTDELAY_REQUIRE_SIGNATURE"] == "true"  # the manifest's own default
    assert env["FLIGHTDELAY_MODEL_IDENTITY"] == identity
    assert env["FLIGHTDELAY_MODEL_OIDC_ISSUER"] == "https://token.actions.githubusercontent.com"


def test_render_of_an_unsigned_override_lets_the_pods_start_unverified() -> None:
    release = release_of("v0.1.0").model_copy(update={"unsigned_override": "predates signing"})
    env = serve_env(render(templates(), release, "img", deploy.signer_env(release, None)))
    assert env["FLIGHTDELAY_REQUIRE_SIGNATURE"] == "false"
    assert "FLIGHTDELAY_MODEL_IDENTITY" not in env


def test_render_leaves_the_templates_untouched() -> None:
    docs = templates()
    before = json.dumps(docs, sort_keys=True)
    render(docs, release_of("v0.3.0"), "img")
    assert json.dumps(docs, sort_keys=True) == before


def test_manifests_probe_ready_and_health() -> None:
    deployment = next(d for d in templates() if d["kind"] == "Deployment")
    container = next(
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "serve"
    )
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["securityContext"]["runAsNonRoot"] is True


def test_render_without_the_serve_container_names_it() -> None:
    docs = templates()
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["name"] = "app"
    with pytest.raises(DeployError, match=r"has no container 'serve'"):
        render(docs, release_of("v0.3.0"), "img")


def test_render_without_a_deployment_is_refused() -> None:
    service = [d for d in templates() if d["kind"] == "Service"]
    with pytest.raises(DeployError, match=r"hold no Deployment"):
        render(service, release_of("v0.3.0"), "img")


def test_kubernetes_without_kubeconfig_says_which_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBECONFIG_DATA", raising=False)
    with pytest.raises(DeployError, match="set \\$KUBECONFIG_DATA"):
        deploy.deploy_kubernetes(release_of("v0.3.0"), "img", "http://x", MANIFESTS, tmp_path)


def test_kubernetes_without_url_fails_before_applying(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match=r"needs --url"):
        deploy.deploy_kubernetes(release_of("v0.3.0"), "img", "", MANIFESTS, tmp_path)


def test_kubernetes_applies_waits_for_rollout_then_smokes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kubectl is a recording stand-in: the test checks the calls and the kubeconfig it saw."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(f'#!/bin/sh\necho "$* | $(cat "$KUBECONFIG")" >> {calls}\n')
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("KUBECONFIG_DATA", "apiVersion: v1 # secret")
    smoked: list[tuple[str, str]] = []
    monkeypatch.setattr(deploy, "smoke", lambda url, version: smoked.append((url, version)))

    rendered = deploy.deploy_kubernetes(
        release_of("v0.3.0", "staging"),
        "img:v0.3.0",
        "https://staging.example",
        MANIFESTS,
        tmp_path,
    )

    lines = calls.read_text().splitlines()
    assert lines == [
        f"apply -f {rendered} | apiVersion: v1 # secret",
        "rollout status deployment/flight-delay --namespace flight-delay-staging --timeout 300s"
        " | apiVersion: v1 # secret",
    ]
    assert smoked == [("https://staging.example", "v0.3.0")]
    assert "flight-delay-staging" in rendered.read_text()


# ---------------------------------------------------------------- local


def version_of(url: str) -> str:
    with urllib.request.urlopen(f"{url}/version", timeout=5) as answer:
        return str(json.loads(answer.read())["version"])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    return build_model_dir(tmp_path_factory.mktemp("deploy-model"), repo_root)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """The deployments' state; every service still running at the end is stopped."""
    state = tmp_path / "state"
    yield state
    for path in (state / "local").glob("*.json"):
        service = deploy.read_state(state, path.stem)
        if service is not None:
            deploy.stop(service)


@pytest.fixture
def params() -> DeployParams:
    return DeployParams(
        host="127.0.0.1", ports={"staging": free_port(), "prod": free_port()}, ready_timeout_s=60
    )


def test_local_serves_the_release_and_records_its_state(
    model_dir: Path, params: DeployParams, state_dir: Path
) -> None:
    service = deploy.deploy_local(release_of("v0.1.0"), model_dir, params, state_dir)
    assert service.port == params.ports["prod"]
    assert version_of(service.url) == "v0.1.0"
    assert deploy.read_state(state_dir, "prod") == service
    assert Path(service.model_dir).is_dir()
    assert Path(service.model_dir) != model_dir


@pytest.mark.slow
def test_local_replaces_the_running_service(
    model_dir: Path, params: DeployParams, state_dir: Path
) -> None:
    old = deploy.deploy_local(release_of("v0.1.0"), model_dir, params, state_dir)
    new = deploy.deploy_local(release_of("v0.2.0"), model_dir, params, state_dir)
    assert not deploy.is_our_service(old.pid, old.port)
    assert (new.port, version_of(new.url)) == (old.port, "v0.2.0")


@pytest.mark.slow
def test_local_failure_restores_the_previous_version(
    model_dir: Path, params: DeployParams, state_dir: Path, tmp_path: Path
) -> None:
    deploy.deploy_local(release_of("v0.1.0"), model_dir, params, state_dir)
    tampered = tmp_path / "tampered"
    shutil.copytree(model_dir, tampered)
    with (tampered / "model.skops").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(DeployError) as failed:
        deploy.deploy_local(release_of("v0.2.0"), tampered, params, state_dir)
    assert "exited with status 1 before it was ready" in str(failed.value)
    assert "does not match" in str(failed.value)  # serve's own refusal, from its log
    assert "restored the previous deployment, v0.1.0" in str(failed.value)
    restored = deploy.read_state(state_dir, "prod")
    assert restored is not None
    assert version_of(restored.url) == "v0.1.0"


def test_local_failure_without_a_previous_one_leaves_the_stage_down(
    params: DeployParams, state_dir: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DeployError, match=r"no previous deployment to restore: the stage is down"):
        deploy.deploy_local(release_of("v0.1.0", "staging"), empty, params, state_dir)
    assert deploy.read_state(state_dir, "staging") is None


def test_main_stop_ends_the_service_and_forgets_it(
    model_dir: Path, params: DeployParams, state_dir: Path, capsys
) -> None:
    service = deploy.deploy_local(release_of("v0.1.0", "staging"), model_dir, params, state_dir)
    assert deploy.main(["--stop", "staging", "--state-dir", str(state_dir)]) == 0
    assert "staging v0.1.0 stopped" in capsys.readouterr().out
    assert not deploy.is_our_service(service.pid, service.port)
    assert deploy.read_state(state_dir, "staging") is None


def test_stop_leaves_a_process_that_is_not_our_service_alone(tmp_path: Path) -> None:
    mine = deploy.LocalService(
        stage="prod",
        version="v0",
        tag="t",
        commit="c",
        pid=os.getpid(),
        port=free_port(),
        url="",
        model_dir="",
        log="",
        started_at="",
    )
    assert deploy.stop(mine) is False  # this test process: alive, but not a `serve` on that port


def test_read_state_that_is_not_json_says_delete_it(tmp_path: Path) -> None:
    path = deploy.state_file(tmp_path, "prod")
    path.parent.mkdir(parents=True)
    path.write_text("{")
    with pytest.raises(DeployError, match=r"prod\.json: unreadable deployment state"):
        deploy.read_state(tmp_path, "prod")


def test_main_without_a_release_names_the_file(tmp_path: Path, capsys) -> None:
    assert deploy.main(["--release", str(tmp_path / "none")]) == 1
    assert "release.json: release description not found" in capsys.readouterr().err


def test_port_for_an_unknown_stage_names_the_key() -> None:
    params = DeployParams(host="127.0.0.1", ports={"prod": 8000}, ready_timeout_s=1)
    with pytest.raises(DeployError, match=r"deploy\.ports has no port for stage 'staging'"):
        deploy.port_for(params, "staging", None)
    assert deploy.port_for(params, "staging", 9000) == 9000


# ---------------------------------------------------------------- main: verify before anything


@pytest.fixture
def signed_release(
    model_dir: Path, tmp_path: Path, keys: dict[str, KeyPair], monkeypatch: pytest.MonkeyPatch
) -> Path:
    """outputs/release as `flightdelay release` leaves it: release.json, model/, signature/."""
    out = tmp_path / "release"
    shutil.copytree(model_dir, out / "model")
    (out / "signature").mkdir()
    signing.sign(
        out / "model", out / "signature/model.sig", signing.Signer(keys["promotion"].private)
    )
    (out / "release.json").write_text(json.dumps(release_of("v0.1.0").to_json()))
    monkeypatch.setenv("FLIGHTDELAY_MODEL_PUBKEY", str(keys["promotion"].public))
    return out


def deploy_main(release_dir: Path, state_dir: Path, *extra: str) -> int:
    return deploy.main(
        [
            "--release",
            str(release_dir),
            "--state-dir",
            str(state_dir),
            "--port",
            str(free_port()),
            *list(extra),
        ]
    )


def test_main_verifies_then_serves_and_the_service_reports_the_signer(
    signed_release: Path, state_dir: Path, keys: dict[str, KeyPair], capsys
) -> None:
    assert deploy_main(signed_release, state_dir) == 0
    fingerprint = signing.key_fingerprint(keys["promotion"].public)
    assert f"deploy: model {'m' * 32}.dir verified, signature: key {fingerprint}" in (
        capsys.readouterr().out
    )
    service = deploy.read_state(state_dir, "prod")
    assert service is not None
    with urllib.request.urlopen(f"{service.url}/version", timeout=5) as answer:
        signed = json.loads(answer.read())["signature"]
    assert signed["signer"] == f"key {fingerprint}"  # serve verified it again at start


def test_main_refuses_a_release_whose_model_changed_since(
    signed_release: Path, state_dir: Path, capsys
) -> None:
    (signed_release / "model/model.json").write_text("{}")
    assert deploy_main(signed_release, state_dir) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: model {'m' * 32}.dir (flight-delay@v0.1.0): the files of ")
    assert "model.json sha256" in line
    assert deploy.read_state(state_dir, "prod") is None  # nothing was started


def test_main_refuses_an_unsigned_release_without_the_override(
    signed_release: Path, state_dir: Path, capsys
) -> None:
    (signed_release / "signature/model.sig").unlink()
    assert deploy_main(signed_release, state_dir) == 1
    assert "no signature in the DVC remote; expected a signature by the key" in (
        capsys.readouterr().err
    )
    assert deploy.read_state(state_dir, "prod") is None


@pytest.mark.slow
def test_main_with_the_override_serves_an_unsigned_release(
    signed_release: Path, state_dir: Path, capsys
) -> None:
    (signed_release / "signature/model.sig").unlink()
    assert deploy_main(signed_release, state_dir, "--allow-unsigned", "predates signing") == 0
    assert "UNSIGNED by override: predates signing" in capsys.readouterr().err
    service = deploy.read_state(state_dir, "prod")
    assert service is not None
    assert version_of(service.url) == "v0.1.0"


@pytest.mark.slow
def test_local_keeps_a_running_service_of_the_same_release(
    model_dir: Path, params: DeployParams, state_dir: Path
) -> None:
    """What a promoted canary leaves: `make deploy` of the same release must not restart it."""
    first = deploy.deploy_local(release_of("v0.1.0"), model_dir, params, state_dir)
    again = deploy.deploy_local(release_of("v0.1.0"), model_dir, params, state_dir)
    assert again == first
    assert deploy.is_our_service(first.pid, first.port)
