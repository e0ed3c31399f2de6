"""Bodies of the prediction service's requests and responses (``flightdelay serve``).

A request row is what a caller knows before departure: the raw columns of
:data:`flightdelay.features.RAW_COLUMNS`, typed strictly (``"2013"`` is not a year, ``1.0`` is not
a day, ``NaN`` is not a distance) and with no extra keys. Rules that JSON Schema cannot state
(a real calendar date, minutes below 60, an origin the model knows) are checked by the service.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

#: A real flight (UA 1545, Newark to Houston) used as the OpenAPI example, warm-up and smoke test.
EXAMPLE_FLIGHT: dict[str, Any] = {
    "year": 2013,
    "month": 9,
    "day": 2,
    "sched_dep_time": 1058,
    "sched_arr_time": 1338,
    "carrier": "UA",
    "flight": 1545,
    "tailnum": "N57857",
    "origin": "EWR",
    "dest": "IAH",
    "distance": 1400,
}

_HHMM = "scheduled local clock time as HHMM (0..2359, or 2400 for midnight at the end of the day)"
Airport = Annotated[str, Field(pattern=r"^[A-Z0-9]{3}$")]


class Flight(TypedDict):
    """One scheduled flight, as known before departure."""

    __pydantic_config__ = ConfigDict(  # type: ignore[misc]
        strict=True,
        extra="forbid",
        title="Flight",
        json_schema_extra={"examples": [EXAMPLE_FLIGHT]},
    )

    year: Annotated[int, Field(ge=1970, le=2100)]
    month: Annotated[int, Field(ge=1, le=12)]
    day: Annotated[int, Field(ge=1, le=31, description="day of the month (a real date)")]
    sched_dep_time: Annotated[int, Field(ge=0, le=2400, description=f"departure, {_HHMM}")]
    sched_arr_time: Annotated[int, Field(ge=0, le=2400, description=f"arrival, {_HHMM}")]
    carrier: Annotated[str, Field(pattern=r"^[A-Z0-9]{2}$", description="IATA carrier code")]
    flight: Annotated[int, Field(ge=1, le=9999, description="flight number")]
    tailnum: Annotated[
        Annotated[str, Field(pattern=r"^[A-Z0-9]{1,8}$")] | None,
        Field(description="aircraft registration; null when not yet assigned"),
    ]
    origin: Annotated[Airport, Field(description="departure airport (one the model knows)")]
    dest: Annotated[Airport, Field(description="arrival airport")]
    distance: Annotated[
        float,
        Field(gt=0, le=12_500, allow_inf_nan=False, description="great-circle distance in miles"),
    ]


class Prediction(BaseModel):
    probability: float = Field(description="probability of arriving late (see /version: target)")
    late: bool = Field(description="probability >= the model's threshold")
    warnings: list[str] = Field(
        description="inputs the model did not know and treated as missing (unseen carrier or "
        "destination, unknown aircraft, a date outside the model's context)"
    )


class PredictResponse(BaseModel):
    model: str
    model_version: str
    threshold: float
    predictions: list[Prediction] = Field(description="one per request row, in request order")


class ErrorDetail(BaseModel):
    loc: list[str | int] = Field(description="where: 'body', then row index and field")
    msg: str
    type: str


class ErrorResponse(BaseModel):
    error: str = Field(description="one line naming every offending field")
    detail: list[ErrorDetail] = Field(default_factory=list)


class VersionInfo(BaseModel):
    model: str
    version: str = Field(description="release tag (FLIGHTDELAY_MODEL_VERSION), 'dev' if unset")
    git_commit: str | None
    data_md5: str | None
    mlflow_run_id: str | None
    sha256: str
    threshold: float
    target: str | None
    train_months: list[str]
    eval_month: str | None
    predictor: str = Field(
        description="'fast': FastPredictor, checked equal to the pipeline at "
        "start-up; 'pipeline': pipeline.predict_proba"
    )


class Status(BaseModel):
    status: str
    reason: str | None = None
