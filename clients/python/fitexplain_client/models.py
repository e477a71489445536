"""What the service answers, as typed pydantic models: a job's state (`JobState`) and its parts, and the
explanation objects of a result. Each keeps the JSON it was read from (`.raw`, `to_dict()`); fields the
client does not know yet stay reachable in `model_extra`, and `obj["name"]` / `obj.get("name")` read a
field or an unknown key alike, as a dict would."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, PrivateAttr, field_validator

from fitexplain_client.errors import JobFailedError

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED = frozenset({"succeeded", "failed", "cancelled"})


class APIModel(BaseModel):
    """A JSON object of the service: typed fields, unknown keys kept, the original JSON at `.raw`."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Self:
        found = cls.model_validate(body)
        found._raw = body
        return found

    @property
    def raw(self) -> dict[str, Any]:
        """The JSON object as the service sent it."""
        return self._raw or self.model_dump(by_alias=True)

    def to_dict(self) -> dict[str, Any]:
        return self.raw

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __contains__(self, key: object) -> bool:
        return key in self.raw

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def __eq__(self, other: object) -> bool:
        """Equal to another model as pydantic compares them, and to a dict holding the same JSON."""
        if isinstance(other, dict):
            return self.raw == other
        return super().__eq__(other)

    __hash__ = BaseModel.__hash__


class JobError(APIModel):
    code: str
    message: str = ""


class Score(APIModel):
    """The job's headline metric: accuracy for classification, R² for regression."""

    name: str
    value: float | None = None


class JobState(APIModel):
    """GET /jobs/{id}: a job as the service sent it."""

    id: str
    status: JobStatus | str
    endpoint: str = ""
    params: dict[str, Any] = {}
    progress: float = 0.0
    progress_message: str = ""
    attempts: int = 0
    estimated_seconds: float | None = None
    queue: str | None = None
    error: JobError | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    data_filename: str | None = None
    model: str | None = None
    score: Score | None = None
    duration_seconds: float | None = None
    links: dict[str, str] = {}

    @field_validator("progress", mode="before")
    @classmethod
    def _no_progress_is_zero(cls, value: Any) -> Any:
        return 0.0 if value is None else value

    @field_validator("progress_message", mode="before")
    @classmethod
    def _no_message_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def model_label(self) -> str:
        """The model that was asked for: `model` when the service says it, else from the parameters."""
        if self.model:
            return self.model
        return str(self.params.get("base_model") or self.params.get("model_type") or "")

    def raise_unless_succeeded(self) -> None:
        if self.status != "succeeded":
            message = (self.error.message if self.error else "") or f"the job was {self.status}"
            raise JobFailedError(self.id, self.status, self.error.code if self.error else None, message)


class PermutationImportance(APIModel):
    """A result's permutation importance: the mean drop in score per feature, over `n_repeats`."""

    method: Literal["permutation"] = "permutation"
    feature_names: list[str]
    importances_mean: list[float]
    importances_std: list[float]
    importances: list[list[float]] = []
    scoring: str | None = None


class ShapExplanation(APIModel):
    """A result's SHAP values and how they were made (`explainer`, `exact`, `output_space`, ...).
    `values` is rows × features (× classes for classification), kept as sent."""

    method: Literal["shap"] = "shap"
    feature_names: list[str]
    values: Any
    base_values: Any
    class_labels: list[str] | None = None
    explainer: str | None = None
    exact: bool | None = None
    output_space: str | None = None

    @field_validator("class_labels", mode="before")
    @classmethod
    def _labels_as_text(cls, value: Any) -> Any:
        return None if value is None else [str(label) for label in value]


class ModelEstimator(APIModel):
    """The fitted estimator's class, its library and its constructor parameters."""

    name: str
    library: str
    hyperparameters: dict[str, Any]


class ModelFeature(APIModel):
    """A training column: its name, dtype (float64 or category) and categories in code order."""

    name: str
    dtype: str
    categories: list[str] | None = None


class ModelCard(APIModel):
    """A succeeded job's kept model (`GET /jobs/{id}/model`): how it was fitted and scored, its training
    schema, and the `formats` `Job.download_model` offers (`kept` is false when it was too large)."""

    job_id: str
    endpoint: str
    params: dict[str, Any]
    estimator: ModelEstimator
    libraries: dict[str, str]
    features: list[ModelFeature]
    target: dict[str, Any]
    metrics: dict[str, Any]
    background: dict[str, Any] | None
    size_bytes: int
    sha256: str
    formats: list[str]
    kept: bool = True
    notes: str | None = None
