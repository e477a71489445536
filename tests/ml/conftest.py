"""Shared fixtures for the ML core tests: the sample datasets as bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def read_data(name: str) -> bytes:
    return (DATA_DIR / name).read_bytes()


@pytest.fixture(scope="session")
def breast_cancer() -> bytes:
    return read_data("breast_cancer_dataset2.csv")


@pytest.fixture(scope="session")
def boston() -> bytes:
    return read_data("boston_dataset2.csv")


@pytest.fixture(scope="session")
def iris() -> bytes:
    return read_data("iris_dataset2.csv")
