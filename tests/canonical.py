"""Uploads as the service stores them: the canonical Parquet file of a CSV (shared.ml.ingest), the only
form the ML core's entry points (`run`, `prepare`) read."""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

from shared.ml.ingest.upload import ingest
from shared.ml.spec import Limits


@cache
def canonical(csv: bytes, limits: Limits | None = None) -> bytes:
    """The canonical Parquet file that a submit of `csv` stores (checked against `limits`)."""
    with tempfile.TemporaryDirectory() as folder:
        sent = Path(folder) / "upload.csv"
        sent.write_bytes(csv)
        return ingest(sent, Path(folder) / "canonical.parquet", limits or Limits()).path.read_bytes()
