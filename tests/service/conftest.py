"""Fixtures shared by the service tests' modules."""

from tests.migrations import database_url  # noqa: F401 (the migration tests' fresh database, a fixture)
