"""The service's scorer: ``pipeline.predict_proba(features)[:, 1]`` on treelite, a maintained
tree-model runtime, instead of scikit-learn's per-call overhead or its private internals.

The trained Pipeline (``train.make_pipeline``) is an OrdinalEncoder in a ColumnTransformer, then
a HistGradientBoostingClassifier. :class:`TreeliteScorer` encodes the feature frame with the
fitted encoders' *public* ``categories_`` (what ``ColumnTransformer.transform`` outputs, without
its ~5 ms of pandas overhead per call) and scores the matrix with treelite's import of the
classifier (``treelite.sklearn.import_model``, which reads the fitted trees and their categorical
splits), either

* compiled to a shared library by tl2cgen (treelite's code generator) with the system's C
  compiler, once per model (:mod:`flightdelay.serving.compiled` keeps the library and loads it
  again only if its recorded sha256 matches), when ``gcc`` or such a library is there, or
* interpreted by treelite's GTIL otherwise (slower on large batches, no compiler needed).

Why treelite and not ONNX Runtime: skl2onnx 1.20 cannot convert a HistGradientBoosting with
categorical splits (it fails building the TreeEnsemble node). Why not ``fast_predict`` (the
previous scorer, private scikit-learn and pandas internals): ``benchmarks/serve.py`` measured it
slower at p99 than compiled treelite (and under 2x faster than GTIL on 1,000 rows), while the bar
for keeping a private-internals path is 2x faster than the best maintained runtime.

tl2cgen 1.0.0 embeds treelite 4.1.2 and logs, when it reads the model, that the model comes from
a newer treelite (4.8.1, the one installed): expected; the start-up check below is what decides.

Measured and left as they are (the real model, 1,000 rows, calls interleaved, one loaded
2-core machine): tl2cgen's ``annotate_in`` (branch annotations from 100,000 training rows,
``tl2cgen.annotate_branch``) and ``quantize=1``, alone or together, scored 1,000 rows within 1%
of the plain library (p50 3.74-3.79 ms) and 1 or 8 rows within 8%, so it is compiled plainly.
One thread per call below :data:`BATCH_THREAD_ROWS` rows (``FLIGHTDELAY_MODEL_THREADS=1``),
``FLIGHTDELAY_BATCH_THREADS`` (default 2) from there: on a quiet 2-core machine tl2cgen's pool
with 2 threads scored 1,000 rows in p50 0.95 ms against 1.90 with one (a Predictor of each
on the same library, 300 calls each); on a loaded machine (load ~5) it took p50 6.5 ms for
1,000 rows and 7.5 ms for 64 (1 thread: 3.4 and 0.47 ms), its workers waking late on shared
cores, so small calls (single-flight requests, merged or not) always use one thread, and a
machine whose cores are shared (``--workers`` as many as cores) sets FLIGHTDELAY_BATCH_THREADS=1.

Scores equal the pipeline's within :data:`SCORE_TOLERANCE` (treelite adds the baseline and the
trees in another order: differences of ~1e-15 were measured). The service checks this on sample
rows at start-up and scores with the pipeline itself if the scorer is refused or fails.
"""

from __future__ import annotations

import logging
import shutil
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from flightdelay.serving import compiled

log = logging.getLogger("flightdelay.serving.serve")  # the service's one logger

#: Largest |scorer - pipeline.predict_proba| accepted at start-up (probabilities in [0, 1]).
SCORE_TOLERANCE = 1e-12
#: Translation units tl2cgen splits the trees into (compiled one after another; smaller units
#: compile faster in total than one large file).
COMPILE_UNITS = 8

_compile_lock = threading.Lock()


#: A feature frame (build_features) or one array per feature column (feature_arrays).
Features: TypeAlias = pd.DataFrame | Mapping[str, np.ndarray]


class UnsupportedPipelineError(ValueError):
    """The pipeline is not the shape TreeliteScorer reproduces."""


