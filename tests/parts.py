"""Typed explanation parts as a worker stores them in fan-out chunks, for tests of the chunk store."""

from __future__ import annotations

import numpy as np

from shared.ml.explain.methods.shap import ShapValues


def shap_part(start: int, stop: int, fill: float = 1.0) -> ShapValues:
    """A SHAP part for test rows start..stop of a two-feature regression."""
    rows = stop - start
    return ShapValues(
        span=(start, stop),
        values=np.full((rows, 2), fill),
        base_values=np.zeros(rows),
        feature_names=["a", "b"],
        explainer="tree",
        exact=True,
        output_space="raw",
        n_model_evals=0,
        error_estimate=None,
        notes="",
    )
