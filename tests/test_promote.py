"""promote: bump from labels, the decision, and the whole command on a tiny registry.

The gate itself is tested in tests/test_gate.py; here it is replaced by a stand-in `gate`
command that writes the verdict the test chooses, so every branch of promotion is reachable.
The end-to-end test (tests/test_loop_e2e.py) runs the real gate.
"""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import pytest

from flightdelay import cli, promote
from flightdelay.promote import Decision, PromoteError, bump_from_labels, decide, gate_verdict
from registry_repo import RegistryRepo, build_base

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


def test_gate_verdict_reads_promote_reasons_and_checks() -> None:
    payload = {
        "promote": False,
        "reasons": ["roc_auc fell"],
        "checks": [
            {"name": "floor", "passed": True, "detail": "0.81 >= 0.75"},
            {"name": "vs champion", "passed": False, "detail": "CI below -0.005"},
        ],
    }
    assert gate_verdict(payload, "g.json") == (
        False,
        ["roc_auc fell"],
        ["pass floor: 0.81 >= 0.75", "FAIL vs champion: CI below -0.005"],
    )


def test_gate_verdict_without_boolean_promote_names_the_file() -> None:
    with pytest.raises(PromoteError, match=r"g\.json: not a gate result"):
        gate_verdict({"promote": "yes"}, "g.json")


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
    base: tuple[RegistryRepo, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> RegistryRepo:
    repo = base[0].copy(tmp_path / "repo")
    monkeypatch.chdir(repo.root)
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        monkeypatch.setenv(name, str(tmp_path / name))
    return repo


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """A stand-in `flightdelay gate`: writes {promote, reasons} from ``verdict``, records argv."""
    verdict: dict[str, object] = {"promote": True, "reasons": ["roc_auc 0.80 >= 0.75"], "calls": []}

    def main(argv: list[str]) -> int:
        verdict["calls"].append(list(argv))  # type: ignore[attr-defined]
        Path("outputs").mkdir(exist_ok=True)
        payload = {"promote": verdict["promote"], "reasons": verdict["reasons"]}
        Path("outputs/gate.json").write_text(json.dumps(payload))
        return 0 if verdict["promote"] else 1

    module = types.ModuleType("fake_gate")
    module.main = main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_gate", module)
    monkeypatch.setitem(cli.COMMANDS, "gate", ("fake_gate", "stand-in"))
    return verdict


def summary_of(tmp_path: Path) -> str:
    return (tmp_path / "GITHUB_STEP_SUMMARY").read_text()


def test_main_first_model_becomes_v0_1_0_in_staging(
    repo: RegistryRepo, gate: dict, tmp_path: Path
) -> None:
    assert promote.main(["--labels", "major"]) == 0  # the first version ignores the bump
    assert repo.tags() == {"flight-delay@v0.1.0", "flight-delay#staging#1"}
    assert repo.show()["stage"] == {"staging": "v0.1.0", "prod": None}
    assert gate["calls"] == [[]]  # the gate finds the champion (prod) itself
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
    gate["promote"], gate["reasons"] = False, ["slice origin=JFK: roc_auc 0.61 < 0.70"]
    assert promote.main([]) == 1
    assert repo.tags() == set()
    assert "slice origin=JFK: roc_auc 0.61 < 0.70" in capsys.readouterr().err
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


def test_main_gate_that_writes_nothing_is_an_error(
    repo: RegistryRepo, gate: dict, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(sys.modules["fake_gate"], "main", lambda argv: 2)
    assert promote.main([]) == 1
    assert "`flightdelay gate` exited 2 without writing outputs/gate.json" in (
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
