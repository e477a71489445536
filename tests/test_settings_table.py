"""The docs' settings table is the `Settings` class's: every field, its variable and its default, as
scripts/settings_table.py prints them; and each limit of the ML core has one default, its own."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from scripts.settings_table import settings_table
from shared.ml.spec import Limits
from shared.settings import Settings

OPERATIONS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def documented_table() -> str:
    text = OPERATIONS.read_text(encoding="utf-8")
    assert text.count(START) == 1 and text.count(END) == 1, f"{OPERATIONS} needs one pair of table markers"
    return text.split(START, 1)[1].split(END, 1)[0].strip()


def test_the_docs_hold_the_generated_settings_table() -> None:
    assert documented_table() == settings_table(), (
        "docs/operations.md's settings table is out of date: paste the output of "
        "`.venv/bin/python scripts/settings_table.py` between its markers"
    )


def test_the_table_has_every_setting_once_with_its_variable() -> None:
    variables = re.findall(r"^\| `(FITEXPLAIN_[A-Z0-9_]+)` \|", documented_table(), flags=re.MULTILINE)
    assert variables == [f"FITEXPLAIN_{name.upper()}" for name in Settings.model_fields]


def test_every_setting_is_described() -> None:
    assert [name for name, field in Settings.model_fields.items() if not field.description] == []


def test_each_limit_takes_the_ml_cores_default() -> None:
    core = Limits()
    for limit in fields(Limits):
        assert Settings.model_fields[limit.name].default == getattr(core, limit.name), limit.name
