"""``flightdelay serve``: the HTTP prediction service the release deploys.

Command line (stable: the release workflow and its smoke test call exactly this)::

    flightdelay serve --model-dir outputs/model --host 127.0.0.1 --port 8000 [--workers 2]

It loads the model directory once at start-up (:func:`flightdelay.core.model_io.load_model_bundle`:
sha256 of model.skops checked against model.json, skops with an explicit allow-list of types);
a missing or tampered model exits with status 1 and a message naming the file.

Endpoints:
    POST /predict   one flight (a JSON object) or a batch (a JSON array of objects) of raw
                    pre-departure fields (see :class:`flightdelay.core.schemas.Flight` or /docs).
                    Features are built by :func:`flightdelay.core.features.build_features`, the very
                    function training used, with the model's own context tables and featurize
                    params; answers ``{model, model_version, threshold, predictions: [{probability,
                    late, warnings}]}``, one prediction per row in request order.
    GET /health     liveness (the process answers).     GET /ready   model loaded and warmed up.
    GET /version    model name, release tag, git commit, data hash, MLflow run id (model.json).
    GET /metrics    Prometheus: requests, latency, errors, rows per model call, scores, warnings.
    GET /docs       OpenAPI UI (spec at /openapi.json): Swagger UI 5 served from the pinned
                    fastapi-offline package (assets under /docs/assets), no CDN: works offline.

Input rules. Every field is required and strictly typed (no strings for numbers, no floats for
integers, no NaN or infinity), unknown fields are refused, dates must exist and HHMM minutes be
below 60. Violations answer 422 naming each field (``body[3].carrier: Field required``); a body
that is not JSON answers 400, not JSON content 415, a body over the byte limit 413, an empty
batch or one over the row limit 422. The origin must be an airport the model was trained on
(422 otherwise: its features would all be missing). Other unknowns are accepted and reported in
the row's ``warnings``, because the model treats them as missing values exactly as in training:
a carrier or destination unseen in training, an aircraft (tailnum) absent from the model's
context or null, a date outside the schedule in the context (operational features unavailable).

Settings come from the environment (command-line options win):
    FLIGHTDELAY_MODEL_VERSION   release tag shown by /version and in responses (default "dev")
    FLIGHTDELAY_MODEL_NAME      model name (default: model.json "name", else "flight-delay")
    FLIGHTDELAY_API_TOKEN       if set, /predict, /version and /metrics require the header
                                ``Authorization: Bearer <token>`` (401 otherwise); /health,
                                /ready and /docs stay open for probes. Off by default (loopback);
                                set it, and terminate TLS in front, whenever the port is reachable
                                from other hosts. A token that is set but blank, or shorter than
                                16 characters, stops the service at start (never "no auth").
    FLIGHTDELAY_REQUIRE_TOKEN   true: refuse to start without FLIGHTDELAY_API_TOKEN (the
                                Kubernetes manifest sets it; default false)
    FLIGHTDELAY_MAX_BATCH_ROWS  rows per request (default 10000)
    FLIGHTDELAY_MAX_BODY_BYTES  request body size (default 8 MiB)
    FLIGHTDELAY_MERGE_ROWS      concurrent small requests are predicted together, up to this many
                                rows per model call (default 256; 1 disables merging)
    FLIGHTDELAY_MODEL_THREADS   OpenMP threads per model call (default 1: thread start-up costs
                                more than it saves on small requests; scale with --workers)
    FLIGHTDELAY_HEADER_TIMEOUT_S  a request's headers must arrive within this (default 10 s)
    FLIGHTDELAY_BODY_TIMEOUT_S  its body within this of the headers (default 30 s); 408 and close
    FLIGHTDELAY_MAX_CONNECTIONS open connections per worker (default 1000, kept below the
                                open-file limit); one more is answered 503 and closed
                                (slow clients cannot starve the service:
                                flightdelay.serving.http_guard)
    FLIGHTDELAY_MODEL_PUBKEY, FLIGHTDELAY_MODEL_IDENTITY (+ _OIDC_ISSUER)
                                if set, the model directory must verify against its signature
                                (FLIGHTDELAY_MODEL_SIGNATURE, default ``<model dir>.sig``) by that
                                key or Sigstore identity, or the service exits 1; /version says
                                who signed. Off by default (loopback); the image and the
                                Kubernetes manifests set FLIGHTDELAY_REQUIRE_SIGNATURE=true, which
                                refuses to start without one (:mod:`flightdelay.core.signing`).

Why merging: a model call costs about the same for 1 row as for 64 (build_features and the
300-tree predictor have a fixed per-call cost), so single-row requests that arrive while a call
runs are queued and predicted together in the next call. Rows do not influence each other, so
scores are identical to one call per row (tests/test_serve.py checks this exactly).
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
import pandas as pd
from fastapi import Request
from fastapi.responses import Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from starlette.requests import ClientDisconnect

from flightdelay import MODEL_NAME
from flightdelay.core import signing
from flightdelay.core.features import (
    RAW_COLUMNS,
    Context,
    FeatureError,
    aircraft_warning,
    build_features,
    days_from_civil,
    feature_arrays,
    to_minutes,
)
from flightdelay.core.io import DataFileError
from flightdelay.core.model_io import (
    ModelBundle,
    ModelBundleError,
    load_model_bundle,
    read_provenance,
)
from flightdelay.core.schemas import (
    EXAMPLE_FLIGHT,
    ErrorResponse,
    Flight,
    PredictResponse,
    Status,
    VersionInfo,
    check_flight_rows,
)
from flightdelay.serving.scoring import SCORE_TOLERANCE, TreeliteScorer, UnsupportedPipelineError

log = logging.getLogger("flightdelay.serving.serve")

ENV_PREFIX = "FLIGHTDELAY_"
DEFAULT_MODEL_DIR = Path("outputs/model")
DEFAULT_MODEL_NAME = MODEL_NAME  # the GTO artifact name
INT_COLUMNS = ("year", "month", "day", "sched_dep_time", "sched_arr_time", "flight")
FLOAT_COLUMNS = ("distance",)
METRICS_DIR_PREFIX = "flightdelay-metrics-"
DOCS_ASSETS = "/docs/assets"
HTTP_PROTOCOL = (
    "flightdelay.serving.http_guard:GuardedHttpToolsProtocol"  # uvicorn's httptools + limits
)
FD_RESERVE = 64  # file descriptors kept free of connections: model files, logs, metrics
MIN_TOKEN_CHARS = 16  # a bearer token shorter than this is refused at start-up
MAX_ERRORS = 20  # error entries listed in one 4xx answer (the count of the rest is stated)
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
ROWS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1000, 5000, 10_000)

Columns = dict[str, list[Any]]

API_DESCRIPTION = """
`POST /predict` takes **one flight** (a JSON object) or **a batch** (a JSON array of them) with
the raw fields a caller knows before departure, and answers one prediction per flight, in
order: the probability of arriving 30+ minutes late, `late` (probability >= the model's
threshold) and `warnings`. Features are built by the same code as in training.

