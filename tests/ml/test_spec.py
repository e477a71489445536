"""One declaration per bound and name (shared/ml/spec.py), read alike by the HTTP models and the builder."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from api.endpoint_params import PARAMS_BY_ENDPOINT, GbdtRegressionParams, MlRegressionParams
from shared.ml.errors import ParameterError
from shared.ml.estimators import build_model
from shared.ml.spec import (
    BOUNDS,
    GBDT_MODEL_TYPES,
    MAX_DEPTH,
    N_HIDDEN_FEATURES,
    SPEC_VERSION,
    Bound,
    JobSpec,
    ModelSpec,
)
from shared.ml.validation import validate_job

#: Every bound, with an endpoint that takes it as a query parameter.
ENDPOINT_OF = {
    "seed": "mlclassification",
    "n_hidden_features": "mlclassification",
    "n_estimators": "gbdtclassification",
    "learning_rate": "gbdtclassification",
    "max_depth": "gbdtregression",
    "level": "mlregression",
}


def edges(bound: Bound) -> tuple[list[float], list[float]]:
    """Values just inside and just outside the bound."""
    step = 1 if float(bound.low).is_integer() and float(bound.high).is_integer() else 1e-6
    inside = [bound.low if bound.low_inclusive else bound.low + step]
    inside.append(bound.high if bound.high_inclusive else bound.high - step)
    outside = [bound.low - step if bound.low_inclusive else bound.low]
    outside.append(bound.high + step if bound.high_inclusive else bound.high)
    return inside, outside


def test_every_bound_has_an_endpoint() -> None:
    assert {bound.name for bound in BOUNDS} == set(ENDPOINT_OF)


@pytest.mark.parametrize("bound", BOUNDS, ids=lambda bound: bound.name)
def test_the_http_models_and_the_core_share_each_bound(bound: Bound) -> None:
    """A value the API accepts is one the core accepts, and the other way round."""
    params_model = PARAMS_BY_ENDPOINT[ENDPOINT_OF[bound.name]]
    extra = {"return_pi": True} if bound.name == "level" else {}
    inside, outside = edges(bound)
    for value in inside:
        spec = params_model(**{bound.name: value}, **extra).to_spec()
        assert validate_job(spec) is spec
    for value in outside:
        with pytest.raises(ValidationError, match=bound.name):
            params_model(**{bound.name: value}, **extra)
        with pytest.raises(ParameterError, match=bound.name):
            bound.check(value)


def test_the_builder_refuses_what_the_api_refuses_with_the_same_message() -> None:
    too_deep = ModelSpec(task="regression", family="gbdt", max_depth=int(MAX_DEPTH.high) + 1)
    with pytest.raises(
        ParameterError, match=r"max_depth must be at least 1 and at most 16; got 17"
    ) as caught:
        build_model(too_deep)
    assert caught.value.code == "bad_parameter"
    with pytest.raises(ValidationError, match="max_depth"):
        GbdtRegressionParams(max_depth=17)
    wide = ModelSpec(task="regression", family="ml", n_hidden_features=int(N_HIDDEN_FEATURES.high) + 1)
    with pytest.raises(ParameterError, match="n_hidden_features"):
        build_model(wide)
    # the deepest and widest the API accepts are built
    build_model(replace(too_deep, max_depth=int(MAX_DEPTH.high)), n_threads=1)
    build_model(replace(wide, n_hidden_features=int(N_HIDDEN_FEATURES.high)))


def test_names_are_read_from_the_core() -> None:
    schema = GbdtRegressionParams.model_json_schema()
    assert tuple(schema["properties"]["model_type"]["enum"]) == GBDT_MODEL_TYPES
    assert schema["properties"]["max_depth"]["maximum"] == MAX_DEPTH.high
    with pytest.raises(ValidationError, match="lightgbm"):
        GbdtRegressionParams(model_type="randomforest")
    with pytest.raises(ValidationError, match="RandomForestRegressor"):
        MlRegressionParams(base_model="RandomForestRegresor")


def test_spec_json_round_trip_is_versioned() -> None:
    spec = GbdtRegressionParams(
        model_type="xgboost", interpretability="shap,permutation", shap_interactions=True, seed=7
    ).to_spec()
    stored = spec.to_json()
    assert stored["version"] == SPEC_VERSION == 1
    assert stored["interpretability"] == ["shap", "permutation"]
    assert JobSpec.from_json(stored) == spec
    with pytest.raises(ValueError, match="version 2"):
        JobSpec.from_json({**stored, "version": 2})
    with pytest.raises(ValueError, match="unknown JobSpec fields"):
        JobSpec.from_json({**stored, "colour": "red"})


def test_spec_validation_names_the_field() -> None:
    model = ModelSpec(task="classification", family="gbdt", model_type="xgboost")
    with pytest.raises(ParameterError, match="interpretability 'lime'"):
        validate_job(JobSpec(model=model, interpretability=("lime",)))
    with pytest.raises(ParameterError, match="needs interpretability=shap"):
        validate_job(JobSpec(model=model, shap_interactions=True))
    with pytest.raises(ParameterError, match="pi_method"):
        validate_job(JobSpec(model=model, pi_method="bootstrap"))  # type: ignore[arg-type]
