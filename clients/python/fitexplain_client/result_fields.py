"""A job's result JSON (techtonique's shape) as a typed model: predictions, metrics, intervals and the
explanation objects."""

from __future__ import annotations

from typing import Any, Literal, Self, cast

from pydantic import Field, PrivateAttr

from fitexplain_client.models import APIModel, PermutationImportance, ShapExplanation

CLASSIFICATION_SUMMARIES = ("accuracy", "macro avg", "weighted avg")
Explanation = ShapExplanation | PermutationImportance


class ResultFields(APIModel):
    """The result JSON as typed fields (the big arrays kept as sent, unchecked, so a result of many rows
    reads fast); the JSON itself at `.raw` (also `.json`), every other key (a classification's per-class
    reports) in `model_extra` and by `result["key"]`. What the pandas, shap and matplotlib views read
    (`frames`, `plots`), below `Result`, which adds those views.

    `ResultFields(json)` and `ResultFields(json, job_id=...)` read a result JSON as a dict."""

    y_true: list[Any] = Field(default_factory=list)
    y_pred: list[Any] = Field(default_factory=list)
    proba: list[list[float]] | None = None
    pi_lower: list[float] | None = None
    pi_upper: list[float] | None = None
    pi_coverage: float | None = None
    score: dict[str, Any] | None = Field(None, alias="Score")
    accuracy: float | None = None
    interpretability: Any = None
    x_test: Any = Field(None, alias="X_test")
    # A predict job's (POST /jobs/{id}/predict): its rows' ids, the explained rows and their top reasons.
    ids: list[Any] | None = None
    explained_rows: list[int] | None = None
    reasons: list[list[dict[str, Any]]] | None = None
    unseen_categories: dict[str, int] | None = None
    extra_columns: list[str] | None = None
    _job_id: str | None = PrivateAttr(None)

    def __init__(
        self, json: dict[str, Any] | None = None, /, job_id: str | None = None, **fields: Any
    ) -> None:
        body = dict(json) if json is not None else fields
        super().__init__(**body)
        self._raw = json if json is not None else fields
        self._job_id = job_id

    @classmethod
    def from_json(cls, body: dict[str, Any], job_id: str | None = None) -> Self:
        found = cls.model_validate(body)
        found._raw, found._job_id = body, job_id
        return found

    @property
    def job_id(self) -> str | None:
        return self._job_id

    @property
    def json(self) -> dict[str, Any]:  # type: ignore[override]  # pydantic's deprecated json() method
        """The result JSON as the service sent it (the same object as `.raw`)."""
        return self.raw

    def __str__(self) -> str:
        return repr(self)

    def __repr__(self) -> str:
        methods = ", ".join(item.method for item in self.explanations) or "no explanation"
        return f"<Result {self.task}, {len(self.y_pred)} test rows, {methods}>"

    # ------------------------------------------------------------------ predictions and metrics
    @property
    def task(self) -> Literal["classification", "regression"]:
        if self.score is not None:
            return "regression"
        return "classification" if self.proba is not None or self.accuracy is not None else "regression"

    @property
    def class_labels(self) -> list[str]:
        """The class labels in the order of `proba`'s columns (classification; empty for regression)."""
        if self.task == "regression":
            return []
        listed = self.raw.get("class_labels")  # a predict job's
        if isinstance(listed, list):
            return [str(label) for label in listed]
        shap = self.shap
        if shap is not None and shap.class_labels:
            return list(shap.class_labels)
        return [
            key
            for key, value in self.raw.items()
            if isinstance(value, dict) and key not in (*CLASSIFICATION_SUMMARIES, "Score")
        ]

    @property
    def metrics(self) -> dict[str, Any]:
        """Regression: the `Score` object; classification: the per-class reports, accuracy and averages."""
        if self.score is not None:
            return self.score
        return {label: self.raw[label] for label in (*self.class_labels, *CLASSIFICATION_SUMMARIES)}

    @property
    def X_test(self) -> Any:
        """The test rows' feature values (rows × features) when the service sent them, else None."""
        return self.x_test

    # ------------------------------------------------------------------ explanations
    @property
    def explanations(self) -> list[Explanation]:
        """The explanation objects, typed: `interpretability` is one object, or a list for several."""
        found = self.interpretability
        if not found:
            return []
        return [_explanation(item) for item in (found if isinstance(found, list) else [found])]

    def explanation(self, method: Literal["permutation", "shap"]) -> Explanation | None:
        return next((item for item in self.explanations if item.method == method), None)

    @property
    def permutation(self) -> PermutationImportance | None:
        """importances_mean, importances_std, importances (features × repeats), feature_names, ..."""
        return cast(PermutationImportance | None, self.explanation("permutation"))

    @property
    def shap(self) -> ShapExplanation | None:
        """values, base_values, feature_names, class_labels, output_space, explainer, exact, ..."""
        return cast(ShapExplanation | None, self.explanation("shap"))

    @property
    def feature_names(self) -> list[str]:
        for item in self.explanations:
            if item.feature_names:
                return list(item.feature_names)
        return []

    def require_shap(self) -> ShapExplanation:
        return cast(ShapExplanation, self.require("shap"))

    def require_permutation(self) -> PermutationImportance:
        return cast(PermutationImportance, self.require("permutation"))

    def require(self, method: Literal["permutation", "shap"]) -> Explanation:
        found = self.explanation(method)
        if found is None:
            asked = ", ".join(item.method for item in self.explanations) or "none"
            raise ValueError(f"this result has no {method} explanation (interpretability was {asked})")
        return found

    def regression_intervals(self) -> tuple[list[float], list[float]]:
        if self.pi_lower is None or self.pi_upper is None:
            raise ValueError(
                "this result has no prediction intervals (submit a regression with return_pi=True)"
            )
        return self.pi_lower, self.pi_upper


def _explanation(item: dict[str, Any]) -> Explanation:
    if item.get("method") == "shap":
        return ShapExplanation.from_json(item)
    return PermutationImportance.from_json(item)
