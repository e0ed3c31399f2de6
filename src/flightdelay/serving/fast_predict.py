"""``pipeline.predict_proba`` of the trained Pipeline, without its per-call overhead, on private
scikit-learn and pandas internals.

**Not the service's scorer any more**: ``benchmarks/serve.py`` measured treelite (compiled by
tl2cgen, :mod:`flightdelay.serving.scoring`) faster at p99 for 1 and 1,000 rows, and the project's
rule keeps a private-internals path only if it is at least 2x faster than the best maintained one.
This module stays as the reference that benchmark measures against, so the decision can be
re-checked on a new scikit-learn or treelite; nothing in the package imports it.

The Pipeline (``train.make_pipeline``: an OrdinalEncoder in a ColumnTransformer, then a
HistGradientBoostingClassifier) spends ~6 ms on a single row: pandas output of the
ColumnTransformer, the classifier's own internal encoder, and one Python-level call per tree
(300 trees). :class:`FastPredictor` reads the *fitted* pipeline once and computes the same
numbers from the same fitted parameters:

* categories -> codes: the composition of both fitted encoders, as one dict per column;
* trees: for small batches all trees at once with numpy (one gather per tree level), for large
  ones scikit-learn's own compiled per-tree kernel (``_predict_from_raw_data``);
* leaf values summed in scikit-learn's order (baseline, then tree 1, 2, ...), then the
  classifier's own link function.

The scores are bit-for-bit those of ``pipeline.predict_proba``: :meth:`FastPredictor.compile`
refuses any pipeline shape it does not know (tests/serving/test_fast_predict.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

#: Batches up to this many rows walk all trees at once with numpy; larger ones use the compiled
#: per-tree kernel (measured crossover on the 300-tree model, see benchmarks/serve.py).
VECTORISED_MAX_ROWS = 32


class UnsupportedPipelineError(ValueError):
    """The pipeline is not the shape FastPredictor reproduces exactly."""


@dataclass(frozen=True)
class _Column:
    name: str  # feature column of build_features' frame
    codes: dict[str, float] | None  # categorical: raw value -> final code; None: numeric


@dataclass(frozen=True)
class _Forest:
    """Every tree's nodes in one set of arrays; leaves point to themselves."""

    roots: np.ndarray  # (T,) index of each tree's root
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    categorical: np.ndarray
    bitset_row: np.ndarray
    value: np.ndarray
    left_bitsets: np.ndarray  # (n_categorical_splits, 8) uint32, rows indexed by bitset_row
    depth: int  # deepest leaf: the number of steps that takes every row to a leaf


