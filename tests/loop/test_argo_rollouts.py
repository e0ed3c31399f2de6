"""deploy/argo-rollouts: the cluster's canary (not executed here) says what the local one does:
same steps, a metric per local rule, the same thresholds as params.yaml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from flightdelay.core.params import Params

ARGO = Path(__file__).resolve().parents[2] / "deploy" / "argo-rollouts"


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    docs = [d for f in sorted(ARGO.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def analysis(documents: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    template = documents["AnalysisTemplate/flight-delay-canary"]
    return {m["name"]: m for m in template["spec"]["metrics"]}


def bound(metric: dict[str, Any]) -> float:
    found = re.fullmatch(
        r"len\(result\) == 0 \|\| result\[0\] <= ([0-9.]+)", metric["successCondition"]
    )
    assert found, metric["successCondition"]
    return float(found.group(1))


def test_argo_rollouts_manifests_are_the_expected_objects(
    documents: dict[str, dict[str, Any]],
) -> None:
    assert set(documents) == {
        "Rollout/flight-delay",
        "Service/flight-delay-canary",
        "Ingress/flight-delay",
        "AnalysisTemplate/flight-delay-canary",
    }
    rollout = documents["Rollout/flight-delay"]["spec"]
    assert rollout["workloadRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "flight-delay",
        "scaleDown": "onsuccess",
    }
    canary = rollout["strategy"]["canary"]
    assert canary["stableService"] == "flight-delay"  # deploy/kubernetes/service.yaml
    assert canary["canaryService"] == "flight-delay-canary"
    assert canary["analysis"]["templates"] == [{"templateName": "flight-delay-canary"}]


def test_argo_rollouts_steps_are_the_local_share_and_window(
    documents: dict[str, dict[str, Any]], params: Params
) -> None:
    steps = documents["Rollout/flight-delay"]["spec"]["strategy"]["canary"]["steps"]
    assert steps[0] == {"setWeight": round(params.canary.share * 100)}
    assert steps[1] == {"pause": {"duration": f"{params.canary.window_s:g}s"}}
    assert steps[-1] == {"setWeight": 100}


def test_argo_rollouts_analysis_has_every_local_rule_at_its_threshold(
    documents: dict[str, dict[str, Any]], params: Params
) -> None:
    metrics = analysis(documents)
    rules = params.canary
    assert bound(metrics["5xx-rate"]) == rules.max_5xx_rate
    assert bound(metrics["p99-latency-ratio"]) == rules.max_p99_latency_ratio
    assert (
        "clamp_min(histogram_quantile(0.99"
        in metrics["p99-latency-ratio"]["provider"]["prometheus"]["query"]
    )
    assert (
        f", {rules.min_p99_latency_s:g})"
        in metrics["p99-latency-ratio"]["provider"]["prometheus"]["query"]
    )
    assert bound(metrics["warnings-rate-increase"]) == rules.max_warnings_rate_increase
    assert "score-mean-shift" in metrics
    assert all(m["failureLimit"] == 0 for m in metrics.values())  # first failure aborts


def test_argo_rollouts_queries_name_only_metrics_the_service_exports(
    documents: dict[str, dict[str, Any]],
) -> None:
    from flightdelay.serving.metrics import Metrics

    exported = {
        f"{metric.name}{suffix}"
        for metric in Metrics(multiprocess=False).registry.collect()
        for suffix in ("", "_total", "_bucket", "_sum", "_count")
    }
    for name, metric in analysis(documents).items():
        used = set(re.findall(r"flightdelay_[a-z_]+", metric["provider"]["prometheus"]["query"]))
        assert used, name
        assert used <= exported, f"{name}: {sorted(used - exported)} are not exported"
