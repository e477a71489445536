"""The cost estimate: it grows with every input that makes a job slower, and the budget check names it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.ml.cost import CostEstimate, DataShape, check_budget, estimate_cost, shape_of
from shared.ml.errors import LimitExceeded
from shared.ml.ingest.upload import load_dataset
from shared.ml.spec import JobSpec, Limits, ModelSpec

IRIS = DataShape(n_train=105, n_test=45, n_features=4, n_classes=3)
FINDING_1 = DataShape(n_train=280, n_test=120, n_features=3, n_classes=100)
DEFAULT_BUDGET = 180.0  # Settings.max_job_seconds


def gbdt(model_type: str = "lightgbm", **fields: object) -> JobSpec:
    model = ModelSpec(task="classification", family="gbdt", model_type=model_type)  # type: ignore[arg-type]
    return JobSpec(model=replace(model, **fields))  # type: ignore[arg-type]


def ml(base_model: str = "RandomForestClassifier", hidden: int = 5) -> JobSpec:
    return JobSpec(
        model=ModelSpec(task="classification", family="ml", base_model=base_model, n_hidden_features=hidden)
    )


def total(spec: JobSpec, shape: DataShape = IRIS) -> float:
    return estimate_cost(spec, shape).total


@pytest.mark.parametrize("model_type", ["lightgbm", "xgboost", "catboost", "gradientboosting"])
def test_more_trees_deeper_trees_cost_more(model_type: str) -> None:
    assert total(gbdt(model_type, n_estimators=100)) < total(gbdt(model_type, n_estimators=1000))
    assert total(gbdt(model_type, max_depth=2), FINDING_1) < total(gbdt(model_type, max_depth=8), FINDING_1)
    assert total(gbdt(model_type, max_depth=8), FINDING_1) <= total(gbdt(model_type, max_depth=16), FINDING_1)


@pytest.mark.parametrize(
    "spec", [gbdt(), gbdt("gradientboosting"), ml(), ml("LogisticRegression"), ml(hidden=0)]
)
def test_more_data_costs_more(spec: JobSpec) -> None:
    spec = replace(spec, interpretability=("permutation", "shap"))
    base = total(spec)
    assert total(spec, replace(IRIS, n_train=IRIS.n_train * 10)) > base
    assert total(spec, replace(IRIS, n_test=IRIS.n_test * 10)) > base
    assert total(spec, replace(IRIS, n_features=IRIS.n_features * 3)) > base


def test_more_classes_cost_more_for_one_tree_per_class_boosters() -> None:
    for model_type in ("lightgbm", "xgboost", "gradientboosting"):
        assert total(gbdt(model_type), replace(IRIS, n_classes=30)) > total(gbdt(model_type))


def test_each_explanation_adds_its_cost() -> None:
    for spec in (gbdt(), ml(), ml("LogisticRegression", hidden=0)):
        none = estimate_cost(spec, IRIS)
        permutation = estimate_cost(replace(spec, interpretability=("permutation",)), IRIS)
        shap = estimate_cost(replace(spec, interpretability=("shap",)), IRIS)
        both = estimate_cost(replace(spec, interpretability=("permutation", "shap")), IRIS)
        assert none.permutation == none.shap == 0
        assert permutation.permutation > 0 and shap.shap > 0
        assert both.total == pytest.approx(permutation.total + shap.total - none.total)


def test_hidden_features_and_interactions_cost_more() -> None:
    assert total(ml(hidden=5)) < total(ml(hidden=500))
    plain = replace(gbdt("xgboost"), interpretability=("shap",))
    assert total(plain) < total(replace(plain, shap_interactions=True))


def test_model_agnostic_shap_is_bounded_by_the_evaluation_budget() -> None:
    spec = replace(ml("LogisticRegression"), interpretability=("shap",))
    wide = estimate_cost(spec, replace(IRIS, n_features=40)).shap
    wider = estimate_cost(spec, replace(IRIS, n_features=400)).shap
    # same evaluations per row (the budget); only each evaluation gets dearer, linearly in the features
    assert wider / wide < 12


def test_finding_1_is_over_the_default_budget_and_iris_is_far_under() -> None:
    finding_1 = gbdt("gradientboosting", n_estimators=10_000, max_depth=16)
    finding_1 = replace(finding_1, interpretability=("permutation", "shap"))
    assert total(finding_1, FINDING_1) > 10 * DEFAULT_BUDGET
    assert total(replace(gbdt(), interpretability=("permutation", "shap"))) < 1.0


def test_budget_refusal_names_the_estimate_the_budget_and_what_to_change() -> None:
    estimate = CostEstimate(parse=0.1, fit=950.0, permutation=20.0, shap=30.0)
    check_budget(estimate, budget_seconds=2000)  # under: nothing raised
    with pytest.raises(LimitExceeded) as refused:
        check_budget(estimate, budget_seconds=180)
    assert refused.value.code == "over_budget"
    message = refused.value.message
    assert "1,000 worker-seconds" in message and "budget of 180 s" in message and "max_job_seconds" in message
    assert "n_estimators" in message  # the fit dominates: the advice is about the model's size


def test_advice_follows_the_dominant_cost() -> None:
    tree = CostEstimate(parse=0.1, fit=1.0, permutation=1.0, shap=500.0, tree_shap=True)
    sampled = CostEstimate(parse=0.1, fit=1.0, permutation=1.0, shap=500.0, tree_shap=False)
    with pytest.raises(LimitExceeded, match="n_estimators"):
        check_budget(tree, 180)
    with pytest.raises(LimitExceeded, match="tree model"):
        check_budget(sampled, 180)
    finding_1 = gbdt("gradientboosting", n_estimators=10_000, max_depth=16)
    finding_1 = replace(finding_1, interpretability=("permutation", "shap"))
    assert estimate_cost(finding_1, FINDING_1).tree_shap
    assert not estimate_cost(replace(ml(), interpretability=("shap",)), IRIS).tree_shap


def test_local_conformal_intervals_add_their_error_model() -> None:
    model = ModelSpec(task="regression", family="ml", base_model="ElasticNet")
    plain = JobSpec(model=model)
    local = JobSpec(model=model, return_pi=True, pi_method="localconformal")
    boston = DataShape(n_train=354, n_test=152, n_features=13)
    assert total(plain, boston) < total(local, boston)


def test_digits_with_the_default_model_and_shap_is_within_the_default_budget() -> None:
    """scikit-learn's digits (1,797 x 64, 10 classes, the seeded 30 % test split) with the /mlclassification
    defaults and SHAP: about 150 s on the reference machine (benchmarks/cost_calibration.py)."""
    digits = DataShape(n_train=1257, n_test=540, n_features=64, n_classes=10)
    spec = replace(ml(), interpretability=("shap",))
    assert 100 < total(spec, digits) < DEFAULT_BUDGET


@pytest.mark.parametrize(
    ("name", "loader"),
    [
        ("iris", "load_iris"),
        ("wine", "load_wine"),
        ("breast cancer", "load_breast_cancer"),
        ("digits", "load_digits"),
    ],
)
def test_the_estimate_assumes_the_shap_explainer_the_fitted_model_gets(name: str, loader: str) -> None:
    """Before the fit, the estimate guesses whether nnetsauce-tree or the model-agnostic explainer will
    explain the default /mlclassification model; the guess is right on scikit-learn's bundled sets."""
    import sklearn.datasets

    from shared.ml.cost import _nnetsauce_tree_route
    from shared.ml.estimators import build_model
    from shared.ml.explain.shap import choose_explainer

    frame = getattr(sklearn.datasets, loader)(as_frame=True).frame
    csv = frame.rename(columns={frame.columns[-1]: "target"}).to_csv(index=False).encode()
    spec = replace(ml(), interpretability=("shap",))
    dataset = load_dataset(csv, "classification", spec.seed, Limits())
    model = build_model(spec.model).fit(dataset.X_train, dataset.y_train)
    assert _nnetsauce_tree_route(spec, shape_of(dataset)) == (choose_explainer(model) == "nnetsauce-tree"), (
        name
    )