class FastPredictor:
    """``predict_proba(features)[:, 1]`` of a fitted Pipeline, computed from its parameters."""

    def __init__(
        self,
        columns: list[_Column],
        model: Any,
        forest: _Forest,
        known_bitsets: np.ndarray,
        f_idx_map: np.ndarray,
        n_threads: int,
    ) -> None:
        self.columns = columns
        self.model = model
        self.forest = forest
        self.known_bitsets = known_bitsets
        self.f_idx_map = f_idx_map
        self.n_threads = n_threads
        self._predictors = [p[0] for p in model._predictors]
        self._baseline = model._baseline_prediction
        self._has_categorical = bool(forest.categorical.any())

    # ------------------------------------------------------------ compile

    @classmethod
    def compile(cls, pipeline: Pipeline, n_threads: int = 1) -> FastPredictor:
        """Read the fitted pipeline; UnsupportedPipelineError says what does not fit."""
        from sklearn.compose import ColumnTransformer
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder

        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
            raise UnsupportedPipelineError("expected Pipeline([ColumnTransformer, HGB classifier])")
        encode, model = pipeline.steps[0][1], pipeline.steps[1][1]
        if not isinstance(encode, ColumnTransformer):
            raise UnsupportedPipelineError(f"first step is a {type(encode).__name__}")
        if not isinstance(model, HistGradientBoostingClassifier):
            raise UnsupportedPipelineError(f"last step is a {type(model).__name__}")
        if model.n_trees_per_iteration_ != 1 or len(model.classes_) != 2:
            raise UnsupportedPipelineError("not a binary classifier")

        # Outer encoder: feature name -> category -> code (NaN: unknown or missing).
        outer: dict[str, dict[str, float] | None] = {}
        for name, transformer, cols in encode.transformers_:
            if name == "remainder":
                if transformer != "drop":
                    raise UnsupportedPipelineError("ColumnTransformer remainder is not 'drop'")
                continue
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
                    outer[str(col)] = {
                        c: float(i) for i, c in enumerate(cats) if isinstance(c, str)
                    }
            elif transformer == "passthrough" or _is_identity(transformer, FunctionTransformer):
                for col in cols:
                    outer[str(col)] = None
            else:
                raise UnsupportedPipelineError(f"unknown transformer {name!r}")
        names = [str(n) for n in encode.get_feature_names_out()]
        if sorted(names) != sorted(outer):
            raise UnsupportedPipelineError("ColumnTransformer output names differ from its inputs")

        # Inner encoder of the classifier (categorical features given by name).
        pre = model._preprocessor
        if pre is None:
            raise UnsupportedPipelineError("classifier has no categorical features")
        mask = np.asarray(model.is_categorical_, dtype=bool)
        inner = pre.named_transformers_["encoder"]
        order = [i for i in range(len(names)) if mask[i]] + [
            i for i in range(len(names)) if not mask[i]
        ]
        if list(np.flatnonzero(model._is_categorical_remapped)) != list(range(int(mask.sum()))):
            raise UnsupportedPipelineError("classifier's categorical columns are not placed first")
        columns: list[_Column] = []
        inner_cats = iter(inner.categories_)
        for i in order:
            name = names[i]
            if mask[i]:
                first = outer[name]
                if first is None:
                    raise UnsupportedPipelineError(f"{name!r} is categorical, not ordinal-encoded")
                second = {
                    float(v): float(j) for j, v in enumerate(next(inner_cats)) if not _is_nan(v)
                }
                codes = {raw: second[code] for raw, code in first.items() if code in second}
                columns.append(_Column(name, codes))
            else:
                if outer[name] is not None:
                    raise UnsupportedPipelineError(f"{name!r} is encoded but not categorical")
                columns.append(_Column(name, None))
        known_bitsets, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
        return cls(columns, model, _forest(model), known_bitsets, f_idx_map, n_threads)

    # ------------------------------------------------------------ predict

    def matrix(self, features: pd.DataFrame) -> np.ndarray:
        """The float64 matrix the trees read (what both encoders would produce)."""
        n = len(features)
        x = np.empty((n, len(self.columns)), dtype=np.float64)
        # DataFrame._get_column_array skips building a Series per column (37 of them: ~0.2 ms
        # of a 1-row call); any pandas without it takes the public route.
        get_array = getattr(features, "_get_column_array", None)
        position = {name: i for i, name in enumerate(features.columns)}
        if len(position) != features.shape[1]:  # duplicate names: let pandas complain
            get_array = None
        for j, column in enumerate(self.columns):
            if get_array is not None and column.name in position:
                values = np.asarray(get_array(position[column.name]))
            else:
                values = features[column.name].to_numpy()
            if column.codes is None:
                x[:, j] = values
            else:
                get = column.codes.get
                x[:, j] = [get(v, np.nan) if isinstance(v, str) else np.nan for v in values]
        return x

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Sum of the baseline and every tree's leaf value, in scikit-learn's order."""
        n = x.shape[0]
        if n <= VECTORISED_MAX_ROWS:
            leaves = self._leaf_values(x)  # (n, T)
            stacked = np.empty((n, leaves.shape[1] + 1), dtype=np.float64)
            stacked[:, 0] = 0.0
            stacked[:, 0] += self._baseline[0]
            stacked[:, 1:] = leaves
            return np.add.accumulate(stacked, axis=1)[:, -1:]
        from sklearn.ensemble._hist_gradient_boosting._predictor import _predict_from_raw_data

        raw = np.zeros((n, 1), dtype=self._baseline.dtype, order="F")
        raw += self._baseline
        x = np.ascontiguousarray(x)
        out = np.empty(n, dtype=np.float64)
        for predictor in self._predictors:
            _predict_from_raw_data(
                predictor.nodes,
                x,
                predictor.raw_left_cat_bitsets,
                self.known_bitsets,
                self.f_idx_map,
                self.n_threads,
                out,
            )
            raw[:, 0] += out
        return raw

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Probability of class 1 per row, equal to ``pipeline.predict_proba(features)[:, 1]``."""
        if len(features) == 0:
            return np.zeros(0)
        return np.asarray(self.model._loss.predict_proba(self.raw(self.matrix(features)))[:, 1])

    def _leaf_values(self, x: np.ndarray) -> np.ndarray:
        f = self.forest
        n, width = x.shape
        trees = len(f.roots)
        flat = x.ravel()
        node = np.tile(f.roots, n)
        row_base = np.repeat(np.arange(n, dtype=np.intp) * width, trees)
        for _ in range(f.depth):
            feature = f.feature[node]
            value = flat[row_base + feature]
            nan = np.isnan(value)
            go_left = value <= f.threshold[node]  # False for NaN
            go_left |= nan & f.missing_left[node]
            if self._has_categorical:
                cat = np.flatnonzero(f.categorical[node] & ~nan)
                if len(cat):
                    go_left[cat] = self._categorical_left(value[cat], node[cat], feature[cat])
            node = np.where(go_left, f.left[node], f.right[node])
        return f.value[node].reshape(n, trees)

    def _categorical_left(
        self, value: np.ndarray, node: np.ndarray, feature: np.ndarray
    ) -> np.ndarray:
        # As _predict_one_from_raw_data: negative -> missing; in the split's left set -> left;
        # a known category -> right; an unknown one -> missing.
        f = self.forest
        negative = value < 0
        code = np.where(negative, 0, value).astype(np.uint8).astype(np.intp)
        word, bit = code >> 5, (code & 31).astype(np.uint32)
        in_left = (f.left_bitsets[f.bitset_row[node], word] >> bit) & 1
        known = (self.known_bitsets[self.f_idx_map[feature], word] >> bit) & 1
        missing_left = f.missing_left[node]
        return np.where(
            negative,
            missing_left,
            np.where(in_left == 1, True, np.where(known == 1, False, missing_left)),
        )


