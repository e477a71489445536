"""A predict job's result as one table: written batch by batch as its scored batches come, and read back
(as the result's JSON, or as Arrow) a slice of rows at a time, so that no form of it is ever held whole.

The table (docs/api.md, "Predicting with a kept model") has one row per scored row, in upload order:
`y_pred` (a classifier's labels as int64 or text, a regressor's values), `proba_<class>`, `pi_lower`,
`pi_upper`, `ids`; with SHAP, `shap_<feature>` (`shap_<feature>_<class>`: every feature of the first class,
then of the next), `base_value` (`base_value_<class>`), `explained`, and for each reason k = 1..top_n
`reason_<k>_feature`, `reason_<k>_value` (a number), `reason_<k>_category` (a category's text; only when
the model has categorical features) and `reason_<k>_contribution`: on a row that was not explained, every
SHAP and reason column is null. A JSON null (a non-finite number) is NaN, as in the other binary forms.

The schema metadata (key `fitexplain`) holds the layout `fitexplain-predict`, the rows (`n_rows`,
`n_explained`), the result's JSON with null at each per-row entry (`result`), and `arrays`: for each
per-row entry its JSON `path`, `shape`, `columns` (in the array's own C order), the `rows` it holds ("all",
or "explained": the rows whose `explained` is true) and its `kind` (how a cell reads as JSON).

`json_pieces` writes the result's JSON from the table: the bytes `scoring.merge`'s result has as orjson
writes it (as `jobstore.succeed` stores it), whatever the batches were.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shared.ml.ingest.columns import json_values
from shared.ml.metrics import original_labels
from shared.ml.model.predict.options import PredictOptions
from shared.ml.model.predict.scoring import (
    Progress,
    Scorable,
    ScoredBatch,
    Tally,
    merge,
    result_skeleton,
    scored_batches,
)
from shared.ml.phases import Phases
from shared.results.table_names import METADATA_KEY, unique

LAYOUT = "fitexplain-predict"
LAYOUT_VERSION = 1
JSON_SLICE_ROWS = 8_192  # rows written as JSON at a time: with 50 SHAP values a row, a few MB of text
ARROW_SLICE_ROWS = 16_384  # rows sent as one Arrow record batch
READ_BUFFER_BYTES = 1 << 20  # a stored table is read page by page through it, not a row group at once

# A cell's kinds, as JSON: a number (NaN: null) or a label; an id (a whole number as an int); an
# explained row's number; a reason ({"feature", "value", "contribution"}).
NUMBERS, LABELS, IDS, ROW_NUMBERS, REASONS = "numbers", "labels", "ids", "row_numbers", "reasons"
EXPLAINED = "explained"

Batches = Callable[[list[str]], Iterator[pa.RecordBatch]]
"""Given column names, the table's rows (those columns) as record batches, in order."""


