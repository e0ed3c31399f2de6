"""The promotion rule: would this model (the challenger) replace the production model (the
champion)? One pure function, :func:`decide`, run by the pull-request report's verdict and by the
promotion workflow (``flightdelay gate``), with its thresholds in ``params.yaml`` (``gate:``).

The challenger is promoted when every check passes:

1. **validation**: the data it was trained and evaluated on passed ``flightdelay validate``;
2. **evaluated**: the evaluation month has the judged metric (``gate.metric``);
3. **floor**: the metric reaches ``gate.min_metric`` (absolute, champion or not);
4. **slice floors**: every slice (``gate.slice_columns``) with at least ``gate.slice_min_rows``
   flights reaches ``gate.slice_min_metric``;
5. **non-inferiority** (only with a champion): both models are scored on the same evaluation rows
   and the paired bootstrap interval of the delta (challenger - champion) must lie above
   ``-gate.max_drop``: its *lower bound* must be > -max_drop. A challenger that is better, equal or
   worse by less than the margin passes; one whose interval reaches below the margin does not,
   even if its point estimate is fine, because the data cannot rule out a real loss. (Requiring a
   significant *improvement* would block every retrain on new data that merely keeps quality.)
6. **slice regressions** (only with a champion): no judged slice drops by more than
   ``gate.slice_max_drop`` *and* really (its interval excludes 0). Slices are small, so their
   intervals are wide: a slice blocks only on a drop that is both large and not noise.

Without a champion (no version was ever assigned ``prod``) checks 5 and 6 say so and pass: the
first model is judged by the absolute floors alone.

**The rule comes from the protected side.** What decides (``gate:`` and ``bootstrap:``) is read
from params.yaml at the *base* commit, never from the candidate's own params.yaml: for a pull
request its merge target, on promotion the first parent of the merge on main (:func:`rule_at`).
A change to the rule is reported ("changes the rule it is judged by") and applies from the next
pull request on.

``flightdelay gate [--base REF] [--champion-ref REF]`` decides for the pipeline outputs in the
work tree by the rule of REF (default ``$GITHUB_BASE_REF``, else ``main``),
writes ``${paths.gate}`` (JSON: promote, reasons, checks, champion) and exits 0 when the model
would be promoted, 1 when not (printing the reasons), 2 when it cannot decide (missing outputs,
bad params, champion not materialisable): any non-zero exit means *do not promote*.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flightdelay.core.outputs import EvaluateMetrics, Output, Slices, ValidationSummary
from flightdelay.core.params import BootstrapParams, GateParams, ParamsError
from flightdelay.core.stats import LABELS
from flightdelay.loop.compare import Comparison

#: The keys of params.yaml that decide a promotion (read from the base commit).
RULE_SECTIONS = ("gate", "bootstrap")  # the thresholds, and the intervals they are judged on


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Challenger:
    """What the gate knows of the challenger: evaluate.json, slices.json, validation summary.

    ``metrics`` / ``slices`` are None when the pipeline stopped before ``evaluate``;
    ``validation`` is None when there is no validation summary at all. A mapping given instead
    of the type (a file's content) is read through its type, so a missing key fails here.
    """

    metrics: EvaluateMetrics | None
    slices: Slices | None
    validation: ValidationSummary | None

    def __post_init__(self) -> None:
        fields: tuple[tuple[str, type[Output]], ...] = (
            ("metrics", EvaluateMetrics),
            ("slices", Slices),
            ("validation", ValidationSummary),
        )
        for name, output in fields:
            value = getattr(self, name)
            if value is not None and not isinstance(value, output):
                object.__setattr__(self, name, output.parse(value, f"the challenger's {name}"))


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reasons: list[str]
    checks: list[Check]
    champion: str | None  # how the champion is named ("prod (flight-delay@v0.2.0)") or None

    def to_json(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "reasons": list(self.reasons),
            "checks": [asdict(c) for c in self.checks],
            "champion": self.champion,
        }

    def headline(self) -> str:
        """One line: the decision and its first reason."""
        mark = "would be promoted" if self.promote else "would NOT be promoted"
        return f"{mark}: {self.reasons[0]}" if self.reasons else mark


@dataclass(frozen=True)
class Rule:
    """The rule a candidate is judged by, as the protected side (the base commit) records it."""

    gate: GateParams
    bootstrap: BootstrapParams
    source: str  # where it was read: "main (1a2b3c4d5e6f)"
    changes: tuple[tuple[str, Any, Any], ...] = ()  # (key, base, candidate): what the change alters

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def note(self) -> str:
        """The verdict line of a change that alters its own rule ("" when it does not)."""
        if not self.changes:
            return ""
        keys = ", ".join(f"`{key}`" for key, _, _ in self.changes)
        return (
            f"changes the rule it is judged by ({keys}): judged by {self.source}'s rule; "
            "the new rule applies from the next PR"
        )

    def diff(self) -> str:
        """The rule's change as diff lines (``- key: base`` / ``+ key: candidate``)."""
        lines = []
        for key, old, new in self.changes:
            lines += [f"- {key}: {_yaml_value(old)}", f"+ {key}: {_yaml_value(new)}"]
        return "\n".join(lines)

    def apply(self, params: Any) -> Any:
        """``params`` (the candidate's) with every deciding key replaced by this rule's."""
        return params.model_copy(update={"gate": self.gate, "bootstrap": self.bootstrap})


def _yaml_value(value: Any) -> str:
    return "(absent)" if value is None else str(list(value) if isinstance(value, tuple) else value)


def rule_keys(raw: Any) -> dict[str, Any]:
    """The deciding keys of a parsed params.yaml, flat (``gate.max_drop``): what a diff compares."""
    raw = raw if isinstance(raw, Mapping) else {}
    keys: dict[str, Any] = {}
    for name in RULE_SECTIONS:
        section = raw.get(name)
        section = section if isinstance(section, Mapping) else {}
        keys |= {f"{name}.{k}": v for k, v in section.items()}
    return keys


def rule_changes(base_raw: Any, candidate_raw: Any) -> list[tuple[str, Any, Any]]:
    """(key, base value, candidate value) of every deciding key the candidate changes."""
    a, b = rule_keys(base_raw), rule_keys(candidate_raw)
    return [(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


def current_layout(raw: Any) -> Any:
    """A params.yaml from before the ``bootstrap:`` section (``evaluate.bootstrap_samples``,
    ``gate.confidence``, ``gate.seed``) in today's layout, so that the first pull requests and
    promotions after the change still read their base's rule; any other value as it is."""
    if not isinstance(raw, Mapping) or "bootstrap" in raw:
        return raw
    gate, evaluate = dict(raw.get("gate") or {}), dict(raw.get("evaluate") or {})
    legacy = {
        "samples": evaluate.pop("bootstrap_samples", None),
        "seed": gate.pop("seed", None),
        "confidence": gate.pop("confidence", None),
    }
    if all(value is None for value in legacy.values()):
        return raw
    bootstrap = {key: value for key, value in legacy.items() if value is not None}
    return {**raw, "gate": gate, "evaluate": evaluate, "bootstrap": bootstrap}


def parse_rule(base_raw: Any, candidate_raw: Any, source: str, candidate: Any) -> Rule:
    """The rule of the base's parsed params.yaml, validated by the typed models of this code.

    ``candidate`` is the candidate's loaded Params (kept for the callers' symmetry: every
    deciding key comes from the base). Raises ParamsError naming the base when its rule does not
    load.
    """
    from pydantic import ValidationError

    base_raw, candidate_raw = current_layout(base_raw), current_layout(candidate_raw)
    raw = base_raw if isinstance(base_raw, Mapping) else {}
    try:
        gate = GateParams.model_validate(raw.get("gate"))
        bootstrap = BootstrapParams.model_validate(raw.get("bootstrap"))
    except (ValidationError, AttributeError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else {"msg": str(exc)}
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ParamsError(
            f"the rule of {source} (params.yaml `gate:`, `bootstrap:`) does not "
            f"load with this code ({where + ': ' if where else ''}{first['msg']}); a new rule "
            "key needs a default so that the base's rule still loads: nothing can be promoted"
        ) from None
    return Rule(gate, bootstrap, source, tuple(rule_changes(raw, candidate_raw)))


def judged_by(verdict: Verdict, rule: Rule) -> Verdict:
    """The verdict, saying so first when the change alters the rule it was judged by."""
    if not rule.changed:
        return verdict
    check = Check("rule", True, rule.note())
    return Verdict(verdict.promote, verdict.reasons, [check, *verdict.checks], verdict.champion)


_LEAD = ("vs champion", "slice regressions", "floor", "slice floors", "evaluated", "validation")


def _metric_name(metric: str) -> str:
    return LABELS.get(metric, metric)


def validation_failures(summary: ValidationSummary) -> list[str]:
    """One line per failed expectation of a validation summary (outputs/validation)."""
    lines = []
    for f in summary.failures:
        where = ", ".join(f"{b} ({n:,} rows)" if n else str(b) for b, n in f.batches.items())
        column = f" column={f.column}" if f.column else ""
        lines.append(
            f"[{f.group}] {f.table} {f.expectation}{column}"
            f"{' in ' + where if where else ''}: {f.detail}".rstrip(": ")
        )
    return lines


def _validation_check(validation: ValidationSummary | None) -> Check:
    if validation is None:
        return Check(
            "validation",
            False,
            "no data validation summary: run `flightdelay validate` (the pipeline's first stage)",
        )
    if validation.success:
        return Check("validation", True, "data validation passed")
    failures = validation_failures(validation)
    count = f"{len(failures)} failed expectation{'s' if len(failures) != 1 else ''}"
    first = f": {failures[0]}" if failures else ""
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return Check("validation", False, f"data validation failed, {count}{first}{more}")


def _slice_floors(slices: Slices | None, p: GateParams) -> Check:
    judged, low = 0, []
    for column in p.slice_columns:
        for entry in slices.column(column) if slices is not None else ():
            value = entry.metric(p.metric)
            if float(entry.n) < p.slice_min_rows or value is None:
                continue
            judged += 1
            if value < p.slice_min_metric:
                low.append(f"{column}={entry.value} {value:.4f} (n={int(float(entry.n)):,})")
    name = _metric_name(p.metric)
    if low:
        return Check(
            "slice floors",
            False,
            f"{len(low)} slice(s) below the {name} floor {p.slice_min_metric:g}: {', '.join(low)}",
        )
    return Check(
        "slice floors",
        True,
        f"all {judged} slices with ≥ {p.slice_min_rows:,} flights "
        f"reach {name} {p.slice_min_metric:g}",
    )


def _non_inferiority(champion: Comparison, p: GateParams) -> Check:
    name = _metric_name(p.metric)
    d = champion.metrics.get(p.metric)
    if d is None:
        return Check("vs champion", False, f"the comparison with {champion.baseline} has no {name}")
    level = f"{100 * champion.confidence:g}%"
    text = (
        f"{name} vs {champion.baseline}: {d.delta:+.4f} ({level} CI {d.low:+.4f} … {d.high:+.4f})"
    )
    if d.low > -p.max_drop:
        return Check("vs champion", True, f"{text}; lower bound above −{p.max_drop:g}")
    return Check(
        "vs champion",
        False,
        f"{text}; the interval reaches below −{p.max_drop:g}, so "
        "a loss beyond the margin cannot be ruled out",
    )


def _slice_regressions(champion: Comparison, p: GateParams) -> Check:
    worse = [
        s
        for s in champion.slices
        if s.column in p.slice_columns
        and s.n >= p.slice_min_rows
        and s.delta.high < 0
        and -s.delta.delta > p.slice_max_drop
    ]
    judged = sum(
        1 for s in champion.slices if s.column in p.slice_columns and s.n >= p.slice_min_rows
    )
    name = _metric_name(p.metric)
    if worse:
        listed = ", ".join(
            f"{s.column}={s.value} {s.delta.delta:+.4f} (CI {s.delta.low:+.4f} … "
            f"{s.delta.high:+.4f}, n={s.n:,})"
            for s in worse
        )
        return Check(
            "slice regressions",
            False,
            f"{len(worse)} slice(s) lose more than "
            f"{p.slice_max_drop:g} {name} against {champion.baseline}: {listed}",
        )
    return Check(
        "slice regressions",
        True,
        f"no slice of {judged} loses more than "
        f"{p.slice_max_drop:g} {name} (real drop) against {champion.baseline}",
    )


def decide(challenger: Challenger, champion: Comparison | None, params: GateParams) -> Verdict:
    """The promotion decision and every check behind it (see the module docstring)."""
    checks = [_validation_check(challenger.validation)]
    metrics = challenger.metrics
    name = _metric_name(params.metric)
    value = metrics.metric(params.metric) if metrics is not None else None
    if value is None:
        stopped = "at the failed validation" if not checks[0].passed else "before `evaluate`"
        checks.append(
            Check(
                "evaluated",
                False,
                f"no {name} on the evaluation month: the pipeline stopped {stopped}",
            )
        )
    else:
        month = f" on {metrics.eval_month}" if metrics is not None and metrics.eval_month else ""
        ok = float(value) >= params.min_metric
        checks.append(
            Check(
                "floor",
                ok,
                f"{name} {float(value):.4f}{month} "
                f"{'≥' if ok else '<'} floor {params.min_metric:g}",
            )
        )
        checks.append(_slice_floors(challenger.slices, params))
    if champion is None:
        checks.append(
            Check(
                "vs champion",
                True,
                "no champion (no version was ever assigned prod): absolute floors only",
            )
        )
    elif value is not None:
        checks += [_non_inferiority(champion, params), _slice_regressions(champion, params)]
    failed = [c for c in checks if not c.passed]
    # Promoted: lead with the comparison, then the floors; refused: every failed check, in order.
    reasons = [c.detail for c in (failed or sorted(checks, key=lambda c: _LEAD.index(c.name)))]
    return Verdict(
        promote=not failed,
        reasons=reasons,
        checks=checks,
        champion=None if champion is None else champion.baseline,
    )


# ---------------------------------------------------------------- I/O edge


def rule_at(commit: str | None, label: str, candidate: Any, params_file: Path | str) -> Rule:
    """The rule params.yaml records at ``commit`` (the protected side, named ``label``), through
    the git edge; the candidate's own rule only when there is no base commit at all (the first
    commit of a repository)."""
    from flightdelay.core import gitops, yamltext

    params_file = Path(params_file)
    try:
        candidate_raw = yamltext.load(params_file.read_text())
    except (OSError, yamltext.Error) as exc:
        raise ParamsError(f"{params_file}: cannot be read: {exc}") from None
    if commit is None:
        return Rule(
            candidate.gate,
            candidate.bootstrap,
            f"this change (no {label} commit to read a rule from)",
        )
    where = params_file.as_posix() if not params_file.is_absolute() else "params.yaml"
    text = gitops.file_at(commit, where)
    if text is None:
        raise ParamsError(
            f"{label} ({commit[:12]}) has no {where}: the rule it protects cannot be read, so "
            "nothing can be promoted"
        )
    try:
        base_raw = yamltext.load(text)
    except yamltext.Error as exc:
        raise ParamsError(f"{where} at {label} ({commit[:12]}) is not valid YAML: {exc}") from None
    return parse_rule(base_raw, candidate_raw, label, candidate)


def base_ref(explicit: str | None) -> str:
    """The base branch: explicit, else the pull request's base in GitHub Actions, else main."""
    import os

    return explicit or os.environ.get("GITHUB_BASE_REF") or "main"


def read_challenger(paths: Any) -> Challenger:
    """The challenger as the pipeline outputs describe it, each read through its type (a bad
    file is a DataFileError naming it and the key); missing outputs become None."""
    return Challenger(
        metrics=EvaluateMetrics.read(paths.evaluation) if paths.evaluation.exists() else None,
        slices=Slices.read(paths.slices) if paths.slices.exists() else None,
        validation=ValidationSummary.read(paths.validation_summary)
        if paths.validation_summary.exists()
        else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    from flightdelay.core.io import DataFileError, write_json
    from flightdelay.core.params import ParamsError, load_params
    from flightdelay.core.revisions import champion_ref, resolve
    from flightdelay.loop.compare import CompareError, compare_with
    from flightdelay.loop.compare import read_challenger as read_scores

    parser = argparse.ArgumentParser(
        prog="flightdelay gate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument(
        "--base",
        help="the protected side whose params.yaml holds the rule "
        "(default: $GITHUB_BASE_REF, else main)",
    )
    parser.add_argument(
        "--champion-ref",
        default="prod",
        metavar="REF",
        help="the champion: 'prod' (default: the version GTO says is in prod), "
        "or any git ref (branch, tag, SHA)",
    )
    args = parser.parse_args(argv)
    params = None
    try:
        params = load_params(args.params)
        base = base_ref(args.base)
        rule = rule_at(resolve(base), base, params, args.params)
        judged = rule.apply(params)
        challenger = read_challenger(params.paths)
        champion = None
        found = champion_ref(args.champion_ref)
        if found is not None and challenger.metrics is not None:
            champion = compare_with(found[0], found[1], judged, read_scores(params))
    except (ParamsError, DataFileError, CompareError) as exc:
        reason = f"cannot decide, so do not promote: {exc}"
        print(f"gate: {reason}", file=sys.stderr)
        if params is not None:
            write_json(params.paths.gate, Verdict(False, [reason], [], None).to_json())
        return 2
    verdict = judged_by(decide(challenger, champion, rule.gate), rule)
    write_json(params.paths.gate, verdict.to_json())
    stream = sys.stdout if verdict.promote else sys.stderr
    print(f"gate: {verdict.headline()}", file=stream)
    for check in verdict.checks:
        print(f"  {'ok  ' if check.passed else 'FAIL'} {check.name}: {check.detail}", file=stream)
    return 0 if verdict.promote else 1
