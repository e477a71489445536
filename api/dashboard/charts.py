"""Chart geometry for the dashboard's server-rendered SVG: numbers in, coordinates out.

The SVG markup itself lives in templates/charts/*.html (Jinja escapes every label); this module only
decides where each bar, dot and line goes. Nothing here reads the database or the request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

WIDTH = 560
LABEL_WIDTH = 190  # room for feature names left of the plot
RIGHT_MARGIN = 60
ROW_HEIGHT = 20
TOP = 28
BOTTOM = 34
MAX_FEATURES = 15
MAX_DOTS_PER_FEATURE = 200
MAX_POINTS = 400
MAX_CLASSES = 4


@dataclass(frozen=True)
class Tick:
    position: float
    text: str


@dataclass(frozen=True)
class Bar:
    label: str
    y: float
    x: float
    width: float
    value_text: str
    error_from: float | None = None
    error_to: float | None = None


@dataclass(frozen=True)
class BarChart:
    template: ClassVar[str] = "charts/bars.html"
    kind: str  # what the chart shows, for its test hook and caption
    title: str
    height: float
    zero: float
    bars: list[Bar]
    ticks: list[Tick]
    width: int = WIDTH
    note: str = ""


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    positive: bool
    colour: str | None = None  # by the row's feature value (a beeswarm with the test rows' values)


#: shap's beeswarm colours: a feature's low values blue, high values red; a missing one grey.
LOW_COLOUR, HIGH_COLOUR, MISSING_COLOUR = (0, 139, 251), (255, 0, 81), "#9a9a9a"


@dataclass(frozen=True)
class Lane:
    label: str
    y: float


@dataclass(frozen=True)
class Beeswarm:
    template: ClassVar[str] = "charts/beeswarm.html"
    kind: str
    title: str
    height: float
    zero: float
    lanes: list[Lane]
    dots: list[Dot]
    ticks: list[Tick]
    width: int = WIDTH
    note: str = ""
    coloured: bool = False  # dots coloured by feature value: the legend shows the scale

    @property
    def low_colour(self) -> str:
        return _hex(LOW_COLOUR)

    @property
    def high_colour(self) -> str:
        return _hex(HIGH_COLOUR)


@dataclass(frozen=True)
class Interval:
    x: float
    y_from: float
    y_to: float


@dataclass(frozen=True)
class Scatter:
    template: ClassVar[str] = "charts/scatter.html"
    kind: str
    title: str
    height: float
    points: list[Dot]
    intervals: list[Interval]
    diagonal: tuple[float, float, float, float]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    x_label: str
    y_label: str
    width: int = WIDTH
    note: str = ""


@dataclass(frozen=True)
class StackedColumn:
    x: float
    width: float
    segments: list[tuple[str, float, float]]  # (css class, y, height)
    label: str


@dataclass(frozen=True)
class ColumnChart:
    template: ClassVar[str] = "charts/columns.html"
    kind: str
    title: str
    height: float
    columns: list[StackedColumn]
    y_ticks: list[Tick]
    legend: list[str] = field(default_factory=list)
    width: int = WIDTH
    note: str = ""


Chart = BarChart | Beeswarm | Scatter | ColumnChart


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round values spanning [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high) or high <= low:
        return [low] if math.isfinite(low) else [0.0]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [round(first + k * step, 12) for k in range(int((high - first) / step + 1e-9) + 1)]


def short(value: float) -> str:
    return f"{value:.3g}"


class LinearScale:
    """Maps [low, high] onto [start, stop] pixels."""

    def __init__(self, low: float, high: float, start: float, stop: float) -> None:
        if not high > low:
            high = low + 1.0
        self.low, self.high, self.start, self.stop = low, high, start, stop

    def __call__(self, value: float) -> float:
        return self.start + (value - self.low) / (self.high - self.low) * (self.stop - self.start)


def _x_scale(low: float, high: float) -> LinearScale:
    return LinearScale(min(low, 0.0), max(high, 0.0), LABEL_WIDTH, WIDTH - RIGHT_MARGIN)


def _ticks(scale: LinearScale) -> list[Tick]:
    return [Tick(scale(v), short(v)) for v in nice_ticks(scale.low, scale.high)]


def importance_bars(
    kind: str,
    title: str,
    names: Sequence[str],
    values: np.ndarray,
    errors: np.ndarray | None = None,
) -> BarChart:
    """Horizontal bars sorted by value, largest on top, at most MAX_FEATURES, with ± error bars."""
    order = np.argsort(-values, kind="stable")[:MAX_FEATURES]
    low_ends = values[order] - (errors[order] if errors is not None else 0)
    high_ends = values[order] + (errors[order] if errors is not None else 0)
    scale = _x_scale(float(np.min(low_ends)), float(np.max(high_ends)))
    bars = []
    for row, index in enumerate(order):
        value = float(values[index])
        left, right = sorted((scale(0.0), scale(value)))
        error = float(errors[index]) if errors is not None else None
        bars.append(
            Bar(
                label=str(names[index]),
                y=TOP + row * ROW_HEIGHT,
                x=left,
                width=max(right - left, 0.5),
                value_text=short(value) + (f" ± {short(error)}" if error is not None else ""),
                error_from=scale(value - error) if error is not None else None,
                error_to=scale(value + error) if error is not None else None,
            )
        )
    note = f"top {MAX_FEATURES} of {len(names)} features" if len(names) > MAX_FEATURES else ""
    height = TOP + len(bars) * ROW_HEIGHT + BOTTOM
    return BarChart(kind, title, height, scale(0.0), bars, _ticks(scale), note=note)


def beeswarm(
    kind: str,
    title: str,
    names: Sequence[str],
    values: np.ndarray,
    features: dict[str, list[Any]] | None = None,
) -> Beeswarm:
    """One lane per feature (largest mean |SHAP| on top), one dot per row at its SHAP value, spread
    vertically by a fixed jitter; rows are subsampled evenly to MAX_DOTS_PER_FEATURE. With the rows'
    feature values (`features`: name -> one value per row, the result's `X_test`), each dot is coloured
    by its row's value of the lane's feature, as shap's beeswarm: low blue, high red."""
    order = np.argsort(-np.abs(values).mean(axis=0), kind="stable")[:MAX_FEATURES]
    rows = np.unique(np.linspace(0, len(values) - 1, min(len(values), MAX_DOTS_PER_FEATURE)).astype(int))
    shown = values[np.ix_(rows, order)]
    scale = _x_scale(float(shown.min()), float(shown.max()))
    jitter = (np.arange(len(rows)) * 0.618034) % 1.0 - 0.5  # golden-ratio spread: even, deterministic
    lanes: list[Lane] = []
    dots: list[Dot] = []
    coloured = features is not None and all(
        len(features.get(str(names[position]), [])) == len(values) for position in order
    )
    for lane, column in enumerate(shown.T):
        middle = TOP + lane * ROW_HEIGHT + ROW_HEIGHT / 2
        name = str(names[order[lane]])
        lanes.append(Lane(name, middle))
        colours = feature_colours([features[name][row] for row in rows]) if coloured and features else None
        dots.extend(
            Dot(
                scale(float(v)),
                middle + float(j) * (ROW_HEIGHT - 6),
                bool(v >= 0),
                colours[i] if colours else None,
            )
            for i, (v, j) in enumerate(zip(column, jitter, strict=True))
        )
    notes = []
    if len(names) > MAX_FEATURES:
        notes.append(f"top {MAX_FEATURES} of {len(names)} features")
    if len(rows) < len(values):
        notes.append(f"{len(rows)} of {len(values)} rows")
    height = TOP + len(lanes) * ROW_HEIGHT + BOTTOM
    return Beeswarm(
        kind, title, height, scale(0.0), lanes, dots, _ticks(scale), note=", ".join(notes), coloured=coloured
    )


def feature_colours(values: Sequence[Any]) -> list[str]:
    """Each value's colour on the blue-to-red scale of its feature: numbers by their place between the
    feature's 5th and 95th percentiles (as shap clips them), categories by their place in text order;
    a missing value grey."""
    present = [value for value in values if value is not None and value == value]
    if not present:
        return [MISSING_COLOUR] * len(values)
    if all(isinstance(value, int | float) for value in present):
        low, high = (float(q) for q in np.percentile(np.asarray(present, dtype=float), [5, 95]))
        place = {
            value: 0.5 if high <= low else min(max((float(value) - low) / (high - low), 0.0), 1.0)
            for value in present
        }
    else:
        categories = sorted({str(value) for value in present})
        step = max(len(categories) - 1, 1)
        place = {value: categories.index(str(value)) / step for value in present}
    return [MISSING_COLOUR if value is None or value != value else _blend(place[value]) for value in values]


def _blend(fraction: float) -> str:
    return _hex(tuple(round(a + (b - a) * fraction) for a, b in zip(LOW_COLOUR, HIGH_COLOUR, strict=True)))


def _hex(rgb: tuple[int, ...]) -> str:
    return "#" + "".join(f"{channel:02x}" for channel in rgb)


def predicted_vs_actual(
    y_true: np.ndarray, y_pred: np.ndarray, lower: np.ndarray | None, upper: np.ndarray | None
) -> Scatter:
    """Predicted against actual with the y = x line, and each row's prediction interval when given."""
    rows = np.unique(np.linspace(0, len(y_true) - 1, min(len(y_true), MAX_POINTS)).astype(int))
    every = [y_true[rows], y_pred[rows]] + (
        [lower[rows], upper[rows]] if lower is not None and upper is not None else []
    )
    low = float(min(a.min() for a in every))
    high = float(max(a.max() for a in every))
    side = 360
    x = LinearScale(low, high, 60, 60 + side)
    y = LinearScale(low, high, TOP + side, TOP)
    points = [Dot(x(float(a)), y(float(p)), True) for a, p in zip(y_true[rows], y_pred[rows], strict=True)]
    intervals = []
    if lower is not None and upper is not None:
        intervals = [
            Interval(x(float(a)), y(float(lo)), y(float(hi)))
            for a, lo, hi in zip(y_true[rows], lower[rows], upper[rows], strict=True)
        ]
    values = nice_ticks(x.low, x.high)
    title = "Predicted vs actual" + (" with prediction intervals" if intervals else "")
    note = f"{len(rows)} of {len(y_true)} test rows" if len(rows) < len(y_true) else ""
    return Scatter(
        kind="predicted-vs-actual",
        title=title,
        height=TOP + side + BOTTOM + 10,
        points=points,
        intervals=intervals,
        diagonal=(x(x.low), y(y.low), x(x.high), y(y.high)),
        x_ticks=[Tick(x(v), short(v)) for v in values],
        y_ticks=[Tick(y(v), short(v)) for v in values],
        x_label="actual",
        y_label="predicted",
        width=60 + side + 40,
        note=note,
    )


def stacked_columns(
    kind: str, title: str, labels: Sequence[str], series: dict[str, Sequence[int]]
) -> ColumnChart:
    """Columns (one per label) stacked from the series, in the order given (css class = series name)."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    scale = LinearScale(0, max(max(totals, default=0), 1), TOP + 160, TOP)
    slot = (WIDTH - 60 - 20) / max(len(labels), 1)
    columns = []
    for i, label in enumerate(labels):
        segments, base = [], 0
        for name, values in series.items():
            if values[i]:
                segments.append((name, scale(base + values[i]), scale(base) - scale(base + values[i])))
            base += values[i]
        columns.append(StackedColumn(60 + i * slot + 2, slot - 4, segments, label))
    ticks = [Tick(scale(v), short(v)) for v in nice_ticks(0, scale.high) if v == int(v)]
    return ColumnChart(kind, title, TOP + 160 + BOTTOM, columns, ticks, legend=list(series))


def explanation_charts(result: dict[str, Any]) -> list[Chart]:
    """Every chart the public result shape supports: permutation bars, SHAP bars and beeswarms (per
    class for classification), predicted vs actual for regression."""
    charts: list[Chart] = []
    found = result.get("interpretability")
    for item in found if isinstance(found, list) else ([found] if isinstance(found, dict) else []):
        if item.get("method") == "permutation":
            charts.append(
                importance_bars(
                    "permutation",
                    f"Permutation importance ({item.get('scoring', 'score')} drop, mean ± std)",
                    item["feature_names"],
                    np.asarray(item["importances_mean"], dtype=float),
                    np.asarray(item["importances_std"], dtype=float),
                )
            )
        elif item.get("method") == "shap":
            charts.extend(_shap_charts(item, result.get("X_test")))
    if "Score" in result and "y_pred" in result:
        lower = np.asarray(result["pi_lower"], dtype=float) if "pi_lower" in result else None
        upper = np.asarray(result["pi_upper"], dtype=float) if "pi_upper" in result else None
        charts.append(
            predicted_vs_actual(
                np.asarray(result["y_true"], dtype=float),
                np.asarray(result["y_pred"], dtype=float),
                lower,
                upper,
            )
        )
    return charts


def _shap_charts(item: dict[str, Any], features: dict[str, list[Any]] | None = None) -> list[Chart]:
    values = np.asarray(item["values"], dtype=float)
    names = item["feature_names"]
    if values.ndim == 2:
        per_class = [("", values)]
    else:
        labels = item.get("class_labels") or [str(k) for k in range(values.shape[2])]
        per_class = [
            (f" — class {labels[k]}", values[:, :, k]) for k in range(min(values.shape[2], MAX_CLASSES))
        ]
    space = item.get("output_space", "")
    charts: list[Chart] = []
    for suffix, matrix in per_class:
        charts.append(
            importance_bars("shap-mean", f"Mean |SHAP| ({space}){suffix}", names, np.abs(matrix).mean(axis=0))
        )
        title = f"SHAP value per row ({space}){suffix}"
        charts.append(beeswarm("shap-beeswarm", title, names, matrix, features))
    return charts
