"""Model-agnostic interventional SHAP values: exact for few features, sampled with error bars otherwise.

The values are Shapley values of the game v_x(S) = mean over background rows b of f(x_S, b_rest).
Up to EXACT_MAX_FEATURES features every coalition is evaluated. Above that, each background row b is
paired with a random permutation and its reverse (R's kernelshap `permshap` design: exact for models
whose interactions have order <= 2). A per-feature regression control variate on b_j removes much
of the error of visiting only some background rows; rows are sampled in rounds until their standard
error is small, and the estimate is then projected onto exact additivity.
Every random draw for a row comes from Generator(SeedSequence([random_state, row_id])), so a row's
values do not depend on how rows are chunked, nor on numpy's global RNG (which nnetsauce reseeds).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.ml.explain._coalitions import (
    all_coalitions,
    antithetic_path_masks,
    antithetic_path_values,
    random_permutations,
    shapley_weight_matrix,
)
from shared.ml.explain._control_variates import regression_estimate
from shared.ml.explain._model_calls import CountingModel, PredictFn, as_outputs, max_batch_rows

Progress = Callable[[int, int], None]

EXACT_MAX_FEATURES = 12
#: Target standard error of a row's values, relative to their mean absolute size.
DEFAULT_TOLERANCE = 0.08
#: Antithetic pairs sampled for every row before the first convergence check.
FIRST_ROUND_PAIRS = 16
#: Rows are explained in chunks of about this many evaluations, with a progress report after each.
PROGRESS_CHUNK_EVALS = 100_000
#: A row's sampling typically costs a few times its first batch of pairs.
EXPECTED_ROUNDS_COST = 4
#: Fewest pairs a row may use: the control variate's slope and the error bar need a few.
MIN_PAIRS = 4
#: Without max_evals, a row may use each background row this many times (at least MIN_CAP_PAIRS pairs).
DEFAULT_BACKGROUND_CYCLES = 2
MIN_CAP_PAIRS = 128
_NORMAL_MAE_PER_SE = math.sqrt(2.0 / math.pi)


def explain_agnostic(
    predict_fn: PredictFn,
    X_background: np.ndarray,
    X_explain: np.ndarray,
    *,
    random_state: int,
    row_ids: np.ndarray | None = None,
    progress: Progress | None = None,
    max_evals: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    exact_up_to: int = EXACT_MAX_FEATURES,
) -> dict[str, Any]:
    """Interventional SHAP values of predict_fn's output for each row of X_explain.

    max_evals bounds the model evaluations (synthetic rows) spent per explained row: exact enumeration
    is used only when p <= 12 and its 2**p * n_background evaluations fit; the sampler stops a row when
    its mean standard error is below `tolerance` times its mean |value|, or at the budget.
    exact_up_to lets a reference computation enumerate more features.
    Returns values (n, p) or (n, p, k) when predict_fn returns (m, k), base_values (n,) or (n, k).
    """
    background, rows, ids = _validated(X_background, X_explain, row_ids)
    model = CountingModel(predict_fn)
    raw_at_background = predict_fn(background)
    single_output = np.ndim(raw_at_background) == 1
    at_background = as_outputs(raw_at_background, background.shape[0])
    model.n_evals += background.shape[0]
    n_rows, n_features = rows.shape
    n_background = background.shape[0]

    fits = max_evals is None or 2**n_features * n_background <= max_evals
    if n_features == 1 or (n_features <= exact_up_to and fits):  # one feature: nothing to sample
        values = _exact_values(model, background, rows, progress)
        standard_errors = None
        explainer = "exact"
        notes = f"Exact enumeration of all {2**n_features} coalitions against {n_background} background rows."
    else:
        max_pairs = _pair_budget(max_evals, n_features, n_background)
        sampler = _AntitheticSampler(model, background, at_background, random_state, tolerance, max_pairs)
        values, standard_errors = sampler.explain(rows, ids, progress)
        explainer = "sampling"
        notes = (
            "Antithetic permutation sampling (each permutation with its reverse against one background "
            "row, regression control variate on that row's feature values), per row until the standard "
            f"error was below {tolerance:g} of the mean |value| or {max_pairs} pairs were used; "
            "error_estimate = mean standard error x sqrt(2/pi)."
        )

    base_values = np.broadcast_to(at_background.mean(axis=0), (n_rows, at_background.shape[1])).copy()
    error_estimate = None
    if standard_errors is not None:
        error_estimate = float(standard_errors.mean() * _NORMAL_MAE_PER_SE) if standard_errors.size else 0.0
    if single_output:
        values, base_values = values[..., 0], base_values[:, 0]
    return {
        "values": values,
        "base_values": base_values,
        "explainer": explainer,
        "exact": explainer == "exact",
        "n_model_evals": model.n_evals,
        "error_estimate": error_estimate,
        "notes": notes,
    }


def _validated(
    X_background: np.ndarray, X_explain: np.ndarray, row_ids: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    background = np.asarray(X_background, dtype=float)
    rows = np.asarray(X_explain, dtype=float)
    if background.ndim != 2 or background.shape[0] == 0:
        raise ValueError(f"X_background must be a non-empty 2-D array, got shape {background.shape}")
    if rows.ndim != 2 or rows.shape[1] != background.shape[1]:
        raise ValueError(f"X_explain must be 2-D with {background.shape[1]} columns, got {rows.shape}")
    if background.shape[1] == 0:
        raise ValueError("cannot explain a model without features")
    ids = np.arange(rows.shape[0]) if row_ids is None else np.asarray(row_ids, dtype=np.int64)
    if ids.shape != (rows.shape[0],):
        raise ValueError(f"row_ids must hold one id per explained row, got shape {ids.shape}")
    return background, rows, ids


def _pair_budget(max_evals: int | None, n_features: int, n_background: int) -> int:
    """Antithetic pairs a row may use: each costs 2(p-1) evaluations; at least MIN_PAIRS, for an error bar."""
    evals_per_pair = 2 * max(n_features - 1, 1)
    if max_evals is None:
        return max(DEFAULT_BACKGROUND_CYCLES * n_background, MIN_CAP_PAIRS)
    return max(MIN_PAIRS, max_evals // evals_per_pair)


def _exact_values(
    model: CountingModel, background: np.ndarray, rows: np.ndarray, progress: Progress | None
) -> np.ndarray:
    """All 2**p coalitions per row; game values averaged over the background, weighted by a matrix."""
    n_rows, n_features = rows.shape
    coalitions = all_coalitions(n_features)
    weights = shapley_weight_matrix(coalitions)
    per_row = coalitions.shape[0] * background.shape[0]
    rows_per_call = max(1, max_batch_rows(n_features) // per_row)
    coalitions_per_call = max(1, max_batch_rows(n_features) // background.shape[0])
    chunks = []
    for start in range(0, n_rows, rows_per_call):
        chunk = rows[start : start + rows_per_call]
        game = np.concatenate(
            [
                _game_values(model, chunk, coalitions[c : c + coalitions_per_call], background)
                for c in range(0, coalitions.shape[0], coalitions_per_call)
            ],
            axis=1,
        )
        chunks.append(np.einsum("rck,cj->rjk", game, weights))
        if progress is not None:
            progress(min(start + rows_per_call, n_rows), n_rows)
    if not chunks:
        return np.zeros((0, n_features, model(background[:1]).shape[1]))
    return np.concatenate(chunks, axis=0)


def _game_values(
    model: CountingModel, rows: np.ndarray, coalitions: np.ndarray, background: np.ndarray
) -> np.ndarray:
    """v_x(S) = mean_b f(x_S, b_rest) for each row x and coalition S: (r, c, k), one model call."""
    synthetic = np.where(coalitions[None, :, None, :], rows[:, None, None, :], background[None, None])
    outputs = model(synthetic.reshape(-1, rows.shape[1]))
    per_background = outputs.reshape(rows.shape[0], coalitions.shape[0], background.shape[0], -1)
    values: np.ndarray = per_background.mean(axis=2)
    return values


@dataclass
class _RowSamples:
    """One explained row's random stream and the per-pair estimates gathered so far."""

    rng: np.random.Generator
    n_background: int
    background_order: np.ndarray
    used: int
    estimates: np.ndarray  # (pairs, p, k): each pair's values against its background row
    background_index: np.ndarray  # (pairs,): that background row

    def next_background(self, count: int) -> np.ndarray:
        """Background indices cycling through fresh shuffles, so every row is used evenly."""
        while self.background_order.size < self.used + count:
            fresh = self.rng.permutation(self.n_background)
            self.background_order = np.concatenate([self.background_order, fresh])
        picked = self.background_order[self.used : self.used + count]
        self.used += count
        return picked