class PredictColumns:
    """The columns a predict result's table has, from the kept model and the request's options."""

    def __init__(self, kept: Scorable, options: PredictOptions) -> None:
        self.task = kept.spec.task
        self.options = options
        self.features = [feature.name for feature in kept.features]
        self.categorical = [feature.categories is not None for feature in kept.features]
        self.labels: list[Any] = original_labels(list(kept.class_labels or []))
        self.shap_classes = [str(label) for label in kept.class_labels or []]
        self.n_reasons = min(options.top_n, len(self.features)) if options.explains else 0
        taken: set[str] = set()
        self.proba = [unique(f"proba_{label}", taken) for label in self.labels]
        self.pi = ["pi_lower", "pi_upper"] if options.return_pi else []
        self.ids = ["ids"] if options.id_column is not None else []
        classes = self.shap_classes if self.task == "classification" else []
        # The array's own (C) order, features then classes; the table's order is by class, then feature.
        shap_names = [
            "_".join(("shap", feature, *label))
            for feature, *label in itertools.product(self.features, *([classes] if classes else []))
        ]
        self.shap = [unique(name, taken) for name in shap_names] if options.explains else []
        self.base_value = (
            [unique(f"base_value_{label}", taken) for label in classes] or ["base_value"]
            if options.explains
            else []
        )
        reason_parts = ["feature", "value", *(["category"] if any(self.categorical) else []), "contribution"]
        self.reasons = [[f"reason_{k}_{part}" for part in reason_parts] for k in range(1, self.n_reasons + 1)]

    @property
    def shap_shape(self) -> tuple[int, ...]:
        """A row's SHAP values: features (x classes)."""
        return (len(self.features), *([len(self.shap_classes)] if self.task == "classification" else []))

    def table_order(self) -> list[str]:
        """The SHAP columns as the table holds them: every feature of the first class, then of the next."""
        if self.task != "classification" or not self.shap:
            return self.shap
        n_features, n_classes = self.shap_shape
        return [self.shap[f * n_classes + c] for c in range(n_classes) for f in range(n_features)]

    def arrays(self, n_rows: int, n_explained: int) -> list[dict[str, Any]]:
        """The metadata's `arrays`: where each per-row entry of the result is."""
        found = [_entry(("y_pred",), [n_rows], ["y_pred"], LABELS if self.labels else NUMBERS)]
        if self.proba:
            found.append(_entry(("proba",), [n_rows, len(self.proba)], self.proba, NUMBERS))
        for name in self.pi:
            found.append(_entry((name,), [n_rows], [name], NUMBERS))
        if self.ids:
            found.append(_entry(("ids",), [n_rows], self.ids, IDS))
        if self.options.explains:
            shape = self.shap_shape
            base_shape = shape[1:]
            found += [
                _entry(("interpretability", "values"), [n_explained, *shape], self.shap, NUMBERS, EXPLAINED),
                _entry(
                    ("interpretability", "base_values"),
                    [n_explained, *base_shape],
                    self.base_value,
                    NUMBERS,
                    EXPLAINED,
                ),
                _entry(("explained_rows",), [n_explained], [EXPLAINED], ROW_NUMBERS, EXPLAINED),
                _entry(
                    ("reasons",),
                    [n_explained, self.n_reasons],
                    [name for reason in self.reasons for name in reason],
                    REASONS,
                    EXPLAINED,
                ),
            ]
        return found

    def schema(self, ids_are_text: bool) -> pa.Schema:
        fields = [pa.field("y_pred", _label_type(self.labels))]
        fields += [pa.field(name, pa.float64()) for name in (*self.proba, *self.pi)]
        fields += [pa.field(name, pa.string() if ids_are_text else pa.float64()) for name in self.ids]
        if self.options.explains:
            fields += [pa.field(name, pa.float64()) for name in (*self.table_order(), *self.base_value)]
            fields.append(pa.field(EXPLAINED, pa.bool_()))
            for feature, value, *category, contribution in self.reasons:
                fields.append(pa.field(feature, pa.dictionary(pa.int32(), pa.string())))
                fields.append(pa.field(value, pa.float64()))
                fields += [pa.field(name, pa.string()) for name in category]
                fields.append(pa.field(contribution, pa.float64()))
        return pa.schema(fields)

    def batch(self, scored: ScoredBatch, schema: pa.Schema) -> pa.RecordBatch:
        """One scored batch's rows."""
        n = scored.n_rows
        columns: dict[str, pa.Array] = {}
        if self.labels:
            columns["y_pred"] = pa.array(np.asarray(self.labels)[scored.y_pred], _label_type(self.labels))
        else:
            columns["y_pred"] = pa.array(scored.y_pred, pa.float64())
        if scored.proba is not None:
            for position, name in enumerate(self.proba):
                columns[name] = pa.array(scored.proba[:, position], pa.float64())
        if scored.pi is not None:
            columns["pi_lower"], columns["pi_upper"] = (pa.array(bound, pa.float64()) for bound in scored.pi)
        if self.ids and scored.ids is not None:
            text = pa.types.is_string(schema.field("ids").type)
            values = json_values(scored.ids) if text else scored.ids.to_numpy(dtype=np.float64)
            columns["ids"] = pa.array(values, schema.field("ids").type, from_pandas=True)
        if self.options.explains:
            columns.update(self._explained_columns(scored, n))
        return pa.record_batch([columns[field.name] for field in schema], schema=schema)

    def _explained_columns(self, scored: ScoredBatch, n: int) -> dict[str, pa.Array]:
        rows = scored.explained - scored.start
        columns = {EXPLAINED: pa.array(_mask_of(rows, n), pa.bool_())}
        shap = scored.shap
        # One contiguous row per column: a batch whose every row was explained is not copied again.
        values = _by_column(shap.values, len(rows)) if shap is not None else None
        base = _by_column(shap.base_values, len(rows)) if shap is not None else None
        if values is not None and base is not None:
            assert (len(values), len(base)) == (len(self.shap), len(self.base_value)), "SHAP's shape"
        for position, name in enumerate(self.shap):
            columns[name] = _spread(values[position] if values is not None else None, rows, n)
        for position, name in enumerate(self.base_value):
            columns[name] = _spread(base[position] if base is not None else None, rows, n)
        reasons = scored.reasons
        for k, (feature, value, *category, contribution) in enumerate(self.reasons):
            if reasons is None:  # no row of this batch was explained
                columns[feature] = self._feature_names(None, rows, n)
                columns.update({name: pa.nulls(n, pa.string()) for name in category})
                columns[value] = columns[contribution] = pa.nulls(n, pa.float64())
                continue
            columns[feature] = self._feature_names(reasons.features[:, k], rows, n)
            columns[value] = _spread(reasons.numbers[:, k], rows, n)
            if category:
                texts = reasons.texts[:, k] if reasons.texts is not None else None
                columns[category[0]] = _spread(texts, rows, n, text=True)
            columns[contribution] = _spread(reasons.contributions[:, k], rows, n)
        return columns

    def _feature_names(self, positions: np.ndarray | None, rows: np.ndarray, n: int) -> pa.Array:
        """A reason's feature names, as positions into the features (dictionary-encoded as written)."""
        indices = np.zeros(n, dtype=np.int32)
        if positions is not None:
            indices[rows] = positions
        missing = ~_mask_of(rows, n) if positions is not None else np.ones(n, dtype=bool)
        names = pa.array(self.features, pa.string())
        return pa.DictionaryArray.from_arrays(pa.array(indices, mask=missing), names)


