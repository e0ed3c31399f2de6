"""gate: the promotion rule on hand-made evidence, one check per test, and the CLI's contract
(exit 0 promote, 1 refuse with reasons, 2 cannot decide; gate.json written every time)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from flightdelay.core.params import GateParams, Params, ParamsError
from flightdelay.loop.compare import Comparison, Delta, SliceDelta
from flightdelay.loop.gate import Challenger, decide, judged_by, main, parse_rule
from output_fixtures import (
    DEP_DELAY_FAILURE,
    EVALUATION,
    PASSED_VALIDATION,
    failed_validation,
    slice_row,
)

PASSED = PASSED_VALIDATION
FAILED = failed_validation(DEP_DELAY_FAILURE)
METRICS = {**EVALUATION, "eval_month": "2013-09", "roc_auc": 0.81, "n": 27574.0}
SLICES = {
    "carrier": [
        slice_row("carrier", "UA", 4694.0, roc_auc=0.81),
        slice_row("carrier", "HA", 300.0, roc_auc=0.2),  # measured, but too small to judge
    ],
    "origin": [slice_row("origin", "EWR", 9550.0, roc_auc=0.80)],
}


@pytest.fixture
def gate(params: Params) -> GateParams:
    return params.gate.model_copy(
        update={
            "min_metric": 0.75,
            "max_drop": 0.005,
            "slice_min_rows": 500,
            "slice_min_metric": 0.7,
            "slice_max_drop": 0.03,
        }
    )


def challenger(
    validation: Any = PASSED, metrics: Any = METRICS, slices: Any = SLICES
) -> Challenger:
    return Challenger(metrics=metrics, slices=slices, validation=validation)


def champion(
    low: float, high: float, delta: float = 0.0, slices: list[SliceDelta] | None = None
) -> Comparison:
    d = Delta("roc_auc", 0.81 + delta, 0.81, low, high)
    return Comparison(
        "prod (flight-delay@v0.1.0)", "abc", 27574, 1000, 0.95, {"roc_auc": d}, slices or []
    )


def check(verdict: Any, name: str) -> Any:
    return next(c for c in verdict.checks if c.name == name)


def test_decide_without_champion_applies_absolute_floors_only(gate: GateParams) -> None:
    verdict = decide(challenger(), None, gate)

    assert verdict.promote
    assert verdict.champion is None
    assert "no champion" in check(verdict, "vs champion").detail
    assert "ROC AUC 0.8100 on 2013-09 ≥ floor 0.75" in verdict.reasons


def test_decide_failed_validation_refuses_naming_the_expectation(gate: GateParams) -> None:
    verdict = decide(challenger(validation=FAILED), None, gate)

    assert not verdict.promote
    assert verdict.reasons[0] == (
        "data validation failed, 1 failed expectation: [ranges] flights "
        "expect_column_values_to_be_between column=dep_delay in 2013-10 (12 rows): "
        "12 values outside [-60, 1500]"
    )


def test_decide_without_validation_summary_refuses(gate: GateParams) -> None:
    verdict = decide(challenger(validation=None), None, gate)

    assert not verdict.promote
    assert "no data validation summary" in verdict.reasons[0]


def test_decide_without_evaluation_refuses(gate: GateParams) -> None:
    verdict = decide(challenger(metrics=None, slices=None), None, gate)

    assert not verdict.promote
    assert verdict.reasons == [
        "no ROC AUC on the evaluation month: the pipeline stopped before `evaluate`"
    ]


def test_decide_failed_validation_without_evaluation_says_where_it_stopped(
    gate: GateParams,
) -> None:
    verdict = decide(challenger(validation=FAILED, metrics=None, slices=None), None, gate)

    assert verdict.reasons[1] == (
        "no ROC AUC on the evaluation month: the pipeline stopped at the failed validation"
    )


def test_decide_below_the_floor_refuses(gate: GateParams) -> None:
    verdict = decide(challenger(metrics={**METRICS, "roc_auc": 0.74}), None, gate)

    assert not verdict.promote
    assert verdict.reasons == ["ROC AUC 0.7400 on 2013-09 < floor 0.75"]


def test_decide_a_large_slice_below_its_floor_refuses_small_ones_do_not(gate: GateParams) -> None:
    slices = {**SLICES, "origin": [slice_row("origin", "JFK", 8908.0, roc_auc=0.65)]}

    verdict = decide(challenger(slices=slices), None, gate)

    assert not verdict.promote
    assert verdict.reasons == [
        "1 slice(s) below the ROC AUC floor 0.7: origin=JFK 0.6500 (n=8,908)"
    ]


def test_decide_interval_above_the_margin_promotes_even_when_slightly_worse(
    gate: GateParams,
) -> None:
    verdict = decide(challenger(), champion(low=-0.004, high=0.002, delta=-0.001), gate)

    assert verdict.promote
    assert verdict.reasons[0].startswith("ROC AUC vs prod (flight-delay@v0.1.0): -0.0010")


def test_decide_interval_reaching_below_the_margin_refuses(gate: GateParams) -> None:
    verdict = decide(challenger(), champion(low=-0.006, high=0.003, delta=-0.001), gate)

    assert not verdict.promote
    assert "the interval reaches below −0.005" in verdict.reasons[0]


def test_decide_real_large_slice_drop_refuses(gate: GateParams) -> None:
    drop = SliceDelta("carrier", "UA", 4694, Delta("roc_auc", 0.76, 0.81, -0.07, -0.03))

    verdict = decide(challenger(), champion(-0.001, 0.004, 0.001, [drop]), gate)

    assert not verdict.promote
    assert verdict.reasons[0].startswith("1 slice(s) lose more than 0.03 ROC AUC against prod")
    assert "carrier=UA -0.0500" in verdict.reasons[0]


def test_decide_large_slice_drop_that_is_noise_does_not_refuse(gate: GateParams) -> None:
    noise = SliceDelta("carrier", "UA", 4694, Delta("roc_auc", 0.76, 0.81, -0.12, 0.01))

    verdict = decide(challenger(), champion(-0.001, 0.004, 0.001, [noise]), gate)

    assert verdict.promote


# ---------------------------------------------------------------- the command


@pytest.fixture
def workdir(tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory (not a git repository) with params.yaml and the outputs the gate reads."""
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


