"""A job's result: the raw JSON (`.json`, techtonique's shape) with typed accessors, pandas views, a
`shap.Explanation`, and matplotlib figures. pandas, shap and matplotlib are optional extras, imported
only by the methods that need them.
"""

from __future__ import annotations

from typing import Any, Literal

from fitexplain_client import frames, plots
from fitexplain_client.result_fields import ResultFields

FrameKind = Literal["predictions", "importances", "shap"]


class Result(ResultFields):
    """The result JSON's fields (`ResultFields`) and its views: data frames, a `shap.Explanation`, plots."""

    # ------------------------------------------------------------------ views
    def to_frame(self, kind: FrameKind = "predictions") -> Any:
        """A pandas.DataFrame: `predictions` (a row per test row), `importances` (permutation, a row per
        feature), or `shap` in long form (row, feature, [class], value)."""
        return frames.to_frame(self, kind)

    def shap_explanation(self, class_label: str | None = None, data: Any = None) -> Any:
        """A `shap.Explanation` (rows × features, or × classes for classification unless `class_label` picks
        one), so every shap plot works on it; `data` (the test rows' feature values; by default the result's
        `X_test` when the service sent it) colours beeswarms."""
        return frames.shap_explanation(self, class_label, data)

    def reasons_frame(self) -> Any:
        """A predict job's reasons as a pandas.DataFrame, one row per scored row (indexed by its row
        number): `id` (with id_column), `y_pred`, then `feature_1`, `value_1`, `contribution_1`, ... for
        its top reasons, largest first (empty for a row that was not explained)."""
        return frames.reasons_frame(self)

    def plot_importance(self, top: int | None = 20) -> Any:
        """Permutation importance (mean drop in score, ± std over the repeats): a matplotlib Figure."""
        return plots.importance(self, top)

    def plot_shap_summary(self, class_label: str | None = None, top: int | None = 20) -> Any:
        """Mean |SHAP value| per feature (stacked by class for classification): a matplotlib Figure."""
        return plots.shap_summary(self, class_label, top)

    def plot_shap_beeswarm(
        self, class_label: str | None = None, data: Any = None, top: int | None = 20
    ) -> Any:
        """Every row's SHAP value per feature (the last class for classification unless `class_label`),
        coloured by the feature's value when `data` or the result's `X_test` gives the test rows' values;
        in one colour, without a colour bar, when neither does."""
        return plots.shap_beeswarm(self, class_label, data, top)

    def plot_intervals(self) -> Any:
        """Regression: predictions with their prediction intervals and the true values, rows by prediction."""
        return plots.intervals(self)