**Strict input.** Every field is required (`tailnum` may be `null`), strictly typed (no strings
for numbers, no `2013.0` for an integer, no NaN or infinity) and no other field is allowed;
the date must exist, HHMM minutes must be below 60 and the origin must be one the model was
trained on. A violation answers **422** naming every offending field (`body[3].carrier: Field
required`); a body that is not JSON **400**, a non-JSON content type **415**, a body over the
byte limit **413**, an empty batch or one over the row limit **422**.

**Unknown values are accepted and reported**: a carrier or destination unseen in training, an
aircraft absent from the model's context (or `null`), a date outside the schedule the model
knows. The model treats them as missing values, exactly as in training; each one adds a line
to the flight's `warnings`.

**Authentication** (when the service has `FLIGHTDELAY_API_TOKEN`): `Authorization: Bearer
<token>` on `/predict`, `/version` and `/metrics`; `/health` and `/ready` stay open.
"""


class ServeError(ValueError):
    """The service cannot start: bad settings or an unusable model directory."""


class ServeSettings(BaseModel):
    """Runtime settings of the service (environment ``FLIGHTDELAY_<NAME>``, see module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model_version: str = Field(default="dev", min_length=1, max_length=128)
    model_name: str | None = Field(default=None, min_length=1, max_length=128)
    api_token: SecretStr | None = None
    require_token: bool = False
    max_batch_rows: int = Field(default=10_000, ge=1, le=1_000_000)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, le=1024**3)
    merge_rows: int = Field(default=256, ge=1, le=100_000)
    model_threads: int = Field(default=1, ge=1, le=256)
    header_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    body_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    max_connections: int = Field(default=1000, ge=1, le=1_000_000)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServeSettings:
        """Settings from ``FLIGHTDELAY_*`` variables, then ``overrides`` that are not None."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = environ.get(ENV_PREFIX + name.upper())
            if name == "api_token" and raw is not None:
                values[name] = raw  # a blank token is refused below, never read as "no token"
            elif raw is not None and raw.strip() != "":
                values[name] = raw.strip()
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                (f"{ENV_PREFIX}{'.'.join(map(str, e['loc'])).upper()}: " if e["loc"] else "")
                + str(e["msg"]).removeprefix("Value error, ")
                for e in exc.errors(include_input=False)
            )
            raise ServeError(f"invalid settings: {problems}") from None

    @field_validator("api_token")
    @classmethod
    def _token_is_strong(cls, token: SecretStr | None) -> SecretStr | None:
        if token is None:
            return None
        value = token.get_secret_value()
        if value.strip() == "":
            raise ValueError(
                "is set but blank: set a real token or unset it (a blank token never turns "
                "authentication off)"
            )
        if value != value.strip():
            raise ValueError("has leading or trailing whitespace")
        if len(value) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"is {len(value)} characters long, shorter than the minimum of "
                f"{MIN_TOKEN_CHARS} (make one with: python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')"
            )
        return token

    @model_validator(mode="after")
    def _token_when_required(self) -> ServeSettings:
        if self.require_token and self.api_token is None:
            raise ValueError(
                f"{ENV_PREFIX}REQUIRE_TOKEN is true but {ENV_PREFIX}API_TOKEN is not set "
                "(set the token, or set REQUIRE_TOKEN to false to serve without authentication)"
            )
        return self


# ---------------------------------------------------------------- model side (no HTTP)


def known_categories(bundle: ModelBundle) -> dict[str, frozenset[str]]:
    """Categories the fitted encoder knows per categorical feature (the context's values if the
    pipeline has no OrdinalEncoder inside a ColumnTransformer)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder

    for step in bundle.pipeline:
        if not isinstance(step, ColumnTransformer):
            continue
        for _, transformer, columns in step.transformers_:
            if isinstance(transformer, OrdinalEncoder):
                return {
                    str(c): frozenset(v for v in cats if isinstance(v, str))
                    for c, cats in zip(columns, transformer.categories_, strict=True)
                }
    departures = bundle.context.departures
    return {c: frozenset(departures[c].dropna().astype(str)) for c in ("carrier", "origin", "dest")}


