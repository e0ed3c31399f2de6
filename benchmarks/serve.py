"""``flightdelay serve`` versus ``mlflow models serve`` on the same model, loaded by wrk.

    .venv/bin/python benchmarks/serve.py [--model-dir outputs/model] [--duration 10]
        [--workers 1] [--mlflow-omp-threads N] [--json results.json]

1. Copies the model directory (a snapshot: the pipeline may retrain meanwhile) and saves its
   Pipeline as an MLflow model (skops, the same trusted types, ``predict_proba``) in a temporary
   directory.
2. Serves it with ``mlflow models serve --env-manager local`` and then with ``flightdelay
   serve``, one after the other, each with ``--workers`` processes, on loopback only.
3. For each: checks that both return the same probabilities for the same flights, warms up,
   then runs ``wrk`` (installed with ``apt-get install -y wrk``) for ``--duration`` seconds per
   case: one flight per request at 1 and 8 connections, and 1,000 flights per request at 1.
4. Prints req/s, p50, p99, rows/s and the servers' CPU time per request side by side, with the
   load average of the machine (other work on it competes for the same cores: latency and
   throughput depend on it, CPU time per request much less).

Not the same work: MLflow's pyfunc takes the *feature* frame, so it is sent the 37 feature
columns the pipeline takes, already built; ``flightdelay serve`` is sent the raw flight
(11 fields) and validates it, builds the features (``build_features``: weather, congestion,
recent delays from the context) and then scores. Its numbers include that extra work.

Before the servers, in the same run (``--scoring-only`` stops there):

5. Scoring libraries, in process, on the same flights, each fed as the service would feed it:
   scikit-learn's ``pipeline.predict_proba`` and ``FastPredictor`` (fast_predict.py, private
   scikit-learn and pandas internals) take build_features' frame; treelite (a maintained tree
   runtime, ``flightdelay.serving.scoring``: interpreted by GTIL, and compiled by tl2cgen when gcc
   is there; its compile on a first start and its load from the scorer cache are timed) takes
   feature_arrays' columns, encoded with the fitted encoders' public ``categories_`` (encoding
   and the runtime's call alone are shown too). ONNX Runtime is tried
   through skl2onnx when installed (it cannot convert a categorical HistGradientBoosting). p50
   and p99 per call for 1 and 1,000 rows, the largest score difference from scikit-learn, and
   the rule's verdict: FastPredictor is kept only if its p99 is at least 2x better than the
   best maintained library's in both cases.
6. Where a 1,000-flight request's time goes inside the service (p50 per stage): the body read
   into columns (``batch_columns``; pydantic's validation, which unusual bodies take, beside it),
   the raw frame, row checks and warnings, feature_arrays from the context tables, scoring, the
   response's JSON.

Exit status 1 if a server fails to start, answers an error, or the scores differ (beyond
``flightdelay.serving.scoring.SCORE_TOLERANCE`` for ``flightdelay serve``, whose treelite scorer
adds the trees in another order than scikit-learn).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BATCH_ROWS = 1000
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {{"requests": %d, "duration_us": %d, "p50_us": %.1f, "p99_us": %.1f, '
    .. '"max_us": %.1f, "status_errors": %d, "socket_errors": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class Case:
    name: str
    rows: int
    connections: int


CASES = (
    Case("1 flight/request, 1 connection", 1, 1),
    Case("1 flight/request, 8 connections", 1, 8),
    Case(f"{BATCH_ROWS:,} flights/request, 1 connection", BATCH_ROWS, 1),
)


@dataclass
class Result:
    server: str
    case: str
    rows: int
    connections: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    rows_per_s: float
    cpu_ms_per_request: float  # server processes' CPU time / requests: little affected by load
    load_before: float
    load_after: float


class BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------- inputs


def flights_from_context(context: Any, n: int, seed: int = 0) -> pd.DataFrame:
    """Realistic raw flights: real scheduled departures (carrier, tail, route, date) of the
    model's context, with a plausible arrival time and distance."""
    rng = np.random.default_rng(seed)
    departures = context.departures.dropna(subset=["sched_dep_at", "tailnum"])
    picked = departures.iloc[rng.choice(len(departures), n, replace=False)]
    at = pd.to_datetime(picked["sched_dep_at"])
    arrive = at + pd.to_timedelta(rng.integers(60, 360, n), unit="min")
    return pd.DataFrame(
        {
            "year": at.dt.year.to_numpy(np.int64),
            "month": at.dt.month.to_numpy(np.int64),
            "day": at.dt.day.to_numpy(np.int64),
            "sched_dep_time": (at.dt.hour * 100 + at.dt.minute).to_numpy(np.int64),
            "sched_arr_time": (arrive.dt.hour * 100 + arrive.dt.minute).to_numpy(np.int64),
            "carrier": picked["carrier"].astype(str).to_numpy(object),
            "flight": rng.integers(1, 3000, n),
            "tailnum": picked["tailnum"].astype(str).to_numpy(object),
            "origin": picked["origin"].astype(str).to_numpy(object),
            "dest": picked["dest"].astype(str).to_numpy(object),
            "distance": rng.choice([213.0, 502.0, 733.0, 1028.0, 1400.0, 2475.0], n),
        }
    )


