"""Tiny synthetic raw tables in the upstream layout, for fast featurize/train/evaluate tests.

Delays have a real signal (rain at the origin, a busy evening, one slow carrier), so a model
trained on a few hundred rows learns something and metrics are meaningful but cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from output_fixtures import PASSED_VALIDATION

ORIGINS = ("EWR", "JFK", "LGA")
DESTS = ("ATL", "ORD", "LAX", "BOS")
CARRIERS = ("AA", "UA", "DL")


def raw_tables(
    months: tuple[int, ...] = (1, 2, 3),
    per_day: int = 12,
    seed: int = 0,
    cancelled_share: float = 0.03,
) -> dict[str, pd.DataFrame]:
    """{"flights", "weather", "planes", "airports"} with upstream column names."""
    rng = np.random.default_rng(seed)
    rows = []
    weather = []
    for month in months:
        for day in range(1, 29):
            rain = {o: float(rng.choice([0.0, 0.0, 0.0, 0.05, 0.3])) for o in ORIGINS}
            for origin in ORIGINS:
                for hour in range(24):
                    weather.append(
                        {
                            "origin": origin,
                            "year": 2013,
                            "month": month,
                            "day": day,
                            "hour": hour,
                            "temp": 40.0 + hour,
                            "dewp": 30.0,
                            "humid": 60.0,
                            "wind_dir": 200.0,
                            "wind_speed": 10.0,
                            "wind_gust": 25.0 if rain[origin] else np.nan,
                            "precip": rain[origin],
                            "pressure": 1015.0,
                            "visib": 10.0 - 20 * rain[origin],
                            "time_hour": f"2013-{month:02d}-{day:02d}T{hour:02d}:00:00Z",
                        }
                    )
            for i in range(per_day):
                origin = ORIGINS[i % 3]
                carrier = CARRIERS[(i // 3) % 3]
                sched_min = int(rng.integers(6 * 60, 23 * 60))
                base = 60 * rain[origin] * 10 + (20 if sched_min > 17 * 60 else 0)
                base += 15 if carrier == "UA" else 0
                dep_delay = float(np.round(rng.exponential(5 + base) - 5))
                cancelled = rng.random() < cancelled_share
                dep_at = sched_min + dep_delay
                sched_arr = (sched_min + 150) % 1440
                rows.append(
                    {
                        "year": 2013,
                        "month": month,
                        "day": day,
                        "dep_time": np.nan if cancelled else _hhmm(dep_at % 1440),
                        "sched_dep_time": _hhmm(sched_min),
                        "dep_delay": np.nan if cancelled else dep_delay,
                        "arr_time": np.nan if cancelled else _hhmm((dep_at + 150) % 1440),
                        "sched_arr_time": _hhmm(sched_arr),
                        "arr_delay": np.nan
                        if cancelled
                        else dep_delay + float(rng.integers(-10, 10)),
                        "carrier": carrier,
                        "flight": 100 + i,
                        "tailnum": f"N{(i % 8) + 1}{carrier}",
                        "origin": origin,
                        "dest": DESTS[i % 4],
                        "air_time": np.nan if cancelled else 140.0,
                        "distance": 700 + 100 * (i % 4),
                        "hour": sched_min // 60,
                        "minute": sched_min % 60,
                        "time_hour": f"2013-{month:02d}-{day:02d}T{sched_min // 60:02d}:00:00Z",
                    }
                )
    tails = sorted({r["tailnum"] for r in rows})
    planes = pd.DataFrame(
        {
            "tailnum": tails,
            "year": [2000 + i % 10 for i in range(len(tails))],
            "type": "Fixed wing multi engine",
            "manufacturer": "EMBRAER",
            "model": "E",
            "engines": 2,
            "seats": [50 + 10 * (i % 5) for i in range(len(tails))],
            "speed": np.nan,
            "engine": "Turbo-fan",
        }
    )
    airports = pd.DataFrame(
        {
            "faa": [*ORIGINS, *DESTS],
            "name": "x",
            "lat": 40.0,
            "lon": -74.0,
            "alt": 10,
            "tz": -5,
            "dst": "A",
            "tzone": "America/New_York",
        }
    )
    return {
        "flights": pd.DataFrame(rows),
        "weather": pd.DataFrame(weather),
        "planes": planes,
        "airports": airports,
    }


def _hhmm(minutes: float) -> int:
    minutes = int(minutes)
    return (minutes // 60) * 100 + minutes % 60


def write_raw(tables: dict[str, pd.DataFrame], data_dir: Path) -> None:
    """Write the tables in data/'s layout (monthly CSV batches, reference CSVs)."""
    for name in ("flights", "weather"):
        (data_dir / name).mkdir(parents=True, exist_ok=True)
        for (year, month), part in tables[name].groupby(["year", "month"]):
            part.to_csv(data_dir / name / f"{year:04d}-{month:02d}.csv", index=False, na_rep="NA")
    tables["planes"].to_csv(data_dir / "planes.csv", index=False, na_rep="NA")
    tables["airports"].to_csv(data_dir / "airports.csv", index=False, na_rep="NA")


