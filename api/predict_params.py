"""`POST /jobs/{id}/predict`'s parameters and their mapping to the ML core's `PredictOptions`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.endpoint_params import MAX_WAIT_SECONDS, background_sample, background_spec
from shared.ml.model.predict.options import DEFAULT_TOP_N, PredictOptions
from shared.ml.spec import LEVEL, MAX_COLUMN_NAME_CHARS

MAX_TOP_N = 1_000


class PredictParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interpretability: Annotated[
        Literal["none", "shap"],
        Field(description="shap: SHAP values of the explained rows, by the fit's own explainer"),
    ] = "none"
    top_n: Annotated[
        int,
        Field(
            ge=0,
            le=MAX_TOP_N,
            description="reasons per explained row: the features with the largest |SHAP value| (of the "
            "predicted class for a classifier), each with its value and contribution",
        ),
    ] = DEFAULT_TOP_N
    threshold: Annotated[
        float | None,
        Field(
            description="explain only the rows that cross it: a binary classifier's positive-class "
            "probability, a multiclass classifier's predicted-class probability, a regressor's "
            "prediction, >= threshold (<= with below=true)"
        ),
    ] = None
    below: Annotated[bool, Field(description="explain the rows at or below the threshold instead")] = False
    return_pi: Annotated[
        bool, Field(description="prediction intervals (regression models fitted with return_pi=true)")
    ] = False
    level: Annotated[
        float | None,
        Field(
            **LEVEL.field_constraints(),
            description="the intervals' level: the fit's (they were calibrated then)",
        ),
    ] = None
    id_column: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=MAX_COLUMN_NAME_CHARS,
            description="a column of the upload carried into the result as `ids`, never a feature",
        ),
    ] = None
    strict: Annotated[
        bool, Field(description="refuse categories never seen in training (422) instead of counting them")
    ] = False
    wait: Annotated[
        float | None,
        Field(ge=0, le=MAX_WAIT_SECONDS, description="seconds to wait for the result; 200 with it if done"),
    ] = None
    webhook_url: Annotated[
        str | None,
        Field(max_length=2000, description="gets a signed Standard Webhooks POST when the job finishes"),
    ] = None
    background: Annotated[
        str | None,
        Field(
            max_length=40,
            description="SHAP's background for this job, for the explainers that take one: sample:N, at "
            "most N rows of the model's own background drawn with the fit's seed (default: all of it); or "
            "send a `background` file part instead. Path-dependent TreeSHAP takes none, and says so.",
        ),
        AfterValidator(background_sample),
    ] = None

    def options(self) -> PredictOptions:
        return PredictOptions(
            interpretability=self.interpretability,
            top_n=self.top_n,
            threshold=self.threshold,
            below=self.below,
            return_pi=self.return_pi,
            level=self.level,
            id_column=self.id_column,
            strict=self.strict,
            background=background_spec(self.background),
        )

    def stored(self) -> dict[str, object]:
        """The parameters as kept in the job row (without request-only options such as `wait`, nor
        `background` when absent)."""
        return self.model_dump(exclude={"wait"} | ({"background"} if self.background is None else set()))
