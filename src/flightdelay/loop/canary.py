"""``flightdelay canary``: release a new prod version to a share of the requests, compare it with
the stable one, then promote it to 100 % or abort and roll back, by itself.

Local topology (``params.yaml`` ``canary:``): nginx on ``canary.port``
(:mod:`flightdelay.loop.nginx`)
splits requests between the stable prod service (``.deploy/local/prod.json``, what ``flightdelay
deploy`` started) and the new version, started beside it on a free loopback port. For
``canary.window_s`` the canary takes ``canary.share`` of the requests; nobody calls a local
service, so a sample of ``canary.requests`` flights (:mod:`flightdelay.loop.traffic`) is sent
through
nginx meanwhile. After each quarter of the window :func:`decide` compares the two versions:

- 5xx rate: the canary's answers (as callers saw them through nginx) above ``max_5xx_rate``;
- p99 latency: from both services' Prometheus histograms, canary above ``max_p99_latency_ratio``
  times stable's (ignored below ``min_p99_latency_s``);
- warnings rate: rows answered with input warnings, canary minus stable above
  ``max_warnings_rate_increase`` and beyond chance (z-test p below ``warnings_p_value``);
- score distribution: the drift stage's test (:func:`flightdelay.pipeline.drift.column_drift`,
  ``score_method``/``score_threshold``) on the scores each version answered.

Any failed rule aborts at once: nginx is reloaded with all traffic on stable, the canary is
stopped, and prod is re-assigned to the stable version in GTO (an ordinary ``flight-delay#prod#N``
tag, as ``flightdelay rollback`` makes); exit 1. A canary that passes every check of the window is
promoted: nginx sends it every request, the old service is stopped, the new version is started
on the stage's own port (``deploy.ports``) and nginx moved to it, each step a reload. Either way
the decision and its reasons go to ``<paths.delivery>/canary.json``, the job summary and stdout.

Nothing to do (exit 0, says why): a release of another stage, no prod service running here to
compare with (the first deployment: ``flightdelay deploy`` starts it), or the version prod runs.
``--stop`` stops the stage's nginx.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict

from flightdelay import MODEL_NAME
from flightdelay.core import gitops, signing
from flightdelay.core.io import DataFileError
from flightdelay.core.params import CanaryParams, DeployParams, ParamsError, load_params
from flightdelay.loop import nginx, traffic
from flightdelay.loop.release import (
    DEFAULT_OUT,
    Release,
    ReleaseError,
    load_release,
    verify_release_dir,
)
from flightdelay.pipeline.drift import DriftError, column_drift

if TYPE_CHECKING:
    from flightdelay.loop.deploy import LocalService

STAGE = "prod"
CHECKS = 4  # decisions per window: the first three can only abort, the last one promotes
CANARY_JSON = "canary.json"
CANARY_HOME = "canary"  # <state>/canary/local/prod/<version>: the canary instance's model copy
PREDICT = "/predict"

Action = Literal["promote", "abort", "continue"]


class CanaryError(RuntimeError):
    """The canary could not run (nothing was changed, or it was put back); says why."""


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


# ---------------------------------------------------------------- I/O edge


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def scrape(url: str) -> tuple[Samples | None, str | None]:
    """The service's /metrics as samples, or (None, why)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/metrics", timeout=5) as answer:
            return metric_samples(answer.read().decode()), None
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError) as exc:
        return None, str(getattr(exc, "reason", exc))


@dataclass(frozen=True)
class Upstream:
    """A running service the canary compares: its version and base URL."""

    version: str
    url: str

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://").removeprefix("https://")