def raw_records(flights: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in flights.to_dict("records")
    ]


def feature_split(features: pd.DataFrame) -> dict[str, Any]:
    """MLflow's ``dataframe_split`` payload of the feature frame (NaN as null)."""
    data = features.astype(object).where(features.notna(), None).to_numpy().tolist()
    return {"dataframe_split": {"columns": list(features.columns), "data": data}}


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: Any, timeout: float = 60) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


@contextmanager
def running(
    command: list[str], ready_url: str, log: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server in its own process group; stop that group (and only it) afterwards."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 180
            while True:
                if process.poll() is not None:
                    raise BenchError(f"{command[0]} exited: {log.read_text()[-2000:]}")
                try:
                    with urllib.request.urlopen(ready_url, timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise BenchError(f"{ready_url} not ready after 180 s")
                time.sleep(0.5)
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def wrk(url: str, body: Any, connections: int, duration: float, work: Path) -> dict[str, Any]:
    script = work / f"body-{abs(hash(json.dumps(body)))}.lua"
    script.write_text(LUA.format(body=json.dumps(body, separators=(",", ":"))))
    command = [
        "wrk",
        f"-t{min(connections, 2)}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed: {done.stdout}{done.stderr}")
    result = json.loads(line[len("RESULT ") :])
    if result["status_errors"] or result["socket_errors"]:
        raise BenchError(
            f"{url}: {result['status_errors']} non-2xx and "
            f"{result['socket_errors']} socket errors under load"
        )
    return dict(result)


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) used so far by every live process of a process group."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # after the command: state, ppid, pgrp, ..., utime, stime
            total += int(fields[11]) + int(fields[12])
    return total / tick


def measure(
    server: str, url: str, bodies: dict[int, Any], duration: float, work: Path, pgid: int
) -> list[Result]:
    wrk(url, bodies[1], 8, min(3.0, duration), work)  # warm-up, not recorded
    results = []
    for case in CASES:
        before, cpu = os.getloadavg()[0], group_cpu_seconds(pgid)
        r = wrk(url, bodies[case.rows], case.connections, duration, work)
        cpu_ms = (group_cpu_seconds(pgid) - cpu) * 1000 / max(r["requests"], 1)
        rps = r["requests"] / (r["duration_us"] / 1e6)
        results.append(
            Result(
                server,
                case.name,
                case.rows,
                case.connections,
                round(rps, 1),
                round(r["p50_us"] / 1000, 2),
                round(r["p99_us"] / 1000, 2),
                round(r["max_us"] / 1000, 2),
                round(rps * case.rows, 0),
                round(cpu_ms, 3),
                round(before, 2),
                round(os.getloadavg()[0], 2),
            )
        )
        print(
            f"  {server:<7} {case.name:<35} {rps:8.1f} req/s  p50 {r['p50_us'] / 1000:6.2f} ms"
            f"  p99 {r['p99_us'] / 1000:6.2f} ms  CPU {cpu_ms:6.2f} ms/request"
            f"  (load {before:.2f})",
            flush=True,
        )
    return results


# ---------------------------------------------------------------- scoring libraries, profile


def percentiles_ms(fn: Any, arg: Any, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - started)
    ms = np.asarray(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def scoring_comparison(bundle: Any, flights: pd.DataFrame, repeats: int) -> bool:
    """Print the scoring libraries side by side; True if FastPredictor earns its keep."""
    from flightdelay.core.features import build_features, feature_arrays
    from flightdelay.serving.fast_predict import FastPredictor
    from flightdelay.serving.scoring import TreeliteScorer, c_compiler

    pipeline, key = bundle.pipeline, bundle.metadata["sha256"]
    frame = build_features(flights, bundle.context, bundle.featurize_params)
    arrays = feature_arrays(flights, bundle.context, bundle.featurize_params)
    frames = {1: frame.head(1), len(frame): frame}
    columns = {1: {k: v[:1] for k, v in arrays.items()}, len(frame): arrays}
    fast = FastPredictor.compile(pipeline)
    gtil = TreeliteScorer.compile(pipeline, key, compiler=False)
    # name -> (scorer, its inputs by rows): each as the service would call it (FastPredictor
    # took build_features' frame; the treelite scorer takes feature_arrays' columns)
    scorers: dict[str, tuple[Any, dict[int, Any]]] = {
        "sklearn predict_proba": (lambda x: np.asarray(pipeline.predict_proba(x)[:, 1]), frames),
        "FastPredictor (private internals)": (fast.predict_proba, frames),
        "treelite GTIL": (gtil.predict_proba, columns),
    }
    maintained = ["treelite GTIL"]
    compiled, compile_s, load_s = None, 0.0, 0.0
    if c_compiler() is not None:
        from flightdelay.serving.compiled import CACHE_ENV

        # An empty scorer cache: the compile a first start pays; then a restart's load from it.
        os.environ[CACHE_ENV] = tempfile.mkdtemp(prefix="bench-scorer-")
        started = time.perf_counter()
        compiled = TreeliteScorer.compile(pipeline, key, compiler=True)
        compile_s = time.perf_counter() - started
        started = time.perf_counter()
        compiled = TreeliteScorer.compile(pipeline, key, compiler=True)
        load_s = time.perf_counter() - started
        shutil.rmtree(os.environ.pop(CACHE_ENV), ignore_errors=True)
        scorers["treelite + tl2cgen (compiled)"] = (compiled.predict_proba, columns)
        maintained.append("treelite + tl2cgen (compiled)")
    encoded = {n: gtil.matrix(c) for n, c in columns.items()}
    parts: dict[str, tuple[Any, dict[int, Any]]] = {
        "  of which encoding (categories_)": (gtil.matrix, columns),
        "  of which the GTIL call": (gtil._predict, encoded),
    }
    if compiled is not None:
        parts["  of which the tl2cgen call"] = (compiled._predict, encoded)

    expected = scorers["sklearn predict_proba"][0](frame)
    print(f"\nscoring libraries (in process, 1 thread, {repeats} calls per cell; ms per call)")
    print(f"  {'scorer':<36} {'1 row p50':>9} {'p99':>7} {'1,000 p50':>9} {'p99':>7}  max |diff|")
    p99: dict[str, list[float]] = {}
    for name, (scorer, inputs) in {**scorers, **parts}.items():
        one = percentiles_ms(scorer, inputs[1], repeats)
        many = percentiles_ms(scorer, inputs[len(frame)], max(5, repeats // 10))
        p99[name] = [one[1], many[1]]
        diff = ""
        if name in scorers:
            diff = f"{float(np.max(np.abs(scorer(inputs[len(frame)]) - expected))):.2e}"
        print(f"  {name:<36} {one[0]:9.3f} {one[1]:7.3f} {many[0]:9.3f} {many[1]:7.3f}  {diff}")
    print(f"  ONNX Runtime via skl2onnx: {onnx_conversion(pipeline, encoded[1])}")
    if compiled is not None:
        print(
            f"  tl2cgen at start-up: compile {compile_s:.1f} s (gcc, first start of a model), "
            f"load from the scorer cache {load_s:.2f} s (restarts, the image)"
        )
    best = [min(p99[n][i] for n in maintained) for i in (0, 1)]
    ratios = [best[i] / p99["FastPredictor (private internals)"][i] for i in (0, 1)]
    keep = all(r >= 2.0 for r in ratios)
    print(
        f"  best maintained p99 / FastPredictor p99: {ratios[0]:.2f} (1 row), "
        f"{ratios[1]:.2f} (1,000 rows) -> "
        + ("keep FastPredictor (>= 2 in both)" if keep else "switch to the maintained library")
    )
    return keep


def onnx_conversion(pipeline: Any, encoded: np.ndarray) -> str:
    """Whether skl2onnx converts the classifier (installed for this comparison only)."""
    try:
        from skl2onnx import to_onnx
    except ImportError:
        return "not installed (pip install skl2onnx onnxruntime)"
    try:
        to_onnx(pipeline.steps[-1][1], encoded, target_opset={"": 21, "ai.onnx.ml": 5})
    except Exception as exc:  # what a caller of skl2onnx sees
        first = str(exc).splitlines()[0][:60]
        return f"cannot convert this model ({type(exc).__name__}: {first}...)"
    return "converts (not measured: add it here)"


def profile_batch(bundle: Any, flights: pd.DataFrame, repeats: int) -> None:
    """p50 of each stage of a 1,000-flight /predict inside the service (no HTTP), as app.predict
    runs them."""
    import orjson
    from pydantic import Field, TypeAdapter

    from flightdelay.core.features import build_features, feature_arrays
    from flightdelay.core.schemas import Flight
    from flightdelay.serving.app import FAST_BATCH_BYTES
    from flightdelay.serving.model_service import ModelService, to_columns, to_frame
    from flightdelay.serving.request_checks import batch_columns, duplicate_key
    from flightdelay.serving.settings import ServeSettings

    settings = ServeSettings.from_env()  # the service's own thread settings
    service = ModelService(
        bundle, n_threads=settings.model_threads, batch_threads=settings.large_call_threads()
    )
    body = json.dumps(raw_records(flights)).encode()
    many = TypeAdapter(Annotated[list[Flight], Field(min_length=1)])

    def pydantic_columns(body: bytes) -> Any:  # app.parse's path for an unusual body
        rows = many.validate_json(body)
        duplicate_key(body, len(rows) * 11)
        return to_columns(rows)

    def parse(body: bytes) -> Any:  # app.parse on a valid batch
        columns = batch_columns(body) if len(body) >= FAST_BATCH_BYTES else None
        return pydantic_columns(body) if columns is None else columns

    def response(scores: np.ndarray, warnings: list[list[str]]) -> bytes:  # app.predict's
        late = (scores >= service.threshold).tolist()
        return orjson.dumps(
            {
                "predictions": [
                    {"probability": p, "late": lt, "warnings": w}
                    for p, lt, w in zip(scores.tolist(), late, warnings, strict=True)
                ]
            }
        )

    columns = parse(body)
    frame = to_frame(columns)
    arrays = feature_arrays(frame, service.context, service.params, checked=True)
    scores = service.predict(columns, checked=True)
    warnings = service.warnings(columns)
    if service.scorer is not None:
        score = service.scorer.predict_proba
    else:
        features = build_features(frame, service.context, service.params)
        score = lambda _: service._pipeline_scores(features)  # noqa: E731
    stages = {
        "body -> columns (batch_columns)": lambda _: parse(body),
        "columns -> frame": lambda _: to_frame(columns),
        "row checks + warnings": lambda _: (service.check(columns), service.warnings(columns)),
        "feature_arrays (context tables)": lambda _: feature_arrays(
            frame, service.context, service.params, checked=True
        ),
        f"scoring ({settings.large_call_threads()} thread(s))": lambda _: score(arrays),
        "response (dicts, orjson)": lambda _: response(scores, warnings),
    }
    print(f"\nwhere a {len(flights):,}-flight request's time goes (p50 of {repeats} calls, ms)")
    total = 0.0
    for name, stage in stages.items():
        p50, _ = percentiles_ms(stage, None, repeats)
        total += p50
        print(f"  {name:<36} {p50:8.3f}")
    print(f"  {'sum':<36} {total:8.3f}   (predictor: {service.predictor})")
    p50, _ = percentiles_ms(pydantic_columns, body, repeats)
    print(
        f"  {'(pydantic + duplicate keys instead)':<36} {p50:8.3f}   (unusual bodies, not in sum)"
    )
    former_vs_now(service, frame, columns, repeats * 5)


def former_vs_now(service: Any, frame: pd.DataFrame, columns: Any, repeats: int) -> None:
    """Rows -> scores by the former path (build_features, which checks the rows again, then
    FastPredictor) and by the service's path now, interleaved call by call so that the machine's
    load weighs on both alike."""
    from flightdelay.core.features import build_features
    from flightdelay.serving.fast_predict import FastPredictor

    fast = FastPredictor.compile(service.pipeline)
    for rows in (1, len(frame)):
        part = frame.head(rows)
        cols = {c: values[:rows] for c, values in columns.items()}
        paths = {
            "former: build_features + FastPredictor": lambda part=part: fast.predict_proba(
                build_features(part, service.context, service.params)
            ),
            f"now: feature_arrays + {service.predictor}": lambda cols=cols: service.predict(
                cols, checked=True
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(repeats):
            for name, path in paths.items():
                started = time.perf_counter()
                path()
                times[name].append(time.perf_counter() - started)
        print(f"  features + scores of {rows:,} flight(s), interleaved ({repeats} calls each, ms):")
        for name, values in times.items():
            ms = np.asarray(values) * 1000
            print(
                f"    {name:<44} p50 {np.percentile(ms, 50):7.3f}  p99 {np.percentile(ms, 99):7.3f}"
            )


# ---------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "outputs" / "model")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--workers", type=int, default=1, help="processes, for both servers")
    parser.add_argument(
        "--mlflow-omp-threads",
        type=int,
        help="OMP_NUM_THREADS for the MLflow server (default: its own default)",
    )
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument(
        "--scoring-only",
        action="store_true",
        help="only the in-process scoring comparison and profile, no servers",
    )
    parser.add_argument("--repeats", type=int, default=200, help="calls per in-process cell")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None and not args.scoring_only:
        print("error: wrk not found (apt-get update && apt-get install -y wrk)", file=sys.stderr)
        return 1
    try:
        results = run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if results:
        print_table(results, args)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "load_average_end": os.getloadavg(),
                    "cpus": os.cpu_count(),
                    "workers": args.workers,
                    "results": [asdict(r) for r in results],
                },
                indent=2,
            )
        )
    return 0


def run(args: argparse.Namespace) -> list[Result]:
    from flightdelay.core.features import build_features
    from flightdelay.core.model_io import TRUSTED_TYPES, load_model_bundle
    from flightdelay.serving.scoring import SCORE_TOLERANCE

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        model_dir = work / "model"
        shutil.copytree(args.model_dir, model_dir)
        bundle = load_model_bundle(model_dir)
        flights = flights_from_context(bundle.context, BATCH_ROWS)
        features = build_features(flights, bundle.context, bundle.featurize_params)
        expected = bundle.pipeline.predict_proba(features)[:, 1]
        ours = {1: raw_records(flights.head(1))[0], BATCH_ROWS: raw_records(flights)}
        theirs = {1: feature_split(features.head(1)), BATCH_ROWS: feature_split(features)}
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        print(
            f"model {args.model_dir} (sha256 {bundle.metadata['sha256'][:12]}), "
            f"{os.cpu_count()} CPUs, {args.workers} worker(s) each, {args.duration:g} s per "
            f"case, load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        scoring_comparison(bundle, flights, args.repeats)
        profile_batch(bundle, flights, max(10, args.repeats // 10))
        results: list[Result] = []
        if args.scoring_only:
            return results
        if not args.skip_mlflow:
            results += run_mlflow(
                args, bundle, features, theirs, expected, env, work, TRUSTED_TYPES
            )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [
            str(BIN / "flightdelay"),
            "serve",
            "--model-dir",
            str(model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
        ]
        with running(command, url + "/ready", work / "ours.log", env) as process:
            got = [
                p["probability"] for p in post(url + "/predict", ours[BATCH_ROWS])["predictions"]
            ]
            diff = float(np.max(np.abs(np.asarray(got) - expected)))
            if not diff <= SCORE_TOLERANCE:
                raise BenchError(
                    f"flightdelay serve's scores differ from build_features + "
                    f"pipeline.predict_proba by {diff:.3g} (tolerance {SCORE_TOLERANCE:g})"
                )
            print(
                "  ours    scores equal build_features + pipeline.predict_proba within "
                f"{SCORE_TOLERANCE:g}: yes (largest difference {diff:.2e})"
            )
            results += measure("ours", url + "/predict", ours, args.duration, work, process.pid)
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_mlflow(
    args: argparse.Namespace,
    bundle: Any,
    features: pd.DataFrame,
    bodies: dict[int, Any],
    expected: np.ndarray,
    env: dict[str, str],
    work: Path,
    trusted_types: Sequence[str],
) -> list[Result]:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    saved = work / "mlflow-model"
    example = features.head(5)
    mlflow.sklearn.save_model(
        bundle.pipeline,
        str(saved),
        serialization_format="skops",
        skops_trusted_types=list(trusted_types),
        pyfunc_predict_fn="predict_proba",
        signature=infer_signature(example, bundle.pipeline.predict_proba(example)),
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(BIN / "mlflow"),
        "models",
        "serve",
        "-m",
        str(saved),
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        str(args.workers),
    ]
    mlflow_env = dict(env)
    if args.mlflow_omp_threads:
        mlflow_env["OMP_NUM_THREADS"] = str(args.mlflow_omp_threads)
    with running(command, url + "/ping", work / "mlflow.log", mlflow_env) as process:
        got = np.array(post(url + "/invocations", bodies[BATCH_ROWS])["predictions"])[:, 1]
        if not np.array_equal(got, expected):
            raise BenchError("mlflow's scores differ from pipeline.predict_proba")
        print("  mlflow  scores equal pipeline.predict_proba on the same features: yes")
        return measure("mlflow", url + "/invocations", bodies, args.duration, work, process.pid)


def print_table(results: list[Result], args: argparse.Namespace) -> None:
    by = {(r.server, r.case): r for r in results}
    head = f"{'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'rows/s':>10} {'CPU ms':>7}"
    print(f"\n{'case':<35} | {'mlflow models serve':^44} | {'flightdelay serve':^44} | speed-up")
    print(f"{'':<35} | {head} | {head} |")
    for case in CASES:
        cells = []
        for server in ("mlflow", "ours"):
            r = by.get((server, case.name))
            cells.append(
                f"{r.requests_per_s:8.1f} {r.p50_ms:7.2f} {r.p99_ms:7.2f} {r.rows_per_s:10,.0f} "
                f"{r.cpu_ms_per_request:7.2f}"
                if r
                else f"{'-':>44}"
            )
        m, o = by.get(("mlflow", case.name)), by.get(("ours", case.name))
        ratio = f"{o.requests_per_s / m.requests_per_s:6.1f}x" if m and o else "   -"
        print(f"{case.name:<35} | {cells[0]} | {cells[1]} | {ratio}")
    loads = [r.load_before for r in results] + [r.load_after for r in results]
    print(
        f"\nload average (1 min) during the runs: {min(loads):.2f}..{max(loads):.2f} on "
        f"{os.cpu_count()} CPUs; {args.workers} worker(s) per server. mlflow is sent the "
        "37 built features, flightdelay serve the 11 raw fields (it validates them and builds "
        "the features itself). CPU ms: the server processes' CPU time (user + system, all "
        "workers) per request, which the machine's other load inflates much less than latency."
    )


if __name__ == "__main__":
    sys.exit(main())