def test_main_promotes_with_exit_0_and_writes_gate_json(workdir: Path, params: Params) -> None:
    write(workdir / params.paths.validation_summary, PASSED)
    write(workdir / params.paths.evaluation, METRICS)
    write(workdir / params.paths.slices, SLICES)

    assert main([]) == 0
    result = json.loads((workdir / params.paths.gate).read_text())
    assert result["promote"] is True
    assert result["champion"] is None


def test_main_a_partial_evaluate_json_cannot_decide_naming_file_and_key(
    workdir: Path, params: Params, capsys: pytest.CaptureFixture[str]
) -> None:
    write(workdir / params.paths.validation_summary, PASSED)
    write(workdir / params.paths.evaluation, {k: v for k, v in METRICS.items() if k != "f1"})
    write(workdir / params.paths.slices, SLICES)

    assert main([]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        f"gate: cannot decide, so do not promote: {params.paths.evaluation}: not a valid "
        "evaluation metrics file (f1: Field required); re-run `dvc repro evaluate`"
    )
    assert json.loads((workdir / params.paths.gate).read_text())["promote"] is False


def test_main_refuses_with_exit_1_and_prints_the_reasons(
    workdir: Path, params: Params, capsys: pytest.CaptureFixture[str]
) -> None:
    write(workdir / params.paths.validation_summary, FAILED)

    assert main([]) == 1
    err = capsys.readouterr().err
    assert "gate: would NOT be promoted: data validation failed" in err
    assert "FAIL validation" in err
    assert json.loads((workdir / params.paths.gate).read_text())["promote"] is False


def test_main_unknown_champion_ref_cannot_decide_exit_2(
    workdir: Path, params: Params, capsys: pytest.CaptureFixture[str]
) -> None:
    write(workdir / params.paths.validation_summary, PASSED)

    assert main(["--champion-ref", "no-such-ref"]) == 2
    assert "champion ref 'no-such-ref' does not exist" in capsys.readouterr().err
    result = json.loads((workdir / params.paths.gate).read_text())
    assert result["promote"] is False
    assert result["reasons"][0].startswith("cannot decide, so do not promote")


# ---------------------------------------------------------------- the rule: from the base side


def raw_params(repo_root: Path, **gate: Any) -> dict[str, Any]:
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    raw["gate"] = {**raw["gate"], **gate}
    return raw


