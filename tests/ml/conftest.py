"""Shared fixtures for the ML core tests: the sample datasets as stored uploads (canonical Parquet bytes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.canonical import canonical

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def read_data(name: str) -> bytes:
    return (DATA_DIR / name).read_bytes()


@pytest.fixture(scope="session")
def breast_cancer() -> bytes:
    return canonical(read_data("breast_cancer_dataset2.csv"))


@pytest.fixture(scope="session")
def boston() -> bytes:
    return canonical(read_data("boston_dataset2.csv"))


@pytest.fixture(scope="session")
def iris() -> bytes:
    return canonical(read_data("iris_dataset2.csv"))
