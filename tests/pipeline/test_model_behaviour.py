"""Model tests: invariance, directional expectations, minimum functionality, slice floors.

One small model (trained once per session on a subsample of the real training months, same
pipeline and features as the stage) is probed on the real evaluation month.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from flightdelay.core.context import Context, build_context
from flightdelay.core.features import build_features
from flightdelay.core.flights import RAW_COLUMNS
from flightdelay.core.io import read_batches, read_csv
from flightdelay.core.params import Params
from flightdelay.pipeline.featurize import featurize, flight_ids
from flightdelay.pipeline.train import fit, score, split_months

TRAIN_ROWS = 60_000
PROBE_ROWS = 400
FLOOR_AUC = 0.75  # the evaluation month as a whole
ORIGIN_FLOOR_AUC = 0.72
CARRIER_FLOOR_AUC = 0.65  # carriers with at least CARRIER_MIN_ROWS flights
CARRIER_MIN_ROWS = 500


@pytest.fixture(scope="session")
def real(data_ready: Path, params: Params, repo_root: Path):
    paths = params.paths
    flights = read_batches(repo_root / paths.flights)
    context = build_context(
        flights,
        read_batches(repo_root / paths.weather),
        read_csv(repo_root / paths.planes),
        read_csv(repo_root / paths.airports),
    )
    features = featurize(flights, context, params.featurize)
    train_months, eval_month = split_months(features)
    history = features[features["month"].isin(train_months)]
    small = params.train.model_copy(update={"max_iter": 120})
    pipeline = fit(history.sample(TRAIN_ROWS, random_state=0), small)
    is_eval = (features["month"] == eval_month).to_numpy()
    modelled = flights.loc[flight_ids(flights).isin(features["flight_id"]).to_numpy()]
    return pipeline, context, modelled.loc[is_eval], features.loc[is_eval], params


@pytest.fixture(scope="session")
def probe(real):
    """A seeded sample of raw evaluation-month flights that actually flew."""
    _, _, flights, _, _ = real
    return flights[flights["dep_time"].notna()].sample(PROBE_ROWS, random_state=1)


def _scores(real, flights: pd.DataFrame, context: Context | None = None) -> np.ndarray:
    pipeline, base_context, _, _, params = real
    return score(pipeline, build_features(flights, context or base_context, params.featurize))


# ---------------------------------------------------------------- invariance


def test_flight_number_does_not_change_the_score(real, probe) -> None:
    renumbered = probe.assign(flight=(probe["flight"] + 1234) % 9000)
    np.testing.assert_array_equal(_scores(real, probe), _scores(real, renumbered))


def test_outcome_columns_do_not_change_the_score(real, probe) -> None:
    blind = probe.loc[:, list(RAW_COLUMNS)]
    np.testing.assert_array_equal(_scores(real, probe), _scores(real, blind))


def test_one_flight_scores_the_same_alone_and_in_a_batch(real, probe) -> None:
    batch = _scores(real, probe)
    alone = np.array([_scores(real, probe.iloc[[i]])[0] for i in range(20)])
    np.testing.assert_array_equal(alone, batch[:20])


# ---------------------------------------------------------------- directional


def test_heavier_precipitation_never_lowers_the_risk(real) -> None:
    pipeline, _, _, features, _ = real
    rows = features.sample(PROBE_ROWS, random_state=2)
    grid = [0.0, 0.01, 0.05, 0.1, 0.3, 0.6, 1.2]
    scores = np.column_stack([score(pipeline, rows.assign(precip=p)) for p in grid])
    assert (np.diff(scores, axis=1) >= 0).all()


def test_rain_in_the_context_weather_never_lowers_the_risk(real, probe) -> None:
    _, context, _, _, _ = real
    weather = context.weather.copy()
    weather["precip"] = weather["precip"] + 0.5
    wet = Context.from_tables({**context.tables(), "weather": weather})
    assert (_scores(real, probe, wet) >= _scores(real, probe)).all()


def test_a_backed_up_airport_raises_the_risk(real) -> None:
    pipeline, _, _, features, _ = real
    calm = features[(features["origin_waiting"] == 0)].sample(PROBE_ROWS, random_state=3)
    jammed = calm.assign(
        origin_waiting=25.0,
        origin_waiting_mean_minutes=90.0,
        origin_recent_mean_delay=60.0,
        origin_recent_late_share=0.8,
        tail_prev_dep_delay=120.0,
    )
    before, after = score(pipeline, calm), score(pipeline, jammed)
    assert (after > before).mean() >= 0.95
    assert (after - before).mean() > 0.2


def test_a_late_inbound_aircraft_raises_the_risk(real) -> None:
    pipeline, _, _, features, _ = real
    rows = features[features["tail_prev_dep_delay"].notna()].sample(PROBE_ROWS, random_state=4)

    def previous_leg_left(delay: float) -> np.ndarray:
        return score(
            pipeline,
            rows.assign(
                tail_prev_dep_delay=delay,
                tail_prev_waiting_minutes=0.0,
                tail_prev_expected_late_minutes=delay - rows["tail_prev_slack_minutes"],
            ),
        )

    # Mean and share rather than the median: the effect is bimodal (large where the schedule
    # cannot absorb three hours, small where it can), so its median swings 0.05..0.2 with the
    # training subsample and the probe rows.
    effect = previous_leg_left(180.0) - previous_leg_left(0.0)
    assert effect.mean() > 0.1
    assert (effect > 0).mean() > 0.8


# ---------------------------------------------------------------- minimum functionality, slices


def test_evaluation_month_roc_auc_meets_the_floor(real) -> None:
    pipeline, _, _, features, _ = real
    assert roc_auc_score(features["late"], score(pipeline, features)) >= FLOOR_AUC


def test_every_origin_meets_its_slice_floor(real) -> None:
    pipeline, _, _, features, _ = real
    scored = features.assign(score=score(pipeline, features))
    for origin, group in scored.groupby("origin"):
        auc = roc_auc_score(group["late"], group["score"])
        assert auc >= ORIGIN_FLOOR_AUC, f"{origin}: ROC AUC {auc:.3f} < {ORIGIN_FLOOR_AUC}"


def test_every_large_carrier_meets_its_slice_floor(real) -> None:
    pipeline, _, _, features, _ = real
    scored = features.assign(score=score(pipeline, features))
    for carrier, group in scored.groupby("carrier"):
        if len(group) < CARRIER_MIN_ROWS or group["late"].nunique() < 2:
            continue
        auc = roc_auc_score(group["late"], group["score"])
        assert auc >= CARRIER_FLOOR_AUC, f"{carrier}: ROC AUC {auc:.3f} < {CARRIER_FLOOR_AUC}"
