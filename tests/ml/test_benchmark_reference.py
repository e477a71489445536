"""The benchmarks' SHAP reference: the yardstick the SHAP explainers' errors are measured against.

It must agree with exact enumeration within the standard error it reports, or every error figure measured
against it is off by an unknown amount.
"""

import numpy as np

from benchmarks._shap_reference import permutation_reference, relative_mae
from shared.ml.explain.agnostic import explain_agnostic


def interacting_model(X: np.ndarray) -> np.ndarray:
    """Two outputs with interactions and a threshold, so that no permutation order gives the exact values."""
    score = np.tanh(X[:, 0] * X[:, 1]) + (X[:, 2] > 0.3) * X[:, 3] + 0.5 * X[:, 4] ** 2
    score -= 0.3 * X[:, 5] * X[:, 0]
    probability = 1.0 / (1.0 + np.exp(-score))
    return np.column_stack([1.0 - probability, probability])


def test_reference_matches_exact_shap_within_its_standard_error():
    rng = np.random.default_rng(7)
    background, rows = rng.normal(size=(40, 6)), rng.normal(size=(3, 6))
    exact = explain_agnostic(interacting_model, background, rows, random_state=0, exact_up_to=6)["values"]

    reference = permutation_reference(interacting_model, background, rows, n_pairs=8, seed=1)

    assert reference.values.shape == exact.shape == (3, 6, 2)
    z_scores = np.abs(reference.values - exact)[..., 1] / reference.standard_error[..., 1]
    assert z_scores.max() < 4.5  # 18 values: a 4.5-sigma miss would mean a biased estimate or a wrong error
    # the error it claims for itself is the error it has, within sampling spread
    claimed, actual = reference.relative_error(), relative_mae(reference.values, exact)
    assert 0.5 * claimed < actual < 2.0 * claimed
    # each row's values add up to its output minus the background mean, exactly (every path telescopes)
    gaps = interacting_model(rows) - interacting_model(background).mean(axis=0)
    np.testing.assert_allclose(reference.values.sum(axis=1), gaps, atol=1e-12)


def test_reference_is_reproducible_from_its_seed():
    rng = np.random.default_rng(8)
    background, rows = rng.normal(size=(10, 4)), rng.normal(size=(2, 4))
    model = lambda X: interacting_model(np.column_stack([X, X[:, :2]]))  # noqa: E731
    first = permutation_reference(model, background, rows, n_pairs=4, seed=3)
    again = permutation_reference(model, background, rows, n_pairs=4, seed=3, background_rows_per_call=3)
    np.testing.assert_array_equal(first.values, again.values)
