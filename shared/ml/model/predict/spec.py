"""What a predict job runs: the kept model it scores with and the request's options, stored on its job row.

A predict job's row holds this (`kind: "predict"`) where a fit holds its `JobSpec`; `is_predict` tells
them apart, so code that reads a fit's spec leaves a predict job alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.ml.model.predict.options import PredictOptions
from shared.ml.spec import Task

KIND = "predict"
VERSION = 1


def is_predict(spec: dict[str, Any]) -> bool:
    """Whether a job row's stored spec is a predict job's."""
    return spec.get("kind") == KIND


@dataclass(frozen=True)
class PredictSpec:
    """The fitted job whose model scores (`source_job`), that model's blob (`model_sha256`), its task, the
    request's options, and the upload's columns that are ignored (`extra_columns`)."""

    source_job: str
    model_sha256: str
    task: Task
    options: PredictOptions
    extra_columns: tuple[str, ...] = ()
    model_name: str | None = None  # the fitted model's name, for lists of jobs

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "kind": KIND,
            "source_job": self.source_job,
            "model_sha256": self.model_sha256,
            "task": self.task,
            "options": self.options.to_json(),
            "extra_columns": list(self.extra_columns),
            "model_name": self.model_name,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PredictSpec:
        if data.get("version") != VERSION or not is_predict(data):
            raise ValueError(f"not a predict spec of version {VERSION}: {sorted(data)}")
        return cls(
            source_job=str(data["source_job"]),
            model_sha256=str(data["model_sha256"]),
            task=data["task"],
            options=PredictOptions.from_json(dict(data["options"])),
            extra_columns=tuple(data.get("extra_columns", ())),
            model_name=data.get("model_name"),
        )
