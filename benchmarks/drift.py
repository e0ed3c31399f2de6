"""Drift stage versus Evidently 0.7 ``DataDriftPreset``: agreement, speed and memory.

    .venv/bin/python benchmarks/drift.py [--repeats 3] [--quiet]

1. Builds the 2013 feature frame from the upstream package (``flightdelay.core.data.load_upstream``)
   with the pipeline's own code (``read_batches`` -> ``build_context`` -> ``featurize``).
2. Creates (once) a venv for Evidently under ``.bench-venvs/evidently`` (git-ignored):
   evidently 0.7 does not import with pandas 3, so it gets pandas < 3 of its own.
3. Runs the same comparisons in two fresh processes, Evidently's (``_evidently_worker.py``) and
   ours (this file with ``--worker``): every month of 2013 and the whole year, each against
   January-June, on the features the stage tests (declared kinds, calendar columns excluded,
   params.yaml's per-column overrides passed to both).
4. Prints per-column methods, scores, decisions and PSI side by side; times both on the
   full-year frame (median of ``--repeats``) and measures memory: the growth of peak RSS during
   the first full-year call (every allocator), tracemalloc's peak (Python and numpy allocations)
   and the process's max RSS.

Exit status 1 if any method or decision differs or a score differs by more than 1e-6.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".bench-venvs" / "evidently"
REQUIREMENTS = ("evidently==0.7.*", "pandas<3", "pyarrow")
WORKER = Path(__file__).with_name("_evidently_worker.py")
REFERENCE_MONTHS = [f"2013-{m:02d}" for m in range(1, 7)]
TOLERANCE = 1e-6
KIND_OF = {"num": "numeric", "cat": "categorical"}


# ---------------------------------------------------------------- setup


def evidently_python() -> Path:
    """The venv's python, creating the venv (and installing evidently) on first use."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    wanted = "\n".join(REQUIREMENTS)
    if stamp.is_file() and stamp.read_text() == wanted and python.exists():
        return python
    print(f"creating {VENV.relative_to(ROOT)} with {' '.join(REQUIREMENTS)} ...", file=sys.stderr)
    shutil.rmtree(VENV, ignore_errors=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS], check=True)
    stamp.write_text(wanted)
    return python


def full_year_features(workdir: Path) -> Any:
    """2013 features (all twelve months) built with the pipeline's own code."""
    from flightdelay.core.context import build_context
    from flightdelay.core.data import REFERENCE_TABLES, load_upstream
    from flightdelay.core.io import read_batches, read_csv
    from flightdelay.core.params import load_params
    from flightdelay.pipeline.featurize import featurize

    params = load_params(ROOT / "params.yaml")
    upstream = load_upstream()
    data = workdir / "data"
    for month in upstream.months():
        for rel, content in upstream.batch(month).items():
            (data / rel).parent.mkdir(parents=True, exist_ok=True)
            (data / rel).write_bytes(content)
    for name in REFERENCE_TABLES:
        (data / name).write_bytes(upstream.reference[name])
    flights = read_batches(data / "flights")
    context = build_context(
        flights,
        read_batches(data / "weather"),
        read_csv(data / "planes.csv"),
        read_csv(data / "airports.csv"),
    )
    return featurize(flights, context, params.featurize)


