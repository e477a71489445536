"""The four public endpoints' parameters (techtonique-compatible) and their mapping to a JobSpec.

One pydantic model per endpoint: FastAPI reads it from the query string (unknown names are refused with
422). Bounds and allowed names are not declared here: the fields read them from shared/ml/spec.py (so
OpenAPI shows them), and every model validates the JobSpec it builds with the ML core's own check, so a
request that passes here is one the worker can run. Submit stores `to_spec().to_json()` on the job row;
the worker reads that and never imports this module.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.ml.estimators import DEFAULT_BASE_MODEL
from shared.ml.explain.methods import explanation_names
from shared.ml.registry import resolve_estimator_class
from shared.ml.spec import (
    DEFAULT_TARGET,
    LEARNING_RATE,
    LEVEL,
    MAX_COLUMN_NAME_CHARS,
    MAX_DEPTH,
    N_ESTIMATORS,
    N_HIDDEN_FEATURES,
    SEED,
    BackgroundSpec,
    GbdtType,
    Impute,
    JobSpec,
    ModelSpec,
    PiMethod,
    Task,
)
from shared.ml.validation import validate_job

MAX_WAIT_SECONDS = 60  # how long one HTTP request may hold its connection (not a property of the job)


def background_sample(value: str | None) -> str | None:
    """`sample:N` as written back by the core (a ParameterError, a ValueError, is pydantic's 422)."""
    return None if value is None else f"sample:{BackgroundSpec.parse(value).rows}"


BackgroundParam = Annotated[
    str | None,
    Field(
        description="SHAP's background, for the explainers that take one: sample:N, at most N training rows "
        "drawn with the seed (default: up to FITEXPLAIN_MAX_BACKGROUND_ROWS); or send a `background` file "
        "part instead. Path-dependent TreeSHAP takes none, and its result says so.",
        max_length=40,
    ),
    AfterValidator(background_sample),
]


def background_spec(value: str | None) -> BackgroundSpec:
    """The ML core's BackgroundSpec of a `background=` value (the default sample when absent)."""
    return BackgroundSpec() if value is None else BackgroundSpec.parse(value)


def parse_interpretability(value: str | None) -> tuple[str, ...]:
    """'none' -> (); 'shap' -> ('shap',); 'shap,permutation' -> both, in the order asked."""
    if value is None:
        return ()
    parts = list(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
    choices = ("none", *explanation_names())
    unknown = sorted(set(parts) - set(choices))
    if unknown:
        raise ValueError(
            f"interpretability: unknown value {unknown[0]!r}; allowed: {', '.join(choices)}, "
            "or a comma-separated combination such as 'permutation,shap'"
        )
    return tuple(m for m in parts if m != "none")


class CommonParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: ClassVar[Task]

    interpretability: Annotated[
        str,
        Field(description="none, permutation, shap, or 'permutation,shap' for both on one fitted model"),
    ] = "none"
    seed: Annotated[
        int, Field(**SEED.field_constraints(), description="seeds the split, nnetsauce and the model")
    ] = 123
    wait: Annotated[
        float | None,
        Field(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="seconds to wait for the result; 200 with the result if done by then",
        ),
    ] = None
    target: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_COLUMN_NAME_CHARS,
            description="the name of the target column (techtonique's files call it `target`)",
        ),
    ] = DEFAULT_TARGET
    id_column: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=MAX_COLUMN_NAME_CHARS,
            description="a column carried into the result as `test_ids` (one per test row), never a feature",
        ),
    ] = None
    impute: Annotated[
        Impute,
        Field(
            description="missing feature values: none (refused, unless the model handles them: lightgbm, "
            "xgboost, catboost), or filled with the training rows' median or most frequent value"
        ),
    ] = "none"
    webhook_url: Annotated[
        str | None,
        Field(
            max_length=2000,
            description="gets a signed Standard Webhooks POST when the job finishes (see /webhook-secret)",
        ),
    ] = None
    background: BackgroundParam = None

    @field_validator("interpretability")
    @classmethod
    def _check_interpretability(cls, value: str) -> str:
        methods = parse_interpretability(value)
        return ",".join(methods) if methods else "none"

    @model_validator(mode="after")
    def _valid_for_the_ml_core(self) -> CommonParams:
        self.to_spec()  # the core's ParameterError is a ValueError: pydantic answers it with a 422
        return self

    def explanations(self) -> tuple[str, ...]:
        return parse_interpretability(self.interpretability)

    def to_spec(self) -> JobSpec:
        """The ML core's JobSpec for these parameters, checked against the core's declarations."""
        raise NotImplementedError

    def stored(self) -> dict[str, object]:
        """The parameters as kept in the job row (without request-only options such as `wait`, nor
        `background` when absent)."""
        return self.model_dump(exclude={"wait"} | ({"background"} if self.background is None else set()))


