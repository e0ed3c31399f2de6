"""Model card: sections, numbers from the inputs, intervals, diff, staleness against dvc.lock."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from card_fixtures import (
    BACKTEST,
    BACKTEST_JSON,
    DRIFT,
    EVALUATE,
    IMPORTANCE,
    MODEL,
    SLICES,
    scored,
)
from flightdelay.core.artifacts import ArtifactError, DvcLock
from flightdelay.core.data import dir_md5
from flightdelay.core.drift_summary import DriftSummary
from flightdelay.core.io import md5_file
from flightdelay.core.params import TrainParams
from flightdelay.core.stats import Interval
from flightdelay.pipeline import card, card_check, card_inputs, card_view
from flightdelay.pipeline.card_inputs import CardError, CardInputs, CardSpec
from synthetic import audit_report

REPO_ROOT = Path(__file__).resolve().parents[2]

BATCHES = {
    "flights/2013-01.csv": {"md5": "11" * 16, "rows": 27004},
    "flights/2013-02.csv": {"md5": "22" * 16, "rows": 24951},
    "flights/2013-03.csv": {"md5": "33" * 16, "rows": 28834},
}
FINGERPRINT = {
    "data": MODEL["data_md5"],
    "outputs/metrics/evaluate.json": "e" * 32,
    "outputs/model": "f" * 32 + ".dir",
}


def inputs(**changes: Any) -> CardInputs:
    values: dict[str, Any] = {
        "model": MODEL,
        "evaluate": EVALUATE,
        "backtest": BACKTEST,
        "slices": SLICES,
        "importance": IMPORTANCE,
        "drift": DriftSummary.parse(DRIFT, "drift.json"),
        "batches": BATCHES,
        "intervals": {"roc_auc": Interval(0.8011, 0.8234), "f1": Interval(0.5, 0.58)},
        "slice_intervals": {"carrier": {"UA": Interval(0.8101, 0.8999)}},
        "intersections": [
            {"carrier": "UA", "origin": "EWR", "n": 250, "late_share": 0.111, "roc_auc": 0.8555}
        ],
        "fingerprint": FINGERPRINT,
        "names": {"carrier": {"UA": "United Air Lines Inc."}, "origin": {"EWR": "Newark"}},
    }
    return CardInputs(**(values | changes))


def spec(**changes: Any) -> CardSpec:
    values: dict[str, Any] = {
        "name": "flight-delay",
        "version": None,
        "registered_commit": None,
        "confidence": 0.95,
        "bootstrap_samples": 200,
        "seed": 42,
        "min_slice_rows": 200,
        "top_features": 10,
    }
    return CardSpec(**(values | changes))


def section(markdown: str, name: str) -> str:
    return markdown.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]


# --- rendering -----------------------------------------------------------------------------------


def test_render_card_has_every_model_card_section_in_order() -> None:
    markdown = card.render_card(inputs(), spec())
    headings = [line[3:] for line in markdown.splitlines() if line.startswith("## ")]
    assert headings == list(card.SECTIONS)


def test_render_card_model_details_come_from_model_json() -> None:
    details = section(card.render_card(inputs(), spec()), "Model details")
    assert "`0123456789abcdef0123456789abcdef.dir`" in details
    assert "2013-01 .. 2013-02 (2013-01-01 to 2013-02-28)" in details
    assert "| Decision threshold | 0.314" in details
    assert "| Boosting iterations | 123 |" in details
    assert "unregistered" in details


def test_render_card_metrics_table_has_value_and_interval() -> None:
    metrics = section(card.render_card(inputs(), spec()), "Metrics")
    assert "| ROC AUC | 0.812 | [0.801, 0.823] |" in metrics
    assert "| F1 | 0.543 | [0.500, 0.580] |" in metrics
    assert "| PR AUC (average precision) | 0.568 | n/a |" in metrics
    assert "95 % interval" in metrics
    assert "200 resamples, seed 42" in metrics
    assert "| 2013-02 | 2013-01 .. 2013-01 | 300 | 25.0 % | 0.778 | 0.600 |" in metrics


def test_render_card_data_sections_count_rows_from_data_dvc() -> None:
    markdown = card.render_card(inputs(), spec())
    assert "| 2013-03 | 28,834 | `333333333333` |" in section(markdown, "Evaluation data")
    training = section(markdown, "Training data")
    assert "| 2013-01 | 27,004 | `111111111111` |" in training
    assert "54,321 flights modelled, 22.2 % late" in training
    assert "7 of 35 features drifted" in section(markdown, "Evaluation data")


def test_render_card_quantitative_analyses_per_slice_with_names() -> None:
    analyses = section(card.render_card(inputs(), spec()), "Quantitative analyses")
    assert "| UA (United Air Lines Inc.) | 250 | 11.1 % | 0.856 [0.810, 0.900] |" in analyses
    assert "| ZZ | 150 |  | fewer than 200 flights |" in analyses
    assert "| EWR (Newark) | 400 | 12.3 % | 0.812 n/a |" in analyses
    assert "| UA | EWR | 250 | 11.1 % | 0.856 |" in analyses
    assert "| origin_waiting | 0.0302 | 0.0036 |" in analyses


def test_render_card_caveats_name_the_known_limits() -> None:
    caveats = section(card.render_card(inputs(), spec()), "Caveats and recommendations")
    assert "2013 only" in caveats
    assert "Three New York airports only** (EWR)" in caveats
    assert "Pre-departure features only" in caveats
    assert "ROC AUC varied from 0.778 to 0.812 in the backtest" in caveats


def test_render_card_of_a_version_names_version_and_commit() -> None:
    markdown = card.render_card(inputs(), spec(version="v1.2.0", registered_commit="c0ffee"))
    assert markdown.splitlines()[3] == "# Model card: flight-delay@v1.2.0"
    assert "| Version | v1.2.0 (git tag `flight-delay@v1.2.0`) |" in markdown
    assert "| Registered commit | `c0ffee` |" in markdown


def test_render_card_of_the_work_tree_says_how_to_find_commit_and_run() -> None:
    """The working tree's card is a pipeline output: the same bytes on every machine, so it names
    no commit (the one about to be made) and no MLflow run id (one per training)."""
    details = section(card.render_card(inputs(), spec()), "Model details")
    model_md5 = "f" * 32 + ".dir"
    assert (
        f"| Trained at commit | the commit whose `dvc.lock` first records model `{model_md5}` "
        f"(`git log --reverse -S {model_md5.removesuffix('.dir')} -- dvc.lock`) |"
    ) in details
    assert "| MLflow run | the run of experiment `flightdelay` tagged `model_sha256`" in details


def test_render_card_of_a_version_shows_its_training_commit_and_run() -> None:
    details = section(
        card.render_card(
            inputs(),
            spec(version="v1.2.0", trained_commit="feedc0de" * 5, mlflow_run_id="run4242"),
        ),
        "Model details",
    )
    assert f"| Trained at commit | `{'feedc0de' * 5}` |" in details
    assert "| MLflow run | `run4242` |" in details


def test_render_card_is_deterministic_and_lint_clean() -> None:
    first = card.render_card(inputs(), spec())
    assert first == card.render_card(inputs(), spec())
    assert first.endswith("\n")
    assert not first.endswith("\n\n")
    assert not [line for line in first.splitlines() if line != line.rstrip()]


def test_render_card_records_its_inputs() -> None:
    assert card_check.fingerprint_of(card.render_card(inputs(), spec())) == FINGERPRINT


def test_render_card_missing_key_names_the_file_and_key() -> None:
    model = {k: v for k, v in MODEL.items() if k != "train_months"}
    with pytest.raises(CardError, match=r"model\.json lacks the key 'train_months'"):
        card.render_card(inputs(model=model), spec())


def test_estimator_named_in_the_card_is_what_train_fits() -> None:
    from flightdelay.pipeline.train import make_pipeline

    params = TrainParams(
        seed=0,
        learning_rate=0.1,
        max_iter=10,
        max_leaf_nodes=8,
        min_samples_leaf=5,
        l2_regularization=0.0,
        validation_fraction=0.1,
        early_stopping_rounds=5,
    )
    assert type(make_pipeline(params)[-1]).__name__ == card_view.ESTIMATOR


def test_month_range_ends_on_the_last_day_of_the_month() -> None:
    assert card_view.month_range(["2013-02", "2013-01"]) == "2013-01-01 to 2013-02-28"
    assert card_view.month_range([]) == "n/a"


# --- intervals -----------------------------------------------------------------------------------


def test_intersections_lowest_roc_auc_first() -> None:
    y, s = scored(800)
    s[:400] = np.random.default_rng(1).random(400)  # the first pair scores at random
    frame = pd.DataFrame(
        {"y_true": y, "score": s, "carrier": ["AA"] * 400 + ["UA"] * 400, "origin": "EWR"}
    )
    rows = card_inputs.intersections(frame, ("carrier", "origin"), 200)
    assert [r["carrier"] for r in rows] == ["AA", "UA"]
    assert rows[0]["n"] == 400
    assert rows[1]["roc_auc"] == pytest.approx(roc_auc_score(y[400:], s[400:]))


# --- diff ----------------------------------------------------------------------------------------


def test_card_diff_of_identical_cards_is_one_line() -> None:
    markdown = card.render_card(inputs(), spec())
    assert card_check.card_diff(markdown, markdown) == "The model card is unchanged.\n"


def test_card_diff_without_an_earlier_card() -> None:
    assert card_check.card_diff("", card.render_card(inputs(), spec())).startswith("New model card")


def test_card_diff_shows_changed_lines_per_section() -> None:
    old = card.render_card(inputs(), spec())
    new = card.render_card(inputs(evaluate=EVALUATE | {"roc_auc": 0.8456}), spec())
    diff = card_check.card_diff(old, new)
    assert diff.startswith("The model card changed in ")
    assert "Metrics: changed" in diff
    assert "-| ROC AUC | 0.812 | [0.801, 0.823] |" in diff
    assert "+| ROC AUC | 0.846 | [0.801, 0.823] |" in diff
    assert "Training data" not in diff


# --- staleness -----------------------------------------------------------------------------------


def lock_for(card_md: str, card_md5: str, **overrides: str) -> dict[str, Any]:
    hashes = card_check.fingerprint_of(card_md) or {}
    outs = [
        {"path": p, "md5": overrides.get(p, m)}
        for p, m in hashes.items()
        if p != card_inputs.DATA_KEY
    ]
    return {
        "schema": "2.0",
        "stages": {
            "validate": {
                "cmd": "flightdelay validate",
                "deps": [{"path": "data", "md5": overrides.get("data", hashes["data"])}],
            },
            "evaluate": {"cmd": "flightdelay evaluate", "outs": outs},
            "card": {
                "cmd": "flightdelay card",
                "deps": [{"path": "src/flightdelay/pipeline/card.py", "md5": "c" * 32}],
                "outs": [{"path": "model-cards/flight-delay.md", "md5": card_md5}],
            },
        },
    }


CARD_PATH = "model-cards/flight-delay.md"


def test_stale_reasons_none_when_fresh() -> None:
    markdown = card.render_card(inputs(), spec())
    lock = lock_for(markdown, "m" * 32)
    assert (
        card_check.stale_reasons(markdown, CARD_PATH, "m" * 32, DvcLock.parse(lock, "dvc.lock"), {})
        == []
    )


def test_stale_reasons_when_dvc_lock_records_new_metrics() -> None:
    markdown = card.render_card(inputs(), spec())
    lock = lock_for(markdown, "m" * 32, **{"outputs/metrics/evaluate.json": "f" * 32})
    (reason,) = card_check.stale_reasons(
        markdown, CARD_PATH, "m" * 32, DvcLock.parse(lock, "dvc.lock"), {}
    )
    assert reason.startswith(
        f"outputs/metrics/evaluate.json: dvc.lock records {'f' * 32}, the card was made from "
    )
    assert reason.endswith(
        "run `dvc repro card` and commit model-cards/flight-delay.md and dvc.lock"
    )


def test_stale_reasons_when_the_data_changed() -> None:
    markdown = card.render_card(inputs(), spec())
    lock = lock_for(markdown, "m" * 32, data="d" * 32 + ".dir")
    assert card_check.stale_reasons(
        markdown, CARD_PATH, "m" * 32, DvcLock.parse(lock, "dvc.lock"), {}
    )[0].startswith("data: ")


def test_stale_reasons_when_the_card_was_edited_by_hand() -> None:
    markdown = card.render_card(inputs(), spec())
    lock = lock_for(markdown, "m" * 32)
    (reason,) = card_check.stale_reasons(
        markdown + "edit\n", CARD_PATH, "x" * 32, DvcLock.parse(lock, "dvc.lock"), {}
    )
    assert "is not the card dvc.lock records" in reason
    assert "edited by hand" in reason


def test_stale_reasons_when_the_card_code_changed() -> None:
    markdown = card.render_card(inputs(), spec())
    lock = lock_for(markdown, "m" * 32)
    reasons = card_check.stale_reasons(
        markdown,
        CARD_PATH,
        "m" * 32,
        DvcLock.parse(lock, "dvc.lock"),
        {"src/flightdelay/pipeline/card.py": "0" * 32},
    )
    assert reasons == [
        "src/flightdelay/pipeline/card.py changed since the card was generated; "
        "run `dvc repro card` and commit model-cards/flight-delay.md and dvc.lock"
    ]


def test_stale_reasons_when_there_is_no_card_stage_or_no_card() -> None:
    markdown = card.render_card(inputs(), spec())
    lock = lock_for(markdown, "m" * 32)
    del lock["stages"]["card"]
    assert card_check.stale_reasons(
        markdown, CARD_PATH, "m" * 32, DvcLock.parse(lock, "dvc.lock"), {}
    ) == [
        "dvc.lock has no `card` stage: run `dvc repro card` and commit "
        "model-cards/flight-delay.md and dvc.lock"
    ]
    assert card_check.stale_reasons(None, CARD_PATH, None, DvcLock.parse(lock, "dvc.lock"), {})[
        0
    ].startswith("model-cards/flight-delay.md not found")
    assert (
        "records no card-inputs"
        in card_check.stale_reasons(
            "# hand-made\n", CARD_PATH, "", DvcLock.parse(lock, "dvc.lock"), {}
        )[0]
    )


# --- the command on files ----------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with the real params.yaml and small pipeline outputs at its paths."""
    shutil.copy(REPO_ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    (data / "flights").mkdir(parents=True)
    for month, entry in BATCHES.items():
        (data / month).write_text("year,month\n" + "2013,1\n" * (entry["rows"] % 7 + 1))
    (data / "airlines.csv").write_text("carrier,name\nUA,United Air Lines Inc.\n")
    (data / "airports.csv").write_text("faa,name\nEWR,Newark Liberty Intl\n")
    files = {
        p.relative_to(data).as_posix(): {"md5": md5_file(p), "rows": 1}
        for p in sorted(data.rglob("*"))
        if p.is_file()
    }
    (tmp_path / "data.dvc").write_text(
        yaml.safe_dump(
            {"outs": [{"md5": dir_md5(files), "path": "data"}], "meta": {"files": files}}
        )
    )
    out = tmp_path / "outputs"
    for path, payload in {
        "model/model.json": MODEL | {"train_months": ["2013-01", "2013-02"]},
        "metrics/evaluate.json": EVALUATE,
        "metrics/backtest.json": BACKTEST_JSON,
        "metrics/slices.json": SLICES,
        "metrics/importance.json": {"features": IMPORTANCE},
        "drift/drift.json": DRIFT,
    }.items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text(json.dumps(payload))
    y, s = scored(400, seed=3)
    carriers = ["UA"] * 250 + ["ZZ"] * 150
    pd.DataFrame({"y_true": y, "score": s, "carrier": carriers, "origin": "EWR"}).to_parquet(
        out / "predictions.parquet"
    )
    return tmp_path


def write_lock(workdir: Path) -> None:
    """dvc.lock as `dvc repro card` would record it after generating the card."""
    markdown = (workdir / CARD_PATH).read_text()
    lock = lock_for(markdown, md5_file(workdir / CARD_PATH))
    lock["stages"]["card"]["deps"] = [{"path": "src/flightdelay/pipeline/card.py", "md5": "c" * 32}]
    (workdir / "dvc.lock").write_text(yaml.safe_dump(lock))


def test_main_writes_the_working_tree_card(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert card.main([]) == 0
    markdown = (workdir / CARD_PATH).read_text()
    assert "# Model card: flight-delay (working tree)" in markdown
    assert "| UA (United Air Lines Inc.) | 250 |" in markdown
    assert capsys.readouterr().out.startswith(f"card: {CARD_PATH} (")
    fingerprint = card_check.fingerprint_of(markdown) or {}
    assert fingerprint["outputs/metrics/evaluate.json"] == md5_file(
        workdir / "outputs/metrics/evaluate.json"
    )
    assert fingerprint["outputs/model"].endswith(".dir")


def test_main_writes_a_version_card(workdir: Path) -> None:
    assert card.main(["--version", "v0.3.0", "--commit", "c0ffee"]) == 0
    markdown = (workdir / "model-cards" / "flight-delay@v0.3.0.md").read_text()
    assert "# Model card: flight-delay@v0.3.0" in markdown
    assert "| Registered commit | `c0ffee` |" in markdown


def test_version_card_with_the_release_s_run_id_never_searches_the_tracking_store(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The release knows its run (it looked it up once): the card shows that one, and the
    store is not searched a second time."""
    from flightdelay.core import tracking
    from flightdelay.core.params import load_params

    def no_search(sha256: str) -> str:
        raise AssertionError(f"the tracking store was searched for {sha256}")

    monkeypatch.setattr(tracking, "find_run", no_search)
    markdown = card.version_card(
        load_params(), "v0.3.0", None, "c0ffee", None, "run-of-the-release", find_run=False
    )
    assert "`run-of-the-release`" in markdown
    monkeypatch.setattr(tracking, "find_run", lambda sha256: "run-found-by-sha256")
    assert "`run-found-by-sha256`" in card.version_card(load_params(), "v0.3.0", None, "c0ffee")


def test_main_check_passes_when_fresh_fails_when_dvc_lock_changes(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert card.main([]) == 0
    write_lock(workdir)
    assert card.main(["--check"]) == 0
    assert "is up to date with dvc.lock" in capsys.readouterr().out

    lock = yaml.safe_load((workdir / "dvc.lock").read_text())
    lock["stages"]["evaluate"]["outs"][0]["md5"] = "0" * 32
    (workdir / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert card.main(["--check"]) == 1
    assert "stale model card: outputs/" in capsys.readouterr().err


def test_check_names_a_dvc_lock_that_is_not_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, params: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"card": {}}}))
    (reason,) = card_check.check(params)
    assert reason.startswith("dvc.lock is not a DVC lock file (required key not provided @ ")
    assert "['stages']['card']['cmd']" in reason
    assert reason.endswith("regenerate it with `dvc repro`")


def test_lock_of_another_revision_is_read_as_dvc_reads_it() -> None:
    with pytest.raises(ArtifactError, match=r"^dvc.lock at v1 is not a DVC lock file \(expected"):
        DvcLock.parse(
            {"schema": "2.0", "stages": {"train": {"cmd": "x", "outs": [{"path": 3}]}}},
            "dvc.lock at v1",
        )


def test_main_check_fails_without_dvc_lock(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert card.main(["--check"]) == 1
    assert "stale model card: dvc.lock not found" in capsys.readouterr().err


def test_main_names_a_missing_output(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "outputs/predictions.parquet").unlink()
    assert card.main([]) == 1
    assert "outputs/predictions.parquet: predictions not found" in capsys.readouterr().err


def test_main_refuses_predictions_from_another_run(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "outputs/metrics/evaluate.json").write_text(json.dumps(EVALUATE | {"n": 999}))
    assert card.main([]) == 1
    assert "has 400 rows but evaluate.json reports n=999" in capsys.readouterr().err


def test_main_rejects_a_bad_version(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert card.main(["--version", "1.2"]) == 1
    assert "version '1.2' is not of the form vX.Y.Z" in capsys.readouterr().err
    assert card.main(["--rev", "HEAD"]) == 1
    assert "--rev and --commit go with --version" in capsys.readouterr().err


def test_card_stage_writes_the_path_card_path_names(params: Any) -> None:
    stage = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]["card"]
    (out,) = [next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]]
    resolved = out.replace("${paths.cards}", params.paths.cards.as_posix())
    assert resolved == card_inputs.card_path(params).as_posix() == "model-cards/flight-delay.md"
    assert (
        card_inputs.card_path(params, "v1.0.0").as_posix() == "model-cards/flight-delay@v1.0.0.md"
    )


def test_committed_card_is_fresh_against_dvc_lock(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `make check-card` does in CI, so `.ci/run` catches a stale card too."""
    monkeypatch.chdir(REPO_ROOT)
    assert card.main(["--check"]) == 0, capsys.readouterr().err


def test_render_card_leakage_audit_gives_the_label_policy_numbers_and_every_feature() -> None:
    analyses = section(
        card.render_card(inputs(audit=audit_report()), spec()), "Quantitative analyses"
    )
    audit = analyses.split("### Leakage audit\n", 1)[1]
    assert audit.startswith(
        "\n**Passed** (stage `audit`). Of 252,484 flights in the batches, 2,087"
    )
    assert "4,674 cancelled and 986 diverted flights among the 47,037 late" in audit
    assert "5,071 flights" in audit
    assert "| origin_waiting | numeric | 0 | - | - | 0.732 | pass |" in audit
    assert "| tail_leg_of_day | numeric | 5,071 | 18.8 % | 0.500 | 0.562 | pass |" in audit
    assert "2,146 flights of 2013-09 at 1 cutoffs" in audit


def test_render_card_failed_audit_names_the_feature_and_a_model_without_audit_says_so() -> None:
    failed = card.render_card(inputs(audit=audit_report(failing=True)), spec())
    assert "**FAILED** (stage `audit`)" in failed
    assert "| 100.0% of its 2,087 missing rows are late (limit 90%) |" in failed
    assert "No leakage audit (audit.json) for this model." in card.render_card(inputs(), spec())
