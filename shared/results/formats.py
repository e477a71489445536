"""A job's result as binary files (Arrow IPC, Parquet, NPZ) holding exactly the numbers of its JSON.

The layout (docs/api.md, "Result formats"):

- Arrow and Parquet: one table row per test row. Columns `y_true`, `y_pred`; `proba_<class>` for each
  class; `pi_lower`, `pi_upper`; SHAP's `base_value` (`base_value_<class>`) and `shap_<feature>`
  (`shap_<feature>_<class>`, every feature of the first class, then of the next); SHAP interaction values
  as one fixed-size list column `shap_interactions` (features x features (x classes) a row). Everything
  else (metrics, permutation importances, feature names, how SHAP was made) stays in the result JSON,
  without the arrays that became columns, in the schema metadata under the key `fitexplain`, beside
  `arrays`: where each array came from (its JSON path), its shape, and its columns.
- NPZ: every array of the result (numbers or strings) under its own name with its true shape (`y_pred`,
  `proba`, `shap_values`, `shap_base_values`, `permutation_importances_mean`, `shap_feature_names`, ...)
  and `metadata`, a 0-d string array holding the same JSON. Nothing needs pickle.

A JSON null (a non-finite number) is NaN in the binary forms. `to_result` reads any of the three back into
the JSON's dict, so `to_result(encode(result, f), f) == result` is the test that they hold the same numbers.
"""

from __future__ import annotations

import gc
import io
import itertools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from isal import igzip

from shared.results import predict_table
from shared.results.table_names import METADATA_KEY, unique

LAYOUT_VERSION = 1
ROW_KEYS = (
    "test_rows",
    "test_ids",
    "ids",  # a predict job's `id_column`
    "y_true",
    "y_pred",
    "proba",
    "pi_lower",
    "pi_upper",
)  # one entry per test row
SHAP_ROW_KEYS = {"base_values": "base_value", "values": "shap", "interaction_values": "shap_interactions"}
REPORT_AVERAGES = frozenset({"macro avg", "weighted avg", "micro avg"})
TEST_FEATURES = "X_test"  # {feature: one value per test row}, as uploaded (`?include=X_test`)

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class ResultFormat:
    """One way of sending a result: its `format=` name, media types (the first is sent), file extension."""

    name: str
    media_types: tuple[str, ...]
    extension: str


JSON = ResultFormat("json", ("application/json",), "json")
BINARY_FORMATS = (
    ResultFormat("arrow", ("application/vnd.apache.arrow.stream",), "arrows"),
    ResultFormat("arrow-file", ("application/vnd.apache.arrow.file",), "arrow"),
    ResultFormat("parquet", ("application/vnd.apache.parquet", "application/x-parquet"), "parquet"),
    ResultFormat("npz", ("application/x-npz",), "npz"),
)
FORMATS = {f.name: f for f in (JSON, *BINARY_FORMATS)}


def load_stored(body_gzip: bytes) -> dict[str, Any]:
    """The result dict from its stored form (gzip of its JSON)."""
    with collector_paused():
        result: dict[str, Any] = orjson.loads(igzip.decompress(body_gzip))
        return result


def encode(result: dict[str, Any], format_name: str) -> bytes:
    """The result in a binary format: "arrow", "arrow-file", "parquet" or "npz"."""
    with collector_paused():
        return _ENCODERS[format_name](result)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while millions of lists are made or read (a SHAP result's
    rows): it would otherwise scan them again and again, which makes orjson.loads 2.5x slower. Nothing
    made here holds cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parquet_to_store(result: dict[str, Any], min_rows: int) -> bytes | None:
    """The result's Parquet form when it has at least `min_rows` test rows (converting it again on each
    request would cost the API real time), else None."""
    rows = result.get("y_pred")
    return encode(result, "parquet") if isinstance(rows, list) and len(rows) >= min_rows else None


def to_result(data: bytes, format_name: str) -> dict[str, Any]:
    """The result dict back from `encode`'s bytes: equal to the one encoded (NaN read back as None)."""
    with collector_paused():
        return _decode(data, format_name)