@dataclass(frozen=True)
class _Encoding:
    """Feature frame -> the float64 matrix the ColumnTransformer outputs, from public attributes."""

    width: int
    numeric_names: list[str]  # passthrough columns, in frame order of reading
    numeric_positions: np.ndarray  # their positions in the matrix
    # position, column, str category -> code
    categorical: list[tuple[int, str, dict[str, float]]]

    @classmethod
    def of(cls, encode: Any) -> _Encoding:
        from sklearn.compose import ColumnTransformer
        from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder

        if not isinstance(encode, ColumnTransformer):
            raise UnsupportedPipelineError(f"first step is a {type(encode).__name__}")
        names = [str(n) for n in encode.get_feature_names_out()]
        inputs: list[str] = []
        codes: dict[str, dict[str, float]] = {}
        for name, transformer, cols in encode.transformers_:
            if name == "remainder":
                if transformer != "drop":
                    raise UnsupportedPipelineError("ColumnTransformer remainder is not 'drop'")
                continue
            cols = [str(c) for c in cols]
            inputs += cols
            if isinstance(transformer, OrdinalEncoder):
                p = transformer.get_params()
                if not (
                    p["handle_unknown"] == "use_encoded_value"
                    and _is_nan(p["unknown_value"])
                    and _is_nan(p["encoded_missing_value"])
                    and p["max_categories"] is None
                    and p["min_frequency"] is None
                ):
                    raise UnsupportedPipelineError("OrdinalEncoder settings differ from train.py's")
                for col, cats in zip(cols, transformer.categories_, strict=True):
                    codes[col] = {c: float(i) for i, c in enumerate(cats) if isinstance(c, str)}
            elif not (
                transformer == "passthrough" or _is_identity(transformer, FunctionTransformer)
            ):
                raise UnsupportedPipelineError(f"unknown transformer {name!r}")
        if names != inputs:  # output column j is input column j (no prefixes, no reordering)
            raise UnsupportedPipelineError("ColumnTransformer output names differ from its inputs")
        numeric = [(j, n) for j, n in enumerate(names) if n not in codes]
        return cls(
            width=len(names),
            numeric_names=[n for _, n in numeric],
            numeric_positions=np.asarray([j for j, _ in numeric], dtype=np.intp),
            categorical=[(j, n, codes[n]) for j, n in enumerate(names) if n in codes],
        )

    def matrix(self, features: Features) -> np.ndarray:
        if isinstance(features, pd.DataFrame):
            n = len(features)
            x = np.empty((n, self.width), dtype=np.float64)
            x[:, self.numeric_positions] = features[self.numeric_names].to_numpy(dtype=np.float64)
        elif (n := len(features[self.numeric_names[0]]) if self.numeric_names else 0) <= _SMALL:
            x = np.empty((n, self.width), dtype=np.float64)
            numeric = np.column_stack([features[c] for c in self.numeric_names]).reshape(n, -1)
            x[:, self.numeric_positions] = numeric
        else:  # one array per column (feature_arrays): each written into its column
            x = np.empty((n, self.width), dtype=np.float64)
            for j, name in zip(self.numeric_positions.tolist(), self.numeric_names, strict=True):
                x[:, j] = features[name]
        nan = np.nan
        for j, name, lookup in self.categorical:
            # A str category's code, NaN for anything else (unknown, missing, not a str: the
            # look-up holds str keys only). One dict look-up per value, in C: 1,000 rows 0.15 ms
            # for the 4 columns, pandas' Index.get_indexer took 0.22.
            values = np.asarray(features[name], dtype=object)
            try:
                x[:, j] = np.fromiter(map(lookup.get, values, repeat(nan)), np.float64, count=n)
            except TypeError:  # an unhashable value (never one feature_arrays gives)
                x[:, j] = [lookup.get(v, nan) if isinstance(v, str) else nan for v in values]
        return x


#: Up to this many rows, one column_stack of the numeric features beats one write per feature.
_SMALL = 64

#: A model call of at least this many rows uses the batch predictor (``batch_threads`` threads).
BATCH_THREAD_ROWS = 256