class _AntitheticSampler:
    """Sampled interventional SHAP: (permutation pair, background row) units, rounds until precise."""

    def __init__(
        self,
        model: CountingModel,
        background: np.ndarray,
        at_background: np.ndarray,
        random_state: int,
        tolerance: float,
        max_pairs: int,
    ) -> None:
        self.model = model
        self.background = background
        self.at_background = at_background
        self.base = at_background.mean(axis=0)
        self.random_state = random_state
        self.tolerance = tolerance
        self.max_pairs = max_pairs
        self.background_mean = background.mean(axis=0)
        n_features = background.shape[1]
        self.first_round = min(FIRST_ROUND_PAIRS, max_pairs)
        first_round_evals = self.first_round * 2 * max(n_features - 1, 1)
        self.rows_per_chunk = max(
            1,
            min(
                max_batch_rows(n_features) // first_round_evals,
                PROGRESS_CHUNK_EVALS // (EXPECTED_ROUNDS_COST * first_round_evals),
            ),
        )

    def explain(
        self, rows: np.ndarray, ids: np.ndarray, progress: Progress | None
    ) -> tuple[np.ndarray, np.ndarray]:
        n_rows, n_features = rows.shape
        n_outputs = self.at_background.shape[1]
        values = np.zeros((n_rows, n_features, n_outputs))
        errors = np.zeros((n_rows, n_features, n_outputs))
        for start in range(0, n_rows, self.rows_per_chunk):
            stop = min(start + self.rows_per_chunk, n_rows)
            values[start:stop], errors[start:stop] = self._explain_chunk(rows[start:stop], ids[start:stop])
            if progress is not None:
                progress(stop, n_rows)
        return values, errors

    def _explain_chunk(self, rows: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        at_rows = self.model(rows)
        states = [self._new_row_state(int(row_id)) for row_id in ids]
        wanted = {i: self.first_round for i in range(len(rows))}
        while wanted:
            self._sample_round(rows, at_rows, states, wanted)
            wanted = {i: more for i in wanted if (more := self._more_pairs_needed(rows[i], states[i])) > 0}
        results = [self._finish(rows[i], at_rows[i], states[i]) for i in range(len(rows))]
        return np.stack([r[0] for r in results]), np.stack([r[1] for r in results])

    def _new_row_state(self, row_id: int) -> _RowSamples:
        rng = np.random.default_rng(np.random.SeedSequence([self.random_state, row_id]))
        n_background, n_features = self.background.shape
        order = rng.permutation(n_background)
        empty = np.zeros((0, n_features, self.at_background.shape[1]))
        return _RowSamples(rng, n_background, order, 0, empty, np.zeros(0, dtype=np.int64))

    def _sample_round(
        self, rows: np.ndarray, at_rows: np.ndarray, states: list[_RowSamples], wanted: dict[int, int]
    ) -> None:
        """Draws the wanted pairs for every active row and evaluates them all in one model call."""
        plans = []
        for i, count in wanted.items():
            state = states[i]
            picked = state.next_background(count)
            permutations = random_permutations(state.rng, count, rows.shape[1])
            masks = antithetic_path_masks(permutations)
            synthetic = np.where(masks, rows[i], self.background[picked][:, None, :])
            plans.append((i, picked, permutations, synthetic.reshape(-1, rows.shape[1])))
        outputs = self.model(np.concatenate([plan[3] for plan in plans], axis=0))
        offset = 0
        for i, picked, permutations, synthetic in plans:
            inner = outputs[offset : offset + synthetic.shape[0]].reshape(len(picked), -1, outputs.shape[1])
            offset += synthetic.shape[0]
            estimates = antithetic_path_values(permutations, inner, self.at_background[picked], at_rows[i])
            states[i].estimates = np.concatenate([states[i].estimates, estimates], axis=0)
            states[i].background_index = np.concatenate([states[i].background_index, picked])

    def _estimate(self, state: _RowSamples) -> tuple[np.ndarray, np.ndarray]:
        covariates = self.background[state.background_index]
        return regression_estimate(state.estimates, covariates, self.background_mean)

    def _more_pairs_needed(self, row: np.ndarray, state: _RowSamples) -> int:
        """Zero when precise enough or out of budget; else the pairs the error bar says are missing."""
        n_pairs = state.estimates.shape[0]
        room = self.max_pairs - n_pairs
        if room <= 0:
            return 0
        mean, standard_error = self._estimate(state)
        target = self.tolerance * np.abs(mean).mean()
        if standard_error.mean() <= target:
            return 0
        ratio = standard_error.mean() / max(target, np.finfo(float).tiny)
        needed = math.ceil(n_pairs * min(ratio, 1e3) ** 2 * 1.1) - n_pairs
        return int(min(max(needed, n_pairs // 2, 1), room))

    def _finish(
        self, row: np.ndarray, at_row: np.ndarray, state: _RowSamples
    ) -> tuple[np.ndarray, np.ndarray]:
        """Projects the estimate onto exact additivity, moving the least certain features most."""
        mean, standard_error = self._estimate(state)
        residual = (at_row - self.base) - mean.sum(axis=0)
        variance = standard_error**2
        total = variance.sum(axis=0)
        share = np.where(total > 0, variance / np.where(total > 0, total, 1.0), 1.0 / row.shape[0])
        return mean + share * residual, standard_error
