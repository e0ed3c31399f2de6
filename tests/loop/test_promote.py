"""promote: bump from labels, the decision, and the whole command on a tiny registry.

The gate itself is tested in tests/loop/test_gate.py. The tiny registry's models cannot be scored,
so here the re-scoring (flightdelay.loop.rescore.evidence) is replaced by a stand-in that returns
the evidence the test chooses; everything around it is real: fetching the candidate and the champion
by the hash dvc.lock records, verifying them, reading the rule from the commit before the merge, the
gate's decision, GTO. The end-to-end tests (tests/e2e/test_pr_e2e.py, test_loop_e2e.py) re-score
real models.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from flightdelay.core import artifacts, signing
from flightdelay.loop import promote, rescore
from flightdelay.loop.compare import Comparison, Delta
from flightdelay.loop.gate import Challenger
from flightdelay.loop.promote import Decision, PromoteError, bump_from_labels, decide
from output_fixtures import EVALUATION, PASSED_VALIDATION
from registry_repo import RegistryRepo, build_base
from signing_keys import KeyPair

# ---------------------------------------------------------------- pure cores


@pytest.mark.parametrize(
    ("labels", "bump"),
    [
        ([], "minor"),
        (["major"], "major"),
        (["Patch", "docs"], "patch"),
        (["MINOR"], "minor"),
        (["bug", "enhancement"], "minor"),
    ],
)
def test_bump_from_labels_picks_the_label_or_minor(labels: list[str], bump: str) -> None:
    assert bump_from_labels(labels) == bump


def test_bump_from_labels_with_two_bumps_asks_for_one() -> None:
    with pytest.raises(PromoteError, match=r"labels \['major', 'patch'\]: keep exactly one"):
        bump_from_labels(["patch", "major"])


def test_parse_labels_splits_commas_and_newlines() -> None:
    assert promote.parse_labels(" patch, data\nmodel ,, ") == ["patch", "data", "model"]
    assert promote.parse_labels("") == []


def test_decide_same_model_as_latest_is_unchanged_without_a_verdict() -> None:
    decision = decide("m1.dir", ("v0.3.0", "m1.dir"), None)
    assert decision.action == "unchanged"
    assert "registered as v0.3.0" in decision.reasons[0]


def test_decide_follows_the_gate() -> None:
    assert decide("m2.dir", ("v0.3.0", "m1.dir"), (True, [], [])) == Decision("register")
    assert decide("m2.dir", None, (False, ["slice JFK below 0.70"], ["FAIL slice floors"])) == (
        Decision("refused", ("slice JFK below 0.70",), ("FAIL slice floors",))
    )


def test_decide_changed_model_without_verdict_is_an_error() -> None:
    with pytest.raises(PromoteError, match=r"gate gave no verdict"):
        decide("m2.dir", None, None)


def test_summary_of_a_refusal_says_no_tag() -> None:
    text = promote.summary(
        Decision("refused", ("roc_auc 0.70 < 0.75",), ("FAIL floor: x",)), "a" * 40
    )
    assert "gate refused the model of `aaaaaaaaaaaa`" in text
    assert "- roc_auc 0.70 < 0.75" in text
    assert "FAIL floor: x" in text
    assert "No tag was created" in text


# ---------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def base(
    tmp_path_factory: pytest.TempPathFactory, repo_root: Path
) -> tuple[RegistryRepo, dict[str, str]]:
    return build_base(tmp_path_factory.mktemp("promote"), repo_root, ("a",))


@pytest.fixture
def repo(
    base: tuple[RegistryRepo, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    keys: dict[str, KeyPair],
) -> RegistryRepo:
    repo = base[0].copy(tmp_path / "repo")
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("FLIGHTDELAY_SIGNING_KEY", str(keys["promotion"].private))
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        monkeypatch.setenv(name, str(tmp_path / name))
    return repo


PASSED = PASSED_VALIDATION


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A stand-in re-scoring: the candidate's ROC AUC is ``roc_auc``; with a champion, the delta
    is 0 (CI ±0.001). Records what it was given: (candidate, champion, judged params)."""
    chosen: dict[str, Any] = {"roc_auc": 0.80, "calls": []}

    def evidence(
        candidate: rescore.Candidate, champion: rescore.Candidate | None, params: Any
    ) -> tuple[Challenger, Comparison | None]:
        chosen["calls"].append((candidate, champion, params))
        metrics = {**EVALUATION, "eval_month": "2013-09", "roc_auc": chosen["roc_auc"], "n": 1000.0}
        comparison = None
        if champion is not None:
            d = Delta("roc_auc", chosen["roc_auc"], chosen["roc_auc"], -0.001, 0.001)
            comparison = Comparison(champion.label, champion.commit, 1000, 10, 0.95, {"roc_auc": d})
        return Challenger(metrics, None, PASSED), comparison

    monkeypatch.setattr(rescore, "evidence", evidence)
    return chosen


