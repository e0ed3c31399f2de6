"""The prediction service: same scores as training's code path, strict input, auth, probes,
metrics, start-up refusals, and (slow) the real ``flightdelay serve`` process over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from flightdelay.core import signing
from flightdelay.core.features import aircraft_warning, build_features
from flightdelay.core.flights import RAW_COLUMNS
from flightdelay.core.model_io import (
    METADATA_FILE,
    MODEL_FILE,
    ModelBundleError,
    Provenance,
    load_model_bundle,
    write_manifest,
    write_provenance,
)
from flightdelay.core.schemas import Flight
from flightdelay.serving import app as app_module
from flightdelay.serving import model_service, scoring, serve
from flightdelay.serving.app import create_app
from flightdelay.serving.batching import Batcher
from flightdelay.serving.metrics import SCORE_BUCKETS, observe_many
from flightdelay.serving.request_checks import duplicate_key
from flightdelay.serving.scoring import SCORE_TOLERANCE, TreeliteScorer
from flightdelay.serving.settings import ServeError, ServeSettings
from flightdelay.serving.smoke import SmokeError, smoke
from ports import free_port
from serving_bundle import DATA_MD5, build_model_dir, raw_flights, records
from signing_keys import KeyPair

TOKEN = "s3cret-s3cret-s3cret"  # 20 characters: above the minimum the service accepts


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    return build_model_dir(tmp_path_factory.mktemp("serve"), repo_root)


@pytest.fixture(scope="module")
def settings() -> ServeSettings:
    return ServeSettings(model_version="v1.2.3", max_batch_rows=400, max_body_bytes=128 * 1024)


@pytest.fixture(scope="module")
def app(model_dir: Path, settings: ServeSettings) -> Any:
    return create_app(model_dir, settings)


@pytest.fixture(scope="module")
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def flights() -> list[dict[str, Any]]:
    return records(raw_flights(month=4))


@pytest.fixture
def flight(flights: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(flights[0])


def direct_scores(model_dir: Path, frame: Any) -> np.ndarray:
    """The training path: build_features on the raw frame, then the pipeline."""
    bundle = load_model_bundle(model_dir)
    features = build_features(frame, bundle.context, bundle.featurize_params)
    return bundle.pipeline.predict_proba(features)[:, 1]


def assert_scores_close(got: Any, want: np.ndarray) -> None:
    """The service's scores are the pipeline's within the scorer's stated tolerance."""
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=SCORE_TOLERANCE)


def app_predictor(client: TestClient) -> str:
    return str(client.app.state.service.predictor)  # type: ignore[attr-defined]


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    return str(body["error"])


def metric(app: Any, name: str, labels: dict[str, str] | None = None) -> float:
    return app.state.metrics.registry.get_sample_value(name, labels or {}) or 0.0


# ---------------------------------------------------------------- same scores as training


def test_flight_schema_has_exactly_the_raw_columns() -> None:
    assert tuple(Flight.__annotations__) == RAW_COLUMNS


def test_predict_batch_scores_equal_build_features_and_pipeline(
    client: TestClient, model_dir: Path
) -> None:
    frame = raw_flights(month=4)
    response = client.post("/predict", json=records(frame))
    assert response.status_code == 200, response.text
    got = np.array([p["probability"] for p in response.json()["predictions"]])
    assert len(got) == len(frame) > 100
    assert_scores_close(got, direct_scores(model_dir, frame))


def test_predict_one_flight_at_a_time_equals_the_batch(client: TestClient, model_dir: Path) -> None:
    frame = raw_flights(month=4).head(25)
    batch = client.post("/predict", json=records(frame)).json()["predictions"]
    for i, row in enumerate(records(frame)):
        response = client.post("/predict", json=row)
        assert response.json()["predictions"][0]["probability"] == batch[i]["probability"]


def test_predict_concurrent_requests_are_merged_with_identical_scores(
    app: Any, model_dir: Path
) -> None:
    frame = raw_flights(month=4).head(16)
    calls_before = metric(app, "flightdelay_model_call_rows_count")

    async def send_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            return await asyncio.gather(*(ac.post("/predict", json=row) for row in records(frame)))

    responses = asyncio.run(send_all())
    got = np.array([r.json()["predictions"][0]["probability"] for r in responses])
    assert_scores_close(got, direct_scores(model_dir, frame))
    calls = metric(app, "flightdelay_model_call_rows_count") - calls_before
    assert 1 <= calls < len(frame), f"{len(frame)} requests took {calls} model calls"


def test_predict_merged_requests_with_bad_rows_get_their_own_errors(
    app: Any, model_dir: Path
) -> None:
    frame = raw_flights(month=4).head(6)
    rows = records(frame)
    bad_one = rows[1] | {"month": 4, "day": 31}
    bad_batch = [rows[2], rows[3] | {"sched_dep_time": 1575}]
    bodies: list[Any] = [rows[0], bad_one, bad_batch, rows[4], [rows[5]]]

    async def send_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            return await asyncio.gather(*(ac.post("/predict", json=body) for body in bodies))

    good, one, batch, fourth, last = asyncio.run(send_all())
    assert (one.status_code, batch.status_code) == (422, 422)
    assert error_of(one) == "body.day: 2013-04 has no day 31"
    assert error_of(batch).startswith("body[1].sched_dep_time: 1575 is not an HHMM time")
    got = [r.json()["predictions"][0]["probability"] for r in (good, fourth, last)]
    assert_scores_close(got, direct_scores(model_dir, frame.iloc[[0, 4, 5]]))