class TreeliteScorer:
    """``predict_proba(features)[:, 1]`` of a fitted Pipeline, scored by treelite."""

    def __init__(self, encoding: _Encoding, model: Any, predict: Any, runtime: str) -> None:
        self.encoding = encoding
        self.model = model  # treelite.Model
        self._predict = predict  # float64 matrix -> probabilities
        self.runtime = runtime  # "treelite-compiled" (tl2cgen) or "treelite-gtil"

    @classmethod
    def compile(
        cls,
        pipeline: Pipeline,
        key: str,
        n_threads: int = 1,
        compiler: bool | None = None,
        batch_threads: int = 1,
    ) -> TreeliteScorer:
        """Read the fitted pipeline (UnsupportedPipelineError says what does not fit); compile
        its trees with tl2cgen when a C compiler is there (``compiler=None``: look for one), once
        per ``key`` (the model's sha256) and process. Calls of BATCH_THREAD_ROWS rows or more
        use ``batch_threads`` threads (the same library, so the same scores)."""
        import treelite
        from sklearn.ensemble import HistGradientBoostingClassifier

        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
            raise UnsupportedPipelineError("expected Pipeline([ColumnTransformer, HGB classifier])")
        encode, classifier = pipeline.steps[0][1], pipeline.steps[1][1]
        if not isinstance(classifier, HistGradientBoostingClassifier):
            raise UnsupportedPipelineError(f"last step is a {type(classifier).__name__}")
        if classifier.n_trees_per_iteration_ != 1 or len(classifier.classes_) != 2:
            raise UnsupportedPipelineError("not a binary classifier")
        encoding = _Encoding.of(encode)
        with warnings.catch_warnings():  # its cast of NaN category slots to int64: harmless
            warnings.simplefilter("ignore", RuntimeWarning)
            model = treelite.sklearn.import_model(classifier)
        if compiler is None:
            compiler = c_compiler() is not None or compiled.cached(key) is not None
        if compiler:
            predictor = compiled_predictor(model, key, n_threads)
            batch = predictor
            if batch_threads != n_threads:
                batch = batch_predictor(model, key, batch_threads, predictor)
            import tl2cgen

            def predict(x: np.ndarray) -> np.ndarray:
                chosen = batch if len(x) >= BATCH_THREAD_ROWS else predictor
                return np.asarray(chosen.predict(tl2cgen.DMatrix(x, dtype="float64")))

            return cls(encoding, model, predict, "treelite-compiled")

        def interpret(x: np.ndarray) -> np.ndarray:
            return np.asarray(treelite.gtil.predict(model, x, nthread=n_threads))

        return cls(encoding, model, interpret, "treelite-gtil")

    def matrix(self, features: Features) -> np.ndarray:
        """What ``pipeline[0].transform(features)`` gives, as float64."""
        return self.encoding.matrix(features)

    def predict_proba(self, features: Features) -> np.ndarray:
        """Probability of class 1 per row, ``pipeline.predict_proba(features)[:, 1]`` within
        SCORE_TOLERANCE (``features``: build_features' frame or feature_arrays' columns)."""
        x = self.matrix(features)
        if len(x) == 0:
            return np.zeros(0)
        return self._predict(x).reshape(len(x))


def c_compiler() -> str | None:
    """The C compiler tl2cgen will call (it runs ``gcc``), or None."""
    return shutil.which("gcc")


def batch_predictor(model: Any, key: str, n_threads: int, single: Any) -> Any:
    """The predictor of large calls, ``n_threads`` threads; ``single`` (with a warning) if
    tl2cgen still refuses that many."""
    import tl2cgen

    try:
        return compiled_predictor(model, key, n_threads)
    except tl2cgen.TL2cgenError as exc:
        log.warning("large calls use 1 thread: tl2cgen refused %d threads: %s", n_threads, exc)
        return single


def compiled_predictor(model: Any, key: str, n_threads: int) -> Any:
    """tl2cgen's compiled predictor of a treelite model; its library comes from
    :func:`flightdelay.serving.compiled.library` (compiled once per ``key``, verified at every
    load). A predictor may be called by one thread at a time: each scorer has its own.

    tl2cgen refuses ``nthread`` above its own OpenMP runtime's limit, which ``OMP_NUM_THREADS``
    or a threadpoolctl limit (the service's, for scikit-learn) may have lowered for every OpenMP
    runtime in the process: the limit of tl2cgen's runtime alone (nothing else uses it) is
    raised to ``n_threads`` first, so a thread setting means the same whatever ran before."""
    import tl2cgen

    _allow_tl2cgen_threads(n_threads)
    with _compile_lock:
        library = compiled.library(model, key, COMPILE_UNITS)
        return tl2cgen.Predictor(str(library), nthread=n_threads, verbose=False)


def _allow_tl2cgen_threads(n_threads: int) -> None:
    if n_threads <= 1:
        return
    from threadpoolctl import ThreadpoolController

    for lib in ThreadpoolController().lib_controllers:
        tl2cgen_own = "tl2cgen" in Path(lib.filepath).parent.name
        if lib.user_api == "openmp" and tl2cgen_own and lib.num_threads < n_threads:
            lib.set_num_threads(n_threads)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def _is_identity(transformer: Any, function_transformer: type) -> bool:
    return (
        isinstance(transformer, function_transformer)
        and getattr(transformer, "func", None) is None
        and getattr(transformer, "inverse_func", None) is None
    )
