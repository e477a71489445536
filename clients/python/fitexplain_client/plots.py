"""matplotlib figures of a Result. Each returns a `matplotlib.figure.Figure` (no pyplot state: it displays
in Jupyter and saves with `.savefig(path)` anywhere, headless included)."""

from __future__ import annotations

from typing import Any

from fitexplain_client.frames import class_index, feature_values, need_extra, shap_arrays
from fitexplain_client.result_fields import ResultFields


def _figure(n_rows: int) -> tuple[Any, Any]:
    figure_module = need_extra("matplotlib.figure", "plot")
    figure = figure_module.Figure(figsize=(7, max(2.5, 0.3 * n_rows + 1.2)), layout="constrained")
    return figure, figure.add_subplot()


def _top(order: Any, top: int | None) -> Any:
    return order if top is None else order[:top]


def importance(result: ResultFields, top: int | None) -> Any:
    np = need_extra("numpy", "plot")
    permutation = result.require("permutation")
    means = np.asarray(permutation["importances_mean"], dtype=float)
    stds = np.asarray(permutation["importances_std"], dtype=float)
    names = np.asarray(permutation["feature_names"])
    order = _top(np.argsort(-means), top)[::-1]  # largest at the top
    figure, axes = _figure(len(order))
    axes.barh(names[order], means[order], xerr=stds[order], color="#3b75af", ecolor="#555555", capsize=2)
    axes.axvline(0, color="black", linewidth=0.8)
    scoring = permutation.get("scoring", "score")
    axes.set_xlabel(f"mean drop in {scoring} when the feature is permuted (± std)")
    axes.set_title("Permutation importance")
    return figure


def shap_summary(result: ResultFields, class_label: str | None, top: int | None) -> Any:
    np = need_extra("numpy", "plot")
    shap = result.require("shap")
    names = np.asarray(shap["feature_names"])
    values = np.asarray(shap["values"], dtype=float)
    if values.ndim == 3 and class_label is None:
        per_class = np.abs(values).mean(axis=0)  # features × classes
        labels = result.class_labels
    else:
        one, _ = shap_arrays(result, class_label)
        per_class = np.abs(one).mean(axis=0)[:, None]
        labels = [class_label or (result.class_labels[-1] if result.class_labels else "")]
    order = _top(np.argsort(-per_class.sum(axis=1)), top)[::-1]
    figure, axes = _figure(len(order))
    left = np.zeros(len(order))
    for index, label in enumerate(labels):
        widths = per_class[order, index]
        axes.barh(names[order], widths, left=left, label=f"class {label}" if label else None)
        left += widths
    if len(labels) > 1 or labels[0]:
        axes.legend(loc="lower right")
    axes.set_xlabel(f"mean |SHAP value| ({shap.get('output_space', 'raw')} space)")
    axes.set_title(f"SHAP summary ({shap.get('explainer', '')} explainer)")
    return figure


def shap_beeswarm(result: ResultFields, class_label: str | None, data: Any, top: int | None) -> Any:
    np = need_extra("numpy", "plot")
    shap = result.require("shap")
    values, _ = shap_arrays(result, class_label)
    names = np.asarray(shap["feature_names"])
    order = _top(np.argsort(-np.abs(values).mean(axis=0)), top)[::-1]
    features = feature_values(result, data, values.shape[0])  # None: one colour, no colour bar
    figure, axes = _figure(len(order))
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, size=values.shape[0])
    scatter = None
    for position, feature in enumerate(order):
        style: dict[str, Any] = {"color": "#3b75af"}
        if features is not None:  # colour by the feature's value, scaled to its 5th..95th percentile
            column = features[:, feature]
            low, high = np.nanpercentile(column, [5, 95])
            scaled = np.clip((column - low) / (high - low if high > low else 1.0), 0, 1)
            style = {"c": scaled, "cmap": "coolwarm", "vmin": 0, "vmax": 1}
        scatter = axes.scatter(values[:, feature], position + jitter, s=8, alpha=0.8, **style)
    if features is not None and scatter is not None:
        figure.colorbar(scatter, ax=axes, label="feature value (low → high)", ticks=[])
    axes.set_yticks(range(len(order)), names[order])
    axes.axvline(0, color="black", linewidth=0.8)
    space = shap.get("output_space", "raw")
    which = f", class {result.class_labels[class_index(result, class_label)]}" if result.class_labels else ""
    axes.set_xlabel(f"SHAP value ({space} space{which})")
    axes.set_title("SHAP values per row")
    return figure


def intervals(result: ResultFields) -> Any:
    np = need_extra("numpy", "plot")
    lower, upper = (np.asarray(side, dtype=float) for side in result.regression_intervals())
    predicted = np.asarray(result.y_pred, dtype=float)
    actual = np.asarray(result.y_true, dtype=float)
    order = np.argsort(predicted)
    positions = np.arange(len(order))
    figure_module = need_extra("matplotlib.figure", "plot")
    figure = figure_module.Figure(figsize=(8, 4), layout="constrained")
    axes = figure.add_subplot()
    axes.fill_between(positions, lower[order], upper[order], color="#3b75af", alpha=0.25, label="interval")
    axes.plot(positions, predicted[order], color="#3b75af", label="prediction")
    inside = (actual >= lower) & (actual <= upper)
    axes.scatter(positions, actual[order], s=10, c=np.where(inside[order], "black", "#d62728"), label="true")
    coverage = result.pi_coverage if result.pi_coverage is not None else 100 * inside.mean()
    axes.set_title(f"Prediction intervals: {coverage:.1f} % of test rows inside (red: outside)")
    axes.set_xlabel("test rows, by prediction")
    axes.set_ylabel("target")
    axes.legend(loc="upper left")
    return figure
