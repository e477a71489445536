"""A fitted job: what every explanation method works from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.ml.ingest.dataset import Dataset
from shared.ml.spec import JobSpec


@dataclass
class PreparedJob:
    """A fitted job: its data, the fitted model and the predictions-and-metrics part of the result."""

    spec: JobSpec
    dataset: Dataset
    model: Any
    result: dict[str, Any]