def _decode(data: bytes, format_name: str) -> dict[str, Any]:
    if format_name == "npz":
        return from_npz(data)
    if format_name == "parquet":
        return from_table(pq.read_table(io.BytesIO(data)))
    reader = pa.ipc.open_file if format_name == "arrow-file" else pa.ipc.open_stream
    return from_table(reader(pa.BufferReader(data)).read_all())


# --- the arrays of a result ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Moved:
    """An array taken out of the result: where it was (`path`), its name, and its values."""

    path: Path
    name: str
    values: np.ndarray


def split_arrays(
    result: dict[str, Any], *, rows_only: bool, reserved: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], list[Moved]]:
    """(the result without its arrays, the arrays). rows_only: only the per-row arrays (table columns);
    otherwise every list that is an array of numbers or strings (NPZ)."""
    rest = dict(result)
    moved: list[Moved] = []
    for key in list(rest):
        if key not in ("interpretability", TEST_FEATURES) and (key in ROW_KEYS or not rows_only):
            _move(rest, (), key, key, moved)
    if isinstance(rest.get(TEST_FEATURES), dict):  # the test rows' feature values: a column each
        rest[TEST_FEATURES] = features = dict(rest[TEST_FEATURES])
        for name in list(features):
            _move(features, (TEST_FEATURES,), name, f"{TEST_FEATURES}_{name}", moved)
    found = rest.get("interpretability")
    explanations = found if isinstance(found, list) else [found] if isinstance(found, dict) else []
    copies = [dict(item) if isinstance(item, dict) else item for item in explanations]
    for position, item in enumerate(copies):
        if not isinstance(item, dict):
            continue
        where: Path = ("interpretability", position) if isinstance(found, list) else ("interpretability",)
        method = str(item.get("method", f"explanation{position}"))
        for key in list(item):
            if rows_only and (method != "shap" or key not in SHAP_ROW_KEYS):
                continue
            name = SHAP_ROW_KEYS[key] if rows_only else f"{method}_{key}"
            _move(item, where, key, name, moved)
    if isinstance(found, list):
        rest["interpretability"] = copies
    elif copies:
        rest["interpretability"] = copies[0]
    taken = set(reserved)
    named = [Moved(m.path, unique(m.name, taken), m.values) for m in moved]
    return rest, named


def _move(holder: dict[str, Any], where: Path, key: str, name: str, moved: list[Moved]) -> None:
    """Move `holder[key]` (at `where` in the result) to `moved` if it is an array."""
    path = (*where, key)
    values = holder[key]
    if isinstance(values, np.ndarray):  # a float array a worker's result keeps (metrics.json_array)
        if not np.isfinite(values).all():  # as its JSON holds it: null, read back as NaN
            values = np.where(np.isfinite(values), values, np.nan)
        moved.append(Moved(path, name, values))
        del holder[key]
        return
    if not isinstance(values, list):
        return
    array = as_array(values)
    if array is not None:
        moved.append(Moved(path, name, array))
        del holder[key]


def as_array(values: list[Any]) -> np.ndarray | None:
    """A rectangular list of numbers (None as NaN) or of strings as an array, else None.

    Nested float lists (SHAP values: millions of numbers) are read with one `np.fromiter` over chained
    iterators, 3x faster than `np.array`'s shape discovery."""
    shape, leaf = _probe(values)
    if len(shape) >= 2 and isinstance(leaf, float):
        flat: Iterator[Any] = iter(values)
        for size in shape[1:]:
            level = list(flat)
            if set(map(type, level)) != {list} or set(map(len, level)) != {size}:
                return None  # ragged
            flat = itertools.chain.from_iterable(level)
        try:
            return np.fromiter(flat, np.float64, math.prod(shape)).reshape(shape)
        except (TypeError, ValueError):  # a None (a non-finite number in the JSON) or a string
            pass
    try:
        array = np.array(values)
    except ValueError:  # ragged
        return None
    if array.dtype.kind == "O":
        try:
            array = np.array(values, dtype=np.float64)  # None -> NaN
        except (TypeError, ValueError):
            return None
    if array.dtype.kind == "U" and not all(isinstance(item, str) for item in _leaves(values)):
        return None  # numbers mixed with strings: numpy would make the numbers strings
    return array if array.dtype.kind in "biufU" else None