def _by_column(values: np.ndarray, n_rows: int) -> np.ndarray:
    """Rows x (anything) as one contiguous float64 row per column."""
    return np.ascontiguousarray(np.asarray(values, np.float64).reshape(n_rows, -1).T)


def _entry(
    path: tuple[str, ...], shape: list[int], columns: list[str], kind: str, rows: str = "all"
) -> dict[str, Any]:
    return {"path": list(path), "shape": shape, "columns": columns, "rows": rows, "kind": kind}


def _label_type(labels: Sequence[Any]) -> pa.DataType:
    if not labels:
        return pa.float64()
    return pa.int64() if all(isinstance(label, int) for label in labels) else pa.string()


def _mask_of(rows: np.ndarray, n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return mask


def _spread(values: np.ndarray | None, rows: np.ndarray, n: int, *, text: bool = False) -> pa.Array:
    """A column of `n` rows holding `values` at `rows` (sorted row numbers), null elsewhere (NaN stays
    NaN)."""
    kind = pa.string() if text else pa.float64()
    if values is None:
        return pa.nulls(n, kind)
    if len(rows) == n:  # every row
        return pa.array(values, kind)
    full = np.full(n, None, dtype=object) if text else np.zeros(n)
    full[rows] = values
    return pa.array(full, kind) if text else pa.array(full, kind, mask=~_mask_of(rows, n))


class PredictTableWriter:
    """A predict result's Parquet file at `path`, one row group per scored batch (zstd; floats
    byte-stream-split, labels and reasons' feature names dictionary-encoded). The schema metadata is written
    by `finish`, once the batches are done (what the result says beside its rows is known then)."""

    def __init__(self, path: Path, columns: PredictColumns) -> None:
        self.path = path
        self.columns = columns
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, scored: ScoredBatch) -> None:
        if self._writer is None:
            ids_are_text = scored.ids is not None and not _is_numeric(scored.ids)
            self._open(self.columns.schema(ids_are_text))
        assert self._writer is not None and self._schema is not None
        batch = self.columns.batch(scored, self._schema)
        self._writer.write_batch(batch, row_group_size=max(batch.num_rows, 1))

    def finish(self, skeleton: dict[str, Any], n_rows: int, n_explained: int) -> None:
        """Write the metadata (`skeleton`: the result with None at each per-row entry) and close the file."""
        if self._writer is None:  # no batch: an empty table (the job fails as `no_rows` before this)
            self._open(self.columns.schema(ids_are_text=False))
        assert self._writer is not None
        meta = {
            "layout": LAYOUT,
            "version": LAYOUT_VERSION,
            "n_rows": n_rows,
            "n_explained": n_explained,
            "arrays": self.columns.arrays(n_rows, n_explained),
            "result": skeleton,
        }
        self._writer.add_key_value_metadata(
            {METADATA_KEY: orjson.dumps(meta, option=orjson.OPT_SERIALIZE_NUMPY)}
        )
        self._writer.close()
        self._writer = None

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _open(self, schema: pa.Schema) -> None:
        floats = [field.name for field in schema if pa.types.is_floating(field.type)]
        dictionary = ["y_pred", *(reason[0] for reason in self.columns.reasons)]
        self._schema = schema
        # The metadata is added at the end: without the stored Arrow schema (which is written first, and
        # would hide it), readers take the file's own key-value metadata as the schema's.
        self._writer = pq.ParquetWriter(
            self.path,
            schema,
            compression="zstd",
            compression_level=1,
            use_dictionary=[name for name in dictionary if name not in floats],
            use_byte_stream_split=floats or False,
            store_schema=False,
        )


