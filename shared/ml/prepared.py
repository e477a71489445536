"""A fitted job: what every explanation method works from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.ml.imputation import Imputation
from shared.ml.ingest.dataset import Dataset
from shared.ml.intervals import IntervalBand
from shared.ml.spec import JobSpec


@dataclass
class PreparedJob:
    """A fitted job: its data, the fitted model and the predictions-and-metrics part of the result, and
    what a kept model needs besides to treat new rows as the test rows were: the fitted imputers
    (`impute=`) and, with `return_pi`, the fitted interval band; and the rows of the SHAP background file
    sent with the job, when its spec names one, in model space as the test rows
    (`shared.ml.explain.background.for_fit`)."""

    spec: JobSpec
    dataset: Dataset
    model: Any
    result: dict[str, Any]
    imputation: Imputation | None = None
    interval: IntervalBand | None = None
    uploaded_background: np.ndarray | None = None
