"""canary: the decision rules, nginx's rendering, and real canaries on loopback (real nginx, real
`flightdelay serve` processes) that are promoted or aborted and rolled back."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from delivery import (
    answering_upstream,
    deploy_params,
    failing_upstream,
    free_port,
    good_and_shifted,
    release_of,
    services_under,
    stop_everything,
)
from flightdelay.core import signing
from flightdelay.core.params import CanaryParams, load_params
from flightdelay.loop import canary, canary_rules, deploy, nginx, traffic
from flightdelay.loop.canary_rules import Check, Side, decide, quantile, service_metrics
from registry_repo import RegistryRepo
from signing_keys import KeyPair

NO_NGINX = shutil.which("nginx") is None and not Path("/usr/sbin/nginx").is_file()
needs_nginx = pytest.mark.skipif(
    NO_NGINX, reason="nginx not installed: apt-get install nginx (make system-deps)"
)


@pytest.fixture(scope="module")
def rules(repo_root: Path) -> CanaryParams:
    return load_params(repo_root / "params.yaml").canary


def fast(rules: CanaryParams, **changes: object) -> CanaryParams:
    """The repository's rules on a short window: a bounded load for the tests."""
    return rules.model_copy(update={"window_s": 6.0, "requests": 400, **changes})


def a_side(
    version: str = "v1",
    n: int = 100,
    failed: int = 0,
    scores: tuple[float, ...] | None = None,
    warned: int = 0,
    p99: float | None = 0.02,
    metrics: bool = True,
) -> Side:
    answered = n - failed
    return Side(
        version=version,
        requests=n,
        failed=failed,
        scores=scores if scores is not None else tuple((i % 50) / 50 for i in range(answered)),
        warned=warned,
        metrics=canary_rules.ServiceMetrics(
            requests=n, errors_5xx=failed, p99_latency_s=p99, rows=answered, warned_rows=warned
        )
        if metrics
        else None,
        metrics_error=None if metrics else "connection refused",
    )


def failed(decision: canary_rules.Decision) -> list[Check]:
    return [c for c in decision.checks if not c.passed]


# ---------------------------------------------------------------- pure core


