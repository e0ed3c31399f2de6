"""Stage ``report``: the pull-request report a reviewer decides from, as CML posts it.

Writes ``${paths.report}/report.md`` (exactly what ``cml comment update`` posts), ``report.html``
(a local preview rendered the way GitHub renders the comment, with the plots), ``report.json``
(verdict and comparisons, for tools) and ``img/*.png`` (exactly the plots report.md references).

This module gathers the numbers (:func:`gather`: the verdict of
:func:`flightdelay.loop.gate.decide`,
the comparisons with the base branch and the production model of :mod:`flightdelay.loop.compare`,
the
params and data diffs, validation, drift, slices, the model cards);
:mod:`flightdelay.loop.report_render` turns them into a typed view and renders its templates, and
:mod:`flightdelay.loop.report_plots` draws the figures. No timing is reported: latency measured once
on a shared runner is noise, and it would make a cached output differ run to run.

The report is also written when the pipeline failed (``make report`` runs after a failed
``dvc repro``): it reads whatever outputs exist. When validation failed it names the broken
expectation and leaves out the model sections, whose outputs would be stale.

Posting (``.github/workflows/pr-comment.yml``, ``make report-comment``): the trusted job treats
the artifact as data. ``scripts/report_comment.py`` publishes the ``img/*.png`` this report shows
as ``![alt](img/NAME.png)`` (that exact form; validated PNGs, its own copies) to CML's asset
service, keeps ``[text](https://...)`` links and attribute-less ``<details>``/``<summary>``/
``<code>``/``<sub>`` tags, escapes every other bracket, and posts with ``cml comment update
--no-publish``. Anything else this report writes as a link or HTML reaches the comment as text.

``flightdelay report --job-summary`` appends report.md to ``$GITHUB_STEP_SUMMARY`` (plots as text:
a job summary cannot show local images).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from flightdelay import MODEL_NAME
from flightdelay.core.drift_summary import DRIFT_JSON, TABLE_JSON, DriftSummary
from flightdelay.core.outputs import EvaluateMetrics, ModelMetadata, Slices, ValidationSummary
from flightdelay.core.params import BootstrapParams, GateParams
from flightdelay.loop.compare import Comparison
from flightdelay.loop.gate import Rule, Verdict
from flightdelay.loop.report_markdown import for_job_summary, render, to_html
from flightdelay.loop.report_plots import (
    Curves,
    PlotData,
    PlotError,
    draw,
    drawable,
    read_drift_data,
)
from flightdelay.loop.report_render import build_view, same_model
from flightdelay.loop.report_view import IMAGE_DIR

__all__ = ["for_job_summary"]  # the job summary's rewrite lives with the rendering


# ---------------------------------------------------------------- pure core: inputs


@dataclass(frozen=True)
class Baseline:
    """One baseline of the report: its comparison, or why there is none."""

    name: str  # "main", "prod (flight-delay@v0.1.0)"
    commit: str | None
    comparison: Comparison | None = None
    missing: str | None = None  # why there is no comparison ("no baseline: ...")


@dataclass(frozen=True)
class DataChange:
    path: str
    change: str  # added | removed | changed
    rows: tuple[int | None, int | None]
    md5: tuple[str | None, str | None]


@dataclass(frozen=True)
class ReportInputs:
    verdict: Verdict
    gate: GateParams
    bootstrap: BootstrapParams  # the intervals the gate judges (the rule's)
    base: Baseline
    prod: Baseline | None  # None: no version was ever assigned prod
    validation: ValidationSummary | None = None
    metrics: EvaluateMetrics | None = None
    skipped_models: str | None = None  # why the model sections are left out
    params_diff: Sequence[tuple[str, Any, Any]] = ()
    data_diff: Sequence[DataChange] = ()
    data_files: tuple[int, int] | None = None  # files in data.dvc at base, here
    drift: DriftSummary | None = None
    drift_table: Mapping[str, Any] | None = None
    slices: Slices | None = None
    scores: Curves | None = None  # this change's, main's and prod's scores on the same flights
    cards: tuple[str | None, str | None] = (None, None)  # the model card at the base, here
    commit: str = "unknown"
    data_md5: str | None = None
    mlflow_run_id: str | None = None
    model_sha256: str | None = None
    rule: Rule | None = None  # the rule it was judged by (the base's); its changes, if any
    audit: Any = (
        None  # flightdelay.pipeline.audit.AuditReport (audit.json), when the audit stage ran
    )


# ---------------------------------------------------------------- pure core: diffs


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``{"a.b.c": value}``; lists are values."""
    if not isinstance(tree, Mapping):
        return {prefix: tree} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out |= flatten(value, name)
        else:
            out[name] = value
    return out


