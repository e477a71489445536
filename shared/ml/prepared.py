"""A fitted job: what every explanation method works from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.ml.imputation import Imputation
from shared.ml.ingest.dataset import Dataset
from shared.ml.intervals import IntervalBand
from shared.ml.spec import JobSpec


@dataclass
class PreparedJob:
    """A fitted job: its data, the fitted model and the predictions-and-metrics part of the result, and
    what a kept model needs besides to treat new rows as the test rows were: the fitted imputers
    (`impute=`) and, with `return_pi`, the fitted interval band."""

    spec: JobSpec
    dataset: Dataset
    model: Any
    result: dict[str, Any]
    imputation: Imputation | None = None
    interval: IntervalBand | None = None