def test_quantile_interpolates_within_the_bucket_like_prometheus() -> None:
    buckets = [(0.01, 50.0), (0.1, 90.0), (1.0, 100.0), (float("inf"), 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.99, buckets) == pytest.approx(0.1 + 0.9 * 9 / 10)
    assert quantile(0.99, [(0.1, 0.0), (float("inf"), 0.0)]) is None


def test_service_metrics_count_predict_between_two_scrapes() -> None:
    registry = CollectorRegistry()
    requests = Counter(
        "flightdelay_http_requests", "", ["handler", "method", "status"], registry=registry
    )
    latency = Histogram(
        "flightdelay_http_request_duration_seconds",
        "",
        ["handler"],
        buckets=(0.01, 0.1, 1.0),
        registry=registry,
    )
    requests.labels("/predict", "POST", "200").inc(5)
    before = canary_rules.metric_samples(generate_latest(registry).decode())
    requests.labels("/predict", "POST", "200").inc(8)
    requests.labels("/predict", "POST", "500").inc(2)
    requests.labels("/metrics", "GET", "500").inc(7)  # not a prediction
    for _ in range(10):
        latency.labels("/predict").observe(0.005)
    latency.labels("/metrics").observe(5.0)
    after = canary_rules.metric_samples(generate_latest(registry).decode())
    moved = service_metrics(before, after)
    assert (moved.requests, moved.errors_5xx) == (10, 2)
    assert moved.p99_latency_s is not None
    assert moved.p99_latency_s <= 0.01


def test_decide_promotes_a_like_for_like_canary_at_the_end_only(rules: CanaryParams) -> None:
    stable, new = a_side("v1", 300), a_side("v2", 40)
    assert decide(stable, new, rules, final=False).action == "continue"
    decision = decide(stable, new, rules, final=True)
    assert decision.action == "promote"
    assert {c.rule for c in decision.checks} == {
        "5xx_rate",
        "p99_latency",
        "warnings_rate",
        "score_distribution",
    }


def test_decide_aborts_on_the_canary_5xx_rate_and_says_it(rules: CanaryParams) -> None:
    decision = decide(a_side("v1", 300), a_side("v2", 40, failed=3), rules, final=False)
    assert decision.action == "abort"
    (check,) = failed(decision)
    assert check.rule == "5xx_rate"
    assert "canary 5xx rate 7.5% (3/40) > 1.0%" in check.detail


def test_decide_aborts_on_5xx_before_there_is_evidence_for_the_rest(rules: CanaryParams) -> None:
    decision = decide(a_side("v1", 50), a_side("v2", 5, failed=5), rules, final=False)
    assert decision.action == "abort"
    assert [c.rule for c in decision.checks] == ["5xx_rate"]


def test_decide_aborts_on_shifted_scores(rules: CanaryParams) -> None:
    shifted = tuple(0.5 + (i % 50) / 100 for i in range(40))
    (check,) = failed(decide(a_side("v1", 300), a_side("v2", 40, scores=shifted), rules, True))
    assert check.rule == "score_distribution"
    assert check.detail.startswith("score distribution shifted: ks ")
    assert "(drift when ks <= 0.001)" in check.detail


def test_decide_aborts_on_p99_latency(rules: CanaryParams) -> None:
    (check,) = failed(decide(a_side("v1", 300, p99=0.2), a_side("v2", 40, p99=0.9), rules, True))
    assert check.rule == "p99_latency"
    assert "canary p99 latency 900.0 ms > 400.0 ms" in check.detail


def test_decide_ignores_p99_differences_below_the_floor(rules: CanaryParams) -> None:
    decision = decide(a_side("v1", 300, p99=0.01), a_side("v2", 40, p99=0.1), rules, True)
    assert decision.action == "promote"


def test_decide_aborts_on_more_warnings_beyond_chance(rules: CanaryParams) -> None:
    (check,) = failed(
        decide(a_side("v1", 300, warned=30), a_side("v2", 40, warned=20), rules, True)
    )
    assert check.rule == "warnings_rate"
    assert "canary rows with warnings 50.0% vs stable 10.0%" in check.detail


def test_decide_lets_a_small_chance_difference_in_warnings_pass(rules: CanaryParams) -> None:
    decision = decide(a_side("v1", 300, warned=30), a_side("v2", 40, warned=7), rules, True)
    assert decision.action == "promote"  # 17.5 % vs 10 %: beyond the margin, not beyond chance


def test_decide_without_enough_canary_requests_aborts_at_the_end(rules: CanaryParams) -> None:
    assert decide(a_side("v1", 300), a_side("v2", 5), rules, final=False).action == "continue"
    decision = decide(a_side("v1", 300), a_side("v2", 5), rules, final=True)
    assert decision.action == "abort"
    assert (
        "only 5 requests reached the canary (canary.min_canary_requests 20)"
        in (decision.reasons[0])
    )


def test_decide_aborts_when_the_canary_metrics_do_not_answer(rules: CanaryParams) -> None:
    decision = decide(a_side("v1", 300), a_side("v2", 40, metrics=False), rules, True)
    assert decision.action == "abort"
    assert "canary v2 /metrics did not answer (connection refused)" in decision.reasons[0]


def test_summary_lists_every_rule_and_the_rollback_tag(rules: CanaryParams) -> None:
    decision = decide(a_side("v1", 300), a_side("v2", 40, failed=4), rules, final=False)
    report = canary_rules.CanaryReport(
        artifact="flight-delay",
        candidate="v2",
        stable="v1",
        share=0.1,
        window_s=20,
        decision=decision,
        stable_side=a_side("v1", 300),
        canary_side=a_side("v2", 40, failed=4),
        rollback_tag="flight-delay#prod#3",
        front="http://127.0.0.1:1",
    )
    text = canary_rules.summary(report)
    assert text.startswith("### Canary of flight-delay v2: aborted v2, back to v1")
    assert "| 5xx_rate | **fail** | canary 5xx rate 10.0% (4/40)" in text
    assert "prod re-assigned to v1 (`flight-delay#prod#3`)" in text


# ---------------------------------------------------------------- nginx configuration


def front(**changes: object) -> nginx.Front:
    base = {"stage": "prod", "host": "127.0.0.1", "port": 8090, "stable": "127.0.0.1:1"}
    return nginx.Front(**{**base, **changes})  # type: ignore[arg-type]


def test_render_splits_the_canary_share_by_request_id(tmp_path: Path) -> None:
    conf = nginx.render(front(canary="127.0.0.1:2", canary_share=0.1), tmp_path)
    assert 'split_clients "${route_key}" $route' in conf
    assert "10.00% canary;" in conf
    assert "server 127.0.0.1:2;" in conf
    assert "mirror /_shadow" not in conf
    assert f"pid {tmp_path.resolve()}/nginx.pid;" in conf


def test_render_of_all_or_nothing_routes_without_a_split(tmp_path: Path) -> None:
    assert "default stable;" in nginx.render(front(), tmp_path)
    everything = nginx.render(front(canary="127.0.0.1:2", canary_share=1.0), tmp_path)
    assert "default canary;" in everything
    assert "split_clients" not in everything


def test_render_of_a_shadow_mirrors_every_request(tmp_path: Path) -> None:
    conf = nginx.render(front(shadow="127.0.0.1:3"), tmp_path)
    assert "mirror /_shadow;" in conf
    assert "server 127.0.0.1:3;" in conf


def test_render_refuses_a_share_without_a_canary(tmp_path: Path) -> None:
    with pytest.raises(nginx.NginxError, match="a canary share without a canary upstream"):
        nginx.render(front(canary_share=0.2), tmp_path)


def test_nginx_missing_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nginx.shutil, "which", lambda _: None)
    monkeypatch.setattr(nginx, "FALLBACKS", ())
    with pytest.raises(nginx.NginxError, match=r"nginx is not installed \(Debian: apt-get install"):
        nginx.apply(front(port=free_port()), tmp_path)


