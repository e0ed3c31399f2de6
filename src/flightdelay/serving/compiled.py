"""The scorer's compiled library, built once per model and kept: a tl2cgen shared library is
loaded only if its record (its own sha256, the sha256 of the model it was compiled from, the
tl2cgen and treelite versions) matches; otherwise it is compiled again.

Why: tl2cgen compiles the 300-tree model in 2-11 s at every process start, and the serving image
has no C compiler (so it interpreted the trees with GTIL, 4x slower on 1,000 rows). The image
now compiles the library in a build stage that has gcc (``flightdelay compile-scorer``) and the
service loads it; on a machine with gcc a restart loads the cached library instead of compiling.

Where: ``FLIGHTDELAY_SCORER_CACHE`` (the image sets ``/opt/scorer``, root-owned and read-only to
the service), else ``$XDG_CACHE_HOME/flightdelay/scorer``, else ``~/.cache/flightdelay/scorer``;
one subdirectory per model sha256 and tl2cgen/treelite versions (so that services of two
versions sharing a cache never replace each other's) holding ``model.so`` and ``scorer.json``.
Loading a shared library runs its code, so a cache directory that others may write to (group or
world writable) is never read. A library that is missing or refused is compiled into the cache
if it is writable, else into a private temporary directory (removed at exit), as before.

Whatever is loaded, the service still compares its scores with the pipeline's at start-up
(:data:`flightdelay.serving.scoring.SCORE_TOLERANCE`) and scores with the pipeline if they differ.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import logging
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

log = logging.getLogger("flightdelay.serving.serve")  # the service's one logger

CACHE_ENV = "FLIGHTDELAY_SCORER_CACHE"
LIBRARY = "model.so"
RECORD = "scorer.json"

_private: dict[str, Path] = {}  # key -> library compiled into a temporary dir (unusable cache)


class CompiledRecord(BaseModel):
    """``scorer.json``: what a compiled library is and what it was compiled from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_sha256: str
    library_sha256: str
    tl2cgen: str
    treelite: str


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The directory holding one compiled library per model sha256."""
    environ = os.environ if environ is None else environ
    configured = environ.get(CACHE_ENV, "").strip()
    if configured:
        return Path(configured)
    base = environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "flightdelay" / "scorer"


def runtime_versions() -> tuple[str, str]:
    """(tl2cgen, treelite) versions: a library compiled by others is not trusted to load."""
    import tl2cgen
    import treelite

    return str(tl2cgen.__version__), str(treelite.__version__)


def entry(directory: Path, key: str) -> Path:
    """Where the library of model ``key`` compiled by this tl2cgen and treelite lives."""
    tl2cgen_version, treelite_version = runtime_versions()
    return directory / f"{key}-tl2cgen{tl2cgen_version}-treelite{treelite_version}"


def cached(key: str, directory: Path | None = None) -> Path | None:
    """The library compiled from the model whose sha256 is ``key``, if its record matches; None
    (and a log line saying why, unless there is none yet) otherwise."""
    directory = cache_dir() if directory is None else directory
    library, why = _verified(key, directory)
    if library is None and why:
        log.warning("compiled scorer in %s refused: %s", entry(directory, key), why)
    return library


def library(model: Any, key: str, compile_units: int, directory: Path | None = None) -> Path:
    """The library of treelite ``model`` (sha256 ``key``): the cached one when its record
    matches (checked at every call: the file may have changed since), else compiled (needs gcc)
    into the cache, or, once per process, into a temporary directory when the cache cannot be
    written."""
    directory = cache_dir() if directory is None else directory
    found = cached(key, directory)
    if found is not None:
        log.info("scorer library loaded from %s (no compile)", found)
        return found
    if key in _private and _private[key].is_file():
        return _private[key]
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        unsafe = _writable_by_others(directory)
        if unsafe:
            raise PermissionError(unsafe)
        with _locked(directory):  # one process compiles, the others wait and load its library
            found, _ = _verified(key, directory)
            if found is None:
                found = _build(model, key, compile_units, directory)
                log.info("scorer library compiled into %s", found)
            return found
    except OSError as exc:  # read-only or unsafe cache: compile for this process only
        log.warning(
            "scorer cache %s not usable (%s): compiling into a temporary dir", directory, exc
        )
        work = Path(tempfile.mkdtemp(prefix="flightdelay-scorer-"))
        atexit.register(shutil.rmtree, work, ignore_errors=True)
        _private[key] = _build(model, key, compile_units, work)
        return _private[key]


def _writable_by_others(path: Path) -> str:
    """Why ``path`` is unsafe to load code from ('' if it is not group or world writable)."""
    mode = path.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by others (mode {stat.filemode(mode)})"
    return ""


def _verified(key: str, directory: Path) -> tuple[Path | None, str]:
    """(library, '') if ``key``'s entry holds a library its record vouches for, else
    (None, why); why is '' when there is simply nothing there."""
    where = entry(directory, key)
    record_path, library_path = where / RECORD, where / LIBRARY
    if not record_path.is_file() and not library_path.exists():
        return None, ""
    for path in (directory, where):
        unsafe = _writable_by_others(path) if path.is_dir() else ""
        if unsafe:
            return None, unsafe
    try:
        record = CompiledRecord.model_validate_json(record_path.read_bytes())
    except (OSError, ValidationError) as exc:
        return None, f"{RECORD} unreadable ({type(exc).__name__})"
    if record.model_sha256 != key:
        return None, f"compiled from model {record.model_sha256[:12]}, not {key[:12]}"
    tl2cgen_version, treelite_version = runtime_versions()
    if (record.tl2cgen, record.treelite) != (tl2cgen_version, treelite_version):
        return None, (
            f"compiled by tl2cgen {record.tl2cgen} / treelite {record.treelite}, "
            f"running {tl2cgen_version} / {treelite_version}"
        )
    if not library_path.is_file():
        return None, f"{LIBRARY} missing"
    digest = sha256_of(library_path)
    if digest != record.library_sha256:
        return None, f"{LIBRARY} sha256 {digest[:12]} differs from its record's"
    return library_path, ""


def _build(model: Any, key: str, compile_units: int, directory: Path) -> Path:
    """Compile into a fresh directory beside the entry, then put it in place in one rename, so a
    reader never sees a library without its record or half written."""
    import tl2cgen

    staging = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=directory))
    try:
        tl2cgen.export_lib(
            model,
            toolchain="gcc",
            libpath=str(staging / LIBRARY),
            params={"parallel_comp": compile_units},
            nthread=1,
            verbose=False,
        )
        tl2cgen_version, treelite_version = runtime_versions()
        record = CompiledRecord(
            model_sha256=key,
            library_sha256=sha256_of(staging / LIBRARY),
            tl2cgen=tl2cgen_version,
            treelite=treelite_version,
        )
        (staging / RECORD).write_text(record.model_dump_json(indent=2) + "\n")
        where = entry(directory, key)
        if where.exists():  # refused above: stale, foreign or tampered with
            shutil.rmtree(where)
        staging.rename(where)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return where / LIBRARY


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    import fcntl

    with (directory / ".lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def main(argv: Sequence[str] | None = None) -> int:
    """``flightdelay compile-scorer``: compile a model directory's scorer into the cache and
    check it as the service does at start-up (the image's build stage runs this)."""
    parser = argparse.ArgumentParser(
        prog="flightdelay compile-scorer",
        description="Compile the model's tl2cgen scorer library into the scorer cache "
        f"(${CACHE_ENV} or --cache) so that the service loads it instead of compiling.",
    )
    parser.add_argument("--model-dir", type=Path, default=Path("outputs/model"))
    parser.add_argument("--cache", type=Path, help=f"cache directory (default ${CACHE_ENV})")
    args = parser.parse_args(argv)
    if args.cache is not None:
        os.environ[CACHE_ENV] = str(args.cache)
    from flightdelay.core.model_io import ModelBundleError, load_model_bundle
    from flightdelay.serving.model_service import ModelService
    from flightdelay.serving.scoring import c_compiler

    if c_compiler() is None:
        print("error: no C compiler (gcc) to compile the scorer with", file=sys.stderr)
        return 1
    try:
        service = ModelService(load_model_bundle(args.model_dir, require_manifest=True))
    except ModelBundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if service.predictor != "treelite-compiled":
        print(f"error: {args.model_dir}: {service.predictor_note}", file=sys.stderr)
        return 1
    key = str(service.bundle.metadata["sha256"])
    print(f"compiled scorer of model {key[:12]} in {entry(cache_dir(), key)}")
    return 0