def _probe(values: Any) -> tuple[tuple[int, ...], Any]:
    shape: list[int] = []
    while isinstance(values, list):
        shape.append(len(values))
        if not values:
            return tuple(shape), None
        values = values[0]
    return tuple(shape), values


def _leaves(values: list[Any]) -> Iterator[Any]:
    for item in values:
        if isinstance(item, list):
            yield from _leaves(item)
        else:
            yield item


def from_json_values(array: np.ndarray) -> Any:
    """An array as the JSON's lists: NaN back to None."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        as_objects = array.astype(object)
        as_objects[~np.isfinite(array)] = None
        return as_objects.tolist()
    return array.tolist()


def _put(result: dict[str, Any], path: Path, values: Any) -> None:
    holder: Any = result
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = values


def _metadata(rest: dict[str, Any], arrays: list[dict[str, Any]], n_rows: int | None) -> bytes:
    return orjson.dumps(
        {
            "layout": "fitexplain-result",
            "version": LAYOUT_VERSION,
            "n_rows": n_rows,
            "arrays": arrays,
            "result": rest,
        },
        option=orjson.OPT_SERIALIZE_NUMPY,  # float arrays a worker's result keeps (metrics.json_array)
    )


# --- Arrow and Parquet: one row per test row ----------------------------------------------------------


def to_table(result: dict[str, Any]) -> pa.Table:
    """The per-row table; the rest of the result is JSON in the schema metadata (key "fitexplain")."""
    rest, moved = split_arrays(result, rows_only=True)
    n_rows = len(moved[0].values) if moved else 0
    for item in [m for m in moved if len(m.values) != n_rows]:  # not one entry per row: stays JSON
        _put(rest, item.path, from_json_values(item.values))
        moved.remove(item)
    classes = class_names(result)
    columns: dict[str, pa.Array] = {}
    described: list[dict[str, Any]] = []
    for item in moved:
        names = _column_arrays(item, classes, rest, columns)
        described.append({"path": list(item.path), "shape": list(item.values.shape), "columns": names})
    schema = pa.schema(
        [pa.field(name, array.type) for name, array in columns.items()],
        metadata={METADATA_KEY: _metadata(rest, described, n_rows)},
    )
    return pa.Table.from_arrays(list(columns.values()), schema=schema)


def _column_arrays(
    item: Moved, classes: list[str], rest: dict[str, Any], columns: dict[str, pa.Array]
) -> list[str]:
    """Add the array's columns; returns their names in the flat (C) order of its trailing shape."""
    values, taken = item.values, set(columns)
    if values.ndim == 1:
        names = [unique(item.name, taken)]
        columns[names[0]] = pa.array(values)
        return names
    trailing = values.shape[1:]
    labels = _axis_labels(item, trailing, classes, rest)
    if labels is None:  # one fixed-size list column (SHAP interactions)
        flat = np.ascontiguousarray(values.reshape(len(values), -1))
        name = unique(item.name, taken)
        columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])
        return [name]
    by_column = np.ascontiguousarray(np.moveaxis(values, 0, -1))  # each column contiguous, zero-copy below
    flat_names = ["_".join((item.name, *parts)) for parts in itertools.product(*labels)]
    indices = list(np.ndindex(*trailing))
    order = sorted(range(len(indices)), key=lambda i: indices[i][::-1])  # last axis (class) outermost
    names = [""] * len(indices)
    for i in order:
        names[i] = unique(flat_names[i], taken)
        columns[names[i]] = pa.array(by_column[indices[i]])
    return names


