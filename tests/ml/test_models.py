"""The estimator allowlist and the model builders (shared/ml/registry.py, shared/ml/models.py)."""

from __future__ import annotations

import numpy as np
import pytest

from shared.ml.errors import ParameterError
from shared.ml.estimators import build_model, fit_model
from shared.ml.ingest.dataset import Dataset
from shared.ml.ingest.upload import load_dataset
from shared.ml.registry import classifier_names, regressor_names, resolve_estimator_class
from shared.ml.spec import Limits, ModelSpec
from tests.ml.conftest import read_data

GBDT_TYPES = ["lightgbm", "xgboost", "catboost", "gradientboosting"]


@pytest.fixture(scope="module")
def cancer_data() -> Dataset:
    return load_dataset(read_data("breast_cancer_dataset2.csv"), "classification", 123, Limits())


@pytest.fixture(scope="module")
def boston_data() -> Dataset:
    return load_dataset(read_data("boston_dataset2.csv"), "regression", 123, Limits())


def test_allowlists_hold_common_models_and_no_meta_estimators() -> None:
    classifiers, regressors = classifier_names(), regressor_names()
    assert {"RandomForestClassifier", "LogisticRegression", "SVC"} <= set(classifiers)
    assert {"ElasticNet", "Ridge", "RandomForestRegressor"} <= set(regressors)
    meta = {
        "StackingClassifier",
        "VotingClassifier",
        "BaggingClassifier",
        "CalibratedClassifierCV",
        "OneVsRestClassifier",
        "SelfTrainingClassifier",
        "StackingRegressor",
        "RANSACRegressor",
        "TransformedTargetRegressor",
        "MultiOutputRegressor",
        "BaggingRegressor",
    }
    assert not meta & (set(classifiers) | set(regressors))
    assert "GaussianProcessRegressor" not in regressors
    assert "ElasticNet" not in classifiers and "RandomForestClassifier" not in regressors


def test_every_allowlisted_classifier_gives_probabilities() -> None:
    for name in classifier_names():
        model = build_model(
            ModelSpec(task="classification", family="ml", base_model=name, n_hidden_features=0)
        )
        assert hasattr(model, "predict_proba"), name


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(ParameterError) as caught:
        resolve_estimator_class("RandomForest", "classification")
    assert caught.value.code == "unknown_base_model"
    assert "RandomForestClassifier" in caught.value.message
    assert "classifier_names()" in caught.value.message
    with pytest.raises(ParameterError, match="ElasticNet"):
        resolve_estimator_class("ElasticNett", "regression")


def test_names_outside_the_allowlist_are_never_imported() -> None:
    for name in ["os.system", "sklearn.linear_model.Ridge", "__import__", "StackingClassifier"]:
        with pytest.raises(ParameterError):
            resolve_estimator_class(name, "classification")


def test_ml_family_wraps_in_nnetsauce_only_with_hidden_features() -> None:
    bare = build_model(ModelSpec(task="regression", family="ml", base_model="Ridge", n_hidden_features=0))
    wrapped = build_model(ModelSpec(task="regression", family="ml", base_model="Ridge", n_hidden_features=3))
    assert type(bare).__name__ == "Ridge"
    assert type(wrapped).__name__ == "CustomRegressor" and wrapped.n_hidden_features == 3
    forest = build_model(
        ModelSpec(task="classification", family="ml", base_model="RandomForestClassifier", seed=9),
        n_threads=1,
    )
    assert forest.obj.random_state == 9 and forest.obj.n_jobs is None and forest.seed == 9


@pytest.mark.parametrize("model_type", GBDT_TYPES)
def test_every_booster_fits_both_tasks(model_type: str, cancer_data: Dataset, boston_data: Dataset) -> None:
    classifier = build_model(
        ModelSpec(task="classification", family="gbdt", model_type=model_type, n_estimators=20), n_threads=1
    )
    classifier.fit(cancer_data.X_train, cancer_data.y_train)
    accuracy = np.mean(np.asarray(classifier.predict(cancer_data.X_test)).ravel() == cancer_data.y_test)
    assert accuracy > 0.85
    regressor = build_model(
        ModelSpec(task="regression", family="gbdt", model_type=model_type, n_estimators=20), n_threads=1
    )
    regressor.fit(boston_data.X_train, boston_data.y_train)
    residual = boston_data.y_test - np.asarray(regressor.predict(boston_data.X_test)).ravel()
    assert 1 - residual.var() / boston_data.y_test.var() > 0.5


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec(task="regression", family="gbdt", model_type=model_type, n_estimators=20)
        for model_type in GBDT_TYPES
    ]
    + [
        ModelSpec(
            task="classification", family="ml", base_model="RandomForestClassifier", n_hidden_features=3
        ),
        ModelSpec(task="regression", family="ml", base_model="ExtraTreesRegressor", n_hidden_features=0),
    ],
    ids=lambda spec: spec.model_type if spec.family == "gbdt" else spec.base_model,
)
def test_same_request_gives_bit_identical_predictions(
    spec: ModelSpec, boston_data: Dataset, cancer_data: Dataset
) -> None:
    data = cancer_data if spec.task == "classification" else boston_data
    runs = []
    for _ in range(2):
        model = build_model(spec, n_threads=2).fit(data.X_train, data.y_train)
        output = (
            model.predict_proba(data.X_test) if spec.task == "classification" else model.predict(data.X_test)
        )
        runs.append(np.asarray(output))
    assert runs[0].tobytes() == runs[1].tobytes()


def test_bad_booster_parameters_are_rejected() -> None:
    for bad in [{"max_depth": 0}, {"n_estimators": 0}, {"learning_rate": 0.0}]:
        with pytest.raises(ParameterError) as caught:
            build_model(ModelSpec(task="regression", family="gbdt", **bad))
        assert caught.value.code == "bad_parameter"


@pytest.mark.parametrize(
    ("data_file", "task", "seed"),
    [
        ("breast_cancer_dataset2.csv", "classification", 123),  # binary
        ("iris_dataset2.csv", "classification", 7),  # three classes
        ("boston_dataset2.csv", "regression", 123),
    ],
)
def test_fit_model_fits_xgboost_to_the_same_bytes_as_its_own_fit(
    data_file: str, task: str, seed: int
) -> None:
    data = load_dataset(read_data(data_file), task, seed, Limits())
    spec = ModelSpec(family="gbdt", task=task, model_type="xgboost", n_estimators=40, max_depth=4, seed=seed)
    plain = build_model(spec, n_threads=1).fit(data.X_train, data.y_train)
    fast = fit_model(build_model(spec, n_threads=1), data.X_train, data.y_train)
    assert fast.get_booster().save_raw("json") == plain.get_booster().save_raw("json")
    assert fast.get_params() == plain.get_params()  # n_estimators restored after the first iteration
    assert np.array_equal(fast.predict(data.X_test), plain.predict(data.X_test))


def test_fit_model_leaves_other_libraries_to_their_own_fit(cancer_data: Dataset) -> None:
    spec = ModelSpec(family="gbdt", task="classification", model_type="lightgbm", n_estimators=5, seed=1)
    lightgbm = fit_model(build_model(spec, n_threads=1), cancer_data.X_train, cancer_data.y_train)
    assert lightgbm.n_estimators == 5 and lightgbm.booster_.num_trees() == 5