def _forest(model: Any) -> _Forest:
    nodes, bitsets, roots = [], [], []
    offset = bitset_offset = 0
    for (predictor,) in model._predictors:
        tree = predictor.nodes
        roots.append(offset)
        left = tree["left"].astype(np.intp) + offset
        right = tree["right"].astype(np.intp) + offset
        here = np.arange(len(tree), dtype=np.intp) + offset
        leaf = tree["is_leaf"].astype(bool)
        left[leaf] = right[leaf] = here[leaf]
        nodes.append(
            {
                "feature": np.where(leaf, 0, tree["feature_idx"]).astype(np.intp),
                "threshold": tree["num_threshold"].astype(np.float64),
                "missing_left": tree["missing_go_to_left"].astype(bool) & ~leaf,
                "left": left,
                "right": right,
                "categorical": tree["is_categorical"].astype(bool) & ~leaf,
                "bitset_row": tree["bitset_idx"].astype(np.intp) + bitset_offset,
                "value": tree["value"].astype(np.float64),
                "depth": np.where(leaf, tree["depth"], 0),
            }
        )
        bitsets.append(predictor.raw_left_cat_bitsets)
        offset += len(tree)
        bitset_offset += len(predictor.raw_left_cat_bitsets)
    cat = {k: np.concatenate([part[k] for part in nodes]) for k in nodes[0]}
    left_bitsets = np.concatenate(bitsets) if bitset_offset else np.zeros((1, 8), dtype=np.uint32)
    return _Forest(
        roots=np.asarray(roots, dtype=np.intp),
        feature=cat["feature"],
        threshold=cat["threshold"],
        missing_left=cat["missing_left"],
        left=cat["left"],
        right=cat["right"],
        categorical=cat["categorical"],
        bitset_row=cat["bitset_row"],
        value=cat["value"],
        left_bitsets=left_bitsets,
        depth=int(cat["depth"].max()),
    )


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def _is_identity(transformer: Any, function_transformer: type) -> bool:
    return (
        isinstance(transformer, function_transformer)
        and getattr(transformer, "func", None) is None
        and getattr(transformer, "inverse_func", None) is None
    )
