"""What the Postgres benchmarks that compare with another checkout share (`fair_claim`, `submit_limits`):
a fresh database migrated by the code measured, and the same script run on a `--baseline DIR` checkout
in a process of its own, so that it imports that checkout's `shared` package.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


@contextmanager
def migrated_database(code: Path, prefix: str) -> Iterator[Engine]:
    """An engine on a fresh Postgres database migrated by `code`'s migrations, dropped afterwards. `code`
    goes first on sys.path, so that `shared` imported from here on is `code`'s."""
    sys.path.insert(0, str(code))
    from shared.db import make_engine
    from shared.store.migrate import migrate
    from tests.databases import create_database, drop_database

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        migrate(url)
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()
    finally:
        drop_database(name)


def measure_baseline(script: str, baseline: Path, sizes: str) -> dict[int, float]:
    """`script --code baseline --sizes sizes --json`, run in the baseline's directory: its medians by size
    (the last line of what it prints)."""
    code = baseline.resolve()
    command = [sys.executable, script, "--code", str(code), "--sizes", sizes, "--json"]
    done = subprocess.run(command, cwd=code, check=True, capture_output=True, text=True)
    return {int(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}
