"""The canary's decision: from two versions' evidence (Prometheus counters and the answers to
the request sample), promote, abort or continue, with one check per rule and its reason in words.

Pure: it parses metrics text it is given and decides; no I/O, HTTP or processes (those are
:mod:`flightdelay.loop.canary`'s). The shadow report reuses its metrics and its latency rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import pandas as pd
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict

from flightdelay.core.params import CanaryParams
from flightdelay.pipeline.drift import DriftError, column_drift

if TYPE_CHECKING:
    from flightdelay.loop import traffic

PREDICT = "/predict"

Action = Literal["promote", "abort", "continue"]

# ---------------------------------------------------------------- typed evidence and decision


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServiceMetrics(_Frozen):
    """What one service's Prometheus counters moved by during the canary (POST /predict)."""

    requests: int
    errors_5xx: int
    p99_latency_s: float | None  # None: no request observed
    rows: int
    warned_rows: int


class Side(_Frozen):
    """The evidence about one version."""

    version: str
    requests: int  # answered through nginx (the request sample)
    failed: int  # of those: 5xx or no answer at all
    scores: tuple[float, ...]  # of the rows it answered
    warned: int  # of those rows: answered with input warnings
    metrics: ServiceMetrics | None  # None: its /metrics did not answer
    metrics_error: str | None = None


class Check(_Frozen):
    rule: str  # 5xx_rate | p99_latency | warnings_rate | score_distribution | evidence
    passed: bool
    detail: str


class Decision(_Frozen):
    action: Action
    checks: tuple[Check, ...]

    @property
    def reasons(self) -> list[str]:
        return [c.detail for c in self.checks if not c.passed]


class CanaryReport(_Frozen):
    """``canary.json``: what was compared, what was decided, what was done."""

    artifact: str
    candidate: str
    stable: str
    share: float
    window_s: float
    decision: Decision
    stable_side: Side
    canary_side: Side
    rollback_tag: str | None = None
    rollback_problem: str | None = None
    front: str


# ---------------------------------------------------------------- pure core


def metric_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text exposition -> {(sample name, labels): value}."""
    return {
        (s.name, frozenset(s.labels.items())): float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


Samples = Mapping[tuple[str, frozenset[tuple[str, str]]], float]


def sample_sum(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus ``histogram_quantile``: ``buckets`` are (upper bound, cumulative count)."""
    ordered = sorted(buckets)
    total = ordered[-1][1] if ordered else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if bound == float("inf"):
                return lower  # above the highest finite bucket: its bound, as Prometheus does
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def service_metrics(before: Samples, after: Samples) -> ServiceMetrics:
    """The /predict counters of one service between two scrapes."""

    def moved(name: str, **labels: str) -> float:
        return sample_sum(after, name, **labels) - sample_sum(before, name, **labels)

    requests = moved("flightdelay_http_requests_total", handler=PREDICT)
    errors = sum(
        v - before.get((n, ls), 0.0)
        for (n, ls), v in after.items()
        if n == "flightdelay_http_requests_total"
        and ("handler", PREDICT) in ls
        and dict(ls).get("status", "").startswith("5")
    )
    bucket = "flightdelay_http_request_duration_seconds_bucket"
    bounds = {
        dict(ls)["le"] for (n, ls) in after if n == bucket and dict(ls).get("handler") == PREDICT
    }
    buckets = [(float(le), moved(bucket, handler=PREDICT, le=le)) for le in bounds]
    return ServiceMetrics(
        requests=int(requests),
        errors_5xx=int(errors),
        p99_latency_s=quantile(0.99, buckets),
        rows=int(moved("flightdelay_predicted_rows_total")),
        warned_rows=int(moved("flightdelay_input_warnings_total")),
    )


def side(
    version: str,
    answers: Sequence[traffic.Answer],
    metrics: ServiceMetrics | None,
    metrics_error: str | None = None,
) -> Side:
    return Side(
        version=version,
        requests=len(answers),
        failed=sum(a.failed for a in answers),
        scores=tuple(a.score for a in answers if a.score is not None),
        warned=sum(bool(a.warned) for a in answers if a.score is not None),
        metrics=metrics,
        metrics_error=metrics_error,
    )


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def decide(stable: Side, canary: Side, rules: CanaryParams, final: bool) -> Decision:
    """Promote, abort or continue the canary, with one check per rule (its reason in words).

    Before the end of the window (``final`` False) the canary can only be aborted; a rule that
    lacks evidence yet (too few canary requests) waits. At the end, too little evidence aborts.
    """
    checks: list[Check] = []
    enough = canary.requests >= rules.min_canary_requests
    if canary.requests:
        rate = _rate(canary.failed, canary.requests)
        checks.append(
            Check(
                rule="5xx_rate",
                passed=rate <= rules.max_5xx_rate,
                detail=f"canary 5xx rate {rate:.1%} ({canary.failed}/{canary.requests}) "
                f"{'<=' if rate <= rules.max_5xx_rate else '>'} {rules.max_5xx_rate:.1%} "
                f"(stable {_rate(stable.failed, stable.requests):.1%})",
            )
        )
    if final and not enough:
        checks.append(
            Check(
                rule="evidence",
                passed=False,
                detail=f"only {canary.requests} requests reached the canary "
                f"(canary.min_canary_requests {rules.min_canary_requests}): no decision",
            )
        )
    if not enough:
        return Decision(action=_action(checks, final=False), checks=tuple(checks))
    for who, s in (("canary", canary), ("stable", stable)):
        if s.metrics is None:
            checks.append(
                Check(
                    rule="metrics",
                    passed=False,
                    detail=f"{who} {s.version} /metrics did not answer ({s.metrics_error}): "
                    "latency and warnings cannot be compared",
                )
            )
    if canary.metrics is not None and stable.metrics is not None:
        checks.append(latency_check(stable.metrics, canary.metrics, rules))
    checks.append(_warnings(stable, canary, rules))
    checks.append(_scores(stable, canary, rules))
    return Decision(action=_action(checks, final), checks=tuple(checks))