def summary_of(tmp_path: Path) -> str:
    return (tmp_path / "GITHUB_STEP_SUMMARY").read_text()


def test_main_first_model_becomes_v0_1_0_in_staging(
    repo: RegistryRepo, gate: dict, tmp_path: Path
) -> None:
    assert promote.main(["--labels", "major"]) == 0  # the first version ignores the bump
    assert repo.tags() == {"flight-delay@v0.1.0", "flight-delay#staging#1"}
    assert repo.show()["stage"] == {"staging": "v0.1.0", "prod": None}
    ((candidate, champion, _),) = gate["calls"]
    assert champion is None  # no version was ever in prod
    head = repo.git("rev-parse", "HEAD").strip()
    assert candidate.model_dir == Path(".dvc/tmp/flightdelay/approved") / head / "model"
    outputs = (tmp_path / "GITHUB_OUTPUT").read_text()
    assert "promoted=true\nversion=v0.1.0\nversion_tag=flight-delay@v0.1.0\n" in outputs
    assert "tag=flight-delay#staging#1\n" in outputs
    assert "v0.1.0 promoted to staging" in summary_of(tmp_path)


def test_main_bumps_by_label(repo: RegistryRepo, gate: dict) -> None:
    assert promote.main([]) == 0
    repo.gto("assign", "flight-delay", "--version", "v0.1.0", "--stage", "prod")
    repo.commit_model("b")
    assert promote.main(["--labels", "patch"]) == 0
    assert repo.show()["stage"] == {"staging": "v0.1.1", "prod": "v0.1.0"}
    repo.commit_model("c")
    assert promote.main(["--labels", "bug\nmajor"]) == 0
    assert repo.show()["version"] == "v1.0.0"


def test_main_refused_by_the_gate_creates_no_tag(
    repo: RegistryRepo, gate: dict, tmp_path: Path, capsys
) -> None:
    gate["roc_auc"] = 0.61
    assert promote.main([]) == 1
    assert repo.tags() == set()
    assert "ROC AUC 0.6100 on 2013-09 < floor 0.75" in capsys.readouterr().err
    assert "No tag was created" in summary_of(tmp_path)
    assert "promoted=false" in (tmp_path / "GITHUB_OUTPUT").read_text()


def test_main_same_model_as_latest_version_registers_nothing(
    repo: RegistryRepo, gate: dict, capsys
) -> None:
    assert promote.main([]) == 0
    (repo.root / "README.md").write_text("docs only\n")
    repo.git("add", "README.md")
    repo.git("commit", "--quiet", "--message", "docs")
    assert promote.main([]) == 0
    assert "the model is the one registered as v0.1.0" in capsys.readouterr().out
    assert repo.tags() == {"flight-delay@v0.1.0", "flight-delay#staging#1"}
    assert len(gate["calls"]) == 1  # the gate did not run for the unchanged model


def test_main_with_uncommitted_dvc_lock_refuses(repo: RegistryRepo, gate: dict, capsys) -> None:
    lock = repo.root / "dvc.lock"
    lock.write_text(lock.read_text() + "\n# stale\n")
    assert promote.main([]) == 1
    assert "differ from HEAD: the merged commit does not record the pipeline" in (
        capsys.readouterr().err
    )
    assert repo.tags() == set()


def test_main_conflicting_labels_fail_before_anything(
    repo: RegistryRepo, gate: dict, capsys
) -> None:
    assert promote.main(["--labels", "major,minor"]) == 1
    assert "keep exactly one of major, minor, patch" in capsys.readouterr().err
    assert gate["calls"] == []


