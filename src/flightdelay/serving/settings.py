"""The service's runtime settings: ``FLIGHTDELAY_*`` environment variables, typed and checked
before the model is loaded (a bad value stops the service at start with a message naming it).

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
    FLIGHTDELAY_BATCH_THREADS   threads of a model call of 256 rows or more (default 2, at most
                                the CPUs the service may use): 1,000 rows in half the time on
                                an idle core; set 1 when --workers fill every core
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
    FLIGHTDELAY_SCORER_CACHE    directory of compiled scorer libraries, one per model sha256
                                (default ``$XDG_CACHE_HOME/flightdelay/scorer``; the image sets
                                its read-only /opt/scorer; :mod:`flightdelay.serving.compiled`)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from flightdelay import MODEL_NAME

ENV_PREFIX = "FLIGHTDELAY_"
DEFAULT_MODEL_DIR = Path("outputs/model")
DEFAULT_MODEL_NAME = MODEL_NAME  # the GTO artifact name
MIN_TOKEN_CHARS = 16  # a bearer token shorter than this is refused at start-up


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
    batch_threads: int = Field(default=2, ge=1, le=256)
    header_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    body_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    max_connections: int = Field(default=1000, ge=1, le=1_000_000)

    def large_call_threads(self, usable_cpus: int | None = None) -> int:
        """Threads of a large model call: FLIGHTDELAY_BATCH_THREADS, at most the CPUs this
        process may run on (``usable_cpus``, default: its CPU affinity), never fewer than
        FLIGHTDELAY_MODEL_THREADS."""
        if usable_cpus is None:
            affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere every CPU
            usable_cpus = len(affinity(0)) if affinity else (os.cpu_count() or 1)
        return max(self.model_threads, min(self.batch_threads, max(1, usable_cpus)))

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