def _axis_labels(
    item: Moved, trailing: tuple[int, ...], classes: list[str], rest: dict[str, Any]
) -> list[list[str]] | None:
    """Names along each trailing axis (classes, features), or None for a list column."""
    if item.path == ("proba",) and len(trailing) == 1:
        return [_fit(classes, trailing[0])]
    if item.name in ("shap", "base_value") and len(trailing) <= 2:
        explanation: Any = rest
        for step in item.path[:-1]:
            explanation = explanation[step]
        own = [str(label) for label in explanation.get("class_labels") or classes]
        if item.name == "base_value":
            return [_fit(own, trailing[0])] if len(trailing) == 1 else None
        features = [str(name) for name in explanation.get("feature_names") or []]
        return [_fit(features, trailing[0]), *([_fit(own, trailing[1])] if len(trailing) == 2 else [])]
    return None


def _fit(labels: list[str], size: int) -> list[str]:
    return labels if len(labels) == size else [str(i) for i in range(size)]


def class_names(result: dict[str, Any]) -> list[str]:
    """The class labels of a classification result: the per-class keys of its classification report."""
    return [
        key
        for key, value in result.items()
        if isinstance(value, dict) and "support" in value and key not in REPORT_AVERAGES
    ]


def from_table(table: pa.Table) -> dict[str, Any]:
    meta = orjson.loads(table.schema.metadata[METADATA_KEY.encode()])
    if meta.get("layout") == predict_table.LAYOUT:
        return predict_table.to_result(table)
    result: dict[str, Any] = meta["result"]
    for entry in meta["arrays"]:
        shape, names = tuple(entry["shape"]), entry["columns"]
        if len(names) == 1 and pa.types.is_fixed_size_list(table.schema.field(names[0]).type):
            array = table.column(names[0]).combine_chunks().flatten().to_numpy().reshape(shape)
        elif len(shape) == 1:
            array = _column_numpy(table.column(names[0]))
        else:
            array = np.column_stack([_column_numpy(table.column(n)) for n in names]).reshape(shape)
        _put(result, tuple(entry["path"]), from_json_values(array))
    return result


def _column_numpy(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return np.array(column.to_pylist())
    values: np.ndarray = column.to_numpy()
    return values


def to_arrow(result: dict[str, Any], *, file: bool = False) -> bytes:
    """Arrow IPC, stream (default) or file format (the file format is Feather v2: `pd.read_feather`)."""
    table = to_table(result)
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    opener = pa.ipc.new_file if file else pa.ipc.new_stream
    with opener(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def to_parquet(result: dict[str, Any]) -> bytes:
    """Parquet, zstd; floats byte-stream-split (10% smaller, faster), labels dictionary-encoded (SHAP
    values have no repeats worth a dictionary: trying one costs time for nothing)."""
    table = to_table(result)
    floats = [field.name for field in table.schema if pa.types.is_floating(field.type)]
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        compression_level=1,
        use_dictionary=[name for name in ("y_true", "y_pred") if name not in floats],
        use_byte_stream_split=floats or False,
    )
    data: bytes = sink.getvalue().to_pybytes()
    return data


# --- NPZ: each array with its own name and shape --------------------------------------------------------


def to_npz(result: dict[str, Any]) -> bytes:
    rest, moved = split_arrays(result, rows_only=False, reserved=frozenset({"metadata"}))
    rows = len(result["y_pred"]) if isinstance(result.get("y_pred"), list) else None
    described = [{"path": list(m.path), "shape": list(m.values.shape), "name": m.name} for m in moved]
    metadata = np.array(_metadata(rest, described, rows).decode())
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, metadata=metadata, **{m.name: m.values for m in moved})
    return buffer.getvalue()


def from_npz(data: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        meta = orjson.loads(str(arrays["metadata"]))
        result: dict[str, Any] = meta["result"]
        for entry in meta["arrays"]:
            _put(result, tuple(entry["path"]), from_json_values(arrays[entry["name"]]))
    return result


_ENCODERS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "arrow": to_arrow,
    "arrow-file": lambda result: to_arrow(result, file=True),
    "parquet": to_parquet,
    "npz": to_npz,
}
