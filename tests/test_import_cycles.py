"""No import circle between any two of our modules: imports inside functions and under TYPE_CHECKING
count, and so does a module importing its own package's __init__ (which lint-imports' acyclic_siblings
contract, comparing siblings only, does not see)."""

from __future__ import annotations

import graphlib

import grimp

ROOT_PACKAGES = ("api", "worker", "shared", "cli", "fitexplain_client")


def test_our_modules_import_each_other_in_one_direction_only() -> None:
    graph = grimp.build_graph(*ROOT_PACKAGES, cache_dir=None)
    imports = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    try:
        tuple(graphlib.TopologicalSorter(imports).static_order())
    except graphlib.CycleError as circle:
        raise AssertionError(f"import circle: {' -> '.join(reversed(circle.args[1]))}") from None
