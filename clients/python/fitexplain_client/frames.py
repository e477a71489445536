"""NumPy, pandas and shap views of a Result (each library imported only here, when used)."""

from __future__ import annotations

from typing import Any

from fitexplain_client.result_fields import ResultFields


def need_extra(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module} is needed for this: pip install 'fitexplain-client[{extra}]'") from exc


def class_index(result: ResultFields, class_label: str | None) -> int:
    """The column of `class_label` (default: the last class, the positive one for 0/1 targets)."""
    labels = result.class_labels
    if class_label is None:
        return len(labels) - 1
    if str(class_label) not in labels:
        raise ValueError(f"class_label={class_label!r} is not one of the classes {labels}")
    return labels.index(str(class_label))


def shap_arrays(result: ResultFields, class_label: str | None) -> tuple[Any, Any]:
    """(values rows × features, base_values rows) for regression or for one class."""
    np = need_extra("numpy", "plot")
    shap = result.require("shap")
    values = np.asarray(shap["values"], dtype=float)
    base = np.asarray(shap["base_values"], dtype=float)
    if values.ndim == 3:
        index = class_index(result, class_label)
        values, base = values[:, :, index], base[:, index]
    elif class_label is not None and result.task == "regression":
        raise ValueError("class_label applies to classification results")
    return values, base


def feature_values(result: ResultFields, data: Any, n_rows: int) -> Any:
    """The test rows' feature values as a float array (rows × features), for colouring: `data` as
    given (an array, rows of values, a DataFrame, or columns by feature name), else the result's own
    `X_test` when the service sent it, else None. A column of labels is coded in order of appearance."""
    np = need_extra("numpy", "plot")
    found = result.X_test if data is None else data
    if found is None:
        return None
    names = result.feature_names
    if isinstance(found, dict):  # columns by feature name
        found = [found[name] for name in names]
        columns = list(found)
    elif hasattr(found, "columns") and hasattr(found, "to_numpy"):  # a DataFrame
        columns = [found[name].tolist() for name in found.columns]
    else:
        rows = np.asarray(found, dtype=object)
        if rows.ndim != 2:
            raise ValueError(f"data has shape {rows.shape}; expected rows × features")
        columns = [list(rows[:, index]) for index in range(rows.shape[1])]
    matrix = np.column_stack([_numeric(np, column) for column in columns]) if columns else np.empty((0, 0))
    if matrix.shape != (n_rows, len(names)):
        raise ValueError(f"data has shape {matrix.shape}; the SHAP values are for {(n_rows, len(names))}")
    return matrix


def _numeric(np: Any, column: list[Any]) -> Any:
    try:
        return np.asarray(column, dtype=float)
    except (TypeError, ValueError):
        codes: dict[Any, int] = {}
        return np.asarray([codes.setdefault(value, len(codes)) for value in column], dtype=float)


def to_frame(result: ResultFields, kind: str) -> Any:
    pd = need_extra("pandas", "pandas")
    if kind == "predictions":
        frame = pd.DataFrame({"y_true": result.y_true, "y_pred": result.y_pred})
        if result.proba is not None:
            for index, label in enumerate(result.class_labels):
                frame[f"proba_{label}"] = [row[index] for row in result.proba]
        if result.pi_lower is not None:
            frame["pi_lower"], frame["pi_upper"] = result.pi_lower, result.pi_upper
        return frame
    if kind == "importances":
        permutation = result.require("permutation")
        frame = pd.DataFrame(
            {
                "feature": permutation["feature_names"],
                "importance_mean": permutation["importances_mean"],
                "importance_std": permutation["importances_std"],
            }
        )
        return frame.sort_values("importance_mean", ascending=False, ignore_index=True)
    if kind == "shap":  # long form, in the order of the values: row, then feature, then class
        np = need_extra("numpy", "pandas")
        shap = result.require("shap")
        values = np.asarray(shap["values"], dtype=float)
        names = np.asarray(shap["feature_names"])
        index = np.indices(values.shape).reshape(values.ndim, -1)
        columns = {"row": index[0], "feature": names[index[1]]}
        if values.ndim == 3:
            columns["class"] = np.asarray(result.class_labels)[index[2]]
        return pd.DataFrame({**columns, "value": values.ravel()})
    raise ValueError(f"kind must be 'predictions', 'importances' or 'shap', not {kind!r}")


def shap_explanation(result: ResultFields, class_label: str | None, data: Any) -> Any:
    shap_module = need_extra("shap", "shap")
    np = need_extra("numpy", "shap")
    shap = result.require("shap")
    names = list(shap["feature_names"])
    if class_label is None and np.asarray(shap["values"]).ndim == 3:
        values = np.asarray(shap["values"], dtype=float)
        base = np.asarray(shap["base_values"], dtype=float)
        extra: dict[str, Any] = {"output_names": result.class_labels}
    else:
        values, base = shap_arrays(result, class_label)
        extra = {}
    features = feature_values(result, data, values.shape[0])
    return shap_module.Explanation(
        values=values, base_values=base, data=features, feature_names=names, **extra
    )


def reasons_frame(result: ResultFields) -> Any:
    """`Result.reasons_frame`: one row per scored row, its top reasons in columns."""
    pd = need_extra("pandas", "pandas")
    if result.reasons is None or result.explained_rows is None:
        raise ValueError("this result has no reasons: predict with interpretability='shap'")
    n_rows = len(result.y_pred)
    columns: dict[str, list[Any]] = {}
    if result.ids is not None:
        columns["id"] = list(result.ids)
    columns["y_pred"] = list(result.y_pred)
    width = max((len(reasons) for reasons in result.reasons), default=0)
    for k in range(1, width + 1):
        for name in ("feature", "value", "contribution"):
            columns[f"{name}_{k}"] = [None] * n_rows
    for row, reasons in zip(result.explained_rows, result.reasons, strict=True):
        for k, reason in enumerate(reasons, start=1):
            for name in ("feature", "value", "contribution"):
                columns[f"{name}_{k}"][row] = reason[name]
    return pd.DataFrame(columns, index=pd.RangeIndex(n_rows, name="row"))
