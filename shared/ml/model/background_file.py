"""An uploaded SHAP background file: checked at submit as predict's new rows are, kept as the Parquet of its
feature columns, and read back by the worker as a raw table (`KeptModel.matrix` and the fit then turn it
into model space as they turn the test rows).

Its columns must hold the model's features (for a fit, the training file's): every missing column, numeric
feature holding text and missing value the model neither takes nor imputes is named at once
(`schema_mismatch`, as predict's check); the target and other columns are ignored. It holds at most
max_background_rows rows (`too_many_background_rows`): a larger file is refused, never cut (a file without
rows was refused by the ingest).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from shared.ml.errors import DataError
from shared.ml.ingest.canonical import Labels
from shared.ml.model.predict.checks import check_schema
from shared.ml.model.schema import FeatureSchema
from shared.ml.spec import BackgroundSpec, Limits

SUBJECT = "The background file"


def check_background(
    features: Sequence[Mapping[str, Any] | FeatureSchema],
    labels: Labels,
    sha256: str,
    limits: Limits,
    *,
    target: str,
    handles_missing: bool,
) -> BackgroundSpec:
    """The background a file of these `labels` (its bytes' `sha256`) gives; DataError or LimitExceeded,
    whose `parameter` is "background", naming what is wrong with it."""
    asked = BackgroundSpec("upload", labels.n_rows, sha256)
    asked.check(limits)
    try:
        check_schema(features, labels.facts, target=target, handles_missing=handles_missing, subject=SUBJECT)
    except DataError as error:
        error.details["parameter"] = "background"
        raise
    return asked


def feature_columns(canonical: Path, names: Sequence[str]) -> bytes:
    """The feature columns of a checked background's canonical file, as the Parquet bytes kept with its
    job (nothing else of the file is kept)."""
    table = pq.read_table(canonical, columns=list(names))
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def read_background(kept: bytes) -> pd.DataFrame:
    """The kept feature columns as a raw table: numbers as float64, categories as text."""
    frame: pd.DataFrame = pq.read_table(io.BytesIO(kept)).to_pandas()
    return frame