@needs_nginx
def test_nginx_refuses_a_bad_upstream_and_leaves_nothing_running(tmp_path: Path) -> None:
    with pytest.raises(nginx.NginxError, match="configuration test failed"):
        nginx.apply(front(port=free_port(), stable="127.0.0.1:99999"), tmp_path)
    assert nginx.pid_of(nginx.prefix_of(tmp_path, "prod")) is None


@needs_nginx
def test_nginx_reloads_under_load_without_dropping_a_request(tmp_path: Path) -> None:
    """Five changes of routing while 4 callers keep sending: every request is answered 200."""
    with answering_upstream("a") as a, answering_upstream("b") as b:
        served = nginx.apply(
            front(port=free_port(), stable=a, canary=b, canary_share=0.5), tmp_path
        )
        answers: list[traffic.Answer] = []
        done = threading.Event()

        def callers() -> None:
            i = 0
            while not done.is_set():
                answers.extend(traffic.drive(served.url, [{}] * 8, 0.05, 4, "load-", i))
                i += 8

        thread = threading.Thread(target=callers)
        thread.start()
        try:
            for share in (1.0, 0.0, 0.3, 1.0, 0.1):
                served = nginx.apply(dataclasses.replace(served, canary_share=share), tmp_path)
        finally:
            done.set()
            thread.join()
            nginx.stop(tmp_path, "prod")
    assert served.generation == 6
    assert len(answers) > 40
    assert {a.status for a in answers} == {200}


# ---------------------------------------------------------------- real canaries on loopback


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> dict[str, Path]:
    return good_and_shifted(tmp_path_factory.mktemp("canary-models"), repo_root)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    with services_under(tmp_path / "state") as state:
        yield state


