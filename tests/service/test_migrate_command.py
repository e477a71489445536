"""`fitexplain migrate` brings an empty Postgres database to the latest schema, and running it again
changes nothing (the other service tests copy a database migrated in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from shared.store.migrate import alembic_config, current_revisions
from tests.databases import create_database, drop_database
from tests.stack import Stack

pytestmark = pytest.mark.service


def test_migrate_brings_an_empty_database_to_the_head_and_again_changes_nothing(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    stack.database_url = create_database(stack.name)
    try:
        head = ScriptDirectory.from_config(alembic_config(stack.database_url)).get_heads()
        assert current_revisions(stack.database_url) == ()
        for _ in range(2):
            assert "database is at the latest schema" in stack.cli("migrate")
            assert current_revisions(stack.database_url) == tuple(head)
    finally:
        drop_database(stack.name)
