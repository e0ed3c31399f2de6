"""The HTTP API (:func:`create_app`): a FastAPI app serving one verified model directory, its
routes, their error answers and their OpenAPI description.

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
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import Field, TypeAdapter, ValidationError
from starlette.routing import request_response

from flightdelay.core import signing
from flightdelay.core.flights import RAW_COLUMNS
from flightdelay.core.model_io import ModelBundleError, load_model_bundle, read_provenance
from flightdelay.core.schemas import (
    EXAMPLE_FLIGHT,
    ErrorResponse,
    Flight,
    PredictResponse,
    Status,
    VersionInfo,
)
from flightdelay.serving.batching import Batcher, InvalidRowsError
from flightdelay.serving.metrics import Metrics, MetricsMiddleware
from flightdelay.serving.model_service import Columns, ModelService, RowError, to_columns
from flightdelay.serving.request_checks import (
    RequestError,
    batch_columns,
    check_bearer,
    duplicate_key,
    read_json_body,
)
from flightdelay.serving.settings import DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME, ServeSettings

log = logging.getLogger("flightdelay.serving.serve")  # the service's one logger

DOCS_ASSETS = "/docs/assets"
MAX_ERRORS = 20  # error entries listed in one 4xx answer (the count of the rest is stated)
# Batch bodies from this size (~40 flights) on are read by request_checks.batch_columns first:
# below it pydantic's validation is the faster (its cost per row is higher, its fixed cost lower)
FAST_BATCH_BYTES = 8192

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


class _DirectRoute(APIRoute):
    """An APIRoute whose endpoint takes the Request and returns the Response itself, called as
    Starlette calls such an endpoint: FastAPI's per-request dependency solving, body parsing and
    response serialization have nothing to do for it (measured ~15% of /predict's CPU). The
    route is documented in OpenAPI and matched exactly like any other."""

    def __init__(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.app = request_response(endpoint)


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
    service = ModelService(
        bundle, n_threads=settings.model_threads, batch_threads=settings.large_call_threads()
    )
    warm = service.predict(to_columns([EXAMPLE_FLIGHT]))  # builds the context's lazy indexes
    if not (len(warm) == 1 and 0.0 <= warm[0] <= 1.0):
        raise ModelBundleError(f"{model_dir}: the model returned {warm!r} for the example flight")
    metadata = bundle.metadata
    version_info = _version_info(Path(model_dir), service, settings, signed)
    name, version = str(version_info["model"]), settings.model_version
    multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    metrics = Metrics(multiprocess)
    metrics.info.labels(
        name, version, str(version_info["git_commit"]), str(version_info["data_md5"])
    ).set(1)
    batcher = Batcher(
        lambda columns: service.predict(columns, checked=True),
        settings.merge_rows,
        metrics.call_rows.observe,
        check=service.check,  # once per merged call: its cost hardly grows with the rows
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
        check_bearer(request.headers.get("authorization", ""), token)

    async def read_body(request: Request) -> bytes:
        return await read_json_body(request, settings.max_body_bytes)

    def parse(body: bytes) -> tuple[Columns, int, bool]:
        """(columns, rows, batch) of a body that passes the Flight schema; RequestError else."""
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
        # A batch that certainly passes the schema is read column by column without pydantic
        # (no errors to name, no key repeated); anything else, pydantic validates and names.
        columns = batch_columns(body) if batch and len(body) >= FAST_BATCH_BYTES else None
        if columns is None:
            columns = to_columns(validated_rows(body, batch))
        rows = len(columns["origin"])
        if rows > settings.max_batch_rows:
            raise _refuse(
                [
                    RowError(
                        (),
                        f"the batch has {rows} rows, more than the limit "
                        f"of {settings.max_batch_rows} "
                        "(FLIGHTDELAY_MAX_BATCH_ROWS)",
                        "too_long",
                    )
                ],
                batch,
            )
        return columns, rows, batch

    def validated_rows(body: bytes, batch: bool) -> list[Flight]:
        """The rows pydantic validates (errors named), checked for a repeated key."""
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
        return rows

    async def predict(request: Request) -> Any:
        """Score one flight (JSON object) or a batch (JSON array); see the schema below."""
        try:
            authorize(request)
            columns, rows, batch = parse(await read_body(request))
            try:  # the row rules (service.check) run in the batcher, on the merged rows
                scores = await batcher.predict(columns, rows)
            except InvalidRowsError as exc:
                raise _refuse(exc.errors, batch) from None
        except RequestError as exc:
            return _error_response(exc)
        warnings = service.warnings(columns)
        metrics.observe_scores(scores, service.threshold)
        metrics.count_warnings(warnings)
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

    app.router.add_api_route(
        "/predict",
        predict,
        methods=["POST"],
        response_model=PredictResponse,
        responses=_ERROR_RESPONSES,
        openapi_extra={"requestBody": _request_body_spec(service, settings)},
        route_class_override=_DirectRoute,
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


def _version_info(
    model_dir: Path, service: ModelService, settings: ServeSettings, signed: Any
) -> dict[str, Any]:
    """What /version answers: the model's name, release tag and provenance."""
    metadata = service.bundle.metadata
    provenance = read_provenance(model_dir, str(metadata["sha256"]))
    return VersionInfo(
        model=settings.model_name or str(metadata.get("name") or DEFAULT_MODEL_NAME),
        version=settings.model_version,
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
