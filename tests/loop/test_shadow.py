"""shadow-report: a candidate answers a mirror of prod's requests through real nginx and is
compared with prod on those requests."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from delivery import deploy_params, free_port, good_and_shifted, release_of, services_under
from flightdelay.core import signing
from flightdelay.core.params import CanaryParams, load_params
from flightdelay.loop import canary_rules, deploy, nginx, shadow, traffic
from flightdelay.loop.canary_rules import ServiceMetrics
from flightdelay.loop.shadow import ScoreHistogram, ShadowSide, compare
from signing_keys import KeyPair

needs_nginx = pytest.mark.skipif(
    shutil.which("nginx") is None and not Path("/usr/sbin/nginx").is_file(),
    reason="nginx not installed: apt-get install nginx (make system-deps)",
)


@pytest.fixture(scope="module")
def rules(repo_root: Path) -> CanaryParams:
    return load_params(repo_root / "params.yaml").canary.model_copy(
        update={"window_s": 5.0, "requests": 300}
    )


def a_side(version: str, bins: dict[str, int], mean: float, requests: int = 100) -> ShadowSide:
    rows = sum(bins.values())
    return ShadowSide(
        version=version,
        metrics=ServiceMetrics(
            requests=requests, errors_5xx=0, p99_latency_s=0.02, rows=rows, warned_rows=0
        ),
        scores=ScoreHistogram(bins=bins, total=mean * rows),
    )


def pairs(n: int, disagree: int) -> list[tuple[traffic.Answer, traffic.Answer]]:
    def answer(late: bool) -> traffic.Answer:
        return traffic.Answer("r", "stable", 200, 0.01, score=0.9 if late else 0.1, late=late)

    return [(answer(True), answer(i >= disagree)) for i in range(n)]


LOW = {"0.1": 60, "0.5": 30, "1": 10, "+Inf": 0}
HIGH = {"0.1": 10, "0.5": 30, "1": 60, "+Inf": 0}


def test_score_histogram_undoes_the_cumulative_buckets() -> None:
    registry = CollectorRegistry()
    scores = Histogram(
        "flightdelay_prediction_score", "", buckets=(0.1, 0.5, 1.0), registry=registry
    )
    scores.observe(0.05)
    before = canary_rules.metric_samples(generate_latest(registry).decode())
    for value in (0.05, 0.2, 0.3, 0.9):
        scores.observe(value)
    after = canary_rules.metric_samples(generate_latest(registry).decode())
    histogram = shadow.score_histogram(before, after)
    assert histogram.bins == {"0.1": 1, "0.5": 2, "1": 1, "+Inf": 0}
    assert histogram.mean == pytest.approx(1.45 / 4)


def test_compare_of_the_same_answers_is_clean(rules: CanaryParams) -> None:
    report = compare(a_side("v1", LOW, 0.2), a_side("v2", LOW, 0.2), pairs(50, 0), rules)
    assert report.clean, [f.detail for f in report.findings]
    assert report.label_agreement == 1.0


def test_compare_shows_a_score_shift(rules: CanaryParams) -> None:
    report = compare(a_side("v1", LOW, 0.2), a_side("v2", HIGH, 0.6), pairs(50, 0), rules)
    (finding,) = [f for f in report.findings if not f.passed]
    assert finding.rule == "score_distribution"
    assert finding.detail.startswith("score distribution shifted: jensenshannon ")
    assert "mean 0.600 vs prod 0.200" in finding.detail


def test_compare_flags_label_disagreement(rules: CanaryParams) -> None:
    report = compare(a_side("v1", LOW, 0.2), a_side("v2", LOW, 0.2), pairs(50, 10), rules)
    (finding,) = [f for f in report.findings if not f.passed]
    assert finding.detail.startswith("late/not-late agreement 80.0% on 50 requests (< 95%)")


def test_compare_flags_requests_the_mirror_lost(rules: CanaryParams) -> None:
    report = compare(
        a_side("v1", LOW, 0.2), a_side("v2", LOW, 0.2, requests=60), pairs(50, 0), rules
    )
    (finding,) = [f for f in report.findings if not f.passed]
    assert finding.detail == "60 of prod's 100 requests reached the candidate"


def test_main_without_a_prod_service_says_there_is_nothing_to_mirror(
    tmp_path: Path, capsys
) -> None:
    release = tmp_path / "release"
    release.mkdir()
    (release / "release.json").write_text(json.dumps(release_of("v2").to_json()))
    code = shadow.main(["--release", str(release), "--state-dir", str(tmp_path / "s")])
    assert code == 1
    assert "no prod service runs here" in capsys.readouterr().err


# ---------------------------------------------------------------- real nginx, real services


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> dict[str, Path]:
    return good_and_shifted(tmp_path_factory.mktemp("shadow-models"), repo_root)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    with services_under(tmp_path / "state") as state:
        yield state
    nginx.stop(state, shadow.FRONT_STAGE)


@needs_nginx
@pytest.mark.slow
def test_run_shows_the_score_shift_of_a_retrained_model(
    models: dict[str, Path], rules: CanaryParams, state_dir: Path
) -> None:
    params = deploy_params()
    prod = deploy.deploy_local(release_of("v0.1.0"), models["good"], params, state_dir)
    report = shadow.run(
        release_of("v0.2.0", "staging"),
        models["shifted"],
        rules,
        params.host,
        90,
        state_dir,
        free_port(),
    )
    failed = {f.rule: f.detail for f in report.findings if not f.passed}
    assert "score_distribution" in failed
    assert "label_agreement" in failed
    assert report.candidate.scores.mean > report.prod.scores.mean + 0.2
    assert report.candidate.metrics.requests == report.prod.metrics.requests == rules.requests
    assert deploy.is_our_service(prod.pid, prod.port)  # prod untouched ...
    assert nginx.pid_of(nginx.prefix_of(state_dir, shadow.FRONT_STAGE)) is None  # ... rest stopped


@needs_nginx
@pytest.mark.slow
def test_main_of_the_same_model_is_clean_and_written(
    models: dict[str, Path],
    state_dir: Path,
    tmp_path: Path,
    keys: dict[str, KeyPair],
    monkeypatch: pytest.MonkeyPatch,
    capsys,
) -> None:
    deploy.deploy_local(release_of("v0.1.0"), models["good"], deploy_params(), state_dir)
    release = tmp_path / "release"
    shutil.copytree(models["good"], release / "model")
    (release / "signature").mkdir()
    signing.sign(
        release / "model",
        release / "signature/model.sig",
        signing.Signer(keys["promotion"].private),
    )
    (release / "release.json").write_text(json.dumps(release_of("v0.2.0", "staging").to_json()))
    monkeypatch.setenv("FLIGHTDELAY_MODEL_PUBKEY", str(keys["promotion"].public))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        (Path(__file__).parents[2] / "params.yaml")
        .read_text()
        .replace("window_s: 20 ", "window_s: 5 ")
        .replace("requests: 600 ", "requests: 200 ")
    )
    code = shadow.main(
        ["--release", str(release), "--state-dir", str(state_dir), "--require-clean"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "candidate v0.2.0 vs prod v0.1.0: clean" in out
    report = shadow.read_report(tmp_path / "outputs/delivery")
    assert report.label_agreement == 1.0
    assert report.mean_abs_score_difference == 0.0
