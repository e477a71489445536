"""The four public endpoints' parameters (techtonique-compatible) and their mapping to a JobSpec.

One pydantic model per endpoint: FastAPI reads it from the query string (unknown names are refused with
422), the job row stores its JSON form, and the worker rebuilds the same JobSpec from it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.ml.errors import ParameterError
from shared.ml.spec import ExplanationMethod, GbdtType, JobSpec, ModelSpec, PiMethod, Task

EXPLANATION_CHOICES = ("none", "permutation", "shap")


def parse_interpretability(value: str | None) -> tuple[ExplanationMethod, ...]:
    """'none' -> (); 'shap' -> ('shap',); 'shap,permutation' -> both, in the order asked."""
    if value is None:
        return ()
    parts = list(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
    unknown = sorted(set(parts) - set(EXPLANATION_CHOICES))
    if unknown:
        raise ValueError(
            f"interpretability: unknown value {unknown[0]!r}; allowed: none, permutation, shap, "
            "or a comma-separated combination such as 'permutation,shap'"
        )
    return tuple(m for m in parts if m != "none")  # type: ignore[misc]


class CommonParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interpretability: Annotated[
        str,
        Field(description="none, permutation, shap, or 'permutation,shap' for both on one fitted model"),
    ] = "none"
    seed: Annotated[
        int, Field(ge=0, le=2**31 - 1, description="seeds the split, nnetsauce and the model")
    ] = 123
    wait: Annotated[
        float | None,
        Field(ge=0, le=60, description="seconds to wait for the result; 200 with the result if done by then"),
    ] = None
    webhook_url: Annotated[
        str | None,
        Field(
            max_length=2000,
            description="gets a signed Standard Webhooks POST when the job finishes (see /webhook-secret)",
        ),
    ] = None

    @field_validator("interpretability")
    @classmethod
    def _check_interpretability(cls, value: str) -> str:
        methods = parse_interpretability(value)
        return ",".join(methods) if methods else "none"

    def explanations(self) -> tuple[ExplanationMethod, ...]:
        return parse_interpretability(self.interpretability)

    def stored(self) -> dict[str, object]:
        """The parameters as kept in the job row (without request-only options such as `wait`)."""
        return self.model_dump(exclude={"wait"})


class MlParams(CommonParams):
    n_hidden_features: Annotated[
        int, Field(ge=0, le=1000, description="nnetsauce hidden units; 0 fits the bare base model")
    ] = 5
    predict_proba: Annotated[
        bool, Field(description="accepted for compatibility; proba is always returned")
    ] = False


class MlClassificationParams(MlParams):
    base_model: Annotated[
        str, Field(description="a scikit-learn classifier's class name (see GET /models)")
    ] = "RandomForestClassifier"

    @field_validator("base_model")
    @classmethod
    def _known_classifier(cls, value: str) -> str:
        return _check_base_model(value, "classification")


class MlRegressionParams(MlParams):
    base_model: Annotated[
        str, Field(description="a scikit-learn regressor's class name (see GET /models)")
    ] = "ElasticNet"
    return_pi: Annotated[bool, Field(description="add split/local conformal prediction intervals")] = False
    level: Annotated[float, Field(gt=0, lt=100, description="prediction interval level, in percent")] = 95
    pi_method: PiMethod = "splitconformal"

    @field_validator("base_model")
    @classmethod
    def _known_regressor(cls, value: str) -> str:
        return _check_base_model(value, "regression")


class GbdtParams(CommonParams):
    model_type: GbdtType = "lightgbm"
    n_estimators: Annotated[int, Field(ge=1, le=10_000)] = 100
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.1
    max_depth: Annotated[int, Field(ge=1, le=32)] = 3
    shap_interactions: Annotated[
        bool,
        Field(description="also exact SHAP interaction values (xgboost, gradientboosting; needs shap)"),
    ] = False

    @model_validator(mode="after")
    def _interactions_need_shap_on_a_supported_model(self) -> GbdtParams:
        if self.shap_interactions:
            if "shap" not in self.explanations():
                raise ValueError("shap_interactions=true needs interpretability=shap (or permutation,shap)")
            if self.model_type not in ("xgboost", "gradientboosting"):
                raise ValueError(
                    f"shap_interactions is available for model_type xgboost or gradientboosting, "
                    f"not {self.model_type}"
                )
        return self


class GbdtClassificationParams(GbdtParams):
    predict_proba: Annotated[
        bool, Field(description="accepted for compatibility; proba is always returned")
    ] = False


class GbdtRegressionParams(GbdtParams):
    return_pi: bool = False
    level: Annotated[float, Field(gt=0, lt=100)] = 95
    pi_method: PiMethod = "splitconformal"


def _check_base_model(name: str, task: Task) -> str:
    from shared.ml.registry import resolve_estimator_class

    try:
        resolve_estimator_class(name, task)
    except ParameterError as exc:
        raise ValueError(exc.message) from exc
    return name


Endpoint = Literal["mlclassification", "mlregression", "gbdtclassification", "gbdtregression"]

PARAMS_BY_ENDPOINT: dict[str, type[CommonParams]] = {
    "mlclassification": MlClassificationParams,
    "mlregression": MlRegressionParams,
    "gbdtclassification": GbdtClassificationParams,
    "gbdtregression": GbdtRegressionParams,
}

TASK_BY_ENDPOINT: dict[str, Task] = {
    "mlclassification": "classification",
    "mlregression": "regression",
    "gbdtclassification": "classification",
    "gbdtregression": "regression",
}


def job_spec(endpoint: str, params: CommonParams) -> JobSpec:
    """The ML core's JobSpec for validated endpoint parameters."""
    task = TASK_BY_ENDPOINT[endpoint]
    if isinstance(params, MlParams):
        model = ModelSpec(
            task=task,
            family="ml",
            base_model=params.base_model,  # type: ignore[attr-defined]
            n_hidden_features=params.n_hidden_features,
            seed=params.seed,
        )
    else:
        assert isinstance(params, GbdtParams)
        model = ModelSpec(
            task=task,
            family="gbdt",
            model_type=params.model_type,
            n_estimators=params.n_estimators,
            learning_rate=params.learning_rate,
            max_depth=params.max_depth,
            seed=params.seed,
        )
    return JobSpec(
        model=model,
        predict_proba=bool(getattr(params, "predict_proba", False)),
        return_pi=bool(getattr(params, "return_pi", False)),
        level=float(getattr(params, "level", 95.0)),
        pi_method=getattr(params, "pi_method", "splitconformal"),
        interpretability=params.explanations(),
        shap_interactions=bool(getattr(params, "shap_interactions", False)),
    )


def job_spec_from_row(endpoint: str, stored: dict[str, object]) -> JobSpec:
    """Rebuild the JobSpec from a job row's stored parameters (the worker's side)."""
    params = PARAMS_BY_ENDPOINT[endpoint].model_validate(stored)
    return job_spec(endpoint, params)
