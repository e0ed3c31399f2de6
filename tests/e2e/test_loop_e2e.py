"""The whole GitOps loop, end to end, without GitHub: the commands the workflows run, in order.

A bare "origin" repository cloned from this repository's committed state, a working clone, a DVC
remote, an MLflow store and two loopback ports, all in tmp_path; real git, DVC, GTO, pipeline
and prediction service. Each step runs the make target (or the git/dvc command) its workflow step
runs; the pull-request job is pr-report.yml's (make pr-job), the promotion job
promote.yml's, the release job release.yml's (minus the image and the GitHub release, which need
GitHub). The story:

1. main with a fast training config is pushed: promotion registers v0.1.0 in staging; a person
   promotes it to prod (make promote-prod), the release deploys it.
2. A pull request changes a training parameter; its report says it would be promoted; it is
   merged; promotion registers v0.2.0 (no bump label: minor) in staging; release deploys staging;
   promote-prod and release deploy prod; /version and /predict answer from v0.2.0.
3. A pull request that makes the model worse is merged anyway: its report says it would not be
   promoted, and the promotion gate refuses it: no tag.
4. Rollback re-assigns prod to v0.1.0; the release redeploys it; the service reports v0.1.0.

Every promotion signs the model it approved with a key pair (``FLIGHTDELAY_SIGNING_KEY``, as
Sigstore keyless would on GitHub) and every release, deployment and service start verifies it
against the public key (``FLIGHTDELAY_MODEL_PUBKEY``). Afterwards ``gto show`` (in the clone and
on origin's tags) and the MLflow aliases say the same.
The training config is shrunk in the clone (fewer trees, one backtest month, a small permutation
importance sample: tests/params_edit.FAST, shared with test_pr_e2e) so the loop runs in minutes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dvc_store import shared_run
from flightdelay.core.signing import key_fingerprint
from params_edit import FAST, edit_params
from ports import free_port
from signing_keys import KeyPair

pytestmark = pytest.mark.slow

MODEL = "flight-delay"
VENV = Path(sys.executable).parent.parent  # the venv running the tests (not resolved: a symlink)
BETTER = {"train": {"max_iter": 50}}  # the pull request: more trees
WORSE = {"train": {"max_iter": 2, "learning_rate": 0.05}}  # nearly no model


def get_json(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


class Work:
    """The working clone: runs make targets and git/dvc/gto there, like a runner or a laptop."""

    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path, self.env = path, env
        self.log: list[tuple[str, float]] = []

    def run(self, *args: str, ok: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        started = time.perf_counter()
        done = subprocess.run(
            args,
            cwd=self.path,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            check=False,
        )
        words = [a for a in args[1:] if not a.startswith("-") and not a.startswith(str(VENV))]
        label = " ".join([Path(args[0]).name, *(w for w in words if "VENV=" not in w)][:3])
        self.log.append((label, time.perf_counter() - started))
        if ok:
            assert done.returncode == 0, (
                f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n"
                f"{done.stderr[-4000:]}"
            )
        return done

    def make(
        self, target: str, *variables: str, ok: bool = True, **env: str
    ) -> subprocess.CompletedProcess[str]:
        # VENV: the interpreter running the tests; -o: never reinstall it from the clone.
        return self.run(
            "make",
            "--no-print-directory",
            f"VENV={VENV}",
            "-o",
            f"{VENV}/.installed-dev",
            target,
            *variables,
            ok=ok,
            **env,
        )

    def git(self, *args: str) -> str:
        return self.run("git", *args).stdout

    def dvc(self, *args: str) -> str:
        return self.run(sys.executable, "-m", "dvc", *args).stdout

    def tags(self) -> set[str]:
        return set(self.git("tag", "--list").split())

    def origin_tags(self) -> set[str]:
        return {
            line.split("refs/tags/", 1)[1]
            for line in self.git("ls-remote", "--tags", "origin").splitlines()
            if "^{}" not in line
        }

    def gto_show(self) -> dict[str, Any]:
        shown = json.loads(self.run(f"{VENV}/bin/gto", "show", "--json").stdout)
        return dict(shown.get(MODEL, {}))

    def commit_all(self, message: str) -> None:
        self.git("add", "--all")
        self.git("commit", "--quiet", "--message", message)

    # ------------------------------------------------ the workflows' jobs, step by step

    def pr_job(self) -> str:
        """pr-report.yml (`make pr-job`: data, repro, report, report-summary); returns report.md."""
        self.make("pr-job")
        return (self.path / "outputs/report/report.md").read_text()

    def merge(self, branch: str, message: str) -> None:
        """The developer pushes the branch (dvc.lock and outputs in it); GitHub merges it."""
        self.dvc("push", "--quiet")
        self.commit_all(message)
        self.git("push", "--quiet", "origin", branch)
        self.git("switch", "--quiet", "main")
        self.git("merge", "--quiet", "--no-ff", "--message", f"Merge {branch}", branch)
        self.git("push", "--quiet", "origin", "main")

    def promote_job(
        self, labels: str = "", ok: bool = True
    ) -> tuple[subprocess.CompletedProcess[str], set[str]]:
        """promote.yml: make pull, make promote, push the new tags; returns (result, new tags)."""
        before = self.tags()
        self.make("pull")
        done = self.make("promote", ok=ok, PR_LABELS=labels)
        new = self.tags() - before
        if new:
            self.git("push", "--quiet", "--atomic", "origin", *(f"refs/tags/{t}" for t in new))
        return done, new

    def promote_prod(self, version: str) -> str:
        """A person: make promote-prod VERSION=..., git push the tag; returns the tag."""
        before = self.tags()
        self.make("promote-prod", f"VERSION={version}")
        (tag,) = self.tags() - before
        self.git("push", "--quiet", "origin", f"refs/tags/{tag}")
        return tag

    def release_job(self, ref: str) -> dict[str, Any]:
        """release.yml's deploy job: release (verified model), deploy + smoke, MLflow alias."""
        self.make("release", f"REF={ref}")
        self.make("deploy")
        self.make("mlflow-alias")
        return dict(json.loads((self.path / "outputs/release/release.json").read_text()))

    def stop_services(self) -> None:
        self.run(sys.executable, "-m", "flightdelay", "canary", "--stop", ok=False)  # its nginx
        for stage in ("staging", "prod"):
            self.run(sys.executable, "-m", "flightdelay", "deploy", "--stop", stage, ok=False)
            state = self.path / ".deploy" / "local" / f"{stage}.json"
            if state.is_file():  # belt and braces: the recorded service, if it still runs
                from flightdelay.loop.deploy import is_our_service

                service = json.loads(state.read_text())
                if is_our_service(service["pid"], service["port"]):
                    os.killpg(service["pid"], signal.SIGKILL)