def params_diff(old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """(key, old, new) for every changed, added (old None) or removed (new None) key; a whole
    top-level section added or removed is one row (``section.*``, its number of keys)."""
    old, new = old or {}, new or {}
    out: list[tuple[str, Any, Any]] = []
    for section in sorted(old.keys() - new.keys()):
        out.append((f"{section}.*", f"{len(flatten({section: old[section]}))} keys", None))
    for section in sorted(new.keys() - old.keys()):
        out.append((f"{section}.*", None, f"{len(flatten({section: new[section]}))} keys"))
    shared = old.keys() & new.keys()
    a = flatten({k: old[k] for k in shared})
    b = flatten({k: new[k] for k in shared})
    out += [(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
    return sorted(out)


def data_diff(old: Any, new: Any) -> list[DataChange]:
    """Files added, removed or changed between two data.dvc documents (``meta.files``)."""

    def files(doc: Any) -> dict[str, Mapping[str, Any]]:
        return dict(((doc or {}).get("meta") or {}).get("files") or {})

    a, b = files(old), files(new)
    changes = []
    for path in sorted(a.keys() | b.keys()):
        x, y = a.get(path), b.get(path)
        if x == y:
            continue
        change = "added" if x is None else "removed" if y is None else "changed"
        changes.append(
            DataChange(
                path,
                change,
                ((x or {}).get("rows"), (y or {}).get("rows")),
                ((x or {}).get("md5"), (y or {}).get("md5")),
            )
        )
    return changes


# ---------------------------------------------------------------- I/O edge


def _read_optional(path: Path, what: str) -> Any:
    from flightdelay.core.io import read_json

    return read_json(path, what) if path.is_file() else None


def staleness(model_meta: ModelMetadata | None, params: Any, data_md5: str | None) -> str | None:
    """Why the model outputs do not belong to this data and these params, or None."""
    if model_meta is None:
        return "no trained model (the pipeline stopped before `train`): model sections left out."
    if data_md5 and model_meta.data_md5 != data_md5:
        return (
            "the model outputs were trained on other data than data.dvc records (the "
            "pipeline stopped early): model sections left out."
        )
    for section in ("featurize", "train"):
        # As model.json records them: a key it lacks (a params key added since) is a change.
        recorded = getattr(model_meta, section).model_dump(exclude_unset=True)
        if recorded != getattr(params, section).model_dump():
            return (
                f"the model outputs were trained with other `{section}` params than "
                "params.yaml (the pipeline stopped early): model sections left out."
            )
    return None


def _git_yaml(commit: str | None, path: str) -> Any:
    from flightdelay.core.revisions import yaml_at

    return None if commit is None else yaml_at(commit, path)


def card_texts(params: Any, base_commit: str | None) -> tuple[str | None, str | None]:
    """The model card at the base branch and in this work tree (None where there is none)."""
    from flightdelay.core.revisions import show

    card = params.paths.cards / f"{MODEL_NAME}.md"
    here = card.read_text(encoding="utf-8") if card.is_file() else None
    return (show(base_commit, card.as_posix()) if base_commit else None), here


def curves_of(scores: Any, baselines: Sequence[Baseline | None], same: bool) -> Curves | None:
    """This change's scores and each compared baseline's on the same evaluation flights."""
    if scores is None:
        return None
    import numpy as np

    found: dict[str, Any] = {"this change": scores.predictions["score"].to_numpy()}
    for b in baselines[:1] if same else baselines:  # main = prod: one curve
        c = b.comparison if b is not None else None
        if b is not None and c is not None and c.baseline_scores is not None:
            name = b.name.split(" ")[0]
            found.setdefault("main = prod" if same else name, c.baseline_scores)
    return Curves(
        y=np.asarray(scores.predictions["y_true"].to_numpy()),
        scores=found,
        threshold=scores.threshold,
        month=scores.month,
    )


def base_ref(explicit: str | None) -> str:
    """The base branch: --base, else the pull request's base in GitHub Actions, else main."""
    return explicit or os.environ.get("GITHUB_BASE_REF") or "main"


def _mlflow_run(model_dir: Path, meta: ModelMetadata | None) -> str | None:
    """The MLflow run that trained this model: the provenance sidecar's, if it is this model's
    (train writes the run id there, beside the directory, not into model.json)."""
    from flightdelay.core.model_io import read_provenance

    provenance = read_provenance(model_dir, meta.sha256) if meta is not None else None
    return provenance.mlflow_run_id if provenance else None


def gather(params: Any, params_file: Path, base: str, champion: str | None) -> ReportInputs:
    """Read every output that exists and build the report's inputs (never raises for a missing
    output: the section is left out or says why)."""
    from flightdelay.core import revisions, yamltext
    from flightdelay.core.model_io import METADATA_FILE, read_metadata
    from flightdelay.loop import compare as cmp
    from flightdelay.loop.gate import decide, judged_by, read_challenger, rule_at

    paths = params.paths
    gate_challenger = read_challenger(paths)
    here_dvc = yamltext.load(Path("data.dvc").read_text()) if Path("data.dvc").is_file() else {}
    data_md5 = ((here_dvc.get("outs") or [{}])[0]).get("md5")
    meta = read_metadata(paths.model) if (paths.model / METADATA_FILE).is_file() else None
    skipped = staleness(meta, params, data_md5)
    if gate_challenger.validation is not None and not gate_challenger.validation.success:
        skipped = (
            "data validation failed, so no model was built from this data: model sections left out."
        )
    from flightdelay.core import gitops

    try:
        head = gitops.git("rev-parse", "HEAD").strip()
    except gitops.GitOpsError:
        head = "unknown"
    base_commit = revisions.resolve(base)
    # The rule comes from the protected side: the base's params.yaml decides, never this change's.
    rule = rule_at(base_commit, base, params, params_file)
    judged = rule.apply(params)
    scores = None
    if skipped is None:
        try:
            scores = cmp.read_challenger(params)
        except cmp.CompareError as exc:
            skipped = f"{exc}: model sections left out."

    def baseline(commit: str | None, name: str, missing: str) -> Baseline:
        if commit is None:
            return Baseline(name, None, missing=missing)
        if scores is None:
            return Baseline(name, commit)
        try:
            return Baseline(name, commit, cmp.compare_with(commit, name, judged, scores))
        except cmp.CompareError as exc:
            return Baseline(name, commit, missing=f"no baseline: {exc}")

    base_side = baseline(
        base_commit,
        base,
        f"no baseline: `{base}` does not exist here "
        "(fresh repository, or a checkout without history: fetch-depth 0)",
    )
    prod_side: Baseline | None = None
    try:
        found = revisions.champion_ref(champion)
    except cmp.CompareError as exc:
        found = None
        prod_side = Baseline(champion or "prod", None, missing=str(exc))
    if found is not None:
        if found[0] == base_commit and base_side.comparison is not None:
            prod_side = Baseline(
                found[1], found[0], replace(base_side.comparison, baseline=found[1])
            )
        else:
            prod_side = baseline(found[0], found[1], "")
    champion_cmp = prod_side.comparison if prod_side else None
    gate_view = (
        gate_challenger
        if skipped is None
        else type(gate_challenger)(None, None, gate_challenger.validation)
    )
    verdict = decide(gate_view, champion_cmp, rule.gate)
    if found is not None and champion_cmp is None and skipped is None:
        verdict = Verdict(
            False,
            [
                f"the production model could not be compared: "
                f"{prod_side.missing if prod_side else ''}",
                *verdict.reasons,
            ],
            verdict.checks,
            verdict.champion,
        )
    verdict = judged_by(verdict, rule)

    base_dvc = _git_yaml(base_commit, "data.dvc")
    here_params = yamltext.load(params_file.read_text())
    return ReportInputs(
        verdict=verdict,
        gate=rule.gate,
        bootstrap=rule.bootstrap,
        base=base_side,
        prod=prod_side,
        validation=gate_challenger.validation,
        metrics=gate_challenger.metrics if skipped is None else None,
        skipped_models=skipped,
        params_diff=params_diff(_git_yaml(base_commit, "params.yaml"), here_params)
        if base_commit
        else [],
        data_diff=data_diff(base_dvc, here_dvc) if base_commit else [],
        data_files=(
            len(((base_dvc or {}).get("meta") or {}).get("files") or {}),
            len((here_dvc.get("meta") or {}).get("files") or {}),
        )
        if base_dvc
        else None,
        drift=DriftSummary.read(paths.drift / DRIFT_JSON)
        if skipped is None and (paths.drift / DRIFT_JSON).is_file()
        else None,
        drift_table=_read_optional(paths.drift / TABLE_JSON, "drift table")
        if skipped is None
        else None,
        slices=gate_challenger.slices if skipped is None else None,
        scores=curves_of(scores, [base_side, prod_side], same_model(base_side, prod_side))
        if skipped is None
        else None,
        cards=card_texts(params, base_commit) if skipped is None else (None, None),
        commit=head,
        data_md5=data_md5,
        mlflow_run_id=_mlflow_run(paths.model, meta) if skipped is None else None,
        model_sha256=meta.sha256 if meta is not None and skipped is None else None,
        rule=rule,
        audit=_read_audit(paths.audit, gate_challenger.validation),
    )


def _read_audit(path: Path, validation: ValidationSummary | None) -> Any:
    """The audit of the data that passed validation (a failed audit shows why the run stopped)."""
    from flightdelay.core.io import DataFileError
    from flightdelay.pipeline.audit import read_audit

    if not path.is_file() or validation is None or not validation.success:
        return None
    try:
        return read_audit(path)
    except DataFileError:
        return None


def plot_data(params: Any, inputs: ReportInputs) -> PlotData:
    """What the figures are drawn from: the scores gathered, drift's plot CSVs."""
    drift = inputs.drift
    return PlotData(
        curves=inputs.scores,
        drift=read_drift_data(params.paths.drift / "plots") if drift is not None else {},
        current_month=drift.current_month if drift is not None else "",
        performance=drift.performance if drift is not None else None,
    )


def write_report(inputs: ReportInputs, out: Path, data: PlotData) -> Path:
    """report.md, report.html, report.json and exactly the images report.md references."""
    from flightdelay.core.io import write_json

    view = build_view(inputs, *inputs.cards, drawable=drawable(data))
    if view.mode == "unchanged" and data.curves is not None:  # main's own report
        # main's model is this model: one curve for it, and prod's only if prod is another.
        first, *rest = data.curves.scores.items()
        others = {k: v for k, v in rest if not k.startswith("main")}
        data = replace(data, curves=replace(data.curves, scores={"this model": first[1], **others}))
    markdown_text = render(view)
    out.mkdir(parents=True, exist_ok=True)
    draw(view.image_names(), data, out / IMAGE_DIR)
    (out / "report.md").write_text(markdown_text, encoding="utf-8")
    (out / "report.html").write_text(to_html(markdown_text), encoding="utf-8")
    write_json(
        out / "report.json",
        {
            "verdict": inputs.verdict.to_json(),
            "base": {
                "name": inputs.base.name,
                "commit": inputs.base.commit,
                "missing": inputs.base.missing,
                "comparison": inputs.base.comparison.to_json() if inputs.base.comparison else None,
            },
            "prod": None
            if inputs.prod is None
            else {
                "name": inputs.prod.name,
                "commit": inputs.prod.commit,
                "missing": inputs.prod.missing,
                "comparison": inputs.prod.comparison.to_json() if inputs.prod.comparison else None,
            },
            "rule": None
            if inputs.rule is None
            else {
                "source": inputs.rule.source,
                "changes": [list(change) for change in inputs.rule.changes],
            },
            "commit": inputs.commit,
            "data_md5": inputs.data_md5,
            "params_diff": [list(d) for d in inputs.params_diff],
            "data_diff": [vars(d) for d in inputs.data_diff],
        },
    )
    return out / "report.md"


def append_job_summary(report: Path) -> None:
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        raise OSError(
            "GITHUB_STEP_SUMMARY is not set: --job-summary writes the GitHub Actions "
            "job summary (set it to a file to try it locally)"
        )
    if not report.is_file():
        raise OSError(f"{report}: not found (run `flightdelay report` first)")
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(for_job_summary(report.read_text(encoding="utf-8")))


def main(argv: Sequence[str] | None = None) -> int:
    from flightdelay.core.io import DataFileError
    from flightdelay.core.params import ParamsError, load_params

    parser = argparse.ArgumentParser(
        prog="flightdelay report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--base", help="base branch (default: $GITHUB_BASE_REF, else main)")
    parser.add_argument(
        "--champion-ref",
        default="prod",
        metavar="REF",
        help="the production model: 'prod' (GTO's prod version) or a git ref",
    )
    parser.add_argument(
        "--job-summary",
        action="store_true",
        help="append the written report.md to $GITHUB_STEP_SUMMARY and exit",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        params = load_params(args.params)
        out = params.paths.report
        if args.job_summary:
            append_job_summary(out / "report.md")
            print(f"report: {out / 'report.md'} appended to the job summary")
            return 0
        inputs = gather(params, Path(args.params), base_ref(args.base), args.champion_ref)
        path = write_report(inputs, out, plot_data(params, inputs))
    except (ParamsError, DataFileError, PlotError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"report: {inputs.verdict.headline()} -> {path} and {out / 'report.html'} "
        f"({time.perf_counter() - started:.1f}s)"
    )
    return 0
