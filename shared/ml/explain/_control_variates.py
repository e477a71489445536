"""The survey-sampling regression estimator, used by the SHAP sampler as a per-feature control variate.

A sampled pair (permutation, background row b) estimates feature j's value against b, which moves with
b_j (for an additive model it is f_j(x_j) - f_j(b_j)). The mean of b_j over the whole background is
known, so regressing the estimates on b_j and correcting the sample mean by slope x (sample mean of b_j
- background mean of b_j) removes the part of the error due to which background rows were drawn.
Per feature and univariate: robust to collinear features, where a joint linear fit is not.
"""

from __future__ import annotations

import numpy as np


def regression_estimate(
    estimates: np.ndarray, covariates: np.ndarray, covariate_means: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Control-variate mean and standard error of per-sample estimates (m, p, k) given b (m, p).

    covariate_means: b's mean over the whole background (p,). Needs m >= 3 samples.
    """
    n_samples = estimates.shape[0]
    centred_b = covariates - covariates.mean(axis=0)
    centred_estimates = estimates - estimates.mean(axis=0)
    spread = (centred_b**2).sum(axis=0)[:, None]
    slopes = np.where(
        spread > 0,
        np.einsum("mp,mpk->pk", centred_b, centred_estimates) / np.where(spread > 0, spread, 1),
        0.0,
    )
    shift = (covariates.mean(axis=0) - covariate_means)[:, None]
    mean = estimates.mean(axis=0) - slopes * shift
    residuals = centred_estimates - slopes[None] * centred_b[:, :, None]
    degrees = max(n_samples - 2, 1)
    standard_error = np.sqrt((residuals**2).sum(axis=0) / degrees / n_samples)
    return mean, standard_error
