"""Readers of the public result shape, as users' scripts read it (techtonique's contract)."""

from __future__ import annotations

from typing import Any


def explanations(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The flat explanation objects: `interpretability` is one object, or a list of them for several."""
    found = result["interpretability"]
    return found if isinstance(found, list) else [found]


def explanation(result: dict[str, Any], method: str) -> dict[str, Any]:
    """The flat object whose "method" is `method`."""
    matches = [item for item in explanations(result) if item["method"] == method]
    assert len(matches) == 1, f"expected one {method!r} explanation, got {result['interpretability']!r:.200}"
    return matches[0]
