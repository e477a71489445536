"""A job's result JSON (techtonique's shape) read field by field: predictions, metrics, intervals and
the explanation objects."""

from __future__ import annotations

from typing import Any, Literal, cast

CLASSIFICATION_SUMMARIES = ("accuracy", "macro avg", "weighted avg")


class ResultFields:
    """The result JSON (`.json`) with a typed accessor per field: what the pandas, shap and matplotlib
    views read (`frames`, `plots`), below `Result`, which adds those views."""

    def __init__(self, json: dict[str, Any], job_id: str | None = None) -> None:
        self.json = json
        self.job_id = job_id

    def __repr__(self) -> str:
        methods = ", ".join(item["method"] for item in self.explanations) or "no explanation"
        return f"<Result {self.task}, {len(self.y_pred)} test rows, {methods}>"

    # ------------------------------------------------------------------ predictions and metrics
    @property
    def task(self) -> Literal["classification", "regression"]:
        return "regression" if "Score" in self.json else "classification"

    @property
    def y_true(self) -> list[Any]:
        return cast(list[Any], self.json["y_true"])

    @property
    def y_pred(self) -> list[Any]:
        return cast(list[Any], self.json["y_pred"])

    @property
    def proba(self) -> list[list[float]] | None:
        """Test rows × classes (classification)."""
        return self.json.get("proba")

    @property
    def class_labels(self) -> list[str]:
        """The class labels in the order of `proba`'s columns (classification; empty for regression)."""
        if self.task == "regression":
            return []
        shap = self.shap
        if shap is not None and shap.get("class_labels"):
            return [str(label) for label in shap["class_labels"]]
        return [
            key
            for key, value in self.json.items()
            if isinstance(value, dict) and key not in (*CLASSIFICATION_SUMMARIES, "Score")
        ]

    @property
    def metrics(self) -> dict[str, Any]:
        """Regression: the `Score` object; classification: the per-class reports, accuracy and averages."""
        if self.task == "regression":
            return cast(dict[str, Any], self.json["Score"])
        return {label: self.json[label] for label in (*self.class_labels, *CLASSIFICATION_SUMMARIES)}

    @property
    def pi_lower(self) -> list[float] | None:
        return self.json.get("pi_lower")

    @property
    def pi_upper(self) -> list[float] | None:
        return self.json.get("pi_upper")

    @property
    def pi_coverage(self) -> float | None:
        return self.json.get("pi_coverage")

    # ------------------------------------------------------------------ explanations
    @property
    def explanations(self) -> list[dict[str, Any]]:
        """The flat explanation objects: `interpretability` is one object, or a list for several methods."""
        found = self.json.get("interpretability")
        if not found:
            return []
        return found if isinstance(found, list) else [found]

    def explanation(self, method: Literal["permutation", "shap"]) -> dict[str, Any] | None:
        return next((item for item in self.explanations if item.get("method") == method), None)

    @property
    def permutation(self) -> dict[str, Any] | None:
        """importances_mean, importances_std, importances (features × repeats), feature_names, ..."""
        return self.explanation("permutation")

    @property
    def shap(self) -> dict[str, Any] | None:
        """values, base_values, feature_names, class_labels, output_space, explainer, exact, ..."""
        return self.explanation("shap")

    @property
    def feature_names(self) -> list[str]:
        for item in self.explanations:
            if item.get("feature_names"):
                return list(item["feature_names"])
        return []

    def require(self, method: Literal["permutation", "shap"]) -> dict[str, Any]:
        found = self.explanation(method)
        if found is None:
            asked = ", ".join(item["method"] for item in self.explanations) or "none"
            raise ValueError(f"this result has no {method} explanation (interpretability was {asked})")
        return found

    def regression_intervals(self) -> tuple[list[float], list[float]]:
        if self.pi_lower is None or self.pi_upper is None:
            raise ValueError(
                "this result has no prediction intervals (submit a regression with return_pi=True)"
            )
        return self.pi_lower, self.pi_upper
