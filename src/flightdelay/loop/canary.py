"""``flightdelay canary``: release a new prod version to a share of the requests, compare it with
the stable one, then promote it to 100 % or abort and roll back, by itself.

Local topology (``params.yaml`` ``canary:``): nginx on ``canary.port``
(:mod:`flightdelay.loop.nginx`)
splits requests between the stable prod service (``.deploy/local/prod.json``, what ``flightdelay
deploy`` started) and the new version, started beside it on a free loopback port. For
``canary.window_s`` the canary takes ``canary.share`` of the requests; nobody calls a local
service, so a sample of ``canary.requests`` flights (:mod:`flightdelay.loop.traffic`) is sent
through
nginx meanwhile. After each quarter of the window :func:`.canary_rules.decide` compares the two
versions:

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from flightdelay import MODEL_NAME
from flightdelay.core import gitops, signing
from flightdelay.core.io import DataFileError
from flightdelay.core.params import CanaryParams, DeployParams, ParamsError, load_params
from flightdelay.loop import nginx, traffic
from flightdelay.loop.canary_rules import (
    CanaryReport,
    Decision,
    Samples,
    Side,
    decide,
    metric_samples,
    service_metrics,
    side,
    summary,
)
from flightdelay.loop.release import (
    DEFAULT_OUT,
    Release,
    ReleaseError,
    load_release,
    verify_release_dir,
)

if TYPE_CHECKING:
    from flightdelay.loop.deploy import LocalService

STAGE = "prod"
CHECKS = 4  # decisions per window: the first three can only abort, the last one promotes
CANARY_JSON = "canary.json"
CANARY_HOME = "canary"  # <state>/canary/local/prod/<version>: the canary instance's model copy


class CanaryError(RuntimeError):
    """The canary could not run (nothing was changed, or it was put back); says why."""


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
