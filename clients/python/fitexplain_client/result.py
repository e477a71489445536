"""A job's result: the raw JSON (`.json`, techtonique's shape) with typed accessors, pandas views, a
`shap.Explanation`, and matplotlib figures. pandas, shap and matplotlib are optional extras, imported
only by the methods that need them.
"""

from __future__ import annotations

from typing import Any, Literal

from fitexplain_client import frames, plots

CLASSIFICATION_SUMMARIES = ("accuracy", "macro avg", "weighted avg")
FrameKind = Literal["predictions", "importances", "shap"]


class Result:
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
        return self.json["y_true"]

    @property
    def y_pred(self) -> list[Any]:
        return self.json["y_pred"]

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
            return self.json["Score"]
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

    # ------------------------------------------------------------------ views
    def to_frame(self, kind: FrameKind = "predictions") -> Any:
        """A pandas.DataFrame: `predictions` (a row per test row), `importances` (permutation, a row per
        feature), or `shap` in long form (row, feature, [class], value)."""
        return frames.to_frame(self, kind)

    def shap_explanation(self, class_label: str | None = None, data: Any = None) -> Any:
        """A `shap.Explanation` (rows × features, or × classes for classification unless `class_label` picks
        one), so every shap plot works on it; `data` (the test rows' feature values) colours beeswarms."""
        return frames.shap_explanation(self, class_label, data)

    def plot_importance(self, top: int | None = 20) -> Any:
        """Permutation importance (mean drop in score, ± std over the repeats): a matplotlib Figure."""
        return plots.importance(self, top)

    def plot_shap_summary(self, class_label: str | None = None, top: int | None = 20) -> Any:
        """Mean |SHAP value| per feature (stacked by class for classification): a matplotlib Figure."""
        return plots.shap_summary(self, class_label, top)

    def plot_shap_beeswarm(
        self, class_label: str | None = None, data: Any = None, top: int | None = 20
    ) -> Any:
        """Every row's SHAP value per feature (the last class for classification unless `class_label`)."""
        return plots.shap_beeswarm(self, class_label, data, top)

    def plot_intervals(self) -> Any:
        """Regression: predictions with their prediction intervals and the true values, rows by prediction."""
        return plots.intervals(self)