def _action(checks: Sequence[Check], final: bool) -> Action:
    if any(not c.passed for c in checks):
        return "abort"
    return "promote" if final else "continue"


def latency_check(stable: ServiceMetrics, canary: ServiceMetrics, rules: CanaryParams) -> Check:
    if canary.p99_latency_s is None or stable.p99_latency_s is None:
        return Check(rule="p99_latency", passed=False, detail="no /predict latency observed")
    limit = max(rules.max_p99_latency_ratio * stable.p99_latency_s, rules.min_p99_latency_s)
    ok = canary.p99_latency_s <= limit
    return Check(
        rule="p99_latency",
        passed=ok,
        detail=f"canary p99 latency {canary.p99_latency_s * 1000:.1f} ms "
        f"{'<=' if ok else '>'} {limit * 1000:.1f} ms (stable {stable.p99_latency_s * 1000:.1f} "
        f"ms x {rules.max_p99_latency_ratio:g}, floor {rules.min_p99_latency_s * 1000:.0f} ms)",
    )


def _warnings(stable: Side, canary: Side, rules: CanaryParams) -> Check:
    """More rows with input warnings on the canary (a context that lost airports, tails, dates):
    material (beyond the margin) and not chance (two-proportion z-test, drift's ``z``)."""
    s, c = _rate(stable.warned, len(stable.scores)), _rate(canary.warned, len(canary.scores))
    if not stable.scores or not canary.scores:
        return Check(rule="warnings_rate", passed=False, detail="no answered rows to compare")
    flags = [
        pd.Series([True] * side.warned + [False] * (len(side.scores) - side.warned), dtype=object)
        for side in (stable, canary)
    ]
    p_value = column_drift(flags[0], flags[1], "warned", "categorical", method="z").score
    p_value = 1.0 if p_value is None else p_value
    ok = c - s <= rules.max_warnings_rate_increase or p_value >= rules.warnings_p_value
    return Check(
        rule="warnings_rate",
        passed=ok,
        detail=f"canary rows with warnings {c:.1%} vs stable {s:.1%} (z-test p {p_value:.2g}): "
        + (
            "within the rule"
            if ok
            else f"more than +{rules.max_warnings_rate_increase:.1%} and p < "
            f"{rules.warnings_p_value:g}"
        ),
    )


def _scores(stable: Side, canary: Side, rules: CanaryParams) -> Check:
    if not stable.scores or not canary.scores:
        return Check(rule="score_distribution", passed=False, detail="no scores to compare")
    try:
        found = column_drift(
            pd.Series(stable.scores, dtype="float64"),
            pd.Series(canary.scores, dtype="float64"),
            "score",
            "numeric",
            method=rules.score_method,
            threshold=rules.score_threshold,
        )
    except DriftError as exc:
        return Check(rule="score_distribution", passed=False, detail=str(exc))
    mean_s = sum(stable.scores) / len(stable.scores)
    mean_c = sum(canary.scores) / len(canary.scores)
    return Check(
        rule="score_distribution",
        passed=not found.drifted,
        detail=f"score distribution {'shifted' if found.drifted else 'unchanged'}: "
        f"{found.method} {found.score:.3g} (drift when {found.rule()}), mean "
        f"{mean_c:.3f} vs stable {mean_s:.3f}",
    )


def summary(report: CanaryReport) -> str:
    """The job summary's markdown: what happened and why, one line per rule."""
    title = {
        "promote": f"promoted {report.candidate} to 100 %",
        "abort": f"aborted {report.candidate}, back to {report.stable}",
        "continue": "did not finish",
    }[report.decision.action]
    lines = [
        f"### Canary of {report.artifact} {report.candidate}: {title}",
        "",
        f"{report.share:.0%} of the requests for up to {report.window_s:g} s through nginx "
        f"({report.front}); {report.canary_side.requests} answered by the canary, "
        f"{report.stable_side.requests} by {report.stable}.",
        "",
        "| rule | result | detail |",
        "|---|---|---|",
        *[
            f"| {c.rule} | {'pass' if c.passed else '**fail**'} | {c.detail} |"
            for c in report.decision.checks
        ],
        "",
    ]
    if report.rollback_tag:
        lines.append(
            f"GTO: prod re-assigned to {report.stable} (`{report.rollback_tag}`): push the tag."
        )
    if report.rollback_problem:
        lines.append(f"GTO rollback tag not written: {report.rollback_problem}")
    return "\n".join(lines) + "\n"
