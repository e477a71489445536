"""One method per endpoint, with the endpoint's parameters as typed keyword arguments.

Written once for both clients: `Client` returns a `Job`, `AsyncClient` an awaitable `AsyncJob`. A parameter
left at None is not sent, so the server's default applies (the defaults are in docs/api.md and at /docs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, Literal, TypeVar

from fitexplain_client.data import DataLike

SubmitT = TypeVar("SubmitT")

Method = Literal["none", "permutation", "shap"]
Interpretability = Method | Literal["permutation,shap", "shap,permutation"] | Sequence[Method]
GbdtModel = Literal["lightgbm", "xgboost", "catboost", "gradientboosting"]
PiMethod = Literal["splitconformal", "localconformal"]
ENDPOINTS = ("mlclassification", "mlregression", "gbdtclassification", "gbdtregression")


def query_value(value: object) -> str:
    """How a parameter is written in the query string: booleans as true/false, lists comma-separated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def query(params: dict[str, Any]) -> dict[str, str]:
    return {name: query_value(value) for name, value in params.items() if value is not None}


class Endpoints(Generic[SubmitT]):
    """The four submit methods; `submit(endpoint, data, ...)` is the untyped way to the same."""

    def submit(
        self,
        endpoint: str,
        data: DataLike,
        *,
        target: str | None = None,
        training_index: str | Sequence[int] | None = None,
        **params: Any,
    ) -> SubmitT:
        raise NotImplementedError

    def mlclassification(
        self,
        data: DataLike,
        *,
        target: str | None = None,
        training_index: str | Sequence[int] | None = None,
        base_model: str | None = None,
        n_hidden_features: int | None = None,
        interpretability: Interpretability | None = None,
        seed: int | None = None,
        predict_proba: bool | None = None,
        webhook_url: str | None = None,
    ) -> SubmitT:
        """A scikit-learn classifier (default RandomForestClassifier), nnetsauce-wrapped unless
        n_hidden_features=0."""
        return self.submit(
            "mlclassification",
            data,
            target=target,
            training_index=training_index,
            base_model=base_model,
            n_hidden_features=n_hidden_features,
            interpretability=interpretability,
            seed=seed,
            predict_proba=predict_proba,
            webhook_url=webhook_url,
        )

    def mlregression(
        self,
        data: DataLike,
        *,
        target: str | None = None,
        training_index: str | Sequence[int] | None = None,
        base_model: str | None = None,
        n_hidden_features: int | None = None,
        return_pi: bool | None = None,
        level: float | None = None,
        pi_method: PiMethod | None = None,
        interpretability: Interpretability | None = None,
        seed: int | None = None,
        webhook_url: str | None = None,
    ) -> SubmitT:
        """A scikit-learn regressor (default ElasticNet), nnetsauce-wrapped unless n_hidden_features=0;
        return_pi adds conformal prediction intervals at `level` percent."""
        return self.submit(
            "mlregression",
            data,
            target=target,
            training_index=training_index,
            base_model=base_model,
            n_hidden_features=n_hidden_features,
            return_pi=return_pi,
            level=level,
            pi_method=pi_method,
            interpretability=interpretability,
            seed=seed,
            webhook_url=webhook_url,
        )

    def gbdtclassification(
        self,
        data: DataLike,
        *,
        target: str | None = None,
        training_index: str | Sequence[int] | None = None,
        model_type: GbdtModel | None = None,
        n_estimators: int | None = None,
        learning_rate: float | None = None,
        max_depth: int | None = None,
        interpretability: Interpretability | None = None,
        shap_interactions: bool | None = None,
        seed: int | None = None,
        predict_proba: bool | None = None,
        webhook_url: str | None = None,
    ) -> SubmitT:
        """Gradient-boosted trees (default lightgbm) for classification."""
        return self.submit(
            "gbdtclassification",
            data,
            target=target,
            training_index=training_index,
            model_type=model_type,
            n_estimators=n_estimators,
            learning_rate=learning_rate,
            max_depth=max_depth,
            interpretability=interpretability,
            shap_interactions=shap_interactions,
            seed=seed,
            predict_proba=predict_proba,
            webhook_url=webhook_url,
        )

    def gbdtregression(
        self,
        data: DataLike,
        *,
        target: str | None = None,
        training_index: str | Sequence[int] | None = None,
        model_type: GbdtModel | None = None,
        n_estimators: int | None = None,
        learning_rate: float | None = None,
        max_depth: int | None = None,
        return_pi: bool | None = None,
        level: float | None = None,
        pi_method: PiMethod | None = None,
        interpretability: Interpretability | None = None,
        shap_interactions: bool | None = None,
        seed: int | None = None,
        webhook_url: str | None = None,
    ) -> SubmitT:
        """Gradient-boosted trees (default lightgbm) for regression, with optional prediction intervals."""
        return self.submit(
            "gbdtregression",
            data,
            target=target,
            training_index=training_index,
            model_type=model_type,
            n_estimators=n_estimators,
            learning_rate=learning_rate,
            max_depth=max_depth,
            return_pi=return_pi,
            level=level,
            pi_method=pi_method,
            interpretability=interpretability,
            shap_interactions=shap_interactions,
            seed=seed,
            webhook_url=webhook_url,
        )