@dataclass
class Loop:
    work: Work
    ports: dict[str, int]
    first_tags: set[str] = field(default_factory=set)
    first_prod: dict[str, Any] = field(default_factory=dict)
    pr_report: str = ""
    second_tags: set[str] = field(default_factory=set)
    staging_version: dict[str, Any] = field(default_factory=dict)
    staging_assets: dict[str, str] = field(default_factory=dict)  # name -> text of the .md ones
    prod_version: dict[str, Any] = field(default_factory=dict)
    prediction: dict[str, Any] = field(default_factory=dict)
    worse_report: str = ""
    refused: subprocess.CompletedProcess[str] | None = None
    refused_tags: set[str] = field(default_factory=set)
    rollback_tag: str = ""
    rolled_back: dict[str, Any] = field(default_factory=dict)
    signer: str = ""  # "key sha256:<fingerprint>" of the promotion's key
    seconds: float = 0.0

    def url(self, stage: str) -> str:
        return f"http://127.0.0.1:{self.ports[stage]}"


@pytest.fixture(scope="module")
def loop(
    tmp_path_factory: pytest.TempPathFactory,
    repo_root: Path,
    keys: dict[str, KeyPair],
    dvc_store: Path,
) -> Iterator[Loop]:
    started = time.perf_counter()
    ws = tmp_path_factory.mktemp("loop")
    (ws / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_"))}
    env |= {
        "HOME": str(ws / "home"),
        "PATH": f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": str(ws / "work" / "src"),  # the clone's committed code, not this tree's
        "MLFLOW_TRACKING_URI": f"sqlite:///{ws / 'mlflow.db'}",
        "DVC_NO_ANALYTICS": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "GIT_AUTHOR_NAME": "Loop Test",
        "GIT_AUTHOR_EMAIL": "loop@example.com",
        "GIT_COMMITTER_NAME": "Loop Test",
        "GIT_COMMITTER_EMAIL": "loop@example.com",
        "FLIGHTDELAY_SIGNING_KEY": str(keys["promotion"].private),  # promote signs with it
        "FLIGHTDELAY_MODEL_PUBKEY": str(keys["promotion"].public),  # release, deploy, serve
    }
    subprocess.run(
        ["git", "clone", "--quiet", "--bare", str(repo_root), str(ws / "origin.git")],
        check=True,
        env=env,
    )
    # origin's main is this tree's HEAD, whatever its branch (a helper's worktree, a CI checkout).
    for naming in (
        ["update-ref", "refs/heads/main", "HEAD"],
        ["symbolic-ref", "HEAD", "refs/heads/main"],
    ):
        subprocess.run(["git", f"--git-dir={ws / 'origin.git'}", *naming], check=True, env=env)
    subprocess.run(
        ["git", "clone", "--quiet", str(ws / "origin.git"), str(ws / "work")], check=True, env=env
    )
    work = Work(ws / "work", env)
    remote = work.dvc("config", "core.remote").strip()
    work.dvc("remote", "modify", "--local", remote, "url", str(ws / "dvc-remote"))
    ports = {"staging": free_port(), "prod": free_port()}
    state = Loop(work, ports, signer=f"key {key_fingerprint(keys['promotion'].public)}")
    try:
        # 1. main, with the fast config and this run's ports, pushed; promoted; deployed to prod.
        edit_params(
            work.path / "params.yaml",
            {
                **FAST,
                "deploy": {"ports": f"{{staging: {ports['staging']}, prod: {ports['prod']}}}"},
                "canary": {
                    "port": free_port(),  # each prod release after the first
                    "window_s": 6,  # is a canary (make release): bounded load
                    "requests": 400,
                    # The latency rule has its own tests (test_canary); here a cold process on a
                    # loaded 2-core runner must not abort the loop (seen: p99 775 ms at load 12).
                    "min_p99_latency_s": 5,
                },
            },
        )
        # main's run on the fast config is test_pr_e2e's main too (the ports and the canary are
        # no stage's params): whichever clone comes second checks it out (tests/dvc_store.py).
        with shared_run(dvc_store, work.path, "main-fast"):
            work.make("data")
            work.make("repro")
        work.dvc("push", "--quiet")
        work.commit_all("Fast training config for this run")
        work.git("push", "--quiet", "origin", "main")
        _, state.first_tags = work.promote_job()
        state.first_prod = work.release_job(work.promote_prod("v0.1.0"))

        # 2. a pull request that changes a training parameter, merged, promoted, released.
        work.git("switch", "--quiet", "--create", "pr/more-trees")
        edit_params(work.path / "params.yaml", BETTER)
        state.pr_report = work.pr_job()
        work.merge("pr/more-trees", "More trees")
        _, state.second_tags = work.promote_job(labels="enhancement")
        staging_tag = next(t for t in state.second_tags if "#staging#" in t)
        work.release_job(staging_tag)
        state.staging_assets = {
            p.name: p.read_text() if p.suffix == ".md" else ""
            for p in (work.path / "outputs/release/assets").iterdir()
        }
        state.staging_version = get_json(f"{state.url('staging')}/version")
        work.release_job(work.promote_prod("v0.2.0"))
        state.prod_version = get_json(f"{state.url('prod')}/version")
        from flightdelay.core.schemas import EXAMPLE_FLIGHT

        state.prediction = get_json(f"{state.url('prod')}/predict", EXAMPLE_FLIGHT)

        # 3. a worse model, merged anyway: the gate refuses it.
        work.git("switch", "--quiet", "--create", "pr/fewer-trees")
        edit_params(work.path / "params.yaml", WORSE)
        state.worse_report = work.pr_job()
        work.merge("pr/fewer-trees", "Fewer trees")
        state.refused, state.refused_tags = work.promote_job(ok=False)

        # 4. rollback: prod back to the previous version, redeployed.
        before = work.tags()
        work.make("rollback")
        (state.rollback_tag,) = work.tags() - before
        work.git("push", "--quiet", "origin", f"refs/tags/{state.rollback_tag}")
        work.release_job(state.rollback_tag)
        state.rolled_back = get_json(f"{state.url('prod')}/version")
        state.seconds = time.perf_counter() - started
        print(
            f"\nloop: {state.seconds:.0f}s; slowest steps: "
            + ", ".join(
                f"{cmd} {sec:.0f}s" for cmd, sec in sorted(work.log, key=lambda x: -x[1])[:6]
            )
        )
        yield state
    finally:
        work.stop_services()


def test_first_push_to_main_is_v0_1_0_in_staging_then_prod(loop: Loop) -> None:
    assert loop.first_tags == {f"{MODEL}@v0.1.0", f"{MODEL}#staging#1"}
    assert (loop.first_prod["version"], loop.first_prod["stage"]) == ("v0.1.0", "prod")


def test_pull_request_report_says_the_better_model_would_be_promoted(loop: Loop) -> None:
    assert "**Would be promoted if merged**" in loop.pr_report[:800]  # the verdict comes first
    assert "max_iter" in loop.pr_report  # the params diff


def test_merge_registers_a_minor_version_and_assigns_staging(loop: Loop) -> None:
    assert f"{MODEL}@v0.2.0" in loop.second_tags
    assert any(t.startswith(f"{MODEL}#staging#") for t in loop.second_tags)
    assert loop.staging_version["version"] == "v0.2.0"


def test_staging_release_attaches_the_card_of_v0_2_0(loop: Loop) -> None:
    card = loop.staging_assets[f"{MODEL}@v0.2.0.md"]
    assert card.startswith("<!-- Generated by `flightdelay card`")
    commit = loop.work.git("rev-parse", f"{MODEL}@v0.2.0^{{commit}}").strip()
    assert f"| Version | v0.2.0 (git tag `{MODEL}@v0.2.0`) |" in card
    assert f"| Registered commit | `{commit}` |" in card
    assert f"| Signature | {loop.signer}; manifest digest sha256:" in card
    assert f"{MODEL}.md" in loop.staging_assets  # the working-tree card of that commit, too


def test_promotion_signs_and_release_deploy_and_serve_verify(loop: Loop) -> None:
    assert loop.first_prod["signature"]["signer"] == loop.signer
    assert loop.first_prod["unsigned_override"] is None
    assert loop.staging_version["signature"]["signer"] == loop.signer  # serve checked it at start
    assert loop.prod_version["signature"]["signer"] == loop.signer
    assert f"{MODEL}@v0.2.0.sig" in loop.staging_assets  # attached to the GitHub release


def test_prod_serves_v0_2_0_and_predicts(loop: Loop) -> None:
    assert loop.prod_version["model"] == MODEL
    assert loop.prod_version["version"] == "v0.2.0"
    assert loop.prediction["model_version"] == "v0.2.0"
    (row,) = loop.prediction["predictions"]
    assert 0.0 <= row["probability"] <= 1.0


def test_worse_model_report_and_gate_refuse_it_without_a_tag(loop: Loop) -> None:
    assert "**Would not be promoted if merged**" in loop.worse_report[:800]
    assert loop.refused is not None
    assert loop.refused.returncode != 0
    assert "refused, no tag created" in loop.refused.stderr
    assert loop.refused_tags == set()


def test_rollback_puts_v0_1_0_back_on_the_live_service(loop: Loop) -> None:
    assert loop.rollback_tag.startswith(f"{MODEL}#prod#")
    assert loop.rolled_back["version"] == "v0.1.0"
    assert get_json(f"{loop.url('prod')}/version")["version"] == "v0.1.0"  # still live


def test_gto_show_lists_the_versions_and_stages(loop: Loop) -> None:
    shown = loop.work.gto_show()
    assert shown["version"] == "v0.2.0"
    assert shown["stage"] == {"staging": "v0.2.0", "prod": "v0.1.0"}
    registered = {t.split("@", 1)[1] for t in loop.work.tags() if t.startswith(f"{MODEL}@")}
    assert registered == {"v0.1.0", "v0.2.0"}
    assert loop.work.origin_tags() == loop.work.tags()


def test_mlflow_aliases_match_the_stage_tags(loop: Loop) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=loop.work.env["MLFLOW_TRACKING_URI"])
    for stage, version in loop.work.gto_show()["stage"].items():
        aliased = client.get_model_version_by_alias(MODEL, stage)
        assert aliased.tags["gto_version"] == version
        commit = loop.work.git("rev-parse", f"{MODEL}@{version}^{{commit}}").strip()
        assert aliased.tags["git_commit"] == commit
    assert client.get_model_version_by_alias(MODEL, "prod").tags["gto_tag_prod"] == (
        loop.rollback_tag
    )


def test_prod_releases_after_the_first_go_through_a_canary(loop: Loop) -> None:
    """The rollback's release is a prod release with v0.2.0 running: canaried, then promoted."""
    from flightdelay.loop.canary import read_report

    report = read_report(loop.work.path / "outputs/delivery")
    assert (report.candidate, report.stable) == ("v0.1.0", "v0.2.0")
    assert report.decision.action == "promote", report.decision.reasons
    assert report.canary_side.requests >= 20