def observe(
    stable: Upstream,
    canary: Upstream,
    front: nginx.Front,
    flights: Sequence[dict],
    rules: CanaryParams,
    on_check: Callable[[Decision], None] | None = None,
) -> tuple[Decision, Side, Side, list[traffic.Answer]]:
    """Send the sample through ``front`` in CHECKS rounds over the window and decide after each
    round (stopping at the first abort); returns the last decision, both sides, every answer."""
    before = {u.url: scrape(u.url)[0] for u in (stable, canary)}
    answers: list[traffic.Answer] = []
    rounds = [list(flights[i::CHECKS]) for i in range(CHECKS)]
    sent = 0
    decision = Decision(action="continue", checks=())
    s_side = c_side = side(stable.version, [], None)
    for i, batch in enumerate(rounds):
        answers += traffic.drive(
            front.url, batch, rules.window_s / CHECKS, rules.concurrency, "canary-", sent
        )
        sent += len(batch)
        sides = []
        for upstream, route in ((stable, "stable"), (canary, "canary")):
            after, problem = scrape(upstream.url)
            first = before[upstream.url]
            metrics = None if after is None or first is None else service_metrics(first, after)
            if after is not None and first is None:
                problem = "it did not answer before the canary started"
            routed = [a for a in answers if a.route == route]
            sides.append(side(upstream.version, routed, metrics, problem))
        s_side, c_side = sides
        decision = decide(s_side, c_side, rules, final=i == CHECKS - 1)
        if on_check is not None:
            on_check(decision)
        if decision.action == "abort":
            break
    return decision, s_side, c_side, answers


def nothing_to_do(release: Release, state_dir: Path) -> str | None:
    """Why ``release`` gets no canary here (None: it does)."""
    from flightdelay.loop import deploy

    if release.stage != STAGE:
        return f"{release.stage} release: the canary is for {STAGE} only"
    stable = deploy.read_state(state_dir, STAGE)
    if stable is None or not deploy.is_our_service(stable.pid, stable.port):
        return (
            f"no {STAGE} service runs here ({deploy.state_file(state_dir, STAGE)}): nothing to "
            "compare with; `flightdelay deploy` starts it"
        )
    if stable.version == release.version:
        return f"{STAGE} already runs {release.version}: no canary"
    return None


def run(
    release: Release,
    model_dir: Path,
    rules: CanaryParams,
    deploy_params: DeployParams,
    state_dir: Path,
    port: int,
) -> CanaryReport | str:
    """The whole canary of ``release`` against the stage's running service.

    Returns the report, or a sentence saying why there is nothing to do. Raises CanaryError
    when it cannot run; the stable service keeps all the traffic then.
    """
    from flightdelay.loop import deploy

    why = nothing_to_do(release, state_dir)
    if why is not None:
        return why
    stable_service = deploy.read_state(state_dir, STAGE)
    assert stable_service is not None  # nothing_to_do checked it runs
    flights = traffic.sample_flights(Path(stable_service.model_dir), rules.requests)
    stable = Upstream(stable_service.version, stable_service.url)
    host = deploy_params.host
    try:
        candidate = deploy.start(
            release,
            model_dir,
            host,
            free_port(host),
            state_dir / CANARY_HOME,  # its own copy: the promoted service gets the usual one
            deploy_params.ready_timeout_s,
        )
    except deploy.DeployError as exc:
        raise CanaryError(f"the canary {release.version} did not start: {exc}") from None
    canary = Upstream(candidate.version, candidate.url)
    front = nginx.Front(
        stage=STAGE,
        host=host,
        port=port,
        stable=stable.address,
        canary=canary.address,
        canary_share=rules.share,
    )
    try:
        front = nginx.apply(front, state_dir)
        decision, s_side, c_side, _ = observe(stable, canary, front, flights, rules, _progress)
    except BaseException as exc:  # put stable back in charge of every request, whatever broke
        with contextlib.suppress(nginx.NginxError):
            nginx.apply(replace(front, canary=None, canary_share=0.0), state_dir)
        deploy.stop(candidate)
        if isinstance(exc, nginx.NginxError):
            raise CanaryError(f"nginx: {exc}") from None
        raise
    report = CanaryReport(
        artifact=release.artifact,
        candidate=release.version,
        stable=stable.version,
        share=rules.share,
        window_s=rules.window_s,
        decision=decision,
        stable_side=s_side,
        canary_side=c_side,
        front=front.url,
    )
    if decision.action == "promote":
        _promote(release, model_dir, front, candidate, stable_service, deploy_params, state_dir)
        return report
    nginx.apply(replace(front, canary=None, canary_share=0.0), state_dir)
    deploy.stop(candidate)
    return report.model_copy(update=_rollback(release, stable.version))


