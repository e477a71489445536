"""A predict request's parameters, checked against the model they apply to."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from shared.ml.errors import ParameterError
from shared.ml.spec import BackgroundSpec, Task

Interpretability = Literal["none", "shap"]
DEFAULT_TOP_N = 3


@dataclass(frozen=True)
class PredictOptions:
    """How to score and explain new rows.

    `threshold` selects the explained rows: a binary classifier's positive-class probability, a multiclass
    classifier's predicted-class probability, a regressor's prediction, each >= threshold (<= with
    `below`). `top_n` reasons per explained row (0: none). `return_pi` needs a model fitted with
    intervals, whose `level` it keeps. `background`: the SHAP background for this job only (by default
    the kept model's; `shared.ml.model.predict.background`)."""

    interpretability: Interpretability = "none"
    top_n: int = DEFAULT_TOP_N
    threshold: float | None = None
    below: bool = False
    return_pi: bool = False
    level: float | None = None
    id_column: str | None = None
    strict: bool = False
    background: BackgroundSpec = field(default_factory=BackgroundSpec)

    @property
    def explains(self) -> bool:
        return self.interpretability == "shap"

    def to_json(self) -> dict[str, Any]:
        """The options as stored in the predict spec; the default background is left out."""
        body = asdict(self)
        if not self.background.asked:
            del body["background"]
        return body

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PredictOptions:
        body = dict(data)
        body["background"] = BackgroundSpec.from_json(body.get("background") or {})
        return cls(**body)

    def check(self, task: Task, *, fitted_pi: bool, fitted_level: float) -> None:
        """ParameterError naming the parameter that does not fit this model or the other parameters."""
        if self.interpretability not in ("none", "shap"):
            raise ParameterError(
                "bad_parameter",
                f"interpretability={self.interpretability!r} is not accepted for predict: use none or shap.",
            )
        if self.top_n < 0:
            raise ParameterError("bad_parameter", f"top_n must be 0 or more; got {self.top_n}.")
        if not self.explains and self.threshold is not None:
            raise ParameterError(
                "bad_parameter", "threshold selects the rows SHAP explains: it needs interpretability=shap."
            )
        if self.threshold is not None and task == "classification" and not 0 <= self.threshold <= 1:
            raise ParameterError(
                "bad_parameter",
                f"threshold is a class probability for a classifier: between 0 and 1; got {self.threshold}.",
            )
        if self.return_pi and (task != "regression" or not fitted_pi):
            raise ParameterError(
                "pi_unavailable",
                "return_pi needs a regression model fitted with return_pi=true: its intervals were "
                "calibrated at fit time.",
            )
        if self.level is not None and self.level != fitted_level:
            raise ParameterError(
                "bad_parameter",
                f"level={self.level:g}: the model's intervals were calibrated at {fitted_level:g}% when it "
                "was fitted; leave level out or pass that value.",
            )