def routes(url: str, model_dir: Path, n: int = 30) -> dict[str, set[str]]:
    """{X-Served-By: versions that answered} for n flights sent through nginx."""
    seen: dict[str, set[str]] = {}
    for i, flight in enumerate(traffic.sample_flights(model_dir, n, seed=1)):
        answer = traffic.post(url, flight, f"probe-{i}")
        seen.setdefault(answer.route, set()).add(str(answer.version))
    return seen


@needs_nginx
@pytest.mark.slow
def test_run_promotes_a_good_canary_that_then_serves_everything(
    models: dict[str, Path], rules: CanaryParams, state_dir: Path
) -> None:
    params = deploy_params()
    old = deploy.deploy_local(release_of("v0.1.0"), models["good"], params, state_dir)
    report = canary.run(
        release_of("v0.2.0"), models["good"], fast(rules), params, state_dir, free_port()
    )
    assert not isinstance(report, str)
    assert report.decision.action == "promote", report.decision.reasons
    assert report.canary_side.requests >= rules.min_canary_requests
    assert report.canary_side.failed == report.stable_side.failed == 0  # reloads dropped nothing
    assert routes(report.front, models["good"]) == {"stable": {"v0.2.0"}}
    assert not deploy.is_our_service(old.pid, old.port)
    recorded = deploy.read_state(state_dir, "prod")
    assert recorded is not None
    assert (recorded.version, recorded.port) == ("v0.2.0", old.port)  # the stage's own port
    assert traffic.post(old.url, traffic.sample_flights(models["good"], 1)[0], "x").version == (
        "v0.2.0"
    )


@needs_nginx
@pytest.mark.slow
def test_run_aborts_a_canary_with_shifted_scores_and_goes_back_to_stable(
    models: dict[str, Path], rules: CanaryParams, state_dir: Path
) -> None:
    params = deploy_params()
    deploy.deploy_local(release_of("v0.1.0"), models["good"], params, state_dir)
    report = canary.run(
        release_of("v0.2.0"), models["shifted"], fast(rules), params, state_dir, free_port()
    )
    assert not isinstance(report, str)
    assert report.decision.action == "abort"
    assert [c.rule for c in report.decision.checks if not c.passed] == ["score_distribution"]
    assert report.rollback_problem  # no GTO repository here: said, not hidden
    assert routes(report.front, models["good"]) == {"stable": {"v0.1.0"}}
    recorded = deploy.read_state(state_dir, "prod")
    assert recorded is not None
    assert recorded.version == "v0.1.0"


@needs_nginx
@pytest.mark.slow
def test_observe_aborts_a_canary_answering_5xx_and_only_its_share_failed(
    models: dict[str, Path], rules: CanaryParams, state_dir: Path
) -> None:
    """The failing release is a stand-in upstream (every POST answers 500): serve.py has no
    fault injection, and a real model cannot be made to fail after it passed its warm-up."""
    params = deploy_params()
    stable = deploy.deploy_local(release_of("v0.1.0"), models["good"], params, state_dir)
    with failing_upstream() as bad:
        up_stable = canary.Upstream("v0.1.0", stable.url)
        up_bad = canary.Upstream("v9.9.9", bad)
        served = nginx.apply(
            nginx.Front(
                stage="prod",
                host="127.0.0.1",
                port=free_port(),
                stable=up_stable.address,
                canary=up_bad.address,
                canary_share=0.1,
            ),
            state_dir,
        )
        flights = traffic.sample_flights(models["good"], 400)
        decision, s_side, _c_side, answers = canary.observe(
            up_stable, up_bad, served, flights, fast(rules)
        )
    assert decision.action == "abort"
    assert decision.reasons[0].startswith("canary 5xx rate 100.0%")
    assert len(answers) < len(flights)  # stopped at the first check, not after the window
    failures = [a for a in answers if a.failed]
    assert failures
    assert {a.route for a in failures} == {"canary"}
    assert len(failures) <= 0.2 * len(answers)  # about the canary's 10 %, never stable's
    assert s_side.failed == 0