def _promote(
    release: Release,
    model_dir: Path,
    front: nginx.Front,
    candidate: LocalService,
    stable: LocalService,
    deploy_params: DeployParams,
    state_dir: Path,
) -> None:
    """Every request to the canary, then the new version takes over the stage's own port (the
    one `flightdelay deploy` and its callers use) and nginx moves to it; nothing is refused on
    the way, since each move is a reload and each service is ready before it gets traffic."""
    from flightdelay.loop import deploy

    to_canary = Upstream(candidate.version, candidate.url).address
    front = nginx.apply(replace(front, stable=to_canary, canary=None, canary_share=0.0), state_dir)
    deploy.stop(stable)
    try:
        final = deploy.start(
            release,
            model_dir,
            deploy_params.host,
            stable.port,
            state_dir,
            deploy_params.ready_timeout_s,
        )
        deploy.smoke(final.url, release.version)
    except deploy.DeployError as exc:  # keep the canary instance: it serves and is recorded
        print(
            f"warning: canary: {release.version} stays on port {candidate.port}: {exc}",
            file=sys.stderr,
        )
        deploy.write_state(state_dir, candidate)
        return
    nginx.apply(replace(front, stable=Upstream(final.version, final.url).address), state_dir)
    deploy.stop(candidate)
    deploy.write_state(state_dir, final)


def _progress(decision: Decision) -> None:
    failed = [c.rule for c in decision.checks if not c.passed]
    print(f"canary: check: {decision.action}" + (f" ({', '.join(failed)})" if failed else ""))


def _rollback(release: Release, stable_version: str) -> dict[str, str]:
    """Re-assign prod to the stable version in GTO, when prod is (still) the canary's."""
    try:
        current = gitops.stages(MODEL_NAME).get(STAGE)
        if current != release.version:
            return {
                "rollback_problem": f"{STAGE} is {current or 'unassigned'} in GTO, not the "
                f"canary's {release.version}: left as it is"
            }
        return {"rollback_tag": gitops.assign(MODEL_NAME, stable_version, STAGE, force=True)}
    except gitops.GitOpsError as exc:
        return {"rollback_problem": str(exc)}


def write_report(report: CanaryReport, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CANARY_JSON
    path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def read_report(directory: Path) -> CanaryReport:
    path = directory / CANARY_JSON
    try:
        return CanaryReport.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFileError(f"{path}: canary report not found") from None


# ---------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    from flightdelay.loop.deploy import STATE_DIR

    parser = argparse.ArgumentParser(
        prog="flightdelay canary",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--release", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR)
    parser.add_argument("--port", type=int, help="nginx's port (default: params canary.port)")
    parser.add_argument("--allow-unsigned", metavar="REASON")
    parser.add_argument("--stop", action="store_true", help=f"stop the {STAGE} nginx and exit")
    args = parser.parse_args(argv)
    try:
        params = load_params()
        if args.stop:
            stopped = nginx.stop(args.state_dir, STAGE)
            print(f"canary: {STAGE} nginx " + ("stopped" if stopped else "was not running"))
            return 0
        why = nothing_to_do(load_release(args.release), args.state_dir)
        if why is not None:  # before the signature check: nothing will be started
            print(f"canary: {why}")
            return 0
        release = verify_release_dir(args.release, signing.expected_from_env(), args.allow_unsigned)
        outcome = run(
            release,
            args.release / "model",
            params.canary,
            params.deploy,
            args.state_dir,
            args.port or params.canary.port,
        )
    except (CanaryError, ReleaseError, DataFileError, ParamsError, nginx.NginxError) as exc:
        print(f"error: canary: {exc}", file=sys.stderr)
        gitops.step_summary(f"### Canary refused\n\n{exc}\n")
        return 1
    if isinstance(outcome, str):
        print(f"canary: {outcome}")
        return 0
    write_report(outcome, params.paths.delivery)
    text = summary(outcome)
    gitops.step_summary(text)
    print(text)
    if outcome.decision.action != "promote":
        print(
            f"error: canary: {outcome.candidate} aborted: " + "; ".join(outcome.decision.reasons),
            file=sys.stderr,
        )
        return 1
    return 0