def test_parse_rule_takes_the_base_s_thresholds_and_lists_the_candidate_s_changes(
    repo_root: Path, params: Params
) -> None:
    base = raw_params(repo_root)
    loosened = raw_params(repo_root, max_drop=1.0, slice_max_drop=1.0)

    rule = parse_rule(base, loosened, "main", params)

    assert rule.gate == params.gate  # main's, not the candidate's 1.0
    assert rule.changes == (
        ("gate.max_drop", 0.005, 1.0),
        ("gate.slice_max_drop", 0.03, 1.0),
    )
    assert rule.note() == (
        "changes the rule it is judged by (`gate.max_drop`, `gate.slice_max_drop`): judged by "
        "main's rule; the new rule applies from the next PR"
    )
    assert rule.diff().splitlines() == [
        "- gate.max_drop: 0.005",
        "+ gate.max_drop: 1.0",
        "- gate.slice_max_drop: 0.03",
        "+ gate.slice_max_drop: 1.0",
    ]


def test_parse_rule_counts_the_bootstrap_section_as_part_of_the_rule(
    repo_root: Path, params: Params
) -> None:
    base = raw_params(repo_root)
    fewer = raw_params(repo_root)
    fewer["bootstrap"] = {**fewer["bootstrap"], "samples": 10, "seed": 3}
    candidate = params.model_copy(
        update={"bootstrap": params.bootstrap.model_copy(update={"samples": 10, "seed": 3})}
    )

    rule = parse_rule(base, fewer, "main", candidate)

    assert rule.changes == (("bootstrap.samples", 200, 10), ("bootstrap.seed", 0, 3))
    judged = rule.apply(candidate)
    assert (judged.bootstrap.samples, judged.bootstrap.seed) == (200, 0)
    assert judged.evaluate == candidate.evaluate


def test_parse_rule_of_a_base_from_before_the_bootstrap_section_reads_its_old_keys(
    repo_root: Path, params: Params
) -> None:
    """main before this layout kept the bootstrap in evaluate/gate: the first promotion after the
    change is judged by that rule, unchanged, not refused."""
    base = raw_params(repo_root)
    old = base.pop("bootstrap")
    base["evaluate"] = {**base["evaluate"], "bootstrap_samples": old["samples"]}
    base["gate"] = {**base["gate"], "confidence": old["confidence"], "seed": old["seed"]}

    rule = parse_rule(base, raw_params(repo_root), "main", params)

    assert rule.bootstrap == params.bootstrap
    assert rule.gate == params.gate
    assert rule.changes == ()


def test_parse_rule_of_a_base_that_does_not_load_names_the_key(
    repo_root: Path, params: Params
) -> None:
    base = raw_params(repo_root)
    del base["gate"]["max_drop"]

    with pytest.raises(ParamsError, match=r"the rule of main .* \(max_drop: Field required\)"):
        parse_rule(base, raw_params(repo_root), "main", params)


def test_judged_by_puts_the_rule_change_first_and_keeps_the_decision(
    repo_root: Path, params: Params, gate: GateParams
) -> None:
    rule = parse_rule(raw_params(repo_root), raw_params(repo_root, min_metric=0.5), "main", params)
    verdict = decide(challenger(metrics={**METRICS, "roc_auc": 0.6}), None, rule.gate)

    judged = judged_by(verdict, rule)

    assert not judged.promote
    assert judged.checks[0].name == "rule"
    assert "judged by main's rule" in judged.checks[0].detail
    assert judged.reasons == verdict.reasons


def git_repo(path: Path, *commits: dict[str, Any]) -> None:
    """A git repository whose commits hold the given params.yaml documents, on main."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    for i, raw in enumerate(commits):
        (path / "params.yaml").write_text(yaml.safe_dump(raw))
        subprocess.run(["git", "-C", str(path), "add", "params.yaml"], check=True)
        subprocess.run(
            [
                "git",
                "-C",
                str(path),
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@e",
                "commit",
                "-qm",
                f"c{i}",
            ],
            check=True,
        )


def test_main_applies_main_s_rule_to_a_branch_that_loosens_it(
    workdir: Path, repo_root: Path, params: Params, capsys: pytest.CaptureFixture[str]
) -> None:
    git_repo(workdir, raw_params(repo_root))
    subprocess.run(["git", "-C", str(workdir), "checkout", "-qb", "loosen"], check=True)
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw_params(repo_root, min_metric=0.5)))
    write(workdir / params.paths.validation_summary, PASSED)
    write(workdir / params.paths.evaluation, {**METRICS, "roc_auc": 0.6})
    write(workdir / params.paths.slices, SLICES)

    assert main(["--base", "main"]) == 1

    err = capsys.readouterr().err
    assert "ROC AUC 0.6000 on 2013-09 < floor 0.75" in err
    assert "changes the rule it is judged by (`gate.min_metric`)" in err
