"""A linear stand-in for the model, used as a control variate by the SHAP sampler.

For a linear g(z) = c + z @ beta the interventional Shapley values against background row b are
beta_j (x_j - b_j), known in closed form for the whole background. Subtracting g's values per sampled
background row and adding back g's exact mean cancels most of the error of visiting only some
background rows; the estimate stays unbiased whatever beta is, so a rough fit is enough.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Ridge penalty relative to the number of rows, on standardised columns: keeps collinear fits tame.
RELATIVE_RIDGE = 1e-3


@dataclass(frozen=True)
class LinearSurrogate:
    coefficients: np.ndarray  # (p, k)
    background_mean: np.ndarray  # (p,)

    @classmethod
    def fit(cls, background: np.ndarray, outputs: np.ndarray) -> LinearSurrogate:
        """Ridge fit of the model's outputs on the background rows (zero slope when it cannot fit)."""
        n_rows, n_features = background.shape
        mean = background.mean(axis=0)
        if n_rows < 3:
            return cls(np.zeros((n_features, outputs.shape[1])), mean)
        scale = background.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        standardised = (background - mean) / scale
        gram = standardised.T @ standardised + RELATIVE_RIDGE * n_rows * np.eye(n_features)
        slopes = np.linalg.solve(gram, standardised.T @ (outputs - outputs.mean(axis=0)))
        return cls(slopes / scale[:, None], mean)

    def contributions(self, row: np.ndarray, background_rows: np.ndarray) -> np.ndarray:
        """The surrogate's Shapley values of `row` against each given background row: (m, p, k)."""
        return (row - background_rows)[:, :, None] * self.coefficients[None]

    def mean_contributions(self, row: np.ndarray) -> np.ndarray:
        """The surrogate's Shapley values of `row` against the whole background: (p, k)."""
        return (row - self.background_mean)[:, None] * self.coefficients
