"""A request that gets 202 never fails later for a reason knowable at submit.

Every numeric query parameter of every endpoint, read from the endpoint's own parameter model, is swept
over 0, 1, its limits, just past them, negative and huge values. Each value must be refused with a 422
naming the parameter exactly when it is outside its declared bound, and otherwise give a job that
succeeds. The jobs run on tiny files, all submitted first and then awaited, through one stack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import annotated_types
import pytest

from api.endpoint_params import PARAMS_BY_ENDPOINT
from shared.ml.spec import GBDT_MODEL_TYPES, MAX_DEPTH, MAX_DEPTH_BY_MODEL_TYPE, N_ESTIMATORS
from tests.stack import Client, Stack

pytestmark = [pytest.mark.service]

TINY_FILE = {"classification": "tiny_classification.csv", "regression": "mtcars2.csv"}
#: Parameters that only matter together with another one.
CONTEXT = {"level": {"return_pi": True}}


@dataclass(frozen=True)
class NumericParameter:
    name: str
    integer: bool
    low: float
    high: float
    low_inclusive: bool
    high_inclusive: bool

    def allows(self, value: float) -> bool:
        above = value >= self.low if self.low_inclusive else value > self.low
        below = value <= self.high if self.high_inclusive else value < self.high
        return above and below

    def sweep(self) -> list[float]:
        """0, 1, each limit (or just inside an open one), just past each, negative and huge."""
        step = 1 if self.integer else 1e-6
        low = self.low if self.low_inclusive else self.low + step
        high = self.high if self.high_inclusive else self.high - step
        huge = 10**30 if self.integer else 1e300
        values = [0, 1, low, high, low - step, high + step, -1, huge]
        return list(dict.fromkeys(int(v) if self.integer else float(v) for v in values))


def numeric_parameters(endpoint: str) -> list[NumericParameter]:
    """The endpoint's int and float query parameters with their bounds, as FastAPI enforces them."""
    found = []
    for name, info in PARAMS_BY_ENDPOINT[endpoint].model_fields.items():
        if info.annotation not in (int, float, float | None):
            continue
        bounds: dict[str, Any] = {"low": -math.inf, "high": math.inf, "low_inclusive": True}
        bounds["high_inclusive"] = True
        for item in info.metadata:
            if isinstance(item, annotated_types.Ge):
                bounds.update(low=item.ge, low_inclusive=True)
            elif isinstance(item, annotated_types.Gt):
                bounds.update(low=item.gt, low_inclusive=False)
            elif isinstance(item, annotated_types.Le):
                bounds.update(high=item.le, high_inclusive=True)
            elif isinstance(item, annotated_types.Lt):
                bounds.update(high=item.lt, high_inclusive=False)
        assert math.isfinite(bounds["low"]) and math.isfinite(bounds["high"]), (
            f"{endpoint} {name} is unbounded"
        )
        found.append(NumericParameter(name, info.annotation is int, **bounds))
    return found


@dataclass(frozen=True)
class Case:
    endpoint: str
    params: dict[str, Any]
    accepted: bool
    about: str  # the parameter a 422 must name

    @property
    def label(self) -> str:
        return f"{self.endpoint}?{'&'.join(f'{k}={v}' for k, v in self.params.items())}"


def sweep_cases() -> list[Case]:
    cases = []
    for endpoint in PARAMS_BY_ENDPOINT:
        for parameter in numeric_parameters(endpoint):
            for value in parameter.sweep():
                params = {parameter.name: value, **CONTEXT.get(parameter.name, {})}
                cases.append(Case(endpoint, params, parameter.allows(value), parameter.name))
    # Every booster at its own depth limit with the most trees the API accepts, and just past the depth.
    for model_type in GBDT_MODEL_TYPES:
        deepest = MAX_DEPTH_BY_MODEL_TYPE.get(model_type, MAX_DEPTH).high
        most = int(N_ESTIMATORS.high)
        for endpoint in ("gbdtclassification", "gbdtregression"):
            params = {"model_type": model_type, "max_depth": int(deepest), "n_estimators": most}
            cases.append(Case(endpoint, params, True, "max_depth"))
            past = {"model_type": model_type, "max_depth": int(deepest) + 1}
            cases.append(Case(endpoint, past, False, "max_depth"))
    return cases


CASES = sweep_cases()


def test_the_sweep_covers_every_numeric_parameter() -> None:
    swept = {(case.endpoint, case.about) for case in CASES}
    expected = {("mlclassification", name) for name in ("seed", "wait", "n_hidden_features")} | {
        ("gbdtregression", name)
        for name in ("seed", "wait", "n_estimators", "learning_rate", "max_depth", "level")
    }
    assert expected <= swept
    assert {case.about for case in CASES if case.endpoint == "mlregression"} == {
        "seed",
        "wait",
        "n_hidden_features",
        "level",
    }


def test_every_boundary_value_is_a_422_at_submit_or_a_job_that_succeeds(stack: Stack) -> None:
    client = Client(stack.url, stack.token("sweeper"))
    submitted: dict[str, Case] = {}
    wrong: list[str] = []
    # Requests that wait for their result go first, while the queue is still empty.
    for case in sorted(CASES, key=lambda case: "wait" not in case.params):
        task = PARAMS_BY_ENDPOINT[case.endpoint].task
        response = client.submit(case.endpoint, TINY_FILE[task], **case.params)
        if case.accepted and response.status_code == 422 and response.json().get("code") == "over_budget":
            continue  # refused at submit by the per-job cost budget: consistent with the rule
        if not case.accepted:
            if response.status_code != 422 or case.about not in response.text:
                wrong.append(f"{case.label}: expected a 422 naming {case.about}, got {response.status_code}")
            continue
        if response.status_code == 200:  # wait=N and the job finished in time: the result itself
            assert "y_pred" in response.json(), case.label
            continue
        if response.status_code != 202:
            wrong.append(f"{case.label}: expected 202, got {response.status_code} {response.text[:300]}")
            continue
        submitted[response.json()["id"]] = case
    for job_id, case in submitted.items():
        job = client.wait(job_id)
        if job["status"] != "succeeded":
            wrong.append(f"{case.label}: accepted, then {job['status']}: {job['error']}")
    assert not wrong, "\n".join(wrong)
    assert len(submitted) >= 40
