"""What a fit-and-explain job asks for, as plain frozen dataclasses.

The API validates HTTP parameters into these; the worker hands them to the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Task = Literal["classification", "regression"]
Family = Literal["ml", "gbdt"]
ExplanationMethod = Literal["permutation", "shap"]
GbdtType = Literal["lightgbm", "xgboost", "catboost", "gradientboosting"]
PiMethod = Literal["splitconformal", "localconformal"]


@dataclass(frozen=True)
class ModelSpec:
    """Which model to fit. `family="ml"` uses base_model/n_hidden_features, "gbdt" the booster fields."""

    task: Task
    family: Family
    base_model: str | None = None
    n_hidden_features: int = 5
    model_type: GbdtType = "lightgbm"
    n_estimators: int = 100
    learning_rate: float = 0.1
    max_depth: int = 3
    seed: int = 123


@dataclass(frozen=True)
class JobSpec:
    """A whole fit-and-explain request."""

    model: ModelSpec
    predict_proba: bool = False
    return_pi: bool = False
    level: float = 95.0
    pi_method: PiMethod = "splitconformal"
    interpretability: tuple[ExplanationMethod, ...] = ()
    shap_interactions: bool = False

    @property
    def task(self) -> Task:
        return self.model.task

    @property
    def seed(self) -> int:
        return self.model.seed


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a worker alive; the service fills them from its settings."""

    max_rows: int = 1_000_000
    max_columns: int = 1_000
    max_cell_chars: int = 1_000
    max_classes: int = 100
    max_explain_rows: int = 100_000
    max_background_rows: int = 500
    max_shap_floats: int = 200_000_000
