"""``flightdelay shadow-report``: a candidate model answers a mirror of prod's requests, at no
risk, and is compared with prod on exactly those requests.

nginx (:mod:`flightdelay.loop.nginx`, its own prefix ``<state>/nginx/shadow``) sends every request
to
the prod service (``.deploy/local/prod.json``) and a ``mirror`` of it to the candidate (the
release in ``--release``, typically staging, started on a free loopback port); callers only
ever see prod's answers. A sample of ``canary.requests`` flights over ``canary.window_s``
(:mod:`flightdelay.loop.traffic`) stands in for callers. Then, from both services' Prometheus
metrics over the same mirrored requests:

- score distribution: both ``flightdelay_prediction_score`` histograms, compared with the drift
  stage's Jensen-Shannon distance on the histogram bins (drift when >= its 0.1), and the means;
- latency (p99) and 5xx rates, judged by the canary's rules (``params.yaml`` ``canary:``);

and from a request sample (the same flights sent to the candidate directly, prod's answers as
the callers got them): agreement of the late/not-late label (``canary.min_label_agreement``) and
the mean absolute score difference. The report (``<paths.delivery>/shadow.json`` and
``shadow.md``, also the job summary) says clean or not and why; ``--require-clean`` exits 1
when it is not, so a prod release can require a clean shadow report. Every process it started
is stopped before it returns.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from pydantic import BaseModel, ConfigDict

from flightdelay.core import gitops, signing
from flightdelay.core.io import DataFileError
from flightdelay.core.params import CanaryParams, ParamsError, load_params
from flightdelay.loop import canary, nginx, traffic
from flightdelay.loop.canary import Upstream, scrape
from flightdelay.loop.canary_rules import (
    Samples,
    ServiceMetrics,
    latency_check,
    sample_sum,
    service_metrics,
)
from flightdelay.loop.release import DEFAULT_OUT, Release, ReleaseError, verify_release_dir
from flightdelay.pipeline.feature_drift import column_drift
from flightdelay.pipeline.stattests import STAT_TESTS

if TYPE_CHECKING:
    from flightdelay.loop.deploy import LocalService

FRONT_STAGE = "shadow"
SHADOW_JSON = "shadow.json"
SHADOW_MD = "shadow.md"
SCORE = "flightdelay_prediction_score"
MIRROR_TIMEOUT_S = 15.0
DISTANCE = "jensenshannon"


class ShadowError(RuntimeError):
    """The shadow comparison could not run; the message says why."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScoreHistogram(_Frozen):
    """Scores a service gave during the shadow run: rows per bin (upper bound) and their sum."""

    bins: dict[str, int]  # upper bound ("0.05" .. "+Inf") -> rows in that bin
    total: float

    @property
    def rows(self) -> int:
        return sum(self.bins.values())

    @property
    def mean(self) -> float | None:
        return self.total / self.rows if self.rows else None


class ShadowSide(_Frozen):
    version: str
    metrics: ServiceMetrics
    scores: ScoreHistogram


class Finding(_Frozen):
    rule: str  # score_distribution | label_agreement | 5xx_rate | p99_latency | mirrored
    passed: bool
    detail: str


class ShadowReport(_Frozen):
    """``shadow.json``."""

    prod: ShadowSide
    candidate: ShadowSide
    sample: int  # requests in the paired sample
    label_agreement: float | None
    mean_abs_score_difference: float | None
    findings: tuple[Finding, ...]

    @property
    def clean(self) -> bool:
        return all(f.passed for f in self.findings)


# ---------------------------------------------------------------- pure core


def score_histogram(before: Samples, after: Samples) -> ScoreHistogram:
    """The score histogram's rows per bin between two scrapes (cumulative buckets undone)."""
    bucket = f"{SCORE}_bucket"

    def cumulative(samples: Samples) -> dict[float, float]:
        return {float(dict(ls)["le"]): v for (n, ls), v in samples.items() if n == bucket}

    a, b = cumulative(after), cumulative(before)
    bins, below = {}, 0.0
    for bound in sorted(a):
        moved = a[bound] - b.get(bound, 0.0)
        bins["+Inf" if bound == float("inf") else f"{bound:g}"] = round(moved - below)
        below = moved
    total = sample_sum(after, f"{SCORE}_sum") - sample_sum(before, f"{SCORE}_sum")
    return ScoreHistogram(bins=bins, total=total)