def test_predict_answers_label_at_threshold_model_and_version(
    client: TestClient, flights: list[dict[str, Any]], model_dir: Path
) -> None:
    body = client.post("/predict", json=flights[:60]).json()
    threshold = json.loads((model_dir / METADATA_FILE).read_text())["threshold"]
    assert body["threshold"] == threshold
    assert body["model_version"] == "v1.2.3"
    assert body["model"] == "flight-delay"
    for p in body["predictions"]:
        assert 0.0 <= p["probability"] <= 1.0
        assert p["late"] is (p["probability"] >= threshold)
        assert p["warnings"] == []


def test_predict_scores_with_the_compiled_treelite_scorer(app: Any) -> None:
    if scoring.c_compiler() is None:
        pytest.skip("gcc not installed: tl2cgen cannot compile")
    assert app.state.service.predictor == "treelite-compiled", app.state.service.predictor_note


def test_service_scores_on_treelite_not_on_private_internals(app: Any) -> None:
    # fast_predict (scikit-learn's _predictors/_loss, pandas' _get_column_array on every call)
    # measured less than 2x faster than treelite at p99: the rule says switch (README, Serving)
    assert not hasattr(model_service, "FastPredictor")
    assert isinstance(app.state.service.scorer, TreeliteScorer)


def test_service_without_a_compiler_scores_with_treelite_gtil(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(scoring, "c_compiler", lambda: None)
    monkeypatch.setenv("FLIGHTDELAY_SCORER_CACHE", str(tmp_path))  # and no compiled library
    service = model_service.ModelService(load_model_bundle(model_dir))
    assert service.predictor == "treelite-gtil"
    frame = raw_flights(month=4).head(40)
    assert_scores_close(
        service.predict(model_service.to_columns(records(frame))), direct_scores(model_dir, frame)
    )


def test_service_accepts_the_scorer_within_the_stated_tolerance(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = TreeliteScorer.predict_proba
    monkeypatch.setattr(
        TreeliteScorer, "predict_proba", lambda self, features: real(self, features) + 1e-13
    )
    assert model_service.ModelService(load_model_bundle(model_dir)).predictor.startswith("treelite")


def test_service_falls_back_to_the_pipeline_if_the_scorer_differs(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = TreeliteScorer.predict_proba
    monkeypatch.setattr(
        TreeliteScorer, "predict_proba", lambda self, features: real(self, features) + 1e-9
    )
    service = model_service.ModelService(load_model_bundle(model_dir))
    assert service.predictor == "pipeline"
    assert (
        "treelite scorer refused: differs from the pipeline by 1e-09 (tolerance 1e-12) on rows 0.."
        in caplog.text
    )


# ---------------------------------------------------------------- unknowns: accepted, reported


def test_predict_unseen_carrier_and_dest_are_missing_values_with_warnings(
    client: TestClient, flight: dict[str, Any], model_dir: Path
) -> None:
    flight |= {"carrier": "ZZ", "dest": "XYZ"}
    response = client.post("/predict", json=flight)
    assert response.status_code == 200
    prediction = response.json()["predictions"][0]
    assert prediction["warnings"] == [
        "carrier 'ZZ' was not seen in training: treated as missing",
        "dest 'XYZ' was not seen in training: treated as missing",
    ]
    frame = raw_flights(month=4).head(1).assign(carrier="ZZ", dest="XYZ")
    assert prediction["probability"] == direct_scores(model_dir, frame)[0]


def test_predict_null_or_unknown_tailnum_is_accepted_with_a_warning(
    client: TestClient, flight: dict[str, Any]
) -> None:
    rows = [flight | {"tailnum": None}, flight | {"tailnum": "N999ZZ"}]
    warnings = [p["warnings"] for p in client.post("/predict", json=rows).json()["predictions"]]
    assert warnings == [[aircraft_warning(None)], [aircraft_warning("N999ZZ")]]
    assert warnings[1][0].startswith("tailnum 'N999ZZ' is not in the model's context: aircraft")


def test_predict_date_outside_the_context_is_accepted_with_a_warning(
    client: TestClient, flight: dict[str, Any]
) -> None:
    flight |= {"year": 2014, "month": 6, "day": 1}
    prediction = client.post("/predict", json=flight).json()["predictions"][0]
    assert prediction["warnings"] == [
        "date 2014-06-01 is outside the schedule in the model's context (2013-01-01..2013-04-28)"
        ": weather, congestion and recent-delay features are unavailable"
    ]


# ---------------------------------------------------------------- bad input: 4xx naming the field


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"year": "2013"}, "body.year: Input should be a valid integer (got '2013')"),
        ({"day": 3.0}, "body.day: Input should be a valid integer (got 3.0)"),
        ({"month": True}, "body.month: Input should be a valid integer (got True)"),
        ({"flight": None}, "body.flight: Input should be a valid integer (got None)"),
        ({"carrier": 12}, "body.carrier: Input should be a valid string (got 12)"),
        ({"distance": "far"}, "body.distance: Input should be a valid number (got 'far')"),
        ({"month": 13}, "body.month: Input should be less than or equal to 12 (got 13)"),
        ({"distance": 0}, "body.distance: Input should be greater than or equal to 10 (got 0)"),
        ({"year": 1969}, "body.year: Input should be greater than or equal to 1970 (got 1969)"),
        ({"carrier": "ua"}, "body.carrier: String should match pattern '^[A-Z0-9]{2}$' (got 'ua')"),
        (
            {"dest": "HOUSTON"},
            "body.dest: String should match pattern '^[A-Z0-9]{3}$' (got 'HOUSTON')",
        ),
        (
            {"sched_dep_time": 2400},  # training data never has it: validate refuses it too
            "body.sched_dep_time: Input should be less than or equal to 2359",
        ),
    ],
)
def test_predict_wrongly_typed_or_out_of_range_field_is_422_naming_it(
    client: TestClient, flight: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    response = client.post("/predict", json=flight | change)
    assert response.status_code == 422
    assert error_of(response).startswith(message)
    field = next(iter(change))
    assert response.json()["detail"][0]["loc"] == ["body", field]


def test_predict_missing_field_is_422_naming_it(client: TestClient, flight: dict[str, Any]) -> None:
    del flight["dest"]
    response = client.post("/predict", json=flight)
    assert response.status_code == 422
    assert error_of(response) == "body.dest: Field required"


def test_predict_missing_field_in_a_batch_names_the_row(
    client: TestClient, flights: list[dict[str, Any]]
) -> None:
    rows = [dict(r) for r in flights[:3]]
    del rows[2]["origin"]
    response = client.post("/predict", json=rows)
    assert response.status_code == 422
    assert error_of(response) == "body[2].origin: Field required"
    assert response.json()["detail"][0]["loc"] == ["body", 2, "origin"]


def test_predict_extra_field_is_422_naming_it(client: TestClient, flight: dict[str, Any]) -> None:
    response = client.post("/predict", json=flight | {"arr_delay": 12})
    assert response.status_code == 422
    assert error_of(response) == "body.arr_delay: Extra inputs are not permitted"


@pytest.mark.parametrize(
    ("literal", "message"),
    [
        ("NaN", "body.distance: Input should be a finite number"),
        ("Infinity", "body.distance: Input should be a finite number"),
        ("-Infinity", "body.distance: Input should be a finite number"),
    ],
)
def test_predict_nan_or_infinite_number_is_422_naming_the_field(
    client: TestClient, flight: dict[str, Any], literal: str, message: str
) -> None:
    body = json.dumps(flight | {"distance": 0.5}).replace("0.5", literal)
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert error_of(response).startswith(message)


def test_predict_nan_for_an_integer_is_422_naming_the_field(
    client: TestClient, flight: dict[str, Any]
) -> None:
    body = json.dumps(flight | {"day": 0.5}).replace("0.5", "NaN")
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert error_of(response) == "body.day: Input should be a valid integer (got nan)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"month": 2, "day": 30}, "body.day: 2013-02 has no day 30"),
        ({"month": 4, "day": 31}, "body.day: 2013-04 has no day 31"),
        (
            {"sched_dep_time": 1575},
            "body.sched_dep_time: 1575 is not an HHMM time: minutes must be 00..59",
        ),
        ({"sched_arr_time": 99}, "body.sched_arr_time: 99 is not an HHMM time"),
        (
            {"origin": "ATL"},
            "body.origin: 'ATL' is not an origin the model was trained on (EWR, JFK, LGA)",
        ),
    ],
)
def test_predict_impossible_date_time_or_unknown_origin_is_422_naming_the_field(
    client: TestClient, flight: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    response = client.post("/predict", json=flight | {"year": 2013} | change)
    assert response.status_code == 422
    assert error_of(response).startswith(message)


def test_predict_many_bad_rows_lists_twenty_and_counts_the_rest(
    client: TestClient, flights: list[dict[str, Any]]
) -> None:
    rows = [r | {"origin": "ATL"} for r in flights[:50]]
    response = client.post("/predict", json=rows)
    assert response.status_code == 422
    assert error_of(response).endswith("; and 30 more error(s)")
    assert len(response.json()["detail"]) == 20


def test_predict_empty_batch_is_422(client: TestClient) -> None:
    response = client.post("/predict", json=[])
    assert response.status_code == 422
    assert error_of(response) == "body: the batch is empty: send at least one flight"


def test_predict_batch_over_the_row_limit_is_422_naming_the_setting(
    client: TestClient, flights: list[dict[str, Any]]
) -> None:
    rows = (flights * 3)[:401]
    response = client.post("/predict", json=rows)
    assert response.status_code == 422
    assert error_of(response) == (
        "body: the batch has 401 rows, more than the limit of 400 (FLIGHTDELAY_MAX_BATCH_ROWS)"
    )


def test_predict_body_over_the_byte_limit_is_413(
    client: TestClient, flights: list[dict[str, Any]]
) -> None:
    body = json.dumps(flights * 3)
    assert len(body) > 128 * 1024
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert error_of(response) == (
        f"body of {len(body)} bytes exceeds the limit of 131072 bytes (FLIGHTDELAY_MAX_BODY_BYTES)"
    )


def test_predict_streamed_body_over_the_byte_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(200):
            yield b" " * 1024

    response = client.post(
        "/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert error_of(response) == (
        "body exceeds the limit of 131072 bytes (FLIGHTDELAY_MAX_BODY_BYTES)"
    )


def test_predict_invalid_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/predict", content=b'{"year": 2013,', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert error_of(response).startswith("body is not valid JSON: ")


def test_predict_json_that_is_not_an_object_or_array_is_422(client: TestClient) -> None:
    response = client.post(
        "/predict", content=b'"EWR"', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert error_of(response) == (
        "body: expected one flight (a JSON object) or a batch (a JSON array of flights)"
    )


def test_predict_batch_of_non_objects_is_422_naming_the_row(client: TestClient) -> None:
    response = client.post("/predict", json=[1])
    assert response.status_code == 422
    assert error_of(response) == "body[0]: Input should be an object (got 1)"


def test_predict_wrong_content_type_is_415(client: TestClient, flight: dict[str, Any]) -> None:
    response = client.post(
        "/predict", content=json.dumps(flight), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert error_of(response) == "Content-Type must be application/json, got 'text/plain'"


@pytest.mark.parametrize(
    ("duplicated", "where"), [("year", "body.year"), ("carrier", "body.carrier")]
)
def test_predict_duplicate_key_is_422_naming_it(
    client: TestClient, flight: dict[str, Any], duplicated: str, where: str
) -> None:
    body = json.dumps(flight)[:-1] + f', "{duplicated}": {json.dumps(flight[duplicated])}}}'
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert error_of(response) == f"{where}: duplicate key {duplicated!r}: send each field once"


def test_predict_duplicate_key_in_a_batch_names_the_row(
    client: TestClient, flights: list[dict[str, Any]]
) -> None:
    rows = [json.dumps(f) for f in flights[:3]]
    rows[2] = rows[2][:-1] + ', "year": 1999}'
    body = "[" + ",".join(rows) + "]"
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert error_of(response) == "body[2].year: duplicate key 'year': send each field once"


@pytest.mark.parametrize("size", [3, 120])  # 120 rows: above FAST_BATCH_BYTES (batch_columns)
@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        (', "year": 1999}', "body[2].year: duplicate key 'year': send each field once"),
        (', "arr_delay": 3}', "body[2].arr_delay: Extra inputs are not permitted"),
        ('}|{"year": "2013"}', "body[2].year: Input should be a valid integer (got '2013')"),
        ('}|{"month": 2, "day": 30}', "body[2].day: 2013-02 has no day 30"),
        ('}|{"tailnum": "N:1"}', "body[2].tailnum: String should match pattern"),
    ],
)
def test_predict_batch_errors_are_the_same_for_small_and_large_batches(
    client: TestClient, flights: list[dict[str, Any]], size: int, bad_row: str, message: str
) -> None:
    rows = [json.dumps(f) for f in (flights * 2)[:size]]
    if bad_row.startswith("}|"):  # a changed value
        rows[2] = json.dumps(flights[2] | json.loads(bad_row[2:]))
    else:  # text appended to the row's object
        rows[2] = rows[2][:-1] + bad_row
    body = "[" + ",".join(rows) + "]"
    assert (len(body) >= app_module.FAST_BATCH_BYTES) == (size > 3)
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert error_of(response).startswith(message)


def test_predict_large_batch_answers_as_one_flight_at_a_time(
    client: TestClient, flights: list[dict[str, Any]]
) -> None:
    rows = [*flights[:120], flights[0] | {"tailnum": None, "carrier": "ZZ", "distance": 700}]
    assert len(json.dumps(rows)) >= app_module.FAST_BATCH_BYTES
    batch = client.post("/predict", json=rows).json()["predictions"]
    assert batch[-1]["warnings"][0] == "carrier 'ZZ' was not seen in training: treated as missing"
    for i in (0, 57, len(rows) - 1):
        assert client.post("/predict", json=rows[i]).json()["predictions"] == [batch[i]]


def test_duplicate_key_is_not_fooled_by_colons_inside_strings() -> None:
    assert duplicate_key(b'{"a": "x:y", "b": ":"}', keys=2) is None
    assert duplicate_key(b'[{"a": 1}, {"a": ":", "a": 2}]', keys=2) == ((1, "a"), "a")


@pytest.mark.parametrize("charset", ["utf-16", "latin-1", "UTF-32"])
def test_predict_non_utf8_charset_is_415(
    client: TestClient, flight: dict[str, Any], charset: str
) -> None:
    response = client.post(
        "/predict",
        content=json.dumps(flight).encode(charset),
        headers={"Content-Type": f"application/json; charset={charset}"},
    )
    assert response.status_code == 415
    assert error_of(response) == f"charset {charset!r} is not supported: send JSON encoded as UTF-8"


@pytest.mark.parametrize(
    "header", ["application/json; charset=utf-8", 'Application/JSON; charset="UTF-8"']
)
def test_predict_utf8_charset_is_accepted(
    client: TestClient, flight: dict[str, Any], header: str
) -> None:
    response = client.post(
        "/predict", content=json.dumps(flight).encode(), headers={"Content-Type": header}
    )
    assert response.status_code == 200, response.text


def test_predict_trailing_slash_is_404_never_a_redirect_to_the_host_header(
    client: TestClient, flight: dict[str, Any]
) -> None:
    response = client.post(
        "/predict/", json=flight, headers={"Host": "evil.example"}, follow_redirects=False
    )
    assert response.status_code == 404
    assert "location" not in response.headers


def test_predict_wrong_method_and_unknown_path_answer_json_errors(client: TestClient) -> None:
    assert client.get("/predict").status_code == 405
    assert error_of(client.get("/predict")) == "Method Not Allowed"
    assert client.get("/nowhere").status_code == 404
    assert error_of(client.get("/nowhere")) == "Not Found"


def test_predict_unexpected_failure_is_500_without_details(
    model_dir: Path, flight: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(model_dir, ServeSettings())

    def broken(columns: Any, **_: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.state.service, "predict", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/predict", json=flight)
    assert response.status_code == 500
    assert error_of(response) == "internal error (RuntimeError); see the server log"
    assert (
        metric(app, "flightdelay_http_errors_total", {"handler": "/predict", "status": "500"}) == 1
    )


# ---------------------------------------------------------------- batcher


def test_batcher_isolates_a_failing_request_from_the_merged_call() -> None:
    calls: list[int] = []

    def predict(columns: dict[str, list[Any]]) -> np.ndarray:
        calls.append(len(columns["year"]))
        if -1 in columns["year"]:
            raise ValueError("bad row")
        return np.asarray(columns["year"], dtype=float)

    batcher = Batcher(predict, merge_rows=100, on_call=lambda rows: None)

    async def run() -> list[Any]:
        def cols(year: int) -> dict[str, list[Any]]:
            return {c: [year] for c in RAW_COLUMNS}

        return await asyncio.gather(
            *(batcher.predict(cols(y), 1) for y in (1, -1, 3)), return_exceptions=True
        )

    first, failed, third = asyncio.run(run())
    assert calls[0] == 3  # merged first, then one call per request
    assert (first.tolist(), third.tolist()) == ([1.0], [3.0])
    assert isinstance(failed, ValueError)


def test_batcher_never_merges_beyond_merge_rows() -> None:
    sizes: list[int] = []

    def predict(columns: dict[str, list[Any]]) -> np.ndarray:
        sizes.append(len(columns["year"]))
        return np.zeros(len(columns["year"]))

    batcher = Batcher(predict, merge_rows=5, on_call=lambda rows: None)

    async def run() -> None:
        await asyncio.gather(
            *(batcher.predict({c: [0] * 2 for c in RAW_COLUMNS}, 2) for _ in range(6))
        )

    asyncio.run(run())
    assert sizes == [4, 4, 4]


# ---------------------------------------------------------------- auth


@pytest.fixture(scope="module")
def secured(model_dir: Path) -> Iterator[TestClient]:
    app = create_app(model_dir, ServeSettings(api_token=TOKEN))
    with TestClient(app) as test_client:
        yield test_client


def test_auth_missing_token_is_401_with_challenge(
    secured: TestClient, flight: dict[str, Any]
) -> None:
    response = secured.post("/predict", json=flight)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert error_of(response).startswith("missing or invalid bearer token")


def test_auth_wrong_token_is_401(secured: TestClient, flight: dict[str, Any]) -> None:
    response = secured.post("/predict", json=flight, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


def test_auth_right_token_predicts(secured: TestClient, flight: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert secured.post("/predict", json=flight, headers=headers).status_code == 200
    assert secured.get("/version", headers=headers).status_code == 200
    assert secured.get("/metrics", headers=headers).status_code == 200


def test_auth_protects_version_and_metrics_not_probes(secured: TestClient) -> None:
    assert secured.get("/version").status_code == 401
    assert secured.get("/metrics").status_code == 401
    assert secured.get("/health").status_code == 200
    assert secured.get("/ready").status_code == 200


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "FLIGHTDELAY_API_TOKEN: is set but blank"),
        ("   ", "FLIGHTDELAY_API_TOKEN: is set but blank"),
        ("s3cret", "FLIGHTDELAY_API_TOKEN: is 6 characters long, shorter than the minimum of 16"),
        (f" {TOKEN}", "FLIGHTDELAY_API_TOKEN: has leading or trailing whitespace"),
    ],
)
def test_main_blank_or_short_token_stops_the_service_at_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], token: str, message: str
) -> None:
    monkeypatch.setenv("FLIGHTDELAY_API_TOKEN", token)
    assert serve.main(["--model-dir", "unused"]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert token.strip() == "" or token.strip() not in err  # never printed


def test_settings_required_token_missing_is_refused() -> None:
    with pytest.raises(ServeError, match="FLIGHTDELAY_REQUIRE_TOKEN is true but FLIGHTDELAY_API"):
        ServeSettings.from_env({"FLIGHTDELAY_REQUIRE_TOKEN": "true"})


def kubernetes_env(secret: str | None) -> dict[str, str]:
    """The serve container's environment as Kubernetes would set it from deployment.yaml."""
    import yaml

    manifest = Path(__file__).resolve().parents[2] / "deploy/kubernetes/deployment.yaml"
    deployment = yaml.safe_load(manifest.read_text())
    (container,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "serve"
    ]
    env = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif secret is not None:
            env[entry["name"]] = secret
        else:  # an optional secret that is absent: the variable is not set
            assert entry["valueFrom"]["secretKeyRef"].get("optional", False), entry
    return env


def test_kubernetes_manifest_without_the_secret_does_not_start() -> None:
    with pytest.raises(ServeError, match="FLIGHTDELAY_REQUIRE_TOKEN is true"):
        ServeSettings.from_env(kubernetes_env(secret=None))


def test_kubernetes_manifest_with_the_secret_requires_it() -> None:
    settings = ServeSettings.from_env(kubernetes_env(secret=TOKEN))
    assert settings.require_token
    assert settings.api_token is not None


def test_auth_is_declared_in_the_openapi_spec(secured: TestClient) -> None:
    spec = secured.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["paths"]["/predict"]["post"]["security"] == [{"bearer": []}]


# ---------------------------------------------------------------- probes, version, metrics, docs


def test_health_and_ready_answer_ok(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}


def test_ready_is_503_once_shutting_down(model_dir: Path) -> None:
    app = create_app(model_dir, ServeSettings())
    with TestClient(app):
        pass  # startup, then shutdown

    async def probe() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            return await ac.get("/ready")

    response = asyncio.run(probe())
    assert response.status_code == 503
    assert response.json() == {"status": "not ready", "reason": "shutting down"}


def test_version_reports_model_json_provenance_and_release_tag(
    client: TestClient, model_dir: Path
) -> None:
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    body = client.get("/version").json()
    assert body["model"] == "flight-delay"
    assert body["version"] == "v1.2.3"
    assert body["data_md5"] == DATA_MD5
    assert body["sha256"] == metadata["sha256"]
    assert body["train_months"] == ["2013-01", "2013-02", "2013-03"]
    assert body["predictor"] == app_predictor(client)


def test_version_reads_commit_and_run_id_from_the_provenance_sidecar(
    model_dir: Path, tmp_path: Path
) -> None:
    """model.json holds no run id or commit (they would change its hash on every training);
    `flightdelay release` writes them beside it, in model.provenance.json."""
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    sha = json.loads((copy / METADATA_FILE).read_text())["sha256"]
    write_provenance(copy, Provenance(sha256=sha, git_commit="c" * 40, mlflow_run_id="run-7"))
    with TestClient(create_app(copy)) as client:
        body = client.get("/version").json()
    assert (body["git_commit"], body["mlflow_run_id"]) == ("c" * 40, "run-7")
    write_provenance(copy, Provenance(sha256="0" * 64, git_commit="d" * 40, mlflow_run_id="old"))
    with TestClient(create_app(copy)) as client:  # another model's sidecar is not this one's
        body = client.get("/version").json()
    assert (body["git_commit"], body["mlflow_run_id"]) == (None, None)


def test_version_tag_comes_from_the_environment(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLIGHTDELAY_MODEL_VERSION", "v4.5.6")
    with TestClient(create_app(model_dir)) as client:
        assert client.get("/version").json()["version"] == "v4.5.6"


def test_metrics_count_requests_errors_latency_and_scores(
    client: TestClient, app: Any, flight: dict[str, Any]
) -> None:
    labels = {"handler": "/predict", "method": "POST", "status": "200"}
    before = metric(app, "flightdelay_http_requests_total", labels)
    errors = metric(app, "flightdelay_http_errors_total", {"handler": "/predict", "status": "422"})
    scores = metric(app, "flightdelay_prediction_score_count")
    client.post("/predict", json=[flight, flight])
    client.post("/predict", json=[])
    text = client.get("/metrics").text
    assert metric(app, "flightdelay_http_requests_total", labels) == before + 1
    assert (
        metric(app, "flightdelay_http_errors_total", {"handler": "/predict", "status": "422"})
        == errors + 1
    )
    assert metric(app, "flightdelay_prediction_score_count") == scores + 2
    assert 'flightdelay_http_request_duration_seconds_bucket{handler="/predict",le="0.005"}' in text
    assert 'flightdelay_model_info{data_md5="' in text


def test_metrics_warnings_are_counted_by_kind(
    client: TestClient, app: Any, flight: dict[str, Any]
) -> None:
    before = metric(app, "flightdelay_input_warnings_total", {"kind": "carrier"})
    client.post("/predict", json=flight | {"carrier": "ZZ"})
    assert metric(app, "flightdelay_input_warnings_total", {"kind": "carrier"}) == before + 1


def test_observe_many_matches_observing_one_by_one() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    values = np.array([0.0, 0.05, 0.051, 0.5, 0.999, 1.0, 0.3, 0.3])
    one, many = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("s", "s", buckets=SCORE_BUCKETS, registry=one)
    h2 = Histogram("s", "s", buckets=SCORE_BUCKETS, registry=many)
    for v in values:
        h1.observe(v)
    observe_many(h2, values)

    def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
        return {
            (s.name, s.labels.get("le", "")): s.value
            for m in registry.collect()
            for s in m.samples
            if not s.name.endswith("_created")
        }

    expected, got = samples(one), samples(many)
    assert got.pop(("s_sum", "")) == pytest.approx(expected.pop(("s_sum", "")))
    assert got == expected


def test_openapi_documents_predict_with_origins_and_error_answers(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/predict"]["post"]
    one, batch = operation["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
    assert one["properties"]["origin"]["enum"] == ["EWR", "JFK", "LGA"]
    assert batch["maxItems"] == 400
    assert {"200", "400", "413", "415", "422"} <= set(operation["responses"])
    assert client.get("/docs").status_code == 200


# ---------------------------------------------------------------- start-up refusals, settings


def tampered_copy(model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    with (copy / MODEL_FILE).open("ab") as f:
        f.write(b"\0")
    return copy


def test_create_app_refuses_a_tampered_model(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelBundleError, match=r"sha256 .* does not match"):
        create_app(tampered_copy(model_dir, tmp_path), ServeSettings())


def test_main_exits_1_naming_the_tampered_file(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tampered_copy(model_dir, tmp_path)
    assert serve.main(["--model-dir", str(copy), "--port", "9"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {copy / MODEL_FILE}: sha256 ")
    assert "refusing to load" in err


def test_main_exits_1_for_a_missing_model_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve.main(["--model-dir", str(tmp_path / "none")]) == 1
    assert "model directory not found" in capsys.readouterr().err


def test_settings_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(
        ServeError, match="FLIGHTDELAY_MAX_BATCH_ROWS: Input should be a valid integer"
    ):
        ServeSettings.from_env({"FLIGHTDELAY_MAX_BATCH_ROWS": "lots"})


def test_settings_large_call_threads_default_two_capped_by_the_cpus() -> None:
    default = ServeSettings.from_env({})
    assert (default.batch_threads, default.large_call_threads(usable_cpus=8)) == (2, 2)
    assert default.large_call_threads(usable_cpus=1) == 1
    assert ServeSettings.from_env({"FLIGHTDELAY_BATCH_THREADS": "1"}).large_call_threads(8) == 1
    many = ServeSettings.from_env(
        {"FLIGHTDELAY_MODEL_THREADS": "4", "FLIGHTDELAY_BATCH_THREADS": "2"}
    )
    assert many.large_call_threads(usable_cpus=8) == 4
    with pytest.raises(
        ServeError, match="FLIGHTDELAY_BATCH_THREADS: Input should be greater than or equal to 1"
    ):
        ServeSettings.from_env({"FLIGHTDELAY_BATCH_THREADS": "0"})


def test_settings_token_is_never_printed() -> None:
    settings = ServeSettings.from_env({"FLIGHTDELAY_API_TOKEN": TOKEN})
    assert TOKEN not in repr(settings)
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == TOKEN


def test_main_with_bad_setting_exits_1_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLIGHTDELAY_MERGE_ROWS", "0")
    assert serve.main(["--model-dir", "unused"]) == 1
    assert "FLIGHTDELAY_MERGE_ROWS: Input should be greater than or equal to 1" in (
        capsys.readouterr().err
    )


def test_smoke_unreachable_service_names_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SmokeError, match=f"/health: cannot reach http://127.0.0.1:{port}"):
        smoke(f"http://127.0.0.1:{port}")


# ---------------------------------------------------------------- the real server (slow)


def flightdelay_command() -> list[str]:
    script = Path(sys.executable).with_name("flightdelay")
    return [str(script)] if script.exists() else [sys.executable, "-m", "flightdelay"]


@pytest.fixture
def server(model_dir: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "FLIGHTDELAY_MODEL_VERSION": "v9.9.9"}
    env.pop("FLIGHTDELAY_API_TOKEN", None)
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [
            *flightdelay_command(),
            "serve",
            "--model-dir",
            str(model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url + "/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "server did not become ready in 90 s"
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_flightdelay_serve_answers_health_version_and_predict_over_http(
    server: str, flights: list[dict[str, Any]], model_dir: Path
) -> None:
    with urllib.request.urlopen(server + "/health", timeout=5) as response:
        assert json.load(response) == {"status": "ok"}
    with urllib.request.urlopen(server + "/version", timeout=5) as response:
        assert json.load(response)["version"] == "v9.9.9"
    request = urllib.request.Request(
        server + "/predict",
        data=json.dumps(flights[:5]).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        got = [p["probability"] for p in json.load(response)["predictions"]]
    assert_scores_close(got, direct_scores(model_dir, raw_flights(month=4).head(5)))
    with urllib.request.urlopen(server + "/metrics", timeout=5) as response:
        assert "flightdelay_predicted_rows_total 5.0" in response.read().decode()


@pytest.mark.slow
def test_flightdelay_smoke_passes_and_fails_on_the_wrong_version(server: str) -> None:
    ok = subprocess.run(
        [*flightdelay_command(), "smoke", "--url", server, "--expect-version", "v9.9.9"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "ok /predict: probability" in ok.stdout
    wrong = subprocess.run(
        [*flightdelay_command(), "smoke", "--url", server, "--expect-version", "v1.0.0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong.returncode == 1
    assert "smoke: FAILED /version: serves version 'v9.9.9', expected 'v1.0.0'" in wrong.stderr


@pytest.mark.slow
def test_flightdelay_serve_refuses_a_tampered_model_with_exit_1(
    model_dir: Path, tmp_path: Path
) -> None:
    copy = tampered_copy(model_dir, tmp_path)
    done = subprocess.run(
        [*flightdelay_command(), "serve", "--model-dir", str(copy), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "does not match" in done.stderr
    assert "Traceback" not in done.stderr


def test_main_exits_1_for_a_model_built_by_other_feature_code(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    departures = copy / "context" / "departures.parquet"
    pd.read_parquet(departures).drop(columns=["origin"]).to_parquet(departures)
    write_manifest(copy)  # as if an older version had written it: a consistent directory
    assert serve.main(["--model-dir", str(copy)]) == 1
    assert capsys.readouterr().err == (
        f"error: {copy}: context table 'departures' lacks column(s) ['origin'] (the model does "
        "not match this version of flightdelay.core.features: retrain it)\n"
    )


def test_service_falls_back_to_the_pipeline_if_the_scorer_breaks(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import treelite

    def broken(model: Any) -> Any:
        raise AttributeError(
            "'HistGradientBoostingClassifier' object has no attribute '_predictors'"
        )

    monkeypatch.setattr(treelite.sklearn, "import_model", broken)
    service = model_service.ModelService(load_model_bundle(model_dir))
    assert service.predictor == "pipeline"
    assert "treelite scorer failed: AttributeError" in caplog.text
    frame = raw_flights(month=4).head(3)
    np.testing.assert_array_equal(  # the pipeline itself: exactly
        service.predict(model_service.to_columns(records(frame))), direct_scores(model_dir, frame)
    )


# ---------------------------------------------------------------- signature at start


@pytest.fixture
def signed_copy(model_dir: Path, tmp_path: Path, keys: dict[str, KeyPair]) -> Path:
    """A copy of the model with the promotion key's signature beside it (``model.sig``)."""
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    signing.sign(copy, tmp_path / "model.sig", signing.Signer(keys["promotion"].private))
    return copy


def test_main_with_a_key_refuses_an_unsigned_model_dir(
    model_dir: Path, tmp_path: Path, keys: dict[str, KeyPair], monkeypatch, capsys
) -> None:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    monkeypatch.setenv("FLIGHTDELAY_MODEL_PUBKEY", str(keys["promotion"].public))
    assert serve.main(["--model-dir", str(copy), "--port", "9"]) == 1
    assert capsys.readouterr().err == (
        f"error: {copy}: refusing to serve: no signature at {tmp_path / 'model.sig'}; expected a "
        f"signature by the key {keys['promotion'].public} "
        f"({signing.key_fingerprint(keys['promotion'].public)})\n"
    )


def test_main_with_a_key_refuses_a_model_signed_by_another(
    signed_copy: Path, keys: dict[str, KeyPair], monkeypatch, capsys
) -> None:
    monkeypatch.setenv("FLIGHTDELAY_MODEL_PUBKEY", str(keys["other"].public))
    assert serve.main(["--model-dir", str(signed_copy), "--port", "9", "--workers", "2"]) == 1
    assert "was not made by the expected signer" in capsys.readouterr().err


def test_main_required_without_a_verifier_refuses(signed_copy: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FLIGHTDELAY_REQUIRE_SIGNATURE", "true")  # as in the image
    assert serve.main(["--model-dir", str(signed_copy), "--port", "9"]) == 1
    assert "REQUIRE_SIGNATURE is set but no signer is expected" in capsys.readouterr().err


def test_version_reports_who_signed_the_model(
    signed_copy: Path, keys: dict[str, KeyPair], monkeypatch
) -> None:
    monkeypatch.setenv("FLIGHTDELAY_MODEL_PUBKEY", str(keys["promotion"].public))
    with TestClient(create_app(signed_copy)) as client:
        signed = client.get("/version").json()["signature"]
    assert signed["method"] == "key"
    assert signed["signer"] == f"key {signing.key_fingerprint(keys['promotion'].public)}"
    assert signed["digest"].startswith("sha256:")


def test_version_without_a_verifier_reports_no_signature(client: TestClient) -> None:
    assert client.get("/version").json()["signature"] is None  # loopback default: not checked
