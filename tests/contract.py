"""Readers of the public result shape, as users' scripts read it (techtonique's contract)."""

from __future__ import annotations

from typing import Any

import numpy as np


def explanations(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The flat explanation objects: `interpretability` is one object, or a list of them for several."""
    found = result["interpretability"]
    return found if isinstance(found, list) else [found]


def explanation(result: dict[str, Any], method: str) -> dict[str, Any]:
    """The flat object whose "method" is `method`."""
    matches = [item for item in explanations(result) if item["method"] == method]
    assert len(matches) == 1, f"expected one {method!r} explanation, got {result['interpretability']!r:.200}"
    return matches[0]


def assert_same_result(expected: dict[str, Any], actual: dict[str, Any]) -> None:
    """The same job computed elsewhere (split into chunks, on other machines): every explanation's numbers
    equal to 1e-12 (a chunk's sums may group differently), everything else exactly equal."""
    methods = [item["method"] for item in explanations(expected)]
    assert [item["method"] for item in explanations(actual)] == methods
    for method in methods:
        a, b = explanation(expected, method), explanation(actual, method)
        assert a["feature_names"] == b["feature_names"]
        for key in ("importances_mean", "importances_std", "values", "base_values"):
            if key in a:
                np.testing.assert_allclose(np.asarray(b[key]), np.asarray(a[key]), rtol=1e-12, atol=1e-12)
    assert {k: v for k, v in actual.items() if k != "interpretability"} == {
        k: v for k, v in expected.items() if k != "interpretability"
    }
