"""Where the client finds the service: arguments, then FITEXPLAIN_URL / FITEXPLAIN_TOKEN, then the config
file written by `fitexplain login` ($FITEXPLAIN_CONFIG, default ~/.config/fitexplain/config.json).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"


def config_path() -> Path:
    if explicit := os.environ.get("FITEXPLAIN_CONFIG"):
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "fitexplain" / "config.json"


@dataclass(frozen=True)
class Settings:
    base_url: str
    token: str | None


def read_config_file() -> dict[str, str]:
    path = config_path()
    try:
        found = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); run `fitexplain login` again") from exc
    return {key: str(value) for key, value in found.items() if isinstance(value, str)}


def resolve(base_url: str | None = None, token: str | None = None) -> Settings:
    stored = read_config_file()
    url = base_url or os.environ.get("FITEXPLAIN_URL") or stored.get("url") or DEFAULT_URL
    found_token = token or os.environ.get("FITEXPLAIN_TOKEN") or stored.get("token")
    return Settings(base_url=url.rstrip("/"), token=found_token)


def write_config_file(base_url: str, token: str) -> Path:
    """Store the URL and token, readable by the user only (the token is a password)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"url": base_url.rstrip("/"), "token": token}, handle)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through os.open
    return path
