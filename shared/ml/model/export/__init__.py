"""The formats a kept model can be downloaded in: a registry of name -> module.

Each format is one module of this package with `refusal(kept) -> str | None` (why the format does not
apply to this model, or None) and `export(kept) -> Exported`. Modules are imported only when their format
is asked for, so a format's library (skops, onnx, mlflow) loads only where it is used: in a worker.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from shared.ml.model.kept import KeptModel

#: Format name -> the module that writes it (one line each: formats are added beside these).
FORMATS: dict[str, str] = {
    "native": "shared.ml.model.export.native",
    "skops": "shared.ml.model.export.skops",
    "onnx": "shared.ml.model.export.onnx",
    "mlflow": "shared.ml.model.export.mlflow",
    "bundle": "shared.ml.model.export.bundle",
}

#: The formats written at fit time: the booster's own file, which takes milliseconds. The others are made
#: by a worker on their first download: seconds each for a large model (a skops file of 1,000 trees adds
#: a third or more to its fit: docs/performance.md), and a first import of their libraries.
AT_FIT_TIME: tuple[str, ...] = ("native",)


@dataclass(frozen=True)
class Exported:
    """A downloadable file: its bytes, its file name, its media type, and what it says besides (e.g. a
    skops file's untrusted types) as `{header: value}` for the download's response."""

    body: bytes
    filename: str
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)


class FormatModule(Protocol):
    def refusal(self, kept: KeptModel) -> str | None: ...

    def export(self, kept: KeptModel) -> Exported: ...


class UnknownFormat(ValueError):
    """A format name the registry does not know (HTTP 422)."""

    code = "unknown_format"

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown model format {name!r}: use one of {', '.join(FORMATS)}.")


class FormatNotApplicable(ValueError):
    """A known format that this model cannot be written in (HTTP 409), with the reason."""

    code = "format_not_applicable"

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"This model has no {name} format: {reason}")
        self.reason = reason


def format_module(name: str) -> FormatModule:
    if name not in FORMATS:
        raise UnknownFormat(name)
    module: FormatModule = importlib.import_module(FORMATS[name])
    return module


def formats_for(kept: KeptModel) -> list[str]:
    """The formats this model can be downloaded in, in registry order."""
    return [name for name in FORMATS if format_module(name).refusal(kept) is None]


def refusals(kept: KeptModel) -> dict[str, str]:
    """Why each format that does not apply to this model does not (format -> reason)."""
    found = {name: format_module(name).refusal(kept) for name in FORMATS}
    return {name: reason for name, reason in found.items() if reason is not None}


def export(kept: KeptModel, fmt: str) -> Exported:
    """The model written in format `fmt`; UnknownFormat or FormatNotApplicable when it cannot be."""
    module = format_module(fmt)
    reason = module.refusal(kept)
    if reason is not None:
        raise FormatNotApplicable(fmt, reason)
    return module.export(kept)