def score_to_table(
    kept: Scorable,
    batches: Iterable[pd.DataFrame],
    options: PredictOptions,
    path: Path,
    *,
    extra_columns: Sequence[str] = (),
    keep_rows: bool = False,
    n_rows: int | None = None,
    progress: Progress | None = None,
    phases: Phases | None = None,
) -> dict[str, Any] | None:
    """Score `batches` (`scoring.scored_batches`) into a predict table at `path`, each batch written (phase
    "write") and dropped; with `keep_rows`, the batches are kept and the result returned too (its JSON)."""
    phases = phases or Phases()
    writer = PredictTableWriter(path, PredictColumns(kept, options))
    tally = Tally()
    parts: list[ScoredBatch] = []
    try:
        for scored in scored_batches(
            kept, batches, options, tally, n_rows=n_rows, progress=progress, phases=phases
        ):
            with phases.timed("write"):
                writer.write(scored)
            if keep_rows:
                parts.append(scored)
        with phases.timed("write"):
            skeleton = result_skeleton(kept, options, tally, extra_columns, arrays=True)
            writer.finish(skeleton, tally.n_rows, tally.n_explained)
    finally:
        writer.abort()
    if not keep_rows:
        return None
    with phases.timed("merge"):
        return merge(kept, parts, options, tally, extra_columns, arrays=True)


def _is_numeric(values: Any) -> bool:
    return bool(pd.api.types.is_numeric_dtype(values.dtype))


# --- reading back ---------------------------------------------------------------------------------------


def is_predict_table(schema: pa.Schema) -> bool:
    """Whether a result table's schema is this layout's."""
    meta = (schema.metadata or {}).get(METADATA_KEY.encode())
    return meta is not None and orjson.loads(meta).get("layout") == LAYOUT


def metadata_of(schema: pa.Schema) -> dict[str, Any]:
    found: dict[str, Any] = orjson.loads((schema.metadata or {})[METADATA_KEY.encode()])
    return found


def file_batches(file: pq.ParquetFile, rows: int = JSON_SLICE_ROWS) -> Batches:
    """A Parquet file's rows, read a slice at a time."""
    return lambda columns: file.iter_batches(batch_size=rows, columns=columns)


def table_batches(table: pa.Table, rows: int = JSON_SLICE_ROWS) -> Batches:
    return lambda columns: iter(table.select(columns).to_batches(max_chunksize=rows))


