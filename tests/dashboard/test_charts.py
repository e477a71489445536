"""Chart geometry and metrics views, from the public result shape; no services."""

from __future__ import annotations

import numpy as np

from api.dashboard import charts
from api.dashboard.rendering import templates
from api.dashboard.result_view import ClassificationMetrics, RegressionMetrics, metrics_view


def permutation(names: list[str], means: list[float], stds: list[float]) -> dict[str, object]:
    return {
        "method": "permutation",
        "feature_names": names,
        "importances_mean": means,
        "importances_std": stds,
        "scoring": "accuracy",
    }


def test_nice_ticks_are_round_and_span_the_range() -> None:
    assert charts.nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert charts.nice_ticks(-3, 7) == [-2, 0, 2, 4, 6]
    assert charts.nice_ticks(5, 5) == [5]


def test_importance_bars_are_sorted_largest_first_with_error_bars() -> None:
    chart = charts.importance_bars(
        "permutation", "t", ["a", "b", "c"], np.array([0.1, 0.5, -0.2]), np.array([0.01, 0.05, 0.02])
    )
    assert [bar.label for bar in chart.bars] == ["b", "a", "c"]
    assert [bar.y for bar in chart.bars] == sorted(bar.y for bar in chart.bars)
    b, _, c = chart.bars
    assert b.x == chart.zero and c.x + c.width == chart.zero  # negative bars grow left of zero
    assert b.error_from < b.x + b.width < b.error_to


def test_bars_keep_the_top_features_and_say_so() -> None:
    values = np.arange(40, dtype=float)
    chart = charts.importance_bars("shap-mean", "t", [f"f{i}" for i in range(40)], values)
    assert len(chart.bars) == charts.MAX_FEATURES and chart.bars[0].label == "f39"
    assert chart.note == f"top {charts.MAX_FEATURES} of 40 features"


def test_beeswarm_subsamples_rows_and_orders_lanes_by_mean_abs() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(1000, 3)) * np.array([0.1, 3.0, 1.0])
    chart = charts.beeswarm("shap-beeswarm", "t", ["small", "large", "middle"], values)
    assert [lane.label for lane in chart.lanes] == ["large", "middle", "small"]
    assert len(chart.dots) == 3 * charts.MAX_DOTS_PER_FEATURE
    assert chart.note == f"{charts.MAX_DOTS_PER_FEATURE} of 1000 rows"
    assert {dot.positive for dot in chart.dots} == {True, False}


def test_explanation_charts_read_the_flat_object_and_the_list() -> None:
    shap_classification = {
        "method": "shap",
        "feature_names": ["a", "b"],
        "values": np.ones((5, 2, 3)).tolist(),
        "class_labels": ["x", "y", "z"],
        "output_space": "log-odds",
    }
    single = charts.explanation_charts({"interpretability": permutation(["a"], [0.1], [0.0])})
    assert [c.kind for c in single] == ["permutation"]
    both = charts.explanation_charts(
        {"interpretability": [shap_classification, permutation(["a", "b"], [0.1, 0.2], [0.0, 0.1])]}
    )
    kinds = [c.kind for c in both]
    assert kinds == ["shap-mean", "shap-beeswarm"] * 3 + ["permutation"]
    assert both[0].title.endswith("class x") and both[4].title.endswith("class z")
    assert charts.explanation_charts({"interpretability": None}) == []


def test_regression_gets_predicted_vs_actual_with_intervals() -> None:
    result = {
        "y_true": [1.0, 2.0, 3.0],
        "y_pred": [1.1, 1.9, 3.2],
        "pi_lower": [0.5, 1.5, 2.5],
        "pi_upper": [1.5, 2.5, 3.5],
        "Score": {"R2": 0.9},
    }
    (chart,) = charts.explanation_charts(result)
    assert chart.kind == "predicted-vs-actual" and len(chart.intervals) == 3 and len(chart.points) == 3
    assert all(i.y_from > i.y_to for i in chart.intervals)  # SVG y grows downwards: lower bound below
    (plain,) = charts.explanation_charts({k: v for k, v in result.items() if not k.startswith("pi_")})
    assert plain.intervals == [] and "intervals" not in plain.title


