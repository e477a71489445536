"""Print the settings table of docs/operations.md: every field of `Settings`, its environment variable,
its default and its description (tests/test_settings_table.py checks the doc holds exactly this).

    .venv/bin/python scripts/settings_table.py
"""

from __future__ import annotations

import json
from typing import Any

from shared.settings import Settings

ENV_PREFIX = str(Settings.model_config.get("env_prefix", ""))
HEADER = "| variable | default | meaning |\n|---|---|---|"


def shown(value: Any) -> str:
    """A default as an operator would write it in the environment."""
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, dict):
        text = json.dumps(value)
    else:
        text = str(value)
    return f"`{text}`"


def settings_table() -> str:
    rows = [HEADER]
    for name, field in Settings.model_fields.items():
        meaning = (field.description or "").replace("|", "\\|")
        default = shown(field.get_default(call_default_factory=True))
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {default} | {meaning} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
