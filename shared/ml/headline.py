"""The headline metric of a result: the one number a list of jobs shows for each."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

HEADLINE_SCORES = (("accuracy", ("accuracy",)), ("rmse", ("Score", "RMSE (Root Mean Squared Error)")))
"""(name, path in the result JSON) of each task's headline metric, the first found wins: classification
reports carry `accuracy` (shared.ml.metrics.classification_result), regression results the RMSE in
`Score` (shared.ml.metrics.regression_result)."""


def headline_score(result: Mapping[str, Any]) -> tuple[str, float] | None:
    """(name, value) of the result's headline metric, or None when it has none or it is not finite."""
    for name, path in HEADLINE_SCORES:
        found: Any = result
        for key in path:
            found = found.get(key) if isinstance(found, Mapping) else None
        if isinstance(found, int | float) and not isinstance(found, bool) and math.isfinite(found):
            return name, float(found)
    return None
