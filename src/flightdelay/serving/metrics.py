"""The service's Prometheus metrics: requests, latency, errors, rows per model call, scores and
input warnings, counted per app (or shared by the workers through PROMETHEUS_MULTIPROC_DIR)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
ROWS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1000, 5000, 10_000)


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
        # labels() takes a lock and formats the label values on every call: children cached
        self._warning_kinds: dict[str, Any] = {}

    def observe_scores(self, scores: np.ndarray, threshold: float) -> None:
        self.rows.inc(len(scores))
        if len(scores) == 1:  # one flight, the usual request: no numpy for one value
            score = float(scores[0])
            self.late.inc(1 if score >= threshold else 0)
            self.scores.observe(score)
            return
        self.late.inc(int(np.count_nonzero(scores >= threshold)))
        observe_many(self.scores, scores)

    def count_warnings(self, warnings: list[list[str]]) -> None:
        """One increment per warning, labelled by its kind (the warning's first word)."""
        for row_warnings in warnings:
            for text in row_warnings:
                kind = text.split(" ", 1)[0]
                child = self._warning_kinds.get(kind)
                if child is None:
                    child = self._warning_kinds[kind] = self.input_warnings.labels(kind)
                child.inc()

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

    MAX_CACHED = 1000  # label sets whose children are kept (methods come from the client)

    def __init__(self, app: Any, metrics: Metrics, handlers: frozenset[str]) -> None:
        self.app, self.metrics, self.handlers = app, metrics, handlers
        # (handler, method, status) -> the request counter's, latency's and error counter's
        # children: labels() takes a lock and formats the values on every call
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

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
            requests, latency, errors = self._children_of(handler, scope["method"], status)
            requests.inc()
            latency.observe(time.perf_counter() - started)
            if errors is not None:
                errors.inc()

    def _children_of(self, handler: str, method: str, status: int) -> tuple[Any, Any, Any]:
        key = (handler, method, status)
        children = self._children.get(key)
        if children is None:
            m, code = self.metrics, str(status)
            children = (
                m.requests.labels(handler, method, code),
                m.latency.labels(handler),
                m.errors.labels(handler, code) if status >= 400 else None,
            )
            if len(self._children) < self.MAX_CACHED:
                self._children[key] = children
        return children