def test_main_with_code_changed_but_not_reproduced_names_the_stage(
    repo: RegistryRepo, gate: dict, capsys
) -> None:
    script = repo.root / "make_model.py"
    script.write_text(script.read_text() + "# a change nobody reproduced\n")
    repo.git("commit", "--quiet", "--all", "--message", "code without dvc repro")
    assert promote.main([]) == 1
    err = capsys.readouterr().err
    assert "does not hold the pipeline outputs HEAD's dvc.lock records" in err
    assert "train: changed deps: make_model.py modified" in err
    assert gate["calls"] == []
    assert repo.tags() == set()


def test_main_without_the_pulled_model_says_dvc_pull(
    repo: RegistryRepo, gate: dict, capsys
) -> None:
    shutil.rmtree(repo.root / "outputs" / "model")
    assert promote.main([]) == 1
    err = capsys.readouterr().err
    assert "outputs/model deleted" in err
    assert "Run `dvc pull`" in err


def test_main_signs_the_approved_model_into_the_remote_by_its_hash(
    repo: RegistryRepo, gate: dict, keys: dict[str, KeyPair], tmp_path: Path, capsys
) -> None:
    assert promote.main([]) == 0
    md5 = artifacts.recorded("flight-delay", "HEAD").md5
    fetched = tmp_path / "fetched.sig"
    assert artifacts.fetch_signature("flight-delay", md5, fetched) is not None
    info = signing.verify(
        repo.root / "outputs/model", fetched, signing.Expected(public_key=keys["promotion"].public)
    )
    assert f"promote: signed model {md5}: {info.signer}" in capsys.readouterr().out
    assert f"Signed model `{md5}`" in summary_of(tmp_path)