@dataclass(frozen=True)
class RowError:
    loc: tuple[str | int, ...]  # within the body: (field,) or (row, field)
    msg: str
    type: str


class ModelService:
    """The loaded bundle and what serving needs to know about it (pure: no HTTP).

    Scores come from :class:`flightdelay.serving.scoring.TreeliteScorer` (treelite, compiled by
    tl2cgen
    when a C compiler is there) when the service's whole scoring path equals
    ``build_features`` + ``pipeline.predict_proba`` within SCORE_TOLERANCE (1e-12) on
    :func:`check_rows`, alone and in batches (checked here, at start-up), else from the pipeline
    itself; ``self.predictor`` says which ("treelite-compiled", "treelite-gtil" or "pipeline").
    """

    def __init__(self, bundle: ModelBundle, n_threads: int = 1) -> None:
        self.bundle = bundle
        self.pipeline = bundle.pipeline
        self.context = bundle.context
        self.params = bundle.featurize_params
        self.threshold = bundle.threshold
        categories = known_categories(bundle)
        missing = [c for c in ("carrier", "origin", "dest") if c not in categories]
        if missing:
            raise ModelBundleError(f"the model's encoder lacks categorical feature(s) {missing}")
        self.carriers = categories["carrier"]
        self.origins = categories["origin"]
        self.dests = categories["dest"]
        self.tailnums = frozenset(self.context.departures["tailnum"].dropna().astype(str))
        sched = to_minutes(self.context.departures["sched_dep_at"])
        sched = sched[np.isfinite(sched)]
        if not len(sched):
            raise ModelBundleError("the model's context holds no scheduled departure")
        self.first_day, self.last_day = int(sched.min() // 1440), int(sched.max() // 1440)
        self.scorer: TreeliteScorer | None = None
        self.predictor = "pipeline"
        self.predictor_note = ""
        try:
            scorer = TreeliteScorer.compile(
                self.pipeline, key=bundle.metadata["sha256"], n_threads=n_threads
            )
            mismatch, largest = self._compare(scorer)
        except UnsupportedPipelineError as exc:
            self.predictor_note = f"treelite scorer unavailable: {exc}"
        except Exception as exc:  # treelite cannot read this model: the pipeline still works
            self.predictor_note = f"treelite scorer failed: {type(exc).__name__}: {exc}"
        else:
            if mismatch:
                self.predictor_note = f"treelite scorer refused: {mismatch}"
            else:
                self.scorer, self.predictor = scorer, scorer.runtime
                log.info(
                    "scoring with %s: equal to the pipeline within %g on the check rows "
                    "(largest difference %.2g)",
                    scorer.runtime,
                    SCORE_TOLERANCE,
                    largest,
                )
        if self.predictor_note:
            log.warning("%s; scoring with pipeline.predict_proba", self.predictor_note)

    def _pipeline_scores(self, features: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(features)[:, 1], dtype=np.float64)

    def _compare(self, scorer: TreeliteScorer) -> tuple[str, float]:
        """('', largest difference) if the scorer's path equals build_features +
        pipeline.predict_proba within SCORE_TOLERANCE on check rows, as one batch and in
        smaller ones; else what differs."""
        flights = check_rows(self.context)
        columns = {c: flights[c].tolist() for c in RAW_COLUMNS}
        expected = self._pipeline_scores(build_features(flights, self.context, self.params))
        parts = [(0, len(flights)), (0, 1), (1, 1), (2, 7), (9, 32)]
        largest = 0.0
        for start, size in parts:
            part = {c: values[start : start + size] for c, values in columns.items()}
            got = self._scorer_scores(scorer, part, checked=False)
            want = expected[start : start + size]
            diff = float(np.max(np.abs(got - want))) if len(want) else 0.0
            if len(got) != len(want) or not diff <= SCORE_TOLERANCE:
                return (
                    f"differs from the pipeline by {diff:.3g} (tolerance {SCORE_TOLERANCE:g}) "
                    f"on rows {start}..{start + size - 1}"
                ), diff
            largest = max(largest, diff)
        return "", largest

    def _scorer_scores(self, scorer: TreeliteScorer, columns: Columns, checked: bool) -> np.ndarray:
        arrays = feature_arrays(to_frame(columns), self.context, self.params, checked=checked)
        return scorer.predict_proba(arrays)

    def predict(self, columns: Columns, *, checked: bool = False) -> np.ndarray:
        """Probability of a late arrival per row: build_features, then the model's scores.
        ``checked=True``: the rows passed :meth:`check` (not checked again)."""
        if self.scorer is not None:
            return self._scorer_scores(self.scorer, columns, checked)
        return self._pipeline_scores(build_features(to_frame(columns), self.context, self.params))

    def check(self, columns: Columns) -> list[RowError]:
        """Row rules JSON Schema cannot state: real dates, HHMM minutes, a known origin."""
        # The one definition of a valid flight row, the one validate and featurize apply.
        errors = [
            RowError((int(i), rule.column), rule.message(int(i)), rule.kind)
            for rule in check_flight_rows(columns)
            for i in rule.positions
        ]
        known = ", ".join(sorted(self.origins))
        for i, origin in enumerate(columns["origin"]):
            if origin not in self.origins:
                errors.append(
                    RowError(
                        (i, "origin"),
                        f"{origin!r} is not an origin the model was trained on ({known})",
                        "unknown_origin",
                    )
                )
        return sorted(errors, key=lambda e: e.loc)

    def warnings(self, columns: Columns) -> list[list[str]]:
        """Per row: inputs the model will treat as missing (accepted, reported to the caller)."""
        n = len(columns["origin"])
        out: list[list[str]] = [[] for _ in range(n)]
        for i, carrier in enumerate(columns["carrier"]):
            if carrier not in self.carriers:
                out[i].append(f"carrier {carrier!r} was not seen in training: treated as missing")
        for i, dest in enumerate(columns["dest"]):
            if dest not in self.dests:
                out[i].append(f"dest {dest!r} was not seen in training: treated as missing")
        for i, tail in enumerate(columns["tailnum"]):
            if tail is None or tail not in self.tailnums:
                out[i].append(aircraft_warning(tail))
        days = days_from_civil(
            *(np.asarray(columns[c], dtype=np.int64) for c in ("year", "month", "day"))
        )
        for i in map(int, np.flatnonzero((days < self.first_day) | (days > self.last_day))):
            out[i].append(
                f"date {_iso(int(days[i]))} is outside the schedule in the model's context "
                f"({_iso(self.first_day)}..{_iso(self.last_day)}): weather, congestion and "
                "recent-delay features are unavailable"
            )
        return out


def check_rows(context: Context, n: int = 256, seed: int = 0) -> pd.DataFrame:
    """Raw flights made from the context's own schedule (plus unseen carriers and destinations,
    null tails and out-of-range dates) on which the fast path must equal the pipeline."""
    rng = np.random.default_rng(seed)
    departures = context.departures.dropna(subset=["sched_dep_at"])
    picked = departures.iloc[rng.choice(len(departures), min(n, len(departures)), replace=False)]
    at = pd.to_datetime(picked["sched_dep_at"])
    flights = pd.DataFrame(
        {
            "year": at.dt.year.to_numpy(np.int64),
            "month": at.dt.month.to_numpy(np.int64),
            "day": at.dt.day.to_numpy(np.int64),
            "sched_dep_time": (at.dt.hour * 100 + at.dt.minute).to_numpy(np.int64),
            "sched_arr_time": (((at.dt.hour + 3) % 24) * 100 + at.dt.minute).to_numpy(np.int64),
            "carrier": picked["carrier"].to_numpy(object),
            "flight": np.ones(len(picked), np.int64),
            "tailnum": picked["tailnum"].to_numpy(object),
            "origin": picked["origin"].to_numpy(object),
            "dest": picked["dest"].to_numpy(object),
            "distance": rng.choice([94.0, 502.0, 1028.0, 1400.0, 2586.0], len(picked)),
        }
    )
    flights.loc[flights.index[::9], "carrier"] = "Z9"
    flights.loc[flights.index[::10], "dest"] = "ZZZ"
    flights.loc[flights.index[::11], "tailnum"] = None
    flights.loc[flights.index[::12], "year"] = 2030
    return flights


def _iso(day: int) -> str:
    return str(np.datetime64(day, "D"))


def to_columns(rows: Sequence[Mapping[str, Any]]) -> Columns:
    return {c: [row[c] for row in rows] for c in RAW_COLUMNS}


def to_frame(columns: Columns) -> pd.DataFrame:
    """The raw flight frame build_features takes: integer, float and text columns as in the
    training CSVs (text as Python strings, None for a null tailnum)."""
    arrays = [
        np.asarray(
            columns[c],
            dtype=np.int64 if c in INT_COLUMNS else np.float64 if c in FLOAT_COLUMNS else object,
        )
        for c in RAW_COLUMNS
    ]
    n = len(arrays[0])
    # DataFrame._from_arrays skips the dtype inference and checks of the public constructor
    # (0.05 ms instead of 0.2-0.3 ms for one row); the columns are already exactly right.
    from_arrays = getattr(pd.DataFrame, "_from_arrays", None)
    if from_arrays is not None:
        return from_arrays(
            arrays, columns=_RAW_INDEX, index=pd.RangeIndex(n), verify_integrity=False
        )
    return pd.DataFrame(dict(zip(RAW_COLUMNS, arrays, strict=True)))


_RAW_INDEX = pd.Index(RAW_COLUMNS)


def concat_columns(parts: Sequence[Columns]) -> Columns:
    if len(parts) == 1:
        return parts[0]
    return {c: [v for part in parts for v in part[c]] for c in RAW_COLUMNS}


class Batcher:
    """Predicts queued requests together: whatever arrived while the previous model call ran
    goes into the next one (up to ``merge_rows`` rows), so a lone request never waits."""

    def __init__(
        self,
        predict: Callable[[Columns], np.ndarray],
        merge_rows: int,
        on_call: Callable[[int], None],
    ) -> None:
        self._predict = predict
        self._merge_rows = merge_rows
        self._on_call = on_call
        self._queue: deque[tuple[Columns, int, asyncio.Future[np.ndarray]]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def predict(self, columns: Columns, rows: int) -> np.ndarray:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._start(loop)
        assert self._wakeup is not None
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.append((columns, rows, future))
        self._wakeup.set()
        return await future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._wakeup, self._queue = loop, asyncio.Event(), deque()
        self._task = loop.create_task(self._run(), name="flightdelay-batcher")

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # One more turn of the loop: requests already read from their sockets join this call.
            await asyncio.sleep(0)
            while self._queue:
                self._call(self._take())
                await asyncio.sleep(0)  # answer, and read what arrived meanwhile

    def _take(self) -> list[tuple[Columns, int, asyncio.Future[np.ndarray]]]:
        items = [self._queue.popleft()]
        rows = items[0][1]
        while self._queue and rows + self._queue[0][1] <= self._merge_rows:
            item = self._queue.popleft()
            items.append(item)
            rows += item[1]
        return [item for item in items if not item[2].cancelled()]

    def _call(self, items: list[tuple[Columns, int, asyncio.Future[np.ndarray]]]) -> None:
        if not items:
            return
        try:
            scores = self._predict(concat_columns([columns for columns, _, _ in items]))
            self._on_call(sum(rows for _, rows, _ in items))
        except Exception:
            if len(items) > 1:  # isolate the failing request: the others still get answers
                for item in items:
                    self._call([item])
                return
            _, _, future = items[0]
            if not future.done():
                future.set_exception(sys.exc_info()[1] or RuntimeError("prediction failed"))
            return
        start = 0
        for _, rows, future in items:
            if not future.done():
                future.set_result(scores[start : start + rows])
            start += rows


# ---------------------------------------------------------------- metrics


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self, multiprocess: bool) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = multiprocess
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "flightdelay_http_requests",
            "HTTP requests answered",
            ["handler", "method", "status"],
            registry=r,
        )
        self.errors = Counter(
            "flightdelay_http_errors",
            "HTTP requests answered with 4xx/5xx",
            ["handler", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "flightdelay_http_request_duration_seconds",
            "time from request to response, inside the app",
            ["handler"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Counter("flightdelay_predicted_rows", "flights scored", registry=r)
        self.call_rows = Histogram(
            "flightdelay_model_call_rows",
            "rows per model call (requests merged while one ran)",
            buckets=ROWS_BUCKETS,
            registry=r,
        )
        self.scores = Histogram(
            "flightdelay_prediction_score",
            "predicted probability of a late arrival",
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.late = Counter("flightdelay_predicted_late", "flights predicted late", registry=r)
        self.input_warnings = Counter(
            "flightdelay_input_warnings", "rows accepted with a warning", ["kind"], registry=r
        )
        self.info = Gauge(
            "flightdelay_model_info",
            "the model being served (value 1)",
            ["model", "version", "git_commit", "data_md5"],
            registry=r,
            multiprocess_mode="max",
        )

    def observe_scores(self, scores: np.ndarray, threshold: float) -> None:
        self.rows.inc(len(scores))
        self.late.inc(int(np.count_nonzero(scores >= threshold)))
        observe_many(self.scores, scores)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST


def observe_many(histogram: Any, values: np.ndarray) -> None:
    """Histogram.observe for many values at once (one increment per bucket, not per value)."""
    buckets, total = getattr(histogram, "_buckets", None), getattr(histogram, "_sum", None)
    bounds = getattr(histogram, "_upper_bounds", None)
    if buckets is None or total is None or bounds is None:  # prometheus_client internals moved
        for value in values.tolist():
            histogram.observe(value)
        return
    counts = np.bincount(
        np.searchsorted(np.asarray(bounds, dtype=np.float64), values, side="left"),
        minlength=len(bounds),
    )
    for i in np.flatnonzero(counts):
        buckets[i].inc(int(counts[i]))
    total.inc(float(values.sum()))


class MetricsMiddleware:
    """Counts and times every HTTP request (pure ASGI: a few microseconds per request)."""

    def __init__(self, app: Any, metrics: Metrics, handlers: frozenset[str]) -> None:
        self.app, self.metrics, self.handlers = app, metrics, handlers

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            handler = scope["path"] if scope["path"] in self.handlers else "other"
            code = str(status)
            self.metrics.requests.labels(handler, scope["method"], code).inc()
            self.metrics.latency.labels(handler).observe(time.perf_counter() - started)
            if status >= 400:
                self.metrics.errors.labels(handler, code).inc()


# ---------------------------------------------------------------- HTTP


def check_content_type(header: str) -> None:
    """415 unless the body is declared JSON in UTF-8 (the only encoding JSON allows, RFC 8259)."""
    if header == "application/json":  # the usual header: no parsing
        return
    from email.message import Message

    message = Message()
    message["content-type"] = header
    media = message.get_content_type() if header.strip() else ""
    if media != "application/json":
        raise RequestError(415, f"Content-Type must be application/json, got {media or 'none'!r}")
    charset = message.get_param("charset")
    if charset is not None and str(charset).strip().lower() not in ("utf-8", "utf8"):
        raise RequestError(
            415, f"charset {str(charset)!r} is not supported: send JSON encoded as UTF-8"
        )


def duplicate_key(body: bytes, keys: int) -> tuple[tuple[int | str, ...], str] | None:
    """(location, key) of the first key repeated within one JSON object of a body that already
    validated as ``keys`` fields in all; None if there is none.

    Every key brings one ':' outside strings, so a body with exactly ``keys`` colons (the usual
    case, one memchr pass) cannot repeat one; only then is it parsed again by the standard
    library, which reports each object's key/value pairs in order."""
    if body.count(b":") <= keys:
        return None
    found: list[tuple[int, str]] = []
    objects = 0

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal objects
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and not found:
                found.append((objects, key))
            seen.add(key)
        objects += 1
        return dict(items)

    import json

    try:
        json.loads(body, object_pairs_hook=pairs)
    except ValueError:  # pydantic accepted it, so this cannot happen; never answer 500 for it
        return None
    if not found:
        return None
    row, key = found[0]
    return ((row, key) if body.lstrip()[:1] == b"[" else (key,)), key


class RequestError(Exception):
    """A request the service refuses: status, one-line message, per-field details."""

    def __init__(self, status: int, error: str, detail: Sequence[RowError] = ()) -> None:
        super().__init__(error)
        self.status, self.error, self.detail = status, error, list(detail)


def _loc_text(loc: Sequence[str | int]) -> str:
    """``("3", "carrier")`` -> ``body[3].carrier``."""
    return "body" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def _refuse(errors: Sequence[RowError], batch: bool, status: int = 422) -> RequestError:
    if not batch:  # a single flight: no row index in the location
        errors = [
            RowError(e.loc[1:] if e.loc and isinstance(e.loc[0], int) else e.loc, e.msg, e.type)
            for e in errors
        ]
    shown = list(errors[:MAX_ERRORS])
    text = "; ".join(f"{_loc_text(e.loc)}: {e.msg}" for e in shown)
    if len(errors) > len(shown):
        text += f"; and {len(errors) - len(shown)} more error(s)"
    return RequestError(status, text, shown)


def _pydantic_errors(exc: ValidationError, batch: bool) -> list[RowError]:
    errors = []
    for e in exc.errors(include_url=False):
        loc, msg, kind = tuple(e["loc"]), str(e["msg"]), str(e["type"])
        if kind not in ("missing", "extra_forbidden") and "input" in e:
            shown = repr(e["input"])
            if len(shown) <= 40:
                msg += f" (got {shown})"
        if batch and not loc and kind == "too_short":
            msg = "the batch is empty: send at least one flight"
        errors.append(RowError(loc, msg, kind))
    return errors


def _response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _error_response(exc: RequestError) -> Any:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return _response(
        {
            "error": exc.error,
            "detail": [{"loc": ["body", *e.loc], "msg": e.msg, "type": e.type} for e in exc.detail],
        },
        exc.status,
        headers,
    )


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "the body is not valid JSON"},
    401: {"model": ErrorResponse, "description": "missing or wrong bearer token (when enabled)"},
    413: {"model": ErrorResponse, "description": "body larger than FLIGHTDELAY_MAX_BODY_BYTES"},
    415: {"model": ErrorResponse, "description": "Content-Type is not application/json"},
    422: {
        "model": ErrorResponse,
        "description": "a field is missing, extra, mistyped or out of "
        "range, the batch is empty or too long",
    },
}


def create_app(
    model_dir: Path | str = DEFAULT_MODEL_DIR, settings: ServeSettings | None = None
) -> Any:
    """The FastAPI app serving the model in ``model_dir``; raises ModelBundleError if the model
    is missing or tampered with. Loads, checks and warms the model before returning."""
    import threadpoolctl
    from fastapi_offline import FastAPIOffline

    settings = settings or ServeSettings.from_env()
    signed = signing.verify_configured(Path(model_dir))  # before any byte of it is unpickled
    bundle = load_model_bundle(model_dir, require_manifest=True)
    # After loading: scikit-learn's OpenMP runtime is loaded with the model's modules.
    threadpoolctl.threadpool_limits(limits=settings.model_threads, user_api="openmp")
    service = ModelService(bundle, n_threads=settings.model_threads)
    warm = service.predict(to_columns([EXAMPLE_FLIGHT]))  # builds the context's lazy indexes
    if not (len(warm) == 1 and 0.0 <= warm[0] <= 1.0):
        raise ModelBundleError(f"{model_dir}: the model returned {warm!r} for the example flight")
    metadata = bundle.metadata
    provenance = read_provenance(model_dir, str(metadata["sha256"]))
    name = settings.model_name or str(metadata.get("name") or DEFAULT_MODEL_NAME)
    version = settings.model_version
    version_info = VersionInfo(
        model=name,
        version=version,
        # The run id and commit live in the sidecar (model_io.Provenance), not in model.json.
        git_commit=provenance.git_commit if provenance else None,
        data_md5=metadata.get("data_md5"),
        mlflow_run_id=provenance.mlflow_run_id if provenance else None,
        sha256=str(metadata["sha256"]),
        threshold=service.threshold,
        target=metadata.get("target"),
        train_months=list(metadata.get("train_months") or []),
        eval_month=metadata.get("eval_month"),
        predictor=service.predictor,
        signature=signed,
    ).model_dump()
    multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    metrics = Metrics(multiprocess)
    metrics.info.labels(
        name, version, str(version_info["git_commit"]), str(version_info["data_md5"])
    ).set(1)
    batcher = Batcher(
        lambda columns: service.predict(columns, checked=True),
        settings.merge_rows,
        metrics.call_rows.observe,
    )
    one = TypeAdapter(Flight)
    many = TypeAdapter(Annotated[list[Flight], Field(min_length=1)])
    token = settings.api_token.get_secret_value().encode() if settings.api_token else None
    state = {"ready": True}

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        state["ready"] = True
        yield
        state["ready"] = False  # probes stop routing traffic here while uvicorn drains
        await batcher.stop()

    app = FastAPIOffline(
        title="flightdelay",
        version=version,
        lifespan=lifespan,
        summary="Probability that a scheduled NYC departure arrives 30+ minutes late.",
        description=API_DESCRIPTION,
        # No "/predict/ -> /predict" redirect: Starlette builds its Location from the Host header.
        redirect_slashes=False,
        # Swagger UI from the pinned fastapi-offline package's own copy, not a CDN.
        docs_url="/docs",
        redoc_url=None,
        static_url=DOCS_ASSETS,
    )
    app.state.service, app.state.settings, app.state.metrics = service, settings, metrics
    app.state.batcher = batcher

    def authorize(request: Request) -> None:
        if token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token):
            raise RequestError(
                401,
                "missing or invalid bearer token (header 'Authorization: "
                "Bearer <FLIGHTDELAY_API_TOKEN>')",
            )

    async def read_body(request: Request) -> bytes:
        check_content_type(request.headers.get("content-type", ""))
        limit = settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestError(
                413,
                f"body of {int(declared)} bytes exceeds the limit of {limit} "
                "bytes (FLIGHTDELAY_MAX_BODY_BYTES)",
            )
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RequestError(
                        413,
                        f"body exceeds the limit of {limit} bytes (FLIGHTDELAY_MAX_BODY_BYTES)",
                    )
                chunks.append(chunk)
        except ClientDisconnect:  # gone, or closed for being too slow (http_guard): no 500
            raise RequestError(
                408, "the client disconnected before sending the whole body"
            ) from None
        return b"".join(chunks)

    def parse(body: bytes) -> tuple[list[Flight], bool]:
        start = body.lstrip()[:1]
        if start not in (b"{", b"["):
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise RequestError(400, f"body is not valid JSON: {exc}") from None
            raise _refuse(
                [
                    RowError(
                        (),
                        "expected one flight (a JSON object) or a batch (a JSON array of flights)",
                        "body_type",
                    )
                ],
                batch=True,
            )
        batch = start == b"["
        try:
            rows = many.validate_json(body) if batch else [one.validate_json(body)]
        except ValidationError as exc:
            errors = _pydantic_errors(exc, batch)
            if any(e.type == "json_invalid" for e in errors):
                raise RequestError(
                    400,
                    "body is not valid JSON: "
                    + next(e.msg for e in errors if e.type == "json_invalid"),
                ) from None
            raise _refuse(errors, batch) from None
        duplicate = duplicate_key(body, len(rows) * len(RAW_COLUMNS))
        if duplicate is not None:
            loc, key = duplicate
            raise _refuse(
                [RowError(loc, f"duplicate key {key!r}: send each field once", "duplicate_key")],
                batch,
            )
        if len(rows) > settings.max_batch_rows:
            raise _refuse(
                [
                    RowError(
                        (),
                        f"the batch has {len(rows)} rows, more than the limit "
                        f"of {settings.max_batch_rows} "
                        "(FLIGHTDELAY_MAX_BATCH_ROWS)",
                        "too_long",
                    )
                ],
                batch,
            )
        return rows, batch

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=_ERROR_RESPONSES,
        openapi_extra={"requestBody": _request_body_spec(service, settings)},
    )
    async def predict(request: Request) -> Any:
        """Score one flight (JSON object) or a batch (JSON array); see the schema below."""
        try:
            authorize(request)
            rows, batch = parse(await read_body(request))
            columns = to_columns(rows)
            errors = service.check(columns)
            if errors:
                raise _refuse(errors, batch)
        except RequestError as exc:
            return _error_response(exc)
        warnings = service.warnings(columns)
        scores = await batcher.predict(columns, len(rows))
        metrics.observe_scores(scores, service.threshold)
        for row_warnings in warnings:
            for text in row_warnings:
                metrics.input_warnings.labels(text.split(" ", 1)[0]).inc()
        late = (scores >= service.threshold).tolist()
        return _response(
            {
                "model": name,
                "model_version": version,
                "threshold": service.threshold,
                "predictions": [
                    {"probability": p, "late": lt, "warnings": w}
                    for p, lt, w in zip(scores.tolist(), late, warnings, strict=True)
                ],
            }
        )

    @app.get("/health", response_model=Status)
    async def health() -> Any:
        """Liveness: the process answers."""
        return _response({"status": "ok"})

    @app.get("/ready", response_model=Status, responses={503: {"model": Status}})
    async def ready() -> Any:
        """Readiness: the model is loaded and warmed up, and the service is not stopping."""
        if state["ready"]:
            return _response({"status": "ready"})
        return _response({"status": "not ready", "reason": "shutting down"}, 503)

    @app.get("/version", response_model=VersionInfo, responses={401: _ERROR_RESPONSES[401]})
    async def version_(request: Request) -> Any:
        """The model being served: name, release tag and provenance from model.json."""
        try:
            authorize(request)
        except RequestError as exc:
            return _error_response(exc)
        return _response(version_info)

    @app.get(
        "/metrics", responses={200: {"content": {"text/plain": {}}}, 401: _ERROR_RESPONSES[401]}
    )
    async def metrics_(request: Request) -> Any:
        """Prometheus metrics (all workers' when several run)."""
        try:
            authorize(request)
        except RequestError as exc:
            return _error_response(exc)
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    _install_error_handlers(app)
    if token is not None:
        _require_bearer_in_spec(app)
    app.add_middleware(
        MetricsMiddleware,
        metrics=metrics,
        handlers=frozenset(
            {"/predict", "/health", "/ready", "/version", "/metrics", "/docs", "/openapi.json"}
        ),
    )
    log.info("model signature: %s", signed.line() if signed else "not verified (no signer set)")
    log.info(
        "serving %s version %s (sha256 %s, threshold %.4f) from %s",
        name,
        version,
        metadata["sha256"][:12],
        service.threshold,
        model_dir,
    )
    return app