def make_job(workdir: Path, repeats: int) -> dict[str, Any]:
    from flightdelay.core.params import load_params
    from flightdelay.pipeline.stattests import declared_kinds

    drift_params = load_params(ROOT / "params.yaml").drift
    started = time.perf_counter()
    frame = full_year_features(workdir)
    print(
        f"features: {len(frame)} flights built in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    kinds = {c: k for c, k in declared_kinds().items() if c not in drift_params.calendar_columns}
    frame_path = workdir / "features.parquet"
    frame.loc[:, ["month", *kinds]].to_parquet(frame_path, index=False)
    months = sorted(frame["month"].unique())
    return {
        "frame": str(frame_path),
        "numeric": [c for c, k in kinds.items() if k == "numeric"],
        "categorical": [c for c, k in kinds.items() if k == "categorical"],
        "methods": {c: o.method for c, o in drift_params.columns.items() if o.method},
        "thresholds": {
            c: o.threshold for c, o in drift_params.columns.items() if o.threshold is not None
        },
        "drift_share": drift_params.drift_share,
        "calendar_columns": list(drift_params.calendar_columns),
        "reference_months": REFERENCE_MONTHS,
        "comparisons": {**{m: [m] for m in months}, "2013 (full year)": months},
        "repeats": repeats,
    }


# ---------------------------------------------------------------- our worker (fresh process)


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


def worker(job_path: Path, out_path: Path) -> int:
    import pandas as pd

    from flightdelay.core.params import load_params
    from flightdelay.pipeline.feature_drift import dataset_drift
    from flightdelay.pipeline.stattests import infer_kind

    job = json.loads(job_path.read_text())
    features = job["numeric"] + job["categorical"]
    kinds = {
        **dict.fromkeys(job["numeric"], "numeric"),
        **dict.fromkeys(job["categorical"], "categorical"),
    }
    # params.yaml's drift section, as the stage uses it; the job's frame has no calendar column.
    params = load_params(ROOT / "params.yaml").drift.model_copy(update={"calendar_columns": ()})
    frame = pd.read_parquet(job["frame"])
    reference = frame.loc[frame["month"].isin(job["reference_months"]), features]
    reference = reference.reset_index(drop=True)
    out: dict[str, Any] = {
        "versions": {"pandas": pd.__version__},
        "inferred": {c: infer_kind(reference[c]) for c in features},
        "comparisons": {},
    }
    current = frame[features].reset_index(drop=True)  # the full-year frame
    # First, before other calls grow the allocator's pool: the high-water mark it adds.
    rss_growth = peak_rss_during(
        lambda: dataset_drift(reference, current, kinds, params)  # type: ignore[arg-type]
    )
    for name, months in job["comparisons"].items():
        batch = frame.loc[frame["month"].isin(months), features].reset_index(drop=True)
        result = dataset_drift(reference, batch, kinds, params)  # type: ignore[arg-type]
        out["comparisons"][name] = {
            "columns": {
                c.column: {
                    "method": c.method,
                    "threshold": c.threshold,
                    "score": c.score,
                    "drifted": c.drifted,
                    "psi": c.psi,
                }
                for c in result.columns
            },
            "dataset": {"n_drifted": result.n_drifted, "share": result.share_drifted},
        }
    seconds = []
    for _ in range(job["repeats"]):
        started = time.perf_counter()
        dataset_drift(reference, current, kinds, params)  # type: ignore[arg-type]
        seconds.append(time.perf_counter() - started)
    tracemalloc.start()
    dataset_drift(reference, current, kinds, params)  # type: ignore[arg-type]
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
    out_path.write_text(json.dumps(out, indent=1))
    return 0


# ---------------------------------------------------------------- comparison


def compare(ours: dict[str, Any], theirs: dict[str, Any], quiet: bool) -> tuple[int, int, float]:
    """Print side by side; return (columns compared, disagreements, max |score difference|)."""
    compared = disagreements = 0
    worst = 0.0
    header = (
        f"{'column':34} {'method':13} {'ours':>13} {'evidently':>13} {'|diff|':>8} "
        f"{'drift o/e':>9} {'psi |diff|':>10}"
    )
    for name, mine in ours["comparisons"].items():
        other = theirs["comparisons"][name]
        lines = []
        for column, o in mine["columns"].items():
            e = other["columns"][column]
            diff = abs(o["score"] - e["score"])
            psi_diff = abs(o["psi"] - e["psi"])
            agree = (
                o["method"] == e["method"]
                and o["drifted"] == e["drifted"]
                and diff <= TOLERANCE
                and psi_diff <= TOLERANCE
                and abs(o["threshold"] - e["threshold"]) <= 1e-12
            )
            compared += 1
            disagreements += not agree
            worst = max(worst, diff)
            method = o["method"] if o["method"] == e["method"] else f"{o['method']}/{e['method']}"
            flag = "" if agree else "  <-- DISAGREE"
            lines.append(
                f"{column:34} {method:13} {o['score']:13.8g} {e['score']:13.8g} {diff:8.1e} "
                f"{'Y' if o['drifted'] else 'n':>5}/{'Y' if e['drifted'] else 'n'}   "
                f"{psi_diff:10.1e}{flag}"
            )
        d_o, d_e = mine["dataset"], other["dataset"]
        same_share = abs(d_o["share"] - d_e["share"]) <= 1e-12
        disagreements += not same_share
        if not quiet or name.startswith("2013 (") or any("DISAGREE" in ln for ln in lines):
            print(
                f"\n== {name} vs {REFERENCE_MONTHS[0]}..{REFERENCE_MONTHS[-1]}: drifted "
                f"{d_o['n_drifted']}/{len(mine['columns'])} (share {d_o['share']:.3f}) ours, "
                f"{int(d_e['n_drifted'])} (share {d_e['share']:.3f}) evidently"
            )
            print(header)
            print(
                "\n".join(lines if not quiet else [ln for ln in lines if "DISAGREE" in ln] or lines)
            )
    return compared, disagreements, worst


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 1024 / 1024:.0f} MiB"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (median)")
    parser.add_argument(
        "--quiet", action="store_true", help="print only the full-year table and any disagreement"
    )
    parser.add_argument("--worker", nargs=2, metavar=("JOB", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(Path(args.worker[0]), Path(args.worker[1]))

    python = evidently_python()
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        workdir = Path(tmp)
        job = make_job(workdir, args.repeats)
        job_path = workdir / "job.json"
        job_path.write_text(json.dumps(job))
        outputs = {}
        for side, cmd in {
            "evidently": [str(python), str(WORKER)],
            "ours": [sys.executable, str(Path(__file__).resolve()), "--worker"],
        }.items():
            out = workdir / f"{side}.json"
            started = time.perf_counter()
            subprocess.run([*cmd, str(job_path), str(out)], check=True)
            print(f"{side}: done in {time.perf_counter() - started:.1f}s", file=sys.stderr)
            outputs[side] = json.loads(out.read_text())
    ours, theirs = outputs["ours"], outputs["evidently"]

    compared, disagreements, worst = compare(ours, theirs, args.quiet)
    kind_mismatch = [
        c for c, k in ours["inferred"].items() if k != KIND_OF.get(theirs["inferred"][c])
    ]
    to, te = ours["timing"], theirs["timing"]
    print(
        f"\nversions: evidently {theirs['versions']['evidently']} (pandas "
        f"{theirs['versions']['pandas']}), ours with pandas {ours['versions']['pandas']}"
    )
    print(
        f"features compared: {len(job['numeric'])} numeric + {len(job['categorical'])} "
        f"categorical; excluded (calendar): {', '.join(job['calendar_columns']) or 'none'}"
    )
    print(
        f"agreement: {compared - disagreements}/{compared} column comparisons agree "
        f"(method, decision, score and PSI within {TOLERANCE:g}) over "
        f"{len(job['comparisons'])} comparisons; max |score diff| {worst:.2e}"
    )
    print(
        f"type inference (Evidently's rules, reference frame): "
        f"{len(ours['inferred']) - len(kind_mismatch)}/{len(ours['inferred'])} agree"
        + (f"; differ: {kind_mismatch}" if kind_mismatch else "")
    )
    print(
        f"speed, full-year frame ({len(job['reference_months'])} reference months vs all "
        f"{len(job['comparisons']) - 1} months): evidently {te['median_seconds']:.2f}s, ours "
        f"{to['median_seconds']:.3f}s (median of {job['repeats']}): "
        f"{te['median_seconds'] / to['median_seconds']:.1f}x faster"
    )
    print(
        f"memory of the call: peak RSS growth evidently {_mib(te['peak_rss_growth_bytes'])}, "
        f"ours {_mib(to['peak_rss_growth_bytes'])}; tracemalloc peak evidently "
        f"{_mib(te['tracemalloc_peak_bytes'])}, ours {_mib(to['tracemalloc_peak_bytes'])}"
    )
    print(
        f"memory of the process (max RSS): evidently {_mib(te['max_rss_bytes'])}, ours "
        f"{_mib(to['max_rss_bytes'])}; the frames themselves (reference + current, deep): "
        f"evidently {_mib(te['frame_bytes'])}, ours {_mib(to['frame_bytes'])}"
    )
    return 1 if disagreements or kind_mismatch else 0


if __name__ == "__main__":
    raise SystemExit(main())
