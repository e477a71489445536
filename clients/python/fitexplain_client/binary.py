"""A result in one of the server's binary forms (docs/api.md, "Result formats"): the bytes as sent, or its
Parquet form read into a pandas DataFrame (one row per test row) with the rest of the result beside it.
pandas and pyarrow are the `arrow` extra, imported only here, when used."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, Literal

from fitexplain_client.frames import need_extra

ResultFormat = Literal["json", "arrow", "arrow-file", "parquet", "npz"]
FORMATS: tuple[ResultFormat, ...] = ("json", "arrow", "arrow-file", "parquet", "npz")
METADATA_KEY = b"fitexplain"


def check_format(format: str) -> ResultFormat:
    for known in FORMATS:
        if format == known:
            return known
    raise ValueError(f"unknown result format {format!r}; one of {', '.join(FORMATS)}")


@dataclass(frozen=True)
class ResultFrame:
    """`frame`: one row per test row (y_true, y_pred, proba_<class> or pi_lower/pi_upper, base_value...,
    shap_<feature>[_<class>]); `metadata`: the rest of the result JSON (metrics, permutation importances,
    feature names, how SHAP was made); `arrays`: where each column came from in the JSON."""

    frame: Any  # pandas.DataFrame
    metadata: dict[str, Any]
    arrays: list[dict[str, Any]]

    def shap_columns(self, class_label: str | int | None = None) -> list[str]:
        """The SHAP value columns, in feature order; for classification, those of one class (the last by
        default, the positive one for 0/1 targets)."""
        entry = next((a for a in self.arrays if a["path"][-1] == "values"), None)
        if entry is None:
            raise ValueError("this result has no SHAP values")
        names, shape = entry["columns"], entry["shape"]
        if len(shape) == 2:
            return list(names)
        n_classes = shape[2]
        index = n_classes - 1 if class_label is None else self._class_index(entry, str(class_label))
        return [names[f * n_classes + index] for f in range(shape[1])]

    def _class_index(self, entry: dict[str, Any], label: str) -> int:
        explanation: Any = self.metadata
        for step in entry["path"][:-1]:
            explanation = explanation[step]
        labels = [str(item) for item in explanation.get("class_labels") or []]
        if label not in labels:
            raise ValueError(f"class_label={label!r} is not one of the classes {labels}")
        return labels.index(label)


def read_parquet(data: bytes) -> ResultFrame:
    """The Parquet form of a result as a ResultFrame."""
    need_extra("pandas", "arrow")
    pq = need_extra("pyarrow.parquet", "arrow")
    table = pq.read_table(io.BytesIO(data))
    layout = json.loads(table.schema.metadata[METADATA_KEY])
    return ResultFrame(frame=table.to_pandas(), metadata=layout["result"], arrays=layout["arrays"])
