"""Which plot the command line draws: the kind asked (`--kind`), else the one the output file's name says
(`shap.png` draws SHAP, `importance.png` permutation importance), else the first the result can draw."""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fitexplain_client.result import Result


class PlotKind(StrEnum):
    importance = "importance"
    shap_summary = "shap-summary"
    shap_beeswarm = "shap-beeswarm"
    intervals = "intervals"


NAME_WORDS: tuple[tuple[str, PlotKind], ...] = (  # the first word found in the file's name wins
    ("beeswarm", PlotKind.shap_beeswarm),
    ("shap", PlotKind.shap_summary),
    ("importance", PlotKind.importance),
    ("permutation", PlotKind.importance),
    ("interval", PlotKind.intervals),
)


def kind_from_name(path: Path) -> PlotKind | None:
    words = re.split(r"[^a-z]+", path.stem.lower())
    for word, kind in NAME_WORDS:
        if any(part.startswith(word) for part in words):
            return kind
    return None


def default_kind(result: Result) -> PlotKind:
    if result.permutation is not None:
        return PlotKind.importance
    if result.shap is not None:
        return PlotKind.shap_summary
    if result.pi_lower is not None:
        return PlotKind.intervals
    raise ValueError("nothing to plot: the result has no explanation and no prediction intervals")


def chosen_kind(kind: PlotKind | None, path: Path | None, result: Result | None) -> PlotKind | None:
    """The kind to draw; None when only the result can say and there is no result yet."""
    found = kind or (kind_from_name(path) if path is not None else None)
    if found is None and result is not None:
        return default_kind(result)
    return found


def save_plot(result: Result, kind: PlotKind | None, path: Path, class_label: str | None = None) -> PlotKind:
    chosen = kind or default_kind(result)
    draw: dict[PlotKind, Callable[[], Any]] = {
        PlotKind.importance: lambda: result.plot_importance(),
        PlotKind.shap_summary: lambda: result.plot_shap_summary(class_label=class_label),
        PlotKind.shap_beeswarm: lambda: result.plot_shap_beeswarm(class_label=class_label),
        PlotKind.intervals: lambda: result.plot_intervals(),
    }
    draw[chosen]().savefig(path, dpi=100)
    return chosen