def test_main_without_a_signer_creates_no_tag(
    repo: RegistryRepo, gate: dict, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.delenv("FLIGHTDELAY_SIGNING_KEY")
    assert promote.main([]) == 1
    assert "error: no model signer configured: set FLIGHTDELAY_SIGNING_KEY" in (
        capsys.readouterr().err
    )
    assert repo.tags() == set()  # signing comes before any tag


def test_sign_approved_refuses_a_directory_that_is_not_the_approved_model(
    repo: RegistryRepo,
) -> None:
    (repo.root / "outputs/model/model.json").write_text("{}")
    with pytest.raises(promote.PromoteError, match=r"is not the approved model .*refusing to sign"):
        promote.sign_approved(
            repo.root / "outputs/model", artifacts.recorded("flight-delay", "HEAD").md5
        )


# ---------------------------------------------------------------- approval: what it trusts


def lock_md5(repo: RegistryRepo) -> str:
    lock = yaml.safe_load((repo.root / "dvc.lock").read_text())
    (out,) = [o for o in lock["stages"]["train"]["outs"] if o["path"] == "outputs/model"]
    return str(out["md5"])


def test_approve_returns_the_verified_model_dvc_lock_records(
    repo: RegistryRepo, gate: dict
) -> None:
    head = repo.git("rev-parse", "HEAD").strip()
    params = promote.load_params("params.yaml")

    approved = promote.approve(head, params, Path("params.yaml"))

    assert approved.md5 == lock_md5(repo)
    assert promote.artifacts.directory_md5(approved.model_dir) == approved.md5
    assert json.loads((approved.model_dir / "model.json").read_text())["name"] == "a"
    assert (
        gate["calls"][0][0].model_dir == approved.model_dir
    )  # what was scored is what is approved


def test_approve_scores_the_recorded_model_not_the_work_tree(
    repo: RegistryRepo, gate: dict
) -> None:
    """Outputs in the work tree are whatever the branch left there; the approval fetches the
    bytes dvc.lock records instead."""
    (repo.root / "outputs" / "model" / "model.json").write_text('{"name": "forged"}')
    head = repo.git("rev-parse", "HEAD").strip()

    approved = promote.approve(head, promote.load_params("params.yaml"), Path("params.yaml"))

    assert json.loads((approved.model_dir / "model.json").read_text())["name"] == "a"


def test_approve_refuses_bytes_that_are_not_what_dvc_lock_records(
    repo: RegistryRepo, gate: dict, tmp_path: Path
) -> None:
    """A model in the cache and the remote whose bytes differ from the hash dvc.lock records
    (a tampered cache or remote) is refused, naming the output."""
    shared = repo.remote()
    remote = tmp_path / "own-remote"  # a copy: the module's other tests share the remote
    shutil.copytree(shared, remote)
    repo.use_remote(remote)
    md5 = promote.artifacts.md5_file(repo.root / "outputs" / "model" / "weights.bin")
    stored = [
        p
        for root in (repo.root / ".dvc" / "cache", remote)
        for p in root.rglob(md5[2:])
        if p.parent.name == md5[:2]
    ]
    assert stored, "the model's weights are in neither the cache nor the remote"
    for path in stored:
        path.chmod(0o644)
        path.write_bytes(b"tampered")
    head = repo.git("rev-parse", "HEAD").strip()

    with pytest.raises(
        PromoteError,
        match=r"cannot approve the candidate \(outputs/model at [0-9a-f]{12}, "
        r".*hash \w+\.dir differs",
    ):
        promote.approve(head, promote.load_params("params.yaml"), Path("params.yaml"))
    assert gate["calls"] == []  # nothing unverified was scored


def set_gate(repo: RegistryRepo, **values: float) -> None:
    path = repo.root / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["gate"].update(values)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_main_judges_by_the_rule_of_the_commit_before_the_merge(
    repo: RegistryRepo, gate: dict, tmp_path: Path, capsys
) -> None:
    """The loosen-the-gate change: a worse model that lowers the floor it is judged by."""
    assert promote.main([]) == 0  # v0.1.0
    set_gate(repo, min_metric=0.5, max_drop=1.0, slice_max_drop=1.0, slice_min_metric=0.0)
    repo.commit_model("worse")
    gate["roc_auc"] = 0.61

    assert promote.main([]) == 1

    err = capsys.readouterr().err
    assert "ROC AUC 0.6100 on 2013-09 < floor 0.75" in err  # main's floor, not 0.5
    assert repo.tags() == {"flight-delay@v0.1.0", "flight-delay#staging#1"}
    summary = summary_of(tmp_path)
    assert "changes the rule it is judged by (`gate.max_drop`, `gate.min_metric`" in summary
    assert "judged by main's rule; the new rule applies from the next PR" in summary
    judged = gate["calls"][-1][2]
    assert judged.gate.min_metric == 0.75
    assert judged.gate.max_drop == 0.005


def test_main_applies_a_rule_change_from_the_next_change_on(
    repo: RegistryRepo, gate: dict, capsys
) -> None:
    set_gate(repo, min_metric=0.6)
    repo.commit_model("b")  # judged by the first commit's rule (0.75): 0.61 fails
    gate["roc_auc"] = 0.61
    assert promote.main([]) == 1
    repo.commit_model("c")  # its parent holds min_metric 0.6: 0.61 passes
    assert promote.main([]) == 0


# ---------------------------------------------------------------- promote.yml without secrets


def make_pull(repo: RegistryRepo, repo_root: Path, **env: str) -> Any:
    """`make pull` as promote.yml runs it, with this venv (never reinstalled)."""
    import subprocess
    import sys

    venv = Path(sys.executable).parent.parent
    shutil.copy2(repo_root / "Makefile", repo.root / "Makefile")
    environ = {k: v for k, v in repo.env.items() if k != "DVC_REMOTE_URL"} | env
    return subprocess.run(
        ["make", "--no-print-directory", f"VENV={venv}", "-o", f"{venv}/.installed-dev", "pull"],
        cwd=repo.root,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )


def test_make_pull_without_dvc_remote_url_says_to_set_it(
    repo: RegistryRepo, repo_root: Path, tmp_path: Path
) -> None:
    """A fork or a new repository: no secret, so the default remote is a directory on the
    runner that holds none of main's outputs."""
    repo.use_remote(tmp_path / "empty-remote")
    shutil.rmtree(repo.root / ".dvc" / "cache")
    shutil.rmtree(repo.root / "outputs")

    done = make_pull(repo, repo_root)

    assert done.returncode != 0
    first = done.stderr.splitlines()[0]
    assert first.startswith(
        "error: set DVC_REMOTE_URL: main's outputs are in no remote this job can read"
    )
    assert "Traceback" not in done.stderr


def test_make_pull_with_the_remote_pulls_the_outputs(repo: RegistryRepo, repo_root: Path) -> None:
    shutil.rmtree(repo.root / "outputs")

    done = make_pull(repo, repo_root)

    assert done.returncode == 0, done.stderr
    assert (repo.root / "outputs" / "model" / "model.json").is_file()
