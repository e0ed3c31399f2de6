"""Evidently side of ``benchmarks/drift.py``; runs in its own venv (evidently 0.7, pandas < 3).

Standalone on purpose: it must not import ``flightdelay`` (pandas 3). Reads the job JSON written
by ``benchmarks/drift.py``, runs ``DataDriftPreset`` (defaults, or the per-column overrides of
params.yaml) on each comparison and writes per-column results, timings and memory as JSON.

usage: python _evidently_worker.py JOB.json OUT.json
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.datasets import infer_column_type
from evidently.legacy.calculations.stattests import psi_stat_test
from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
from evidently.legacy.core import ColumnType
from evidently.presets import DataDriftPreset

NAME_BY_DISPLAY = {
    test.display_name: name
    for name, by_type in _registered_stat_tests.items()
    for test in by_type.values()
}


def peak_rss_during(call) -> int | None:
    """Growth of the resident set's high-water mark during ``call()`` (Linux: VmHWM is reset
    through /proc/self/clear_refs), counting every allocator (numpy, Arrow, pandas); else None."""

    def status(key: str) -> int:
        with open("/proc/self/status") as fh:
            line = next(ln for ln in fh if ln.startswith(key + ":"))
        return int(line.split()[1]) * 1024

    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        before = status("VmRSS")
    except OSError:
        call()
        return None
    call()
    return status("VmHWM") - before


def run_preset(job: dict, reference: pd.DataFrame, current: pd.DataFrame):
    definition = DataDefinition(
        numerical_columns=job["numeric"], categorical_columns=job["categorical"]
    )
    preset = DataDriftPreset(
        per_column_method=job["methods"] or None,
        per_column_threshold=job["thresholds"] or None,
        drift_share=job["drift_share"],
    )
    return Report([preset], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )


def results(snapshot, reference: pd.DataFrame, current: pd.DataFrame, job: dict) -> dict:
    data = snapshot.dict()
    columns: dict[str, dict] = {}
    dataset: dict = {}
    for metric in data["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            columns[config["column"]] = {
                "method": NAME_BY_DISPLAY.get(config["method"], config["method"]),
                "threshold": config["threshold"],
                "score": float(metric["value"]),
            }
        elif config["type"].endswith("DriftedColumnsCount"):
            dataset = {"n_drifted": metric["value"]["count"], "share": metric["value"]["share"]}
    for test in data["tests"]:
        if test["id"] == "drift":
            columns[test["metric_config"]["params"]["column"]]["drifted"] = test["status"] == "FAIL"
    # PSI is an extra column of the stage: Evidently's own PSI on the same cleaned samples.
    for name, entry in columns.items():
        kind = ColumnType.Numerical if name in job["numeric"] else ColumnType.Categorical
        ref = reference[name].replace([-np.inf, np.inf], np.nan).dropna()
        cur = current[name].replace([-np.inf, np.inf], np.nan).dropna()
        entry["psi"] = float(psi_stat_test(ref, cur, kind, None).drift_score)
    return {"columns": columns, "dataset": dataset}


def main() -> int:
    job_path, out_path = sys.argv[1], sys.argv[2]
    with open(job_path) as fh:
        job = json.load(fh)
    warnings.simplefilter("ignore")
    frame = pd.read_parquet(job["frame"])
    features = job["numeric"] + job["categorical"]
    reference = frame.loc[frame["month"].isin(job["reference_months"]), features]
    reference = reference.reset_index(drop=True)
    out: dict = {
        "versions": {"evidently": __import__("evidently").__version__, "pandas": pd.__version__},
        "inferred": {c: infer_column_type(reference[c]).value for c in features},
        "comparisons": {},
    }
    current = frame[features].reset_index(drop=True)  # the full-year frame
    # First, before other calls grow the allocator's pool: the high-water mark it adds.
    rss_growth = peak_rss_during(lambda: run_preset(job, reference, current))
    for name, months in job["comparisons"].items():
        batch = frame.loc[frame["month"].isin(months), features].reset_index(drop=True)
        out["comparisons"][name] = results(run_preset(job, reference, batch), reference, batch, job)
    seconds = []
    for _ in range(job["repeats"]):
        started = time.perf_counter()
        run_preset(job, reference, current)
        seconds.append(time.perf_counter() - started)
    tracemalloc.start()
    run_preset(job, reference, current)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out["timing"] = {
        "peak_rss_growth_bytes": rss_growth,
        "seconds": seconds,
        "median_seconds": statistics.median(seconds),
        "tracemalloc_peak_bytes": peak,
        "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "frame_bytes": int(
            current.memory_usage(deep=True).sum() + reference.memory_usage(deep=True).sum()
        ),
    }
    with open(out_path, "w") as fh:
        json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