@needs_nginx
@pytest.mark.slow
def test_run_of_a_canary_that_does_not_start_leaves_stable_alone(
    models: dict[str, Path], rules: CanaryParams, state_dir: Path, tmp_path: Path
) -> None:
    params = deploy_params()
    stable = deploy.deploy_local(release_of("v0.1.0"), models["good"], params, state_dir)
    tampered = shutil.copytree(models["good"], tmp_path / "tampered")
    with (tampered / "model.skops").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(canary.CanaryError, match=r"the canary v0\.2\.0 did not start: .*exited"):
        canary.run(release_of("v0.2.0"), tampered, fast(rules), params, state_dir, free_port())
    assert deploy.read_state(state_dir, "prod") == stable
    assert deploy.is_our_service(stable.pid, stable.port)
    assert nginx.pid_of(nginx.prefix_of(state_dir, "prod")) is None  # never put in front


# ---------------------------------------------------------------- command line


def release_dir(tmp_path: Path, stage: str) -> Path:
    """A release.json alone: nothing is started, so nothing is verified."""
    release = tmp_path / "release"
    release.mkdir()
    (release / "release.json").write_text(json.dumps(release_of("v1.0.0", stage).to_json()))
    return release


def test_main_of_a_staging_release_says_there_is_no_canary(tmp_path: Path, capsys) -> None:
    release = release_dir(tmp_path, "staging")
    assert (
        canary.main(
            [
                "--release",
                str(release),
                "--state-dir",
                str(tmp_path / "s"),
            ]
        )
        == 0
    )
    assert "staging release: the canary is for prod only" in capsys.readouterr().out


def test_main_without_a_running_prod_says_nothing_to_compare(tmp_path: Path, capsys) -> None:
    release = release_dir(tmp_path, "prod")
    assert (
        canary.main(
            [
                "--release",
                str(release),
                "--state-dir",
                str(tmp_path / "s"),
            ]
        )
        == 0
    )
    assert "no prod service runs here" in capsys.readouterr().out


def test_main_stop_without_nginx_says_it_was_not_running(tmp_path: Path, capsys) -> None:
    assert canary.main(["--stop", "--state-dir", str(tmp_path)]) == 0
    assert "canary: prod nginx was not running" in capsys.readouterr().out


def test_main_without_a_release_names_the_file(tmp_path: Path, capsys) -> None:
    assert canary.main(["--release", str(tmp_path / "none")]) == 1
    assert "release.json: release description not found" in capsys.readouterr().err


# ---------------------------------------------------------------- make release, end to end

COPY_MODEL = """\
import json, pathlib, shutil, sys
out = pathlib.Path(sys.argv[1])
shutil.rmtree(out, ignore_errors=True)
shutil.copytree(json.loads(pathlib.Path("model_spec.json").read_text())["source"], out)
"""


