"""The house's layout: a package per concept, and few modules left flat at `shared/`'s top."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONCEPTS = {
    "shared/ml": "the pure ML core",
    "shared/store": "the job store",
    "shared/blobs": "the blob store",
    "shared/webhooks": "webhooks",
    "shared/dispatch": "getting jobs to workers",
    "shared/results": "result formats",
    "api/uploads": "the streaming upload path",
}


def test_shared_keeps_at_most_six_flat_modules() -> None:
    flat = sorted(p.name for p in (REPO / "shared").glob("*.py") if p.name != "__init__.py")
    assert len(flat) <= 6, flat


def test_each_concept_is_one_package_that_says_what_it_offers() -> None:
    for package, concept in CONCEPTS.items():
        init = REPO / package / "__init__.py"
        assert init.is_file(), f"{concept} should be the package {package}"
        docstring = init.read_text().lstrip()
        assert docstring.startswith('"""'), f"{package}/__init__.py should name what it offers"


def test_the_readers_docs_stay_short() -> None:
    """README.md is a tour, benchmarks/README.md how to run each benchmark: the rest lives in docs/."""
    for path, most in (("README.md", 250), ("benchmarks/README.md", 200)):
        lines = len((REPO / path).read_text().splitlines())
        assert lines <= most, f"{path} has {lines} lines, at most {most}"
    for page in ("api", "operations", "clients", "architecture", "performance"):
        assert (REPO / "docs" / f"{page}.md").is_file(), f"docs/{page}.md"
