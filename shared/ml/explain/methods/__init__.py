"""Explanation methods as objects, by the name a request gives in `interpretability`.

Each method is one module here (permutation.py, shap.py) with a method object and its typed result
(base.py: the protocol, and `merge_parts`, which joins spans by what the result's fields declare, never by
guessing from shapes). This table is the only list of methods: the pipeline, the worker's fan-out, the
HTTP parameter check and the chunk store all look methods up here. Adding a method is one new module and
one line in BUILT_IN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.ml.errors import ParameterError
from shared.ml.explain.methods.base import ExplanationMethod
from shared.ml.explain.methods.permutation import PermutationMethod
from shared.ml.explain.methods.shap import ShapMethod

if TYPE_CHECKING:
    from shared.ml.ingest.dataset import Dataset
    from shared.ml.spec import JobSpec, Limits

BUILT_IN: tuple[ExplanationMethod, ...] = (PermutationMethod(), ShapMethod())

_METHODS: dict[str, ExplanationMethod] = {}


def register(method: ExplanationMethod) -> None:
    """Make `method` available under `method.name` (which must be its result type's "method")."""
    if method.name != method.result_type.method:
        raise ValueError(f"method {method.name!r} returns results named {method.result_type.method!r}")
    _METHODS[method.name] = method


def unregister(name: str) -> None:
    _METHODS.pop(name, None)


def explanation_names() -> tuple[str, ...]:
    """The accepted `interpretability` values, besides "none"."""
    return tuple(_METHODS)


def explanation_method(name: str) -> ExplanationMethod:
    try:
        return _METHODS[name]
    except KeyError:
        raise ParameterError(
            "unknown_explanation",
            f"Unknown explanation method {name!r}; use one of {', '.join(_METHODS)}.",
        ) from None


def check_explanation_limits(spec: JobSpec, dataset: Dataset, limits: Limits) -> None:
    """LimitExceeded if any method asked for is too large for this data; the API calls it at submit."""
    for method in dict.fromkeys(spec.interpretability):
        explanation_method(method).check_limits(dataset, spec, limits)


for _method in BUILT_IN:
    register(_method)