def test_labels_are_escaped_in_the_svg() -> None:
    chart = charts.importance_bars("permutation", "t", ["<script>x</script>"], np.array([1.0]))
    svg = templates.get_template(chart.template).render(chart=chart)
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_metrics_views() -> None:
    classification = {
        "y_true": [0, 0, 1, 1],
        "y_pred": [0, 1, 1, 1],
        "0": {"precision": 1.0, "recall": 0.5, "f1-score": 0.67, "support": 2},
        "1": {"precision": 0.67, "recall": 1.0, "f1-score": 0.8, "support": 2},
        "accuracy": 0.75,
    }
    view = metrics_view(classification)
    assert isinstance(view, ClassificationMetrics)
    assert view.labels == ["0", "1"] and view.confusion == [[1, 1], [0, 2]] and view.accuracy == 0.75
    regression = metrics_view({"Score": {"R2": 0.5}, "pi_coverage": 95.0})
    assert isinstance(regression, RegressionMetrics) and regression.pi_coverage == 95.0


def test_beeswarm_dots_are_coloured_by_feature_value_with_a_legend() -> None:
    """With the test rows' feature values, each dot takes its row's value's colour, as shap's beeswarm:
    a number by its place in its feature's range (low blue, high red), a category by its text order, a
    missing value grey; the chart draws the scale."""
    from api.dashboard.rendering import templates

    values = np.array([[0.5, -1.0], [0.1, 2.0], [-0.3, 0.0], [0.2, 1.0]])
    features = {"age": [20.0, 80.0, None, 50.0], "region": ["west", "east", "north", "east"]}
    chart = charts.beeswarm("shap-beeswarm", "t", ["age", "region"], values, features)
    assert chart.coloured and [lane.label for lane in chart.lanes] == ["region", "age"]
    region, age = chart.dots[:4], chart.dots[4:]
    assert [dot.colour for dot in age] == [
        charts._hex(charts.LOW_COLOUR),
        charts._hex(charts.HIGH_COLOUR),
        charts.MISSING_COLOUR,
        "#8046a6",  # 50: halfway between the 5th and 95th percentiles,
    ]
    # east < north < west: east blue, west red
    assert region[1].colour == region[3].colour == charts._hex(charts.LOW_COLOUR)
    assert region[0].colour == charts._hex(charts.HIGH_COLOUR)
    svg = templates.get_template("charts/beeswarm.html").render(chart=chart)
    assert 'data-testid="legend"' in svg and "feature value: low" in svg
    assert " style=" not in svg  # the pages allow no inline style: presentation attributes
    assert f'fill="{charts.MISSING_COLOUR}"' in svg and 'class="pos"' not in svg
    plain = charts.beeswarm("shap-beeswarm", "t", ["age", "region"], values)
    assert not plain.coloured and {dot.colour for dot in plain.dots} == {None}
    assert 'data-testid="legend"' not in templates.get_template("charts/beeswarm.html").render(chart=plain)


def test_explanation_charts_colour_the_beeswarm_from_the_results_x_test() -> None:
    shap = {"method": "shap", "feature_names": ["a"], "values": [[1.0], [-1.0]], "output_space": "raw"}
    coloured = charts.explanation_charts({"interpretability": shap, "X_test": {"a": [1.0, 2.0]}})
    assert [chart.coloured for chart in coloured if isinstance(chart, charts.Beeswarm)] == [True]
    mismatched = charts.explanation_charts({"interpretability": shap, "X_test": {"b": [1.0, 2.0]}})
    assert [chart.coloured for chart in mismatched if isinstance(chart, charts.Beeswarm)] == [False]