def _request_body_spec(service: ModelService, settings: ServeSettings) -> dict[str, Any]:
    """OpenAPI requestBody of /predict: one Flight or an array of them (origins enumerated)."""
    flight = TypeAdapter(Flight).json_schema()
    flight["properties"]["origin"]["enum"] = sorted(service.origins)
    batch = {
        "type": "array",
        "items": flight,
        "minItems": 1,
        "maxItems": settings.max_batch_rows,
        "title": "Batch",
    }
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"anyOf": [flight, batch]},
                "examples": {
                    "one": {"summary": "one flight", "value": EXAMPLE_FLIGHT},
                    "batch": {"summary": "a batch", "value": [EXAMPLE_FLIGHT]},
                },
            }
        },
    }


def _require_bearer_in_spec(app: Any) -> None:
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            spec.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            for path in ("/predict", "/version", "/metrics"):
                for operation in spec["paths"][path].values():
                    operation["security"] = [{"bearer": []}]
            app.openapi_schema = spec
        return dict(app.openapi_schema)

    app.openapi = openapi


def _install_error_handlers(app: Any) -> None:
    """Every error answers {error, detail}; nothing but a bug answers 500."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    async def http_error(_: Any, exc: Exception) -> Any:
        assert isinstance(exc, HTTPException)
        return _response(
            {"error": str(exc.detail), "detail": []},
            exc.status_code,
            dict(exc.headers) if exc.headers else None,
        )

    async def validation_error(_: Any, exc: Exception) -> Any:
        assert isinstance(exc, RequestValidationError)
        detail = [
            {"loc": list(e["loc"]), "msg": str(e["msg"]), "type": str(e["type"])}
            for e in exc.errors()
        ]
        text = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in detail)
        return _response({"error": text, "detail": detail}, 422)

    async def server_error(_: Any, exc: Exception) -> Any:
        log.error("internal error", exc_info=exc)
        return _response(
            {"error": f"internal error ({type(exc).__name__}); see the server log", "detail": []},
            500,
        )

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, server_error)


def app_from_env() -> Any:
    """App factory for uvicorn workers: model dir and settings from the environment."""
    settings = ServeSettings.from_env()
    configure_http_limits(settings)
    model_dir = os.environ.get(ENV_PREFIX + "MODEL_DIR", str(DEFAULT_MODEL_DIR))
    return _long_lived(create_app(model_dir, settings))


def configure_http_limits(settings: ServeSettings) -> None:
    """Read deadlines and the connection cap of this process's HTTP protocol (http_guard); the
    cap stays below the file-descriptor limit, so a refused caller gets a 503, never a reset."""
    import resource

    from flightdelay.serving.http_guard import GuardedHttpToolsProtocol, Limits

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = settings.max_connections
    if soft != resource.RLIM_INFINITY and cap > soft - FD_RESERVE:
        cap = max(1, soft - FD_RESERVE)
        log.warning(
            "%sMAX_CONNECTIONS %d is above the open-file limit %d less %d reserved: using %d",
            ENV_PREFIX,
            settings.max_connections,
            soft,
            FD_RESERVE,
            cap,
        )
    GuardedHttpToolsProtocol.configure(
        Limits(settings.header_timeout_s, settings.body_timeout_s, cap)
    )


def _long_lived(app: Any) -> Any:
    """Move the model, context and code objects out of the garbage collector's sight: a full
    collection would otherwise walk ~200k long-lived objects and stall a request for tens of ms."""
    import gc

    gc.collect()
    gc.freeze()
    return app


# ---------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flightdelay serve",
        description="Serve the model over HTTP (see `pydoc "
        "flightdelay.serving.serve` for endpoints, input rules and FLIGHTDELAY_* settings).",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path(os.environ.get(ENV_PREFIX + "MODEL_DIR", DEFAULT_MODEL_DIR)),
        help="model directory (default: $FLIGHTDELAY_MODEL_DIR or outputs/model)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--workers",
        type=int,
        default=os.environ.get(ENV_PREFIX + "WORKERS") or 1,
        help="processes (default $FLIGHTDELAY_WORKERS or 1)",
    )
    parser.add_argument(
        "--model-version", help="release tag (default $FLIGHTDELAY_MODEL_VERSION or 'dev')"
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    args = parser.parse_args(argv)
    if args.workers < 1 or not 0 < args.port < 65536:
        parser.error("--workers must be >= 1 and --port in 1..65535")
    try:
        settings = ServeSettings.from_env(model_version=args.model_version)
        configure_http_limits(settings)
        if args.workers == 1:
            app: Any = _long_lived(create_app(args.model_dir, settings))
        else:
            signing.verify_configured(args.model_dir)  # fail fast, before any worker starts
            load_model_bundle(args.model_dir, require_manifest=True)
            _export_for_workers(args.model_dir, settings)
            app = "flightdelay.serving.serve:app_from_env"
    except (ServeError, DataFileError) as exc:  # ModelBundleError included
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except FeatureError as exc:
        print(
            f"error: {args.model_dir}: {exc} (the model does not match this version of "
            "flightdelay.core.features: retrain it)",
            file=sys.stderr,
        )
        return 1
    import uvicorn

    try:
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            workers=args.workers,
            factory=isinstance(app, str),
            loop="uvloop",
            http=HTTP_PROTOCOL,
            access_log=args.access_log,
            log_level=args.log_level,
            server_header=False,
        )
    finally:
        metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
        if Path(metrics_dir).name.startswith(METRICS_DIR_PREFIX):  # ours, not the caller's
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _export_for_workers(model_dir: Path, settings: ServeSettings) -> None:
    """Workers are fresh processes: they read the model dir and settings from the environment,
    and share Prometheus metrics through files in PROMETHEUS_MULTIPROC_DIR."""
    os.environ[ENV_PREFIX + "MODEL_DIR"] = str(model_dir.resolve())
    for name, value in settings.model_dump().items():
        if value is not None:
            os.environ[ENV_PREFIX + name.upper()] = (
                value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            )
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=METRICS_DIR_PREFIX)