def compare(
    prod: ShadowSide,
    candidate: ShadowSide,
    pairs: Sequence[tuple[traffic.Answer, traffic.Answer]],
    rules: CanaryParams,
) -> ShadowReport:
    """The candidate against prod on the same requests, one finding per rule."""
    findings = [_mirrored(prod, candidate), _distribution(prod, candidate)]
    answered = [
        (p.late, c.late, abs(p.score - c.score))
        for p, c in pairs
        if p.late is not None and c.late is not None and p.score is not None and c.score is not None
    ]
    agreement = sum(p == c for p, c, _ in answered) / len(answered) if answered else None
    difference = sum(d for _, _, d in answered) / len(answered) if answered else None
    findings.append(
        Finding(
            rule="label_agreement",
            passed=agreement is not None and agreement >= rules.min_label_agreement,
            detail="no paired answers"
            if agreement is None
            else f"late/not-late agreement {agreement:.1%} on {len(answered)} requests "
            f"({'>=' if agreement >= rules.min_label_agreement else '<'} "
            f"{rules.min_label_agreement:.0%}), mean |score difference| {difference:.3f}",
        )
    )
    rate = prod.metrics.errors_5xx / prod.metrics.requests if prod.metrics.requests else 0.0
    c_rate = (
        candidate.metrics.errors_5xx / candidate.metrics.requests
        if candidate.metrics.requests
        else 0.0
    )
    findings.append(
        Finding(
            rule="5xx_rate",
            passed=c_rate <= rules.max_5xx_rate,
            detail=f"candidate 5xx rate {c_rate:.1%} vs prod {rate:.1%} (rule <= "
            f"{rules.max_5xx_rate:.1%})",
        )
    )
    latency = latency_check(prod.metrics, candidate.metrics, rules)
    findings.append(Finding(rule=latency.rule, passed=latency.passed, detail=latency.detail))
    return ShadowReport(
        prod=prod,
        candidate=candidate,
        sample=len(pairs),
        label_agreement=agreement,
        mean_abs_score_difference=difference,
        findings=tuple(findings),
    )


def _mirrored(prod: ShadowSide, candidate: ShadowSide) -> Finding:
    ok = candidate.metrics.requests >= prod.metrics.requests > 0
    return Finding(
        rule="mirrored",
        passed=ok,
        detail=f"{candidate.metrics.requests} of prod's {prod.metrics.requests} requests "
        "reached the candidate",
    )


def _distribution(prod: ShadowSide, candidate: ShadowSide) -> Finding:
    if not prod.scores.rows or not candidate.scores.rows:
        return Finding(rule="score_distribution", passed=False, detail="no scores observed")
    series = [
        pd.Series([label for label, n in side.scores.bins.items() for _ in range(n)], dtype=object)
        for side in (prod, candidate)
    ]
    found = column_drift(series[0], series[1], "score", "categorical", method=DISTANCE)
    threshold = STAT_TESTS[DISTANCE].default_threshold
    return Finding(
        rule="score_distribution",
        passed=not found.drifted,
        detail=f"score distribution {'shifted' if found.drifted else 'unchanged'}: "
        f"{DISTANCE} {found.score:.3f} on the score histograms (drift when >= {threshold:g}), "
        f"mean {candidate.scores.mean:.3f} vs prod {prod.scores.mean:.3f}",
    )


