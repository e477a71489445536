"""explain_agnostic: exact enumeration against the Shapley formula, the sampler against exact values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from shared.ml.explain.agnostic import explain_agnostic


def _rows(seed: int, n_rows: int, n_features: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n_rows, n_features))


def _interacting_model(n_features: int, n_outputs: int = 0):
    """A smooth model with interactions of order up to three; n_outputs=0 returns a 1-D output."""
    weights = np.random.default_rng(7).normal(size=(n_features, max(n_outputs, 1)))

    def predict(rows: np.ndarray) -> np.ndarray:
        outputs = np.tanh(rows @ weights) + (rows[:, 0] * rows[:, 1] * rows[:, 2])[:, None]
        return outputs[:, 0] if n_outputs == 0 else outputs

    return predict


def _pairwise_model(rows: np.ndarray) -> np.ndarray:
    """Main effects and interactions of order two only."""
    return np.sin(rows[:, 0]) + rows[:, 1] * rows[:, 2] - rows[:, 3] ** 2 + rows[:, 0] * rows[:, 4]


def _brute_force_shapley(predict, background: np.ndarray, row: np.ndarray) -> np.ndarray:
    """phi_j = sum over S without j of |S|!(p-|S|-1)!/p! (v(S+j) - v(S)), v = background mean."""
    n_features = row.shape[0]

    def game(coalition: tuple[int, ...]) -> np.ndarray:
        synthetic = background.copy()
        synthetic[:, list(coalition)] = row[list(coalition)]
        return np.atleast_2d(predict(synthetic).T).T.mean(axis=0)

    values = []
    for j in range(n_features):
        others = [i for i in range(n_features) if i != j]
        total = 0.0
        for size in range(n_features):
            weight = math.factorial(size) * math.factorial(n_features - size - 1) / math.factorial(n_features)
            for coalition in itertools.combinations(others, size):
                total = total + weight * (game((*coalition, j)) - game(coalition))
        values.append(total)
    return np.array(values)


def _relative_mae(estimate: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(estimate - reference).mean() / np.abs(reference).mean())


def test_exact_enumeration_equals_the_shapley_formula_for_several_outputs():
    predict = _interacting_model(5, n_outputs=3)
    background, rows = _rows(1, 12, 5), _rows(2, 4, 5)
    result = explain_agnostic(predict, background, rows, random_state=0)
    expected = np.stack([_brute_force_shapley(predict, background, row) for row in rows])
    assert result["explainer"] == "exact" and result["exact"] is True
    assert result["error_estimate"] is None
    assert result["values"].shape == (4, 5, 3) and result["base_values"].shape == (4, 3)
    np.testing.assert_allclose(result["values"], expected, atol=1e-12)
    np.testing.assert_allclose(result["base_values"][0], predict(background).mean(axis=0), atol=1e-12)


def test_exact_enumeration_matches_shap_exact_explainer():
    shap = pytest.importorskip("shap")
    predict = _interacting_model(6)
    background, rows = _rows(3, 15, 6), _rows(4, 5, 6)
    masker = shap.maskers.Independent(background, max_samples=background.shape[0])
    theirs = shap.explainers.Exact(predict, masker)(rows)
    ours = explain_agnostic(predict, background, rows, random_state=0)
    assert ours["values"].shape == (5, 6) and ours["base_values"].shape == (5,)
    np.testing.assert_allclose(ours["values"], theirs.values, atol=1e-10)
    np.testing.assert_allclose(ours["base_values"], theirs.base_values, atol=1e-10)


def test_sampler_error_stays_within_its_claimed_bound_and_estimate():
    predict = _interacting_model(10)
    background, rows = _rows(5, 40, 10), _rows(6, 8, 10)
    exact = explain_agnostic(predict, background, rows, random_state=0)["values"]
    sampled = explain_agnostic(predict, background, rows, random_state=11, exact_up_to=0, tolerance=0.05)
    assert sampled["explainer"] == "sampling" and sampled["exact"] is False
    assert "0.05" in sampled["notes"]
    error = np.abs(sampled["values"] - exact).mean()
    # The stopping rule holds the standard error under 5% of mean |value|: MAE ~ 0.8 of that.
    assert _relative_mae(sampled["values"], exact) < 0.08
    assert sampled["error_estimate"] / 3 < error < 3 * sampled["error_estimate"]


def test_sampler_is_exact_for_pairwise_models_once_every_background_row_is_used():
    background, rows = _rows(7, 10, 14), _rows(8, 3, 14)
    exact = explain_agnostic(_pairwise_model, background, rows, random_state=0, exact_up_to=14)["values"]
    per_row_budget = background.shape[0] * 2 * (14 - 1)  # one antithetic pair per background row
    sampled = explain_agnostic(
        _pairwise_model, background, rows, random_state=3, max_evals=per_row_budget, tolerance=0.0
    )
    np.testing.assert_allclose(sampled["values"], exact, atol=1e-10)


@pytest.mark.parametrize("force_sampler", [False, True])
def test_values_add_up_to_the_prediction(force_sampler):
    predict = _interacting_model(7, n_outputs=2)
    background, rows = _rows(9, 20, 7), _rows(10, 6, 7)
    result = explain_agnostic(
        predict, background, rows, random_state=1, exact_up_to=0 if force_sampler else 12, max_evals=200
    )
    total = result["values"].sum(axis=1) + result["base_values"]
    np.testing.assert_allclose(total, predict(rows), rtol=0, atol=1e-9)


def test_a_rows_values_do_not_depend_on_chunking_or_the_global_rng():
    predict = _interacting_model(13)
    background, rows = _rows(11, 25, 13), _rows(12, 10, 13)
    reported: list[tuple[int, int]] = []
    np.random.seed(0)
    whole = explain_agnostic(
        predict, background, rows, random_state=5, progress=lambda d, t: reported.append((d, t))
    )
    np.random.seed(1)
    first = explain_agnostic(predict, background, rows[:4], random_state=5, row_ids=np.arange(4))
    second = explain_agnostic(predict, background, rows[4:], random_state=5, row_ids=np.arange(4, 10))
    np.testing.assert_allclose(
        np.concatenate([first["values"], second["values"]]), whole["values"], atol=1e-12
    )
    assert reported and reported[-1] == (10, 10)
    other_seed = explain_agnostic(predict, background, rows, random_state=6)
    assert not np.allclose(other_seed["values"], whole["values"])


def test_budget_bounds_the_evaluations_and_switches_off_exact_enumeration():
    predict = _interacting_model(6)
    background, rows = _rows(13, 30, 6), _rows(14, 5, 6)
    result = explain_agnostic(predict, background, rows, random_state=0, max_evals=200)
    assert result["explainer"] == "sampling"  # 2**6 * 30 evaluations would not fit in 200
    assert result["n_model_evals"] <= background.shape[0] + rows.shape[0] * (1 + 200)


def test_rejects_rows_with_the_wrong_number_of_columns():
    with pytest.raises(ValueError, match="columns"):
        explain_agnostic(_pairwise_model, _rows(0, 5, 5), _rows(0, 2, 4), random_state=0)
