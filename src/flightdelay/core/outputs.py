"""The pipeline's JSON outputs as types: each is read and written through its model here, so a
missing, misspelt or mistyped key fails where the file is read, naming the file and the key,
instead of turning into a default downstream.

:class:`Output` is the shared base (frozen; unknown keys refused; ``to_json`` gives back exactly
the keys that were set, so a file read and written again is the same bytes). drift.json's model
(:mod:`flightdelay.core.drift_summary`) and evaluate.json's (:class:`EvaluateMetrics`) build on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from flightdelay.core.io import DataFileError, read_json, write_json


class Output(BaseModel):
    """A JSON output of a stage; ``what`` names it in errors, ``stage`` is what rewrites it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    what: ClassVar[str] = "output"
    stage: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        """The JSON payload: the keys that were set, as the stage wrote them."""
        return self.model_dump(exclude_unset=True)

    @classmethod
    def parse(cls, raw: Any, source: str | Path) -> Self:
        """``raw`` (the file's content) as this type; DataFileError names the file and key."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors()
            )
            hint = f"; re-run `dvc repro {cls.stage}`" if cls.stage else ""
            raise DataFileError(f"{source}: not a valid {cls.what} ({problems}){hint}") from None

    @classmethod
    def read(cls, path: Path) -> Self:
        return cls.parse(read_json(path, cls.what), path)

    def write(self, path: Path) -> None:
        write_json(path, self.to_json())


class EvaluateMetrics(Output):
    """evaluate.json: the model on the evaluation month at the training threshold.

    The ranking and probability metrics need both classes in the month, so they may be absent.
    """

    what: ClassVar[str] = "evaluation metrics file"
    stage: ClassVar[str] = "evaluate"

    eval_month: str
    threshold: float
    n: float  # a float in the file since the first release: kept, so the bytes do not move
    late_share: float
    baseline_accuracy: float  # of always predicting the training months' majority class
    accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float | None = None
    pr_auc: float | None = None
    log_loss: float | None = None
    brier: float | None = None

    def metric(self, name: str) -> float | None:
        """A metric by the name a rule or a table gives (None where the month lacks it)."""
        if name not in type(self).model_fields or name == "eval_month":
            raise KeyError(name)
        value = getattr(self, name)
        return None if value is None else float(value)
