"""Model quality on two public protocols, with the pipeline's own feature and model code.

    .venv/bin/python benchmarks/quality.py [--json out.json]

Data: the full year 2013 straight from the upstream package
(``flightdelay.core.data.load_upstream``),
so no data pull request is needed. Rows and target as in the recipe: flights with a known arrival
delay and a weather record at (origin, time_hour) (325,819 rows), ``arr_delay >= 30``. Features of
every flight still use the whole departures log (cancelled flights included) as context, and are
the pipeline's: weather last observed by the prediction time, 2% of flights with the aircraft
unknown (``featurize`` in params.yaml). Figures: before that change (weather at the scheduled
hour, every aircraft known) (a) 0.8208 and (b) 0.7859; after it (a) 0.8194 and (b) 0.7839.

(a) tidymodels "Preprocess your data with recipes" (tidymodels.org/start/recipes): random 3/4
    split (seed 222) of the 325,819 rows with a known arrival delay; the published logistic
    regression reaches ROC AUC 0.764 using ``dep_time`` and ``air_time``, which we never use.
    R's RNG cannot be reproduced in numpy, so our split is a different random 3/4 (seed 222).
(b) temporal: train January-September, test October-December.

Columns: the reference, a plain HistGradientBoosting on the schedule/weather/aircraft/calendar
features only (no operational state), and the pipeline's model (``train.make_pipeline`` with
params.yaml's ``train`` section, features from ``features.build_features`` with its
``featurize`` section). Acceptance: (a) > 0.764 and (b) >= 0.75 ROC AUC.
"""

from __future__ import annotations

import os

# Before sklearn loads libgomp: busy-waiting OpenMP threads crawl on a shared 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import io
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, roc_auc_score

from flightdelay.core.context import build_context
from flightdelay.core.data import load_upstream
from flightdelay.core.features import CATEGORICAL_FEATURES, FEATURE_COLUMNS
from flightdelay.core.io import NA_VALUES
from flightdelay.core.params import load_params
from flightdelay.pipeline.featurize import TARGET, featurize
from flightdelay.pipeline.train import fit, score

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = {"a": 0.764, "b": None}
ACCEPT = {"a": ("> ", 0.764), "b": (">=", 0.75)}
OPERATIONAL_PREFIXES = ("origin_recent", "origin_waiting", "dest_recent", "carrier_origin", "tail_")
PLAIN_COLUMNS = [c for c in FEATURE_COLUMNS if not c.startswith(OPERATIONAL_PREFIXES)]


def upstream_tables() -> dict[str, pd.DataFrame]:
    up = load_upstream()

    def read(text: str) -> pd.DataFrame:
        return pd.read_csv(io.StringIO(text), na_values=NA_VALUES, keep_default_na=False)

    def year(table: str) -> pd.DataFrame:
        parts = up.batched[table]
        return pd.concat([read(parts[m]) for m in sorted(parts)], ignore_index=True)

    return {
        "flights": year("flights"),
        "weather": year("weather"),
        "planes": read(up.reference["planes.csv"].decode()),
        "airports": read(up.reference["airports.csv"].decode()),
    }


def plain_hgb(train: pd.DataFrame, seed: int) -> HistGradientBoostingClassifier:
    """A plain HGB: default settings, native categoricals, no operational-state features."""
    model = HistGradientBoostingClassifier(random_state=seed, categorical_features="from_dtype")
    return model.fit(_plain(train), train[TARGET].to_numpy())


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    x = frame.loc[:, PLAIN_COLUMNS].copy()
    for column in CATEGORICAL_FEATURES:
        x[column] = x[column].astype("category")
    return x


def run(protocol: str, train: pd.DataFrame, test: pd.DataFrame, params: Any) -> dict[str, Any]:
    started = time.perf_counter()
    y = test[TARGET].to_numpy()
    pipeline = fit(train, params.train)
    ours = score(pipeline, test)
    # Categories must match between train and test for from_dtype: fix them from the union.
    both = pd.concat([train, test])
    for column in CATEGORICAL_FEATURES:
        cats = both[column].astype("category").cat.categories
        train = train.assign(**{column: pd.Categorical(train[column], categories=cats)})
        test = test.assign(**{column: pd.Categorical(test[column], categories=cats)})
    plain = plain_hgb(train, params.train.seed).predict_proba(_plain(test))[:, 1]
    return {
        "protocol": protocol,
        "train_rows": len(train),
        "test_rows": len(test),
        "test_late_share": float(y.mean()),
        "reference_roc_auc": REFERENCE[protocol],
        "plain_hgb_roc_auc": float(roc_auc_score(y, plain)),
        "roc_auc": float(roc_auc_score(y, ours)),
        "pr_auc": float(average_precision_score(y, ours)),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    params = load_params(args.params)
    params = params.model_copy(
        update={
            "featurize": params.featurize.model_copy(
                update={"target_delay_minutes": 30, "cancelled": "drop"}
            )
        }
    )
    tables = upstream_tables()
    context = build_context(
        tables["flights"], tables["weather"], tables["planes"], tables["airports"]
    )
    frame = featurize(tables["flights"], context, params.featurize)
    # The recipe inner-joins weather on (origin, time_hour) before na.omit(): same row set.
    weather_keys = pd.MultiIndex.from_frame(tables["weather"][["origin", "time_hour"]])
    known = tables["flights"].loc[tables["flights"]["arr_delay"].notna()]
    has_weather = pd.MultiIndex.from_frame(known[["origin", "time_hour"]]).isin(weather_keys)
    frame = frame.loc[has_weather].reset_index(drop=True)
    print(
        f"{len(frame):,} flights of 2013 with a known arrival delay and an hourly weather "
        f"record, {len(FEATURE_COLUMNS)} "
        f"features ({time.perf_counter() - started:.1f}s)",
        file=sys.stderr,
    )

    rng = np.random.default_rng(222)
    in_train = np.zeros(len(frame), dtype=bool)
    in_train[rng.permutation(len(frame))[: int(len(frame) * 3 / 4)]] = True
    results = [
        run("a", frame[in_train], frame[~in_train], params),
        run("b", frame[frame["month"] <= "2013-09"], frame[frame["month"] >= "2013-10"], params),
    ]

    names = {"a": "(a) tidymodels: random 3/4, seed 222", "b": "(b) train Jan-Sep, test Oct-Dec"}
    print(
        f"\n{'protocol':<40} {'train':>8} {'test':>7} {'late':>6} {'reference':>10} "
        f"{'plain HGB':>10} {'ours':>7} {'PR AUC':>7}  acceptance"
    )
    ok = True
    for r in results:
        op, bar = ACCEPT[r["protocol"]]
        passed = r["roc_auc"] > bar if op.strip() == ">" else r["roc_auc"] >= bar
        ok &= passed
        ref = f"{r['reference_roc_auc']:.3f}" if r["reference_roc_auc"] else "-"
        print(
            f"{names[r['protocol']]:<40} {r['train_rows']:>8,} {r['test_rows']:>7,} "
            f"{r['test_late_share']:>6.3f} {ref:>10} {r['plain_hgb_roc_auc']:>10.4f} "
            f"{r['roc_auc']:>7.4f} {r['pr_auc']:>7.4f}  ROC AUC {op}{bar}: "
            f"{'pass' if passed else 'FAIL'}"
        )
    print(
        f"\nROC AUC; reference (a) = published logistic regression with dep_time and air_time. "
        f"Total {time.perf_counter() - started:.0f}s."
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
