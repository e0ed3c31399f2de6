"""report: rendering from fixture JSON files (verdict first, only changed params, empty sections
left out, a failed validation named, the HTML preview with its plots) and the command on a work
directory where the pipeline stopped at validation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from flightdelay.compare import Comparison, Delta, SliceDelta
from flightdelay.gate import Challenger, decide
from flightdelay.params import Params
from flightdelay.report import (
    Baseline,
    ModelStats,
    ReportInputs,
    data_diff,
    for_job_summary,
    main,
    params_diff,
    render,
    to_html,
)
from synthetic import audit_report

FAILED_VALIDATION = {
    "success": False,
    "batches": {"flights": ["2013-09", "2013-10"]},
    "groups": {
        "flights": {"ranges": {"checks": 12, "failed": 1}, "schema": {"checks": 10, "failed": 0}}
    },
    "failures": [
        {
            "table": "flights",
            "group": "ranges",
            "column": "dep_delay",
            "expectation": "expect_column_values_to_be_between",
            "batches": {"2013-10": 12},
            "detail": "12 values outside [-60, 1500]",
            "examples": [9999, 10000],
        }
    ],
    "skipped_from_row_checks": {},
}
PASSED_VALIDATION = {
    **FAILED_VALIDATION,
    "success": True,
    "failures": [],
    "groups": {"flights": {"ranges": {"checks": 12, "failed": 0}}},
}
METRICS = {
    "eval_month": "2013-09",
    "n": 27574.0,
    "roc_auc": 0.8133,
    "pr_auc": 0.5558,
    "log_loss": 0.2489,
    "brier": 0.0672,
    "f1": 0.5166,
}
DRIFT = {
    "current_month": "2013-09",
    "reference_months": ["2013-01", "2013-08"],
    "dataset": {
        "drifted": False,
        "n_drifted": 17,
        "n_features": 35,
        "share_drifted": 0.486,
        "drift_share_threshold": 0.5,
        "drifted_features": ["temp"],
        "excluded": {"day_of_week": "calendar"},
    },
    "label": {"drifted": False, "reference_late_rate": 0.205, "current_late_rate": 0.107},
    "prediction": {"available": False},
    "performance": {"available": False, "message": "backtest has no roc_auc"},
}


def fixture_files(tmp_path: Path, repo_root: Path) -> dict[str, Any]:
    """Write the fixture JSONs (as the stages would) and read them back."""
    files = {"validation.json": PASSED_VALIDATION, "evaluate.json": METRICS, "drift.json": DRIFT}
    for name, payload in files.items():
        (tmp_path / name).write_text(json.dumps(payload))
    return {name: json.loads((tmp_path / name).read_text()) for name in files}


def comparison() -> Comparison:
    metrics = {
        "roc_auc": Delta("roc_auc", 0.8133, 0.8124, -0.0012, 0.0032),
        "log_loss": Delta("log_loss", 0.2389, 0.2485, -0.012, -0.007),
    }
    drop = SliceDelta("carrier", "AA", 2614, Delta("roc_auc", 0.76, 0.78, -0.035, -0.004))
    return Comparison(
        "main", "1234567890abcdef", 27574, 1000, 0.95, metrics, [drop], baseline_sha256="old"
    )


def inputs(params: Params, files: dict[str, Any], **changes: Any) -> ReportInputs:
    base = Baseline("main", "1234567890abcdef", comparison())
    verdict = decide(
        Challenger(files["evaluate.json"], {}, files["validation.json"]),
        base.comparison,
        params.gate,
    )
    defaults: dict[str, Any] = {
        "verdict": verdict,
        "gate": params.gate,
        "base": base,
        "prod": None,
        "validation": files["validation.json"],
        "metrics": files["evaluate.json"],
        "params_diff": params_diff(
            {"train": {"learning_rate": 0.1, "seed": 42}},
            {"train": {"learning_rate": 0.05, "seed": 42}},
        ),
        "drift": files["drift.json"],
        "stats": {
            "this": ModelStats(3_210_000, 2.0, 14.0),
            "base": ModelStats(3_180_000, 2.0, 13.0),
        },
        "images": {
            "drift": [("drift scores", "img/drift-drift_scores.png")],
            "evaluation": [("roc", "img/evaluation-roc.png")],
        },
        "commit": "fedcba9876543210",
        "data_md5": "33f6e08a40adf8a5b490e6aa6fae2342.dir",
        "mlflow_run_id": "run123",
        "model_sha256": "new",
    }
    return ReportInputs(**{**defaults, **changes})


@pytest.fixture
def files(tmp_path: Path, repo_root: Path) -> dict[str, Any]:
    return fixture_files(tmp_path, repo_root)


def test_render_starts_with_the_verdict_line(params: Params, files: dict[str, Any]) -> None:
    lines = render(inputs(params, files)).splitlines()

    assert lines[0] == "## flight-delay report"
    assert lines[2].startswith("✅ **Would be promoted if merged**: ROC AUC vs main: +0.0009")


def test_render_metrics_show_delta_interval_and_real_or_noise(
    params: Params, files: dict[str, Any]
) -> None:
    text = render(inputs(params, files))

    assert "| ROC AUC ↑ | 0.8133 | 0.8124 | +0.0009 (−0.0012 … +0.0032) | ⚪ noise |" in text
    assert (
        "| log loss ↓ | 0.2489 | 0.2485 | −0.0096 (−0.0120 … −0.0070) | 🟢 real, better |" in text
    )
    assert "paired bootstrap, 1,000 resamples, 95 %" in text


def test_params_diff_lists_only_changed_keys() -> None:
    old = {"train": {"learning_rate": 0.1, "seed": 42}, "drift": {"columns": {}}}
    new = {
        "train": {"learning_rate": 0.05, "seed": 42},
        "drift": {"columns": {}},
        "gate": {"metric": "roc_auc", "max_drop": 0.005},
    }

    assert params_diff(old, new) == [("gate.*", None, "2 keys"), ("train.learning_rate", 0.1, 0.05)]


def test_render_params_table_holds_only_the_changed_key(
    params: Params, files: dict[str, Any]
) -> None:
    text = render(inputs(params, files))

    assert "| `train.learning_rate` | `0.1` | `0.05` |" in text
    assert "train.seed" not in text


def test_data_diff_lists_added_and_changed_batches_with_rows_and_md5() -> None:
    old = {"meta": {"files": {"flights/2013-09.csv": {"md5": "a" * 32, "rows": 27574}}}}
    new = {
        "meta": {
            "files": {
                "flights/2013-09.csv": {"md5": "b" * 32, "rows": 27580},
                "flights/2013-10.csv": {"md5": "c" * 32, "rows": 28889},
            }
        }
    }

    changes = data_diff(old, new)

    assert [(c.path, c.change, c.rows) for c in changes] == [
        ("flights/2013-09.csv", "changed", (27574, 27580)),
        ("flights/2013-10.csv", "added", (None, 28889)),
    ]


def test_render_data_section_shows_rows_and_short_hashes(
    params: Params, files: dict[str, Any]
) -> None:
    changes = data_diff(
        {}, {"meta": {"files": {"flights/2013-10.csv": {"md5": "c" * 32, "rows": 28889}}}}
    )

    text = render(inputs(params, files, data_diff=changes))

    assert "| `flights/2013-10.csv` | added | 28,889 | `cccccccc` |" in text


def test_render_leaves_out_empty_sections(params: Params, files: dict[str, Any]) -> None:
    text = render(inputs(params, files, drift=None, params_diff=[], stats={}, images={}))

    assert "### Drift" not in text
    assert "### Parameters changed" not in text
    assert "### Data changed" not in text
    assert "### Model size" not in text
    assert "Evaluation plots" not in text
    assert "### Metrics on 2013-09" in text


def test_render_highlights_a_real_slice_regression(params: Params, files: dict[str, Any]) -> None:
    text = render(inputs(params, files))

    assert "⚠️ 1 slice(s) got really worse:" in text
    assert "| **carrier=AA** | 2,614 | 0.7600 | 0.7800 | **−0.0200 (−0.0350 … −0.0040)** |" in text


def test_render_failed_validation_names_the_broken_expectation(
    params: Params, files: dict[str, Any]
) -> None:
    validation = FAILED_VALIDATION
    verdict = decide(Challenger(None, None, validation), None, params.gate)

    text = render(
        inputs(
            params,
            files,
            verdict=verdict,
            validation=validation,
            metrics=None,
            drift=None,
            stats={},
            images={},
            skipped_models="data validation failed: model sections left out.",
        )
    )

    assert text.splitlines()[2].startswith(
        "❌ **Would not be promoted if merged**: data validation failed, 1 failed expectation: "
        "[ranges] flights expect_column_values_to_be_between column=dep_delay"
    )
    assert "### Data validation ❌ FAILED: 1 of 22 checks on 2 batches" in text
    assert (
        "| `expect_column_values_to_be_between` | flights | ranges | dep_delay | "
        "2013-10 (12 rows) | 12 values outside [-60, 1500] | 9999, 10000 |" in text
    )
    assert "### Metrics" not in text


def test_render_nothing_changed_says_so_in_one_line(params: Params, files: dict[str, Any]) -> None:
    text = render(inputs(params, files, params_diff=[], model_sha256="old"))

    assert "Nothing changed against main (12345678): same parameters, same data, same model" in text
    assert "### Metrics" not in text


def test_render_footer_names_commit_data_run_and_how_to_reproduce(
    params: Params, files: dict[str, Any]
) -> None:
    footer = render(inputs(params, files)).splitlines()[-1]

    assert "commit `fedcba98`" in footer
    assert "data `33f6e08a40ad`" in footer
    assert "MLflow run `run123`" in footer
    assert "`git checkout fedcba98 && make run`" in footer


def test_to_html_shows_the_plots_tables_and_collapsible_details(
    params: Params, files: dict[str, Any]
) -> None:
    page = to_html(render(inputs(params, files)))

    assert '<img alt="drift scores" src="img/drift-drift_scores.png"' in page
    assert '<img alt="roc" src="img/evaluation-roc.png"' in page
    assert "<table>" in page
    assert "<summary>Promotion gate" in page
    assert ">validation</td>" in page  # the markdown table inside <details> is rendered


def test_render_model_card_changes_collapsed_and_unchanged_card_left_out(
    params: Params, files: dict[str, Any]
) -> None:
    changed = "The model card changed in 1 section(s): Metrics.\n\n```diff\n-a\n+b\n```\n"

    text = render(inputs(params, files, card_diff=changed))
    same = render(inputs(params, files, card_diff="The model card is unchanged.\n"))

    assert "<summary>Model card changes (vs main)</summary>" in text
    assert "The model card changed in 1 section(s): Metrics." in text
    assert "Model card changes" not in same


@pytest.mark.parametrize(
    "excluded",
    [{"day_of_week": "calendar"}, [{"column": "day_of_week", "reason": "calendar"}]],
)
def test_render_drift_summary_lines(params: Params, files: dict[str, Any], excluded: Any) -> None:
    drift = {
        **files["drift.json"],
        "dataset": {**files["drift.json"]["dataset"], "drifted": True, "excluded": excluded},
    }

    text = render(inputs(params, files, drift=drift))

    assert (
        "- Dataset drift: **yes**: 17 of 35 features drifted (49 %, threshold 50 %): `temp`" in text
    )
    assert "- Excluded (calendar columns differ by construction): `day_of_week`" in text
    assert "- Label drift: no: late rate 20.5 % → 10.7 %" in text


def test_render_model_size_within_half_a_percent_is_the_same(
    params: Params, files: dict[str, Any]
) -> None:
    stats = {"this": ModelStats(1_560_000, 7.3, 11.8), "base": ModelStats(1_559_000, 7.4, 12.1)}

    text = render(inputs(params, files, stats=stats))

    assert "| model file (`model.skops`) | 1.56 MB (same) | 1.56 MB |" in text
    assert "| predict 1 row | 7.3 ms (−1 %) | 7.4 ms |" in text


def test_for_job_summary_turns_local_images_into_text() -> None:
    assert for_job_summary("a\n![roc](img/evaluation-roc.png)\n") == (
        "a\n_(plot `evaluation-roc.png`: in the `model-report` artifact)_\n"
    )


# ---------------------------------------------------------------- the command


@pytest.fixture
def workdir(tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_main_after_failed_validation_writes_a_report_naming_it(
    workdir: Path, params: Params, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = workdir / params.paths.validation / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps(FAILED_VALIDATION))
    stale = workdir / params.paths.report / "img" / "evaluation-roc.png"  # an earlier run's
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"png")

    assert main([]) == 0

    text = (workdir / params.paths.report / "report.md").read_text()
    assert "❌ **Would not be promoted if merged**: data validation failed" in text
    assert "expect_column_values_to_be_between" in text
    assert "model sections left out" in text
    assert not (workdir / params.paths.report / "img").exists()
    assert "no baseline: `main` does not exist here" not in text  # no model: nothing compared
    assert (workdir / params.paths.report / "report.html").is_file()
    assert "would NOT be promoted" in capsys.readouterr().out


def test_main_job_summary_without_the_variable_names_it(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)

    assert main(["--job-summary"]) == 1
    assert "GITHUB_STEP_SUMMARY is not set" in capsys.readouterr().err


def test_main_job_summary_appends_the_report(
    workdir: Path, params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = workdir / params.paths.report / "report.md"
    report.parent.mkdir(parents=True)
    report.write_text("## flight-delay report\n![roc](img/evaluation-roc.png)\n")
    summary = workdir / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    assert main(["--job-summary"]) == 0
    assert summary.read_text() == (
        "earlier step\n## flight-delay report\n_(plot "
        "`evaluation-roc.png`: in the `model-report` artifact)_\n"
    )


def test_render_a_change_to_the_rule_says_so_under_the_verdict_with_the_diff(
    params: Params, files: dict[str, Any], repo_root: Path
) -> None:
    from flightdelay.gate import judged_by, parse_rule

    base = yaml.safe_load((repo_root / "params.yaml").read_text())
    loosened = {**base, "gate": {**base["gate"], "max_drop": 1.0}}
    rule = parse_rule(base, loosened, "main", params)
    r = inputs(params, files)

    lines = render(replace(r, rule=rule, verdict=judged_by(r.verdict, rule))).splitlines()

    at = lines.index(
        "⚠️ **This change changes the rule it is judged by (`gate.max_drop`): judged by main's "
        "rule; the new rule applies from the next PR.**"
    )
    assert at < lines.index("<details>")  # right under the verdict, before the gate's checks
    assert lines[at + 2 : at + 6] == [
        "```diff",
        "- gate.max_drop: 0.005",
        "+ gate.max_drop: 1.0",
        "```",
    ]


def test_render_an_unchanged_rule_adds_nothing(params: Params, files: dict[str, Any]) -> None:
    assert "changes the rule" not in render(inputs(params, files))


def test_render_leakage_audit_passed_and_failed_naming_the_feature(
    params: Params, files: dict[str, Any]
) -> None:
    passed = render(inputs(params, files, audit=audit_report()))
    assert "### Leakage audit ✅ passed" in passed
    assert "strongest alone: origin_waiting (ROC AUC 0.732)" in passed
    assert "2,087 have no tail number" in passed
    failed = render(inputs(params, files, audit=audit_report(failing=True)))
    assert "### Leakage audit ❌ FAILED: 1 problem(s)" in failed
    assert "- tail_leg_of_day: 100.0% of its 2,087 missing rows are late (limit 90%)" in failed
    assert "Leakage audit" not in render(inputs(params, files))