FEATURIZE = {"target_delay_minutes": 30, "cancelled": "late", "lead_minutes": 60, "window_hours": 2}
TRAIN = {
    "seed": 42,
    "learning_rate": 0.1,
    "max_iter": 30,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 10,
    "l2_regularization": 1.0,
    "validation_fraction": 0.1,
    "early_stopping_rounds": 10,
}


def feature_table(months: tuple[int, ...] = (1, 2, 3, 4), per_day: int = 12) -> pd.DataFrame:
    """What the featurize stage makes of :func:`raw_tables` (a fresh copy on every call)."""
    from flightdelay.core.context import build_context
    from flightdelay.core.params import FeaturizeParams
    from flightdelay.pipeline.featurize import featurize

    key = (months, per_day)
    if key not in _FEATURES:
        tables = raw_tables(months=months, per_day=per_day)
        context = build_context(
            tables["flights"], tables["weather"], tables["planes"], tables["airports"]
        )
        _FEATURES[key] = featurize(tables["flights"], context, FeaturizeParams(**FEATURIZE))
    return _FEATURES[key].copy()


_FEATURES: dict[tuple[tuple[int, ...], int], pd.DataFrame] = {}


def work_tree(root: Path, repo_root: Path, months: tuple[int, ...] = (1, 2, 3, 4)) -> Path:
    """A directory laid out like the repository (params.yaml, data/, data.dvc, a passed
    validation summary) with synthetic data and a tiny model config. Run stages with cwd=root."""
    import json

    import yaml

    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    raw["featurize"] = dict(FEATURIZE)
    raw["train"] = dict(TRAIN)
    raw["evaluate"] |= {
        "backtest_months": 2,
        "importance_sample": 200,
        "importance_repeats": 2,
        "min_slice_rows": 50,
    }
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    write_raw(raw_tables(months=months), root / "data")
    (root / "data.dvc").write_text(
        "outs:\n- md5: 0123456789abcdef0123456789abcdef.dir\n  path: data\n"
    )
    summary = root / raw["paths"]["validation"] / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps(PASSED_VALIDATION))  # a whole summary of passed data
    return root


def audit_report(failing: bool = False) -> Any:
    """A small flightdelay.pipeline.audit.AuditReport for the card's and the report's tests."""
    from flightdelay.core.params import AuditParams
    from flightdelay.pipeline.audit import AuditReport, FeatureAudit, LabelCounts, TimeTravel

    flags = ["100.0% of its 2,087 missing rows are late (limit 90%)"] if failing else []
    counts = {
        "source_flights": 252484,
        "without_tailnum": 2087,
        "without_tailnum_cancelled": 2087,
        "modelled": 250397,
        "positives": 47037,
        "positives_cancelled": 4674,
        "positives_diverted": 986,
        "aircraft_unknown": 5071,
    }
    return AuditReport(
        eval_month="2013-09",
        thresholds=AuditParams(
            max_missing_auc=0.65,
            max_single_auc=0.8,
            max_missing_late_share=0.9,
            min_missing_rows=30,
            bins=64,
            time_travel_cutoffs=6,
            time_travel_hours=6,
        ),
        label=[
            LabelCounts(scope="all months", **counts),
            LabelCounts(scope="2013-09", **(counts | {"positives": 2795})),
        ],
        features=[
            FeatureAudit(
                feature="origin_waiting",
                kind="numeric",
                missing_rows=0,
                missing_late_share=None,
                missing_auc=None,
                single_auc=0.7317,
                flags=[],
            ),
            FeatureAudit(
                feature="tail_leg_of_day",
                kind="numeric",
                missing_rows=5071,
                missing_late_share=1.0 if failing else 0.188,
                missing_auc=0.5,
                single_auc=0.562,
                flags=flags,
            ),
        ],
        time_travel=TimeTravel(cutoffs=["2013-09-05T11:05"], flights_checked=2146, changed=[]),
        failures=[f"tail_leg_of_day: {f}" for f in flags],
        passed=not failing,
    )


def labelled_scores(n: int, seed: int = 0, late: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Labels and an informative score (AUC about 0.8)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < late).astype(int)
    signal = rng.normal(0, 1, n) + 1.2 * y
    return y, 1 / (1 + np.exp(-signal))


def noisy_scores(scores: np.ndarray, sd: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logit = np.log(scores / (1 - scores)) + rng.normal(0, sd, len(scores))
    return 1 / (1 + np.exp(-logit))
