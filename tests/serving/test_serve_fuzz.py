"""Schemathesis against the service's own OpenAPI spec: valid and invalid requests generated
from the schema never get a 5xx, and every answer matches the documented status codes,
content types and response schemas. Bounded (a few hundred cases) to stay fast."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from flightdelay.core.schemas import FLIGHT_BOUNDS, FLIGHT_PATTERNS
from flightdelay.serving.app import create_app
from flightdelay.serving.settings import ServeSettings
from serving_bundle import build_model_dir

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Any:
    model_dir = build_model_dir(tmp_path_factory.mktemp("fuzz"), repo_root)
    return create_app(model_dir, ServeSettings(max_batch_rows=50))


@pytest.fixture(scope="module")
def api(app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module")
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


# schemathesis' pytest plugin (from_fixture) does not run under pytest 9, so the operations'
# hypothesis strategies are drawn from inside ordinary tests instead.
FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def operations(api: Any) -> list[Any]:
    return [result.ok() for result in api.get_all_operations()]


def fuzz(operation: Any, mode: GenerationMode) -> None:
    @FUZZ
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        response = case.call_and_validate(checks=CHECKS)
        if mode is GenerationMode.NEGATIVE:
            assert 400 <= response.status_code < 500, response.text

    run()


def test_valid_requests_to_every_operation_never_get_5xx_and_conform(api: Any) -> None:
    for operation in operations(api):
        fuzz(operation, GenerationMode.POSITIVE)


def test_invalid_predict_bodies_get_4xx_never_5xx(api: Any) -> None:
    (predict,) = [op for op in operations(api) if op.path == "/predict"]
    fuzz(predict, GenerationMode.NEGATIVE)


def test_fuzz_covers_every_documented_operation(api: Any) -> None:
    labels = {f"{op.method.upper()} {op.path}" for op in operations(api)}
    assert {"POST /predict", "GET /health", "GET /ready", "GET /version", "GET /metrics"} <= labels


# JSON Schema counts 3.0 as an integer, so schemathesis' "valid" bodies are often refused for
# it (the service is strict: no floats for integers). Flights drawn field by field from the
# documented ranges reach the model and the service's own date/time/origin rules.
def flights() -> st.SearchStrategy[dict[str, Any]]:
    code = lambda n: st.from_regex(rf"\A[A-Z0-9]{{{n}}}\Z")  # noqa: E731
    return st.fixed_dictionaries(
        {
            **{  # the definition of a valid flight row (flightdelay.core.schemas)
                column: st.integers(*FLIGHT_BOUNDS[column])
                for column in ("year", "month", "day", "sched_dep_time", "sched_arr_time")
            },
            "carrier": st.sampled_from(["AA", "UA", "DL"]) | code(2),
            "flight": st.integers(*FLIGHT_BOUNDS["flight"]),
            "tailnum": st.none()
            | st.sampled_from(["N1AA", "N2UA"])
            | st.from_regex(FLIGHT_PATTERNS["tailnum"].replace("^", r"\A").replace("$", r"\Z")),
            "origin": st.sampled_from(["EWR", "JFK", "LGA"]) | code(3),
            "dest": st.sampled_from(["ATL", "ORD", "LAX", "BOS"]) | code(3),
            "distance": st.floats(*FLIGHT_BOUNDS["distance"]),
        }
    )


@FUZZ
@given(body=flights() | st.lists(flights(), min_size=1, max_size=8))
def test_documented_flights_get_a_prediction_or_a_422_naming_a_rule(
    client: TestClient, body: Any
) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code in (200, 422), response.text
    rows = body if isinstance(body, list) else [body]
    if response.status_code == 200:
        predictions = response.json()["predictions"]
        assert len(predictions) == len(rows)
        assert all(0.0 <= p["probability"] <= 1.0 for p in predictions)
    else:
        kinds = {d["type"] for d in response.json()["detail"]}
        assert kinds <= {"invalid_date", "invalid_hhmm", "unknown_origin"}, response.text
