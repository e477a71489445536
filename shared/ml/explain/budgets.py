"""How much work each explainer does, declared once: the explainers spend it and the cost model
(shared/ml/cost.py) prices it, so an estimate never drifts from what a job runs."""

from __future__ import annotations

#: Times each feature's column is shuffled and the test rows re-scored by permutation importance.
PERMUTATION_REPEATS = 10
#: Model evaluations per explained row for the model-agnostic SHAP explainer: exact enumeration of all
#: 2^p coalitions when they fit (2^p x background rows: p <= 5 with 500 rows, p <= 7 with 100),
#: antithetic sampling otherwise. A nnetsauce classifier costs ~5 us an evaluation: 20k a row is 0.1 s
#: a row.
AGNOSTIC_EVALS_PER_ROW = 20_000