def markdown(report: ShadowReport) -> str:
    verdict = "clean" if report.clean else "**not clean**"
    lines = [
        f"### Shadow report: candidate {report.candidate.version} vs prod "
        f"{report.prod.version}: {verdict}",
        "",
        f"{report.prod.metrics.requests} prod requests mirrored to the candidate; "
        f"{report.sample} also sent to it directly for paired answers.",
        "",
        "| rule | result | detail |",
        "|---|---|---|",
        *[
            f"| {f.rule} | {'pass' if f.passed else '**fail**'} | {f.detail} |"
            for f in report.findings
        ],
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- I/O edge


def _wait_mirrored(prod: Upstream, candidate: Upstream, first: dict[str, Samples]) -> None:
    """Until the candidate has answered as many mirrored requests as prod (mirrors lag)."""
    deadline = time.monotonic() + MIRROR_TIMEOUT_S
    while time.monotonic() < deadline:
        now = {u.url: scrape(u.url)[0] for u in (prod, candidate)}
        if all(now.values()):
            moved = {
                u: service_metrics(first[u], s).requests for u, s in now.items() if s is not None
            }
            if moved[candidate.url] >= moved[prod.url]:
                return
        time.sleep(0.2)


def observe(
    prod: Upstream,
    candidate: Upstream,
    front: nginx.Front,
    flights: Sequence[dict],
    rules: CanaryParams,
) -> ShadowReport:
    """Drive ``flights`` through ``front`` (mirrored), scrape both, pair a direct sample."""
    first: dict[str, Samples] = {}
    for upstream in (prod, candidate):
        samples, problem = scrape(upstream.url)
        if samples is None:
            raise ShadowError(f"{upstream.version} /metrics did not answer: {problem}")
        first[upstream.url] = samples
    answers = traffic.drive(front.url, flights, rules.window_s, rules.concurrency, "shadow-")
    _wait_mirrored(prod, candidate, first)
    sides = []
    for upstream in (prod, candidate):
        samples, problem = scrape(upstream.url)
        if samples is None:
            raise ShadowError(f"{upstream.version} /metrics did not answer: {problem}")
        sides.append(
            ShadowSide(
                version=upstream.version,
                metrics=service_metrics(first[upstream.url], samples),
                scores=score_histogram(first[upstream.url], samples),
            )
        )
    direct = traffic.drive(candidate.url, flights, rules.window_s / 4, rules.concurrency, "pair-")
    return compare(sides[0], sides[1], list(zip(answers, direct, strict=True)), rules)


def running_prod(state_dir: Path) -> LocalService:
    from flightdelay.loop import deploy

    prod = deploy.read_state(state_dir, "prod")
    if prod is None or not deploy.is_our_service(prod.pid, prod.port):
        raise ShadowError(
            f"no prod service runs here ({deploy.state_file(state_dir, 'prod')}): there are no "
            "prod requests to mirror; `flightdelay deploy` starts it"
        )
    return prod


def run(
    release: Release,
    model_dir: Path,
    rules: CanaryParams,
    host: str,
    timeout_s: float,
    state_dir: Path,
    port: int,
) -> ShadowReport:
    """Start the candidate and nginx, observe, stop both; prod is never touched."""
    from flightdelay.loop import deploy

    prod_service = running_prod(state_dir)
    flights = traffic.sample_flights(Path(prod_service.model_dir), rules.requests)
    try:  # its own state: a staging service of the same version keeps running untouched
        candidate_service = deploy.start(
            release, model_dir, host, canary.free_port(host), state_dir / FRONT_STAGE, timeout_s
        )
    except deploy.DeployError as exc:
        raise ShadowError(f"the candidate {release.version} did not start: {exc}") from None
    prod = Upstream(prod_service.version, prod_service.url)
    candidate = Upstream(release.version, candidate_service.url)
    try:
        front = nginx.apply(
            nginx.Front(
                stage=FRONT_STAGE,
                host=host,
                port=port,
                stable=prod.address,
                shadow=candidate.address,
            ),
            state_dir,
        )
        return observe(prod, candidate, front, flights, rules)
    finally:
        with contextlib.suppress(nginx.NginxError):
            nginx.stop(state_dir, FRONT_STAGE)
        deploy.stop(candidate_service)


def write_report(report: ShadowReport, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SHADOW_JSON).write_text(report.model_dump_json(indent=2) + "\n", "utf-8")
    (directory / SHADOW_MD).write_text(markdown(report), "utf-8")


def read_report(directory: Path) -> ShadowReport:
    path = directory / SHADOW_JSON
    try:
        return ShadowReport.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFileError(f"{path}: shadow report not found") from None


# ---------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    from flightdelay.loop.deploy import STATE_DIR

    parser = argparse.ArgumentParser(
        prog="flightdelay shadow-report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--release", type=Path, default=DEFAULT_OUT, help="the candidate")
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR)
    parser.add_argument("--port", type=int, help="nginx's port (default: a free one)")
    parser.add_argument("--allow-unsigned", metavar="REASON")
    parser.add_argument("--require-clean", action="store_true", help="exit 1 unless clean")
    args = parser.parse_args(argv)
    try:
        params = load_params()
        running_prod(args.state_dir)  # before the signature check: say the first problem
        release = verify_release_dir(args.release, signing.expected_from_env(), args.allow_unsigned)
        report = run(
            release,
            args.release / "model",
            params.canary,
            params.deploy.host,
            params.deploy.ready_timeout_s,
            args.state_dir,
            args.port or canary.free_port(params.deploy.host),
        )
    except (ShadowError, ReleaseError, DataFileError, ParamsError, nginx.NginxError) as exc:
        print(f"error: shadow-report: {exc}", file=sys.stderr)
        return 1
    write_report(report, params.paths.delivery)
    text = markdown(report)
    gitops.step_summary(text)
    print(text)
    if args.require_clean and not report.clean:
        failed = "; ".join(f.detail for f in report.findings if not f.passed)
        print(
            f"error: shadow-report: {report.candidate.version} is not clean: {failed}",
            file=sys.stderr,
        )
        return 1
    return 0
