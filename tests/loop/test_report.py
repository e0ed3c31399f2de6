"""report: the rendered report for the pull requests a reviewer sees (tests/report_fixtures.py:
a params PR, the October data PR, main's own report, a failed validation): the verdict line is
the decision with every caveat, sections scoped to the change, plots that compare, no noise,
one minus sign; and the command on a work directory where the pipeline stopped at validation."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

import report_fixtures as rf
from flightdelay.core.params import Params
from flightdelay.loop.report import data_diff, for_job_summary, main, params_diff, write_report
from flightdelay.loop.report_markdown import referenced_images, render, to_html, typographic_minus
from flightdelay.loop.report_plots import contrast, draw, figure
from flightdelay.loop.report_render import build_view, card_view
from report_fixtures import FAILED_VALIDATION


def text_of(inputs: Any) -> str:
    return render(build_view(inputs, *inputs.cards))


def visible(markdown: str) -> str:
    """What a reviewer sees before opening anything: the markdown outside <details>."""
    return re.sub(r"<details>.*?</details>", "", markdown, flags=re.DOTALL)


# ---------------------------------------------------------------- the verdict


def test_render_verdict_line_is_the_decision_with_the_delta_vs_prod(params: Params) -> None:
    lines = text_of(rf.params_pr(params)).splitlines()

    assert lines[0] == "## flight-delay report"
    assert lines[2] == (
        "✅ **Would be promoted if merged**: ROC AUC vs prod (flight-delay@v0.1.0) +0.0009 "
        "(−0.0012 … +0.0032), noise (lower bound above −0.005, the allowed drop)"
    )


def test_render_verdict_names_a_real_slice_regression_on_the_next_line(params: Params) -> None:
    lines = text_of(rf.params_pr(params)).splitlines()

    assert lines[3] == (
        "<br>⚠️ Weigh before merging: **1 slice really worse** vs prod: "
        "carrier=9E −0.0104 (−0.0191 … −0.0016); see *Slices*"
    )


def test_render_verdict_names_performance_drift_on_the_data_pr(params: Params) -> None:
    lines = text_of(rf.data_pr(params)).splitlines()

    assert lines[2].startswith("✅ **Would be promoted if merged**: ROC AUC vs prod")
    assert lines[3] == (
        "<br>⚠️ Weigh before merging: **performance drift**: ROC AUC 0.7797 on "
        "2013-10, more than 0.02 below the worst earlier month (0.8040); see *Drift*"
    )


def test_render_verdict_not_promoted_gives_the_reasons_and_links_validation(
    params: Params,
) -> None:
    line = text_of(rf.failed_validation(params)).splitlines()[2]

    assert line.startswith(
        "❌ **Would not be promoted if merged**: data validation failed, 1 failed expectation: "
        "[ranges] flights expect_column_values_to_be_between column=dep_delay"
    )
    assert line.endswith("; see *Data validation*")


def test_render_verdict_without_prod_judges_by_the_floor(params: Params) -> None:
    inputs = rf.params_pr(params, prod=None)
    inputs = replace(inputs, verdict=replace(inputs.verdict, champion=None))

    assert text_of(inputs).splitlines()[2] == (
        "✅ **Would be promoted if merged**: no production model yet: ROC AUC 0.8133 against the "
        "floor 0.75"
    )


# ---------------------------------------------------------------- metrics, params, data


def test_render_metrics_show_delta_interval_and_real_or_noise(params: Params) -> None:
    text = text_of(rf.params_pr(params))

    assert (
        "| **ROC AUC ↑** | 0.8133 | 0.8124 | +0.0009 ⚪<br><sub>−0.0012 … +0.0032</sub> |" in text
    )
    assert "| log loss ↓ | 0.2489 | 0.2485 | −0.0096 🟢<br><sub>−0.0120 … −0.0070</sub> |" in text
    assert "paired bootstrap interval (1,000 resamples, 95 %)" in text
    assert "| metric | this change | main = prod | Δ vs main |" in text


def test_render_metrics_compare_with_main_and_prod_when_they_differ(params: Params) -> None:
    text = text_of(rf.data_pr(params))

    assert "| metric | this change | main | Δ vs main | prod | Δ vs prod |" in text
    assert "(main `12345678`, prod (flight-delay@v0.1.0) `abcdef12`)" in text


def test_params_diff_lists_only_changed_keys() -> None:
    old = {"train": {"learning_rate": 0.1, "seed": 42}, "drift": {"columns": {}}}
    new = {
        "train": {"learning_rate": 0.05, "seed": 42},
        "drift": {"columns": {}},
        "gate": {"metric": "roc_auc", "max_drop": 0.005},
    }

    assert params_diff(old, new) == [("gate.*", None, "2 keys"), ("train.learning_rate", 0.1, 0.05)]


def test_render_params_table_holds_only_the_changed_key(params: Params) -> None:
    text = text_of(rf.params_pr(params))

    assert "| `train.learning_rate` | `0.2` | `0.05` |" in text
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


def test_render_data_section_shows_rows_and_labelled_hash_prefixes(params: Params) -> None:
    text = text_of(rf.data_pr(params))

    assert "| `flights/2013-10.csv` | added | 28,889 | `cccccccc…` |" in text
    assert "data md5 `33f6e08a40ad…`" in text
    assert "sha256 `" not in text.replace("model sha256 `new…`", "")


# ---------------------------------------------------------------- scoped sections


def test_render_drift_is_one_collapsed_line_when_the_data_did_not_change(params: Params) -> None:
    text = text_of(rf.params_pr(params))

    shown = visible(text)
    assert "prediction drift" not in shown.lower()
    assert "<summary>Data unchanged vs main: validation and drift as on main (2013-09 against " in (
        text
    )
    assert "### Data validation" not in text
    assert "drift-" not in " ".join(referenced_images(text))


def test_render_drift_in_full_when_the_data_changed(params: Params) -> None:
    text = text_of(rf.data_pr(params))

    shown = visible(text)
    assert "### Data changed" in shown
    assert "### Data validation" in shown
    assert "- Features: 17 of 39 drifted (44 %; dataset drift from 50 %): no dataset drift" in shown
    assert "![drift score per feature](img/drift-scores.png)" in text  # collapsed


def test_render_label_rate_change_has_its_interval_and_own_flag(params: Params) -> None:
    text = text_of(rf.data_pr(params))

    assert (
        "- Late rate: 20.5 % (20.4 % … 20.7 %) → 10.7 % (10.3 % … 11.0 %): Δ −9.9 pp "
        "(−10.3 … −9.5), **rate changed** · distance test: jensenshannon 0.0969 (threshold "
        "0.1): no label drift"
    ) in text


def test_render_performance_chart_open_when_performance_drift_is_flagged(
    params: Params,
) -> None:
    flagged = visible(text_of(rf.data_pr(params)))
    calm = text_of(rf.data_pr(params, drift=rf.drift("2013-10", performance_drift=False)))

    assert "![metric by month](img/drift-performance.png)" in flagged
    assert "img/drift-performance.png" in calm
    assert "img/drift-performance.png" not in visible(calm)


def test_render_performance_chart_open_on_a_params_pr_when_flagged(params: Params) -> None:
    text = text_of(rf.params_pr(params, drift=rf.drift(performance_drift=True)))

    assert "![metric by month](img/drift-performance.png)" in visible(text)


def test_render_failed_validation_names_the_broken_expectation(params: Params) -> None:
    text = text_of(rf.failed_validation(params))

    assert "❌ **failed**: 1 of 22 checks on 2 batches." in text
    assert (
        "| `expect_column_values_to_be_between` (ranges) | flights | dep_delay | "
        "2013-10 (12 rows) | 12 values outside [−60, 1500] | 9999, 10000 |" in text
    )
    assert "### Metrics" not in text
    assert referenced_images(text) == []


# ---------------------------------------------------------------- short, no noise


def test_render_params_pr_is_short_by_default(params: Params) -> None:
    shown = visible(text_of(rf.params_pr(params)))

    assert len(shown.splitlines()) <= 60
    assert "### Model card" not in shown


def test_render_has_no_latency_or_model_size(params: Params) -> None:
    text = text_of(rf.data_pr(params))

    assert not re.search(r"latency|predict 1|\d ms\b|model size|\d MB\b", text)


def test_render_is_deterministic(params: Params) -> None:
    assert text_of(rf.data_pr(params)) == text_of(rf.data_pr(params))


def test_render_card_diff_shows_only_the_headline_numbers_that_changed(params: Params) -> None:
    text = text_of(rf.params_pr(params))

    assert (
        "<summary>Model card: 1 headline number(s) changed; also changed: Quantitative "
        "analyses</summary>" in text
    )
    assert "| ROC AUC | 0.812 | 0.813 |" in text
    assert "PR AUC" not in text.split("<summary>Model card")[1]
    assert "```diff" not in text


def test_card_view_unchanged_card_is_left_out() -> None:
    assert card_view(rf.CARD_OLD, rf.CARD_OLD) is None
    assert card_view(None, rf.CARD_OLD) is None


def test_render_uses_one_minus_sign_outside_code(params: Params) -> None:
    for inputs in (rf.params_pr(params), rf.data_pr(params), rf.failed_validation(params)):
        prose = re.sub(r"`[^`]*`|<[^>]*>|\]\([^)]*\)", "", text_of(inputs))
        assert not re.search(r"(?<![\w.-])-\.?\d", prose)


def test_typographic_minus_leaves_code_dates_and_links_alone() -> None:
    assert typographic_minus("a -0.5, `x: -1`, 2013-10, [l](img/a-1.png) [-60, 1]") == (
        "a −0.5, `x: -1`, 2013-10, [l](img/a-1.png) [−60, 1]"
    )


# ---------------------------------------------------------------- main's own report


def test_render_main_report_shows_the_model_metrics_slices_and_plots(params: Params) -> None:
    text = text_of(rf.main_report(params))

    lines = text.splitlines()
    assert lines[2].startswith(
        "✅ **In production**: this is the model of prod (flight-delay@v0.1.0); ROC AUC 0.8133"
    )
    assert "No change against main (fedcba98): same parameters, same data, same model." in text
    assert "| **ROC AUC ↑** | 0.8133 |" in text
    assert (
        "7 slices, lowest carrier=DL 0.6840, highest origin=LGA 0.8440; none below the floor"
        in text
    )
    assert "### Plots\n\nROC, precision-recall, calibration and the confusion matrix:" in text
    assert referenced_images(text) == ["img/evaluation-curves.png", "img/evaluation-confusion.png"]


# ---------------------------------------------------------------- footer, HTML


def test_render_footer_names_commit_data_run_and_how_to_reproduce(params: Params) -> None:
    footer = text_of(rf.params_pr(params)).splitlines()[-1]

    assert "commit `fedcba98`" in footer
    assert "data md5 `33f6e08a40ad…`" in footer
    assert "MLflow run `run123`" in footer
    assert "`git checkout fedcba98 && make run`" in footer


def test_to_html_shows_the_plots_tables_collapsible_details_and_anchors(params: Params) -> None:
    page = to_html(text_of(rf.data_pr(params)))

    assert '<img alt="drift score per feature" src="img/drift-scores.png"' in page
    assert "<table>" in page
    assert "<summary>Promotion gate" in page
    assert ">validation</td>" in page  # the markdown table inside <details> is rendered
    assert 'id="slices"' in page
    assert 'id="drift"' in page


def test_for_job_summary_turns_local_images_into_text() -> None:
    assert for_job_summary("a\n![roc](img/evaluation-roc.png)\n") == (
        "a\n_(plot `evaluation-roc.png`: in the `model-report` artifact)_\n"
    )


# ---------------------------------------------------------------- plots


@pytest.mark.parametrize("scenario", ["params_pr", "data_pr", "main_report"])
def test_write_report_draws_exactly_the_referenced_images_at_most_780_px(
    params: Params, tmp_path: Path, scenario: str
) -> None:
    import matplotlib.image

    inputs = getattr(rf, scenario)(params)
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "stale.png").write_bytes(b"png")  # an earlier run's

    write_report(inputs, tmp_path, rf.plot_data(inputs))

    text = (tmp_path / "report.md").read_text()
    files = sorted(f"img/{p.name}" for p in (tmp_path / "img").iterdir())
    assert files == sorted(referenced_images(text))
    for f in files:
        assert matplotlib.image.imread(tmp_path / f).shape[1] <= 780, f


def test_plots_curves_overlay_this_change_main_and_prod(params: Params) -> None:
    fig = figure("evaluation-curves", rf.plot_data(rf.data_pr(params)))

    roc, pr, cal = fig.axes
    for ax in (roc, pr, cal):
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert [label.split(" (")[0] for label in labels] == ["this change", "main", "prod"]
    styles = {line.get_linestyle() for line in roc.get_lines()[:3]}
    assert len(styles) == 3  # a cue besides colour


def test_curves_of_draws_main_and_prod_once_when_they_are_one_model() -> None:
    import numpy as np
    import pandas as pd

    from flightdelay.loop.compare import Evaluated
    from flightdelay.loop.report import Baseline, curves_of

    evaluated = Evaluated(
        pd.DataFrame({"y_true": [0, 1], "score": [0.2, 0.7]}), 0.3, "2013-09", {}, "new"
    )
    main_side = rf.comparison("main", rf.MAIN, "old")
    main_side = replace(main_side, baseline_scores=np.array([0.1, 0.6]))
    base = Baseline("main", rf.MAIN, main_side)
    prod = Baseline("prod (flight-delay@v0.1.0)", rf.MAIN, replace(main_side, baseline="prod"))

    assert list(curves_of(evaluated, [base, prod], same=True).scores) == [  # type: ignore[union-attr]
        "this change",
        "main = prod",
    ]
    assert list(curves_of(evaluated, [base, prod], same=False).scores) == [  # type: ignore[union-attr]
        "this change",
        "main",
        "prod",
    ]


def test_plots_confusion_has_the_exact_threshold_and_readable_numbers(params: Params) -> None:
    from matplotlib.colors import to_rgba

    fig = figure("evaluation-confusion", rf.plot_data(rf.params_pr(params)))

    ax = fig.axes[0]
    assert ax.get_title() == "this change, threshold 0.3046627746333811"
    image = ax.get_images()[0]
    cells = image.to_rgba(image.get_array())
    texts = [t for t in ax.texts if "% of row" in t.get_text()]
    assert len(texts) == 4
    for t in texts:
        j, i = (round(v) for v in t.get_position())
        assert contrast(to_rgba(t.get_color())[:3], tuple(cells[i, j][:3])) >= 4.5


def test_plots_unknown_figure_is_refused(params: Params, tmp_path: Path) -> None:
    from flightdelay.loop.report_plots import PlotError

    with pytest.raises(PlotError, match="unknown figure 'evaluation-roc'"):
        draw(["evaluation-roc"], rf.plot_data(rf.params_pr(params)), tmp_path)


def test_plots_figure_without_its_data_is_refused(params: Params, tmp_path: Path) -> None:
    from flightdelay.loop.report_plots import PlotData, PlotError

    with pytest.raises(PlotError, match=r"no drift plot data 'late_rate\.csv'"):
        draw(["drift-late_rate"], PlotData(), tmp_path)


def test_build_view_leaves_out_figures_without_data(params: Params) -> None:
    view = build_view(rf.data_pr(params), drawable={"evaluation-curves"})

    assert view.image_names() == ["evaluation-curves"]


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


# ---------------------------------------------------------------- the rule it is judged by


def loosened_rule(params: Params, repo_root: Path) -> Any:
    from flightdelay.loop.gate import parse_rule

    base = yaml.safe_load((repo_root / "params.yaml").read_text())
    loosened = {**base, "gate": {**base["gate"], "max_drop": 1.0}}
    return parse_rule(base, loosened, "main", params)


def test_render_a_change_to_the_rule_is_a_caveat_with_the_diff_under_the_verdict(
    params: Params, repo_root: Path
) -> None:
    from flightdelay.loop.gate import judged_by

    rule = loosened_rule(params, repo_root)
    r = rf.params_pr(params, rule=rule)
    lines = text_of(replace(r, verdict=judged_by(r.verdict, rule))).splitlines()

    assert lines[3].startswith("<br>⚠️ Weigh before merging: ")
    assert (
        "**changes the rule it is judged by (`gate.max_drop`): judged by main's rule; the new "
        "rule applies from the next PR**" in lines[3]
    )
    at = lines.index("```diff")
    assert at < lines.index("<details>")  # right under the verdict, before the gate's checks
    assert lines[at + 1 : at + 4] == ["- gate.max_drop: 0.005", "+ gate.max_drop: 1.0", "```"]
    assert "rule: <code>gate:</code> in params.yaml of main)" in "\n".join(lines)


def test_render_an_unchanged_rule_adds_nothing(params: Params) -> None:
    text = text_of(rf.params_pr(params))

    assert "changes the rule" not in text
    assert "```diff" not in text


def test_render_a_rule_list_value_has_no_brackets(params: Params, repo_root: Path) -> None:
    from flightdelay.loop.gate import parse_rule

    base = yaml.safe_load((repo_root / "params.yaml").read_text())
    narrowed = {**base, "gate": {**base["gate"], "slice_columns": ["carrier"]}}
    rule = parse_rule(base, narrowed, "main", params)

    text = text_of(rf.params_pr(params, rule=rule))

    assert "+ gate.slice_columns: carrier\n" in text
    assert "- gate.slice_columns: carrier, origin\n" in text


def test_render_leakage_audit_collapsed_when_passed_in_full_naming_the_feature_when_failed(
    params: Params,
) -> None:
    from synthetic import audit_report

    passed = text_of(rf.params_pr(params, audit=audit_report()))
    assert "<summary>Leakage audit ✅ passed: " in passed
    assert "strongest alone: origin_waiting (ROC AUC 0.732)" in passed
    assert "2,087 have no tail number" in passed
    failed = text_of(rf.params_pr(params, audit=audit_report(failing=True)))
    assert "### Leakage audit ❌ FAILED: 1 problem(s)" in failed
    assert "- tail_leg_of_day: 100.0% of its 2,087 missing rows are late (limit 90%)" in failed
    assert "Leakage audit" not in text_of(rf.params_pr(params))


def test_report_takes_the_mlflow_run_from_the_models_provenance_sidecar(tmp_path: Path) -> None:
    # train writes the run id beside the model directory (model_io.provenance_path), not into
    # model.json; a sidecar left by another model is not this model's run.
    from flightdelay.core.model_io import Provenance, write_provenance
    from flightdelay.core.outputs import ModelMetadata
    from flightdelay.loop.report import _mlflow_run
    from output_fixtures import MODEL_METADATA

    def model(sha256: str) -> ModelMetadata:
        return ModelMetadata.parse({**MODEL_METADATA, "sha256": sha256}, "model.json")

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    assert _mlflow_run(model_dir, model("a" * 64)) is None
    write_provenance(model_dir, Provenance(sha256="a" * 64, mlflow_run_id="run123"))
    assert _mlflow_run(model_dir, model("a" * 64)) == "run123"
    assert _mlflow_run(model_dir, model("b" * 64)) is None
    assert _mlflow_run(model_dir, None) is None
