"""``flightdelay serve``: the command that runs the HTTP prediction service under uvicorn (one
process, or several workers that each build the app from the environment).

Command line (stable: the release workflow and its smoke test call exactly this)::

    flightdelay serve --model-dir outputs/model --host 127.0.0.1 --port 8000 [--workers 2]

The API (endpoints, input rules) is :mod:`flightdelay.serving.app`'s; the ``FLIGHTDELAY_*``
settings are :mod:`flightdelay.serving.settings`'.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from flightdelay.core import signing
from flightdelay.core.context import FeatureError
from flightdelay.core.io import DataFileError
from flightdelay.core.model_io import load_model_bundle
from flightdelay.serving.app import create_app
from flightdelay.serving.settings import DEFAULT_MODEL_DIR, ENV_PREFIX, ServeError, ServeSettings

log = logging.getLogger("flightdelay.serving.serve")

METRICS_DIR_PREFIX = "flightdelay-metrics-"
# uvicorn's httptools protocol plus read deadlines and a connection cap
HTTP_PROTOCOL = "flightdelay.serving.http_guard:GuardedHttpToolsProtocol"
FD_RESERVE = 64  # file descriptors kept free of connections: model files, logs, metrics


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
        description="Serve the model over HTTP (see `pydoc flightdelay.serving.app` for "
        "endpoints and input rules, `pydoc flightdelay.serving.settings` for FLIGHTDELAY_* "
        "settings).",
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