def json_pieces(meta: dict[str, Any], batches: Batches) -> Iterator[bytes]:
    """The result's JSON, in pieces of at most a slice of rows each."""
    entries = {tuple(entry["path"]): entry for entry in meta["arrays"]}
    yield from _dump(meta["result"], (), entries, batches)


def to_result(table: pa.Table) -> dict[str, Any]:
    """The result dict from a whole table (an Arrow or Parquet download read back)."""
    found: dict[str, Any] = orjson.loads(
        b"".join(json_pieces(metadata_of(table.schema), table_batches(table)))
    )
    return found


def _dump(
    value: Any, path: tuple[str, ...], entries: dict[tuple[str, ...], dict[str, Any]], batches: Batches
) -> Iterator[bytes]:
    if path in entries:
        yield from _array(entries[path], batches)
    elif isinstance(value, dict) and any(found[: len(path)] == path for found in entries):
        yield b"{"
        for position, (key, item) in enumerate(value.items()):
            yield (b"," if position else b"") + orjson.dumps(key) + b":"
            yield from _dump(item, (*path, key), entries, batches)
        yield b"}"
    else:
        yield orjson.dumps(value)


def _array(entry: dict[str, Any], batches: Batches) -> Iterator[bytes]:
    """An entry's JSON array: `[` + its elements, a slice of rows at a time + `]`."""
    columns: list[str] = entry["columns"]
    explained_only = entry["rows"] == EXPLAINED
    read = list(dict.fromkeys([*columns, EXPLAINED])) if explained_only else columns
    yield b"["
    first, start = True, 0
    for batch in batches(read):
        n = batch.num_rows
        chosen = None
        if EXPLAINED in read:
            chosen = np.flatnonzero(batch.column(EXPLAINED).fill_null(False).to_numpy(zero_copy_only=False))
        body = _elements(entry, batch, chosen, start)[1:-1]
        start += n
        if body:
            yield body if first else b"," + body
            first = False
    yield b"]"


def _elements(entry: dict[str, Any], batch: pa.RecordBatch, chosen: np.ndarray | None, start: int) -> bytes:
    """These rows' elements of the entry, as a JSON array."""
    kind, columns = entry["kind"], entry["columns"]
    if kind == ROW_NUMBERS:
        assert chosen is not None
        return orjson.dumps(chosen + start, option=orjson.OPT_SERIALIZE_NUMPY)
    taken = [batch.column(name) for name in columns]
    if chosen is not None and entry["rows"] == EXPLAINED:
        indices = pa.array(chosen, pa.int64())
        taken = [column.take(indices) for column in taken]
    if kind == REASONS:
        assert chosen is not None
        width = sum(1 for name in columns if name.startswith("reason_1_"))
        return _reasons_json(taken, len(chosen), width)
    if kind == IDS:
        column = taken[0]
        if pa.types.is_string(column.type):
            return orjson.dumps(column.to_pylist())
        return orjson.dumps(json_values(pd.Series(column.to_numpy(zero_copy_only=False), dtype=np.float64)))
    if kind == LABELS and pa.types.is_string(taken[0].type):
        return orjson.dumps(taken[0].to_pylist())
    arrays = [_numbers(column) for column in taken]
    shape = entry["shape"][1:]
    if not shape:
        array = arrays[0]
    else:
        array = np.column_stack(arrays).reshape(len(arrays[0]), *shape) if arrays else np.zeros((0, *shape))
    return orjson.dumps(np.ascontiguousarray(array), option=orjson.OPT_SERIALIZE_NUMPY)


def _numbers(column: pa.Array) -> np.ndarray:
    """A numeric column as numpy (a null, which only rows not explained hold, as NaN)."""
    if pa.types.is_integer(column.type) and not column.null_count:
        integers: np.ndarray = column.to_numpy()
        return integers
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)


