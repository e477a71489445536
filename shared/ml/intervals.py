"""Conformal prediction intervals that leave the point model alone.

Both methods split the training rows in half (seeded): the model is fitted on the first half and its
errors on the second half calibrate the band. The returned model is that fitted model, so predictions,
intervals and explanations all describe one and the same estimator. We never call nnetsauce's
`predict(return_pi=True)`, which refits the model on half of the training rows and so changes
later predictions (by up to 5.7 on Boston with nnetsauce 0.56).

- "splitconformal": nnetsauce.PredictionInterval; a band of constant width.
- "localconformal": our own normalised split conformal, because nnetsauce 0.56.1's version fails in
  `fit` (and its error model is unseeded). The width follows an extra-trees model of the log absolute
  error, fitted on the first half with the spec's seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.ml.errors import ParameterError
from shared.ml.spec import PiMethod

if TYPE_CHECKING:  # fitted where a band is made; the API only reads this module's types
    from sklearn.ensemble import ExtraTreesRegressor

ERROR_MODEL_TREES = 100
SCALE_FLOOR = 1e-8


class SplitBand:
    """nnetsauce's fitted split conformal wrapper: a band of constant width around the point model."""

    def __init__(self, wrapper: Any) -> None:
        self.wrapper = wrapper

    def interval(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(point predictions, lower, upper) for the rows of `X`."""
        band = self.wrapper.predict(X, return_pi=True)
        return np.asarray(band.mean), np.asarray(band.lower), np.asarray(band.upper)


class LocalBand:
    """Normalised split conformal: the calibrated score quantile scaled by the error model's estimate."""

    def __init__(self, model: Any, error_model: ExtraTreesRegressor, quantile: float) -> None:
        self.model = model
        self.error_model = error_model
        self.quantile = quantile

    def scale(self, X: np.ndarray) -> np.ndarray:
        scales: np.ndarray = np.exp(self.error_model.predict(X)) + SCALE_FLOOR
        return scales

    def interval(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(point predictions, lower, upper) for the rows of `X`."""
        y_pred = np.asarray(self.model.predict(X), dtype=np.float64)
        half_width = self.quantile * self.scale(X)
        return y_pred, y_pred - half_width, y_pred + half_width


IntervalBand = SplitBand | LocalBand


@dataclass
class IntervalFit:
    """The model fitted on the proper-training half, its test predictions and the band around them, and
    the fitted band itself (`band`), which gives new rows their intervals the same way."""

    model: Any
    y_pred: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    calibration_rows: int  # training rows kept out of the fit to calibrate the band
    band: IntervalBand

    def notes(self, n_train: int, level: float, method: PiMethod) -> str:
        """What the result says about how its intervals were made."""
        proper = n_train - self.calibration_rows
        return (
            f"return_pi: the point model was fitted on {proper} of the {n_train} training rows (the "
            f"proper-training rows); the other {self.calibration_rows} (calibration_rows) calibrated the "
            f"{level:g}% intervals ({method}). Conformal intervals hold their coverage only on rows the "
            "model has not seen, so without return_pi the model is fitted on every training row and its "
            "predictions differ."
        )


def fit_with_interval(
    model: Any,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    *,
    method: PiMethod,
    level: float,
    seed: int,
) -> IntervalFit:
    """Fit `model` on half the training rows and return a `level`% interval for each test row."""
    if not 0 < level < 100:
        raise ParameterError("bad_parameter", f"level must be a percentage between 0 and 100; got {level}.")
    if method == "splitconformal":
        return _split_conformal(model, X_train, y_train, X_test, level, seed)
    if method == "localconformal":
        return _local_conformal(model, X_train, y_train, X_test, level, seed)
    raise ParameterError(
        "bad_parameter", f"Unknown pi_method {method!r}: use splitconformal or localconformal."
    )


def _split_conformal(
    model: Any, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, level: float, seed: int
) -> IntervalFit:
    import nnetsauce as ns

    wrapper = ns.PredictionInterval(obj=model, method="splitconformal", level=level, seed=seed)
    wrapper.fit(X_train, y_train)
    band = SplitBand(wrapper)
    y_pred, lower, upper = band.interval(X_test)
    calibration_rows = math.ceil(0.5 * len(X_train))  # nnetsauce's split: train_test_split(test_size=0.5)
    return IntervalFit(wrapper.obj, y_pred, lower, upper, calibration_rows, band)


def _local_conformal(
    model: Any,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    level: float,
    seed: int,
) -> IntervalFit:
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.model_selection import train_test_split

    X_proper, X_calibration, y_proper, y_calibration = train_test_split(
        X_train, y_train, test_size=0.5, random_state=seed
    )
    model.fit(X_proper, y_proper)
    log_error = np.log(np.abs(y_proper - model.predict(X_proper)) + SCALE_FLOOR)
    error_model = ExtraTreesRegressor(
        n_estimators=ERROR_MODEL_TREES, min_samples_leaf=5, random_state=seed
    ).fit(X_proper, log_error)

    unscaled = LocalBand(model, error_model, 1.0)
    scores = np.abs(y_calibration - model.predict(X_calibration)) / unscaled.scale(X_calibration)
    rank = min(len(scores), int(np.ceil((len(scores) + 1) * level / 100)))
    band = LocalBand(model, error_model, float(np.sort(scores)[rank - 1]))
    y_pred, lower, upper = band.interval(X_test)
    return IntervalFit(model, y_pred, lower, upper, len(X_calibration), band)