@pytest.fixture(scope="module")
def registry_base(
    tmp_path_factory: pytest.TempPathFactory,
    repo_root: Path,
    models: dict[str, Path],
    keys: dict[str, KeyPair],
) -> RegistryRepo:
    """A git + DVC + GTO repository whose versions are real, signed models: v0.1.0 (good) in
    prod, v0.2.0 (shifted scores) and v0.3.0 (good again) registered."""
    root = tmp_path_factory.mktemp("canary-registry")
    repo = RegistryRepo.create(root / "repo", root / "remote", repo_root)
    (repo.root / "make_model.py").write_text(COPY_MODEL)
    params = yaml.safe_load((repo.root / "params.yaml").read_text())
    params["canary"].update(window_s=6.0, requests=400)  # a bounded load for the test
    (repo.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for version, name, model in (
        ("v0.1.0", "good", models["good"]),
        ("v0.2.0", "shifted", models["shifted"]),
        ("v0.3.0", "good-again", models["good"]),
    ):
        commit = repo.commit_model(name, source=str(model))
        repo.sign_model(keys["promotion"].private)
        repo.gto("register", "flight-delay", commit, "--version", version)
    repo.gto("assign", "flight-delay", "--version", "v0.1.0", "--stage", "prod")
    return repo


@pytest.fixture
def registry(
    registry_base: RegistryRepo,
    tmp_path: Path,
    models: dict[str, Path],
    keys: dict[str, KeyPair],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[RegistryRepo]:
    """A copy of the registry with v0.1.0 served as prod (signed, as `make deploy` serves it);
    everything started under it is stopped at the end."""
    repo = registry_base.copy(tmp_path / "repo")
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("FLIGHTDELAY_MODEL_PUBKEY", str(keys["promotion"].public))
    state = repo.root / ".deploy"
    try:
        signed = shutil.copytree(models["good"], tmp_path / "stable" / "model")
        signer = signing.Signer(keys["promotion"].private)
        signing.sign(signed, tmp_path / "stable" / "model.sig", signer)
        deploy.deploy_local(release_of("v0.1.0"), signed, deploy_params(), state)
        yield repo
    finally:
        stop_everything(state)


def make_in(
    repo: RegistryRepo, repo_root: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    venv = Path(sys.executable).parent.parent
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-f",
            str(repo_root / "Makefile"),
            f"VENV={venv}",
            "-o",
            f"{venv}/.installed-dev",
            *args,
        ],
        cwd=repo.root,
        env={**repo.env, **os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    return done


def make_release(
    repo: RegistryRepo, repo_root: Path, ref: str, port: int, summary: Path
) -> subprocess.CompletedProcess[str]:
    return make_in(
        repo,
        repo_root,
        "release",
        f"REF={ref}",
        CANARY_PORT=str(port),
        GITHUB_STEP_SUMMARY=str(summary),
    )


@needs_nginx
@pytest.mark.slow
def test_make_release_of_prod_aborts_a_shifted_canary_and_rolls_back_in_gto(
    registry: RegistryRepo, repo_root: Path, models: dict[str, Path], tmp_path: Path
) -> None:
    registry.gto("assign", "flight-delay", "--version", "v0.2.0", "--stage", "prod")
    port, summary = free_port(), tmp_path / "summary.md"
    aborted = make_release(registry, repo_root, "flight-delay#prod#2", port, summary)
    assert aborted.returncode != 0, aborted.stdout
    assert "error: canary: v0.2.0 aborted: score distribution shifted" in aborted.stderr
    assert "Canary of flight-delay v0.2.0: aborted v0.2.0, back to v0.1.0" in summary.read_text()
    assert registry.show()["stage"]["prod"] == "v0.1.0"  # rolled back in GTO, by itself
    assert "flight-delay#prod#3" in registry.tags()
    report = canary.read_report(registry.root / "outputs/delivery")
    assert report.rollback_tag == "flight-delay#prod#3"
    assert report.stable_side.failed == report.canary_side.failed == 0  # shifted, not failing
    assert routes(f"http://127.0.0.1:{port}", models["good"]) == {"stable": {"v0.1.0"}}


@needs_nginx
@pytest.mark.slow
def test_make_release_of_prod_promotes_a_good_canary_to_every_request(
    registry: RegistryRepo, repo_root: Path, models: dict[str, Path], tmp_path: Path
) -> None:
    registry.gto("assign", "flight-delay", "--version", "v0.3.0", "--stage", "prod")
    port, summary = free_port(), tmp_path / "summary.md"
    promoted = make_release(registry, repo_root, "flight-delay#prod#2", port, summary)
    assert promoted.returncode == 0, promoted.stderr
    assert "Canary of flight-delay v0.3.0: promoted v0.3.0 to 100 %" in summary.read_text()
    assert routes(f"http://127.0.0.1:{port}", models["good"]) == {"stable": {"v0.3.0"}}
    assert registry.show()["stage"]["prod"] == "v0.3.0"
    recorded = deploy.read_state(registry.root / ".deploy", "prod")
    assert recorded is not None
    assert recorded.version == "v0.3.0"
