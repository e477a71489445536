"""One method per endpoint, with the endpoint's parameters as typed keyword arguments, written once:
each signature is the one declaration of its endpoint's parameters (tests/client/test_openapi_drift.py
checks names, types and choices against the server's OpenAPI schema), and its body passes them on.

Written once for both clients: `Client` returns a `Job`, `AsyncClient` an awaitable `AsyncJob`. The defaults
are the server's (the same test checks them); a parameter left at None is not sent.

`background` is SHAP's background, for the explainers that take one: "sample:N" (at most N training rows,
drawn with the seed), or rows of the training features (a path, bytes or a DataFrame) sent as a second
file part. Path-dependent TreeSHAP takes none; the result's `background` says which rows were used.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Generic, Literal, TypeVar

from fitexplain_client.data import BackgroundLike, DataLike

SubmitT = TypeVar("SubmitT")

Method = Literal["none", "permutation", "shap"]
Interpretability = Method | Literal["permutation,shap", "shap,permutation"] | Sequence[Method]
GbdtModel = Literal["lightgbm", "xgboost", "catboost", "gradientboosting"]
PiMethod = Literal["splitconformal", "localconformal"]
Impute = Literal["none", "median", "most_frequent"]
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


def _arguments(names: dict[str, Any]) -> dict[str, Any]:
    """A submit method's keyword arguments (its `locals()`), to pass on to `submit`."""
    return {name: value for name, value in names.items() if name not in ("self", "data")}


def parameters(endpoint: str) -> list[str]:
    """The query parameters an endpoint's method declares (besides `data` and `training_index`, which
    shape the upload)."""
    declared = inspect.signature(getattr(Endpoints, endpoint)).parameters
    return [name for name in declared if name not in ("self", "data", "training_index")]


class Endpoints(Generic[SubmitT]):
    """The four submit methods; `submit(endpoint, data, ...)` is the untyped way to the same."""

    def submit(
        self,
        endpoint: str,
        data: DataLike,
        *,
        training_index: str | Sequence[int] | None = None,
        **params: Any,
    ) -> SubmitT:
        raise NotImplementedError

    def mlclassification(
        self,
        data: DataLike,
        *,
        target: str = "target",
        id_column: str | None = None,
        training_index: str | Sequence[int] | None = None,
        impute: Impute = "none",
        base_model: str = "RandomForestClassifier",
        n_hidden_features: int = 5,
        interpretability: Interpretability = "none",
        background: BackgroundLike | None = None,
        seed: int = 123,
        predict_proba: bool = False,
        webhook_url: str | None = None,
    ) -> SubmitT:
        """A scikit-learn classifier, nnetsauce-wrapped unless
        n_hidden_features=0."""
        return self.submit("mlclassification", data, **_arguments(locals()))

    def mlregression(
        self,
        data: DataLike,
        *,
        target: str = "target",
        id_column: str | None = None,
        training_index: str | Sequence[int] | None = None,
        impute: Impute = "none",
        base_model: str = "ElasticNet",
        n_hidden_features: int = 5,
        return_pi: bool = False,
        level: float = 95,
        pi_method: PiMethod = "splitconformal",
        interpretability: Interpretability = "none",
        background: BackgroundLike | None = None,
        seed: int = 123,
        predict_proba: bool = False,
        webhook_url: str | None = None,
    ) -> SubmitT:
        """A scikit-learn regressor, nnetsauce-wrapped unless n_hidden_features=0;
        return_pi adds conformal prediction intervals at `level` percent."""
        return self.submit("mlregression", data, **_arguments(locals()))

    def gbdtclassification(
        self,
        data: DataLike,
        *,
        target: str = "target",
        id_column: str | None = None,
        training_index: str | Sequence[int] | None = None,
        impute: Impute = "none",
        model_type: GbdtModel = "lightgbm",
        n_estimators: int = 100,
        learning_rate: float = 0.1,
        max_depth: int = 3,
        interpretability: Interpretability = "none",
        shap_interactions: bool = False,
        background: BackgroundLike | None = None,
        seed: int = 123,
        predict_proba: bool = False,
        webhook_url: str | None = None,
    ) -> SubmitT:
        """Gradient-boosted trees for classification."""
        return self.submit("gbdtclassification", data, **_arguments(locals()))

    def gbdtregression(
        self,
        data: DataLike,
        *,
        target: str = "target",
        id_column: str | None = None,
        training_index: str | Sequence[int] | None = None,
        impute: Impute = "none",
        model_type: GbdtModel = "lightgbm",
        n_estimators: int = 100,
        learning_rate: float = 0.1,
        max_depth: int = 3,
        return_pi: bool = False,
        level: float = 95,
        pi_method: PiMethod = "splitconformal",
        interpretability: Interpretability = "none",
        shap_interactions: bool = False,
        background: BackgroundLike | None = None,
        seed: int = 123,
        webhook_url: str | None = None,
    ) -> SubmitT:
        """Gradient-boosted trees for regression, with optional prediction intervals."""
        return self.submit("gbdtregression", data, **_arguments(locals()))