class MlParams(CommonParams):
    n_hidden_features: Annotated[
        int,
        Field(
            **N_HIDDEN_FEATURES.field_constraints(),
            description="nnetsauce hidden units; 0 fits the bare model",
        ),
    ] = 5
    predict_proba: Annotated[
        bool, Field(description="accepted for compatibility; proba is always returned")
    ] = False
    base_model: str

    def to_spec(self) -> JobSpec:
        model = ModelSpec(
            task=self.task,
            family="ml",
            base_model=self.base_model,
            n_hidden_features=self.n_hidden_features,
            seed=self.seed,
            impute=self.impute,
        )
        return _job_spec(self, model)


class MlClassificationParams(MlParams):
    task: ClassVar[Task] = "classification"
    base_model: Annotated[
        str, Field(description="a scikit-learn classifier's class name (see GET /models)")
    ] = DEFAULT_BASE_MODEL["classification"]

    @field_validator("base_model")
    @classmethod
    def _known_classifier(cls, value: str) -> str:
        resolve_estimator_class(value, "classification")  # so the 422 points at base_model itself
        return value


class MlRegressionParams(MlParams):
    task: ClassVar[Task] = "regression"
    base_model: Annotated[
        str, Field(description="a scikit-learn regressor's class name (see GET /models)")
    ] = DEFAULT_BASE_MODEL["regression"]

    @field_validator("base_model")
    @classmethod
    def _known_regressor(cls, value: str) -> str:
        resolve_estimator_class(value, "regression")
        return value

    return_pi: Annotated[bool, Field(description="add split/local conformal prediction intervals")] = False
    level: Annotated[
        float, Field(**LEVEL.field_constraints(), description="prediction interval level, in percent")
    ] = 95
    pi_method: PiMethod = "splitconformal"


class GbdtParams(CommonParams):
    model_type: GbdtType = "lightgbm"
    n_estimators: Annotated[int, Field(**N_ESTIMATORS.field_constraints())] = 100
    learning_rate: Annotated[float, Field(**LEARNING_RATE.field_constraints())] = 0.1
    max_depth: Annotated[int, Field(**MAX_DEPTH.field_constraints())] = 3
    shap_interactions: Annotated[
        bool,
        Field(description="also exact SHAP interaction values (xgboost, gradientboosting; needs shap)"),
    ] = False

    def to_spec(self) -> JobSpec:
        model = ModelSpec(
            task=self.task,
            family="gbdt",
            model_type=self.model_type,
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            seed=self.seed,
            impute=self.impute,
        )
        return _job_spec(self, model)


class GbdtClassificationParams(GbdtParams):
    task: ClassVar[Task] = "classification"
    predict_proba: Annotated[
        bool, Field(description="accepted for compatibility; proba is always returned")
    ] = False


class GbdtRegressionParams(GbdtParams):
    task: ClassVar[Task] = "regression"
    return_pi: bool = False
    level: Annotated[float, Field(**LEVEL.field_constraints())] = 95
    pi_method: PiMethod = "splitconformal"


def _job_spec(params: CommonParams, model: ModelSpec) -> JobSpec:
    spec = JobSpec(
        model=model,
        predict_proba=bool(getattr(params, "predict_proba", False)),
        return_pi=bool(getattr(params, "return_pi", False)),
        level=float(getattr(params, "level", 95.0)),
        pi_method=getattr(params, "pi_method", "splitconformal"),
        interpretability=params.explanations(),
        shap_interactions=bool(getattr(params, "shap_interactions", False)),
        target=params.target,
        id_column=params.id_column,
        background=background_spec(params.background),
    )
    return validate_job(spec)


Endpoint = Literal["mlclassification", "mlregression", "gbdtclassification", "gbdtregression"]

PARAMS_BY_ENDPOINT: dict[str, type[CommonParams]] = {
    "mlclassification": MlClassificationParams,
    "mlregression": MlRegressionParams,
    "gbdtclassification": GbdtClassificationParams,
    "gbdtregression": GbdtRegressionParams,
}


def job_spec(endpoint: str, params: CommonParams) -> JobSpec:
    """The ML core's JobSpec for validated endpoint parameters."""
    assert isinstance(params, PARAMS_BY_ENDPOINT[endpoint])
    return params.to_spec()