def _reasons_json(columns: list[pa.Array], n_rows: int, width: int) -> bytes:
    """The rows' reasons as a JSON array, each reason being `width` columns (feature, value, [category,]
    contribution), built a column at a time in Arrow: no Python object per reason."""
    if not n_rows or not columns:
        return b"[" + b",".join([b"[]"] * n_rows) + b"]"
    reasons = []
    for k in range(0, len(columns), width):
        value = _json_numbers(columns[k + 1])
        if width == 4:  # a categorical feature's value is its text
            category = columns[k + 2]
            value = pc.if_else(pc.is_valid(category), _json_texts(category), value)
        contribution = _json_numbers(columns[k + width - 1])
        feature = _json_texts(columns[k])
        reasons.append(
            _joined(b'{"feature":', feature, b',"value":', value, b',"contribution":', contribution, b"}")
        )
    rows = _joined(b"[", pc.binary_join_element_wise(*reasons, _binary(b",")), b"]")
    listed = pa.ListArray.from_arrays(pa.array([0, n_rows], pa.int32()), rows)
    joined: bytes = pc.binary_join(listed, _binary(b","))[0].as_py()
    return b"[" + joined + b"]"


def _binary(value: bytes) -> pa.Scalar:
    return pa.scalar(value, pa.binary())


def _joined(*parts: bytes | pa.Array) -> pa.Array:
    """Element-wise concatenation of columns and constants."""
    found: pa.Array = pc.binary_join_element_wise(
        *(_binary(part) if isinstance(part, bytes) else part for part in parts), _binary(b"")
    )
    return found


def _json_texts(column: pa.Array) -> pa.Array:
    """Text as JSON strings (each distinct text encoded once); a null stays null."""
    encoded = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
    quoted = pa.array([orjson.dumps(text) for text in encoded.dictionary.to_pylist()], pa.binary())
    found: pa.Array = quoted.take(encoded.indices)
    return found


def _json_numbers(column: pa.Array) -> pa.Array:
    """Numbers as orjson writes them (a NaN, an infinity or a null as null)."""
    numbers = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    text = orjson.dumps(numbers, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
    found: pa.Array = pc.split_pattern(pa.array([text], pa.binary()), b",").flatten()
    return found


# --- Arrow from the stored Parquet form -------------------------------------------------------------------


class _Pieces(io.RawIOBase):
    """A write-only sink whose bytes are taken as they come (an Arrow writer's output, streamed)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        piece = bytes(data)
        self._parts.append(piece)
        self._position += len(piece)
        return len(piece)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        found = b"".join(self._parts)
        self._parts.clear()
        return found


def arrow_pieces(source: IO[bytes], *, file_format: bool = False) -> Iterator[bytes]:
    """A stored Parquet form as Arrow IPC (a stream, or the file format), zstd, a slice of rows at a time;
    `source` is closed at the end."""
    with source, pq.ParquetFile(source, pre_buffer=False, buffer_size=READ_BUFFER_BYTES) as file:
        sink = _Pieces()
        opener = pa.ipc.new_file if file_format else pa.ipc.new_stream
        options = pa.ipc.IpcWriteOptions(compression="zstd")
        with opener(sink, file.schema_arrow, options=options) as writer:
            for batch in file.iter_batches(batch_size=ARROW_SLICE_ROWS):
                writer.write_batch(batch)
                yield sink.take()
        yield sink.take()


def head(source: IO[bytes], rows: int = JSON_SLICE_ROWS) -> dict[str, Any]:
    """The result of a stored table's first `rows` rows (a page's view of a result too large to read
    whole); `source` is closed at the end."""
    with source, pq.ParquetFile(source, pre_buffer=False, buffer_size=READ_BUFFER_BYTES) as file:
        first = next(file.iter_batches(batch_size=rows), None)
        schema = file.schema_arrow
        table = pa.Table.from_batches([first] if first is not None else [], schema=schema)
    return to_result(table)


def parquet_json_pieces(source: IO[bytes]) -> Iterator[bytes]:
    """A stored predict table's result JSON, in pieces; `source` is closed at the end."""
    with source, pq.ParquetFile(source, pre_buffer=False, buffer_size=READ_BUFFER_BYTES) as file:
        yield from json_pieces(metadata_of(file.schema_arrow), file_batches(file))
