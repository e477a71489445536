"""The background rows of the SHAP explainers that take one, and the record of which rows they were.

The model-agnostic and nnetsauce explainers average each row's game over background rows
(interventional SHAP): by default a sample of the training rows drawn with the job's seed (`sample:N`: at
most N of them), or the rows of a file the user sent, in model space as the test rows are. Path-dependent
TreeSHAP (the tree models' exact explainer) takes none: it follows each tree's own cover.

A result says which rows were used, in its SHAP object's `background` (the model card's adds its shape):
`{"source": "sample", "rows", "seed"}`, `{"source": "upload", "rows", "sha256"}`, or for TreeSHAP
`{"source": "none", "rows": 0, "asked"}`, `asked` being the background the request chose and TreeSHAP did
not use (null when the request chose none). A predict job's `sample:N` draws from the kept model's
background, which its record names (`drawn_from`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.ml.spec import BackgroundSpec, Limits

if TYPE_CHECKING:
    from shared.ml.prepared import PreparedJob


@dataclass(frozen=True)
class Background:
    """Background rows in model space, and their record (the result's and the card's `background`)."""

    rows: np.ndarray
    record: dict[str, Any]


def sample_rows(X: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to `n` rows of X drawn without replacement by a Generator(seed), in their order in X; X itself
    when it has no more."""
    if X.shape[0] <= n:
        return X
    rng = np.random.default_rng(seed)
    return X[np.sort(rng.choice(X.shape[0], size=n, replace=False))]


def training_sample(X_train: np.ndarray, n: int, seed: int) -> Background:
    """A sample of at most `n` training rows (`sample_rows`)."""
    rows = sample_rows(X_train, n, seed)
    return Background(rows, {"source": "sample", "rows": int(rows.shape[0]), "seed": int(seed)})


def from_upload(rows: np.ndarray, sha256: str) -> Background:
    """The rows of an uploaded background file (model space), `sha256` that of its bytes as sent."""
    return Background(rows, {"source": "upload", "rows": int(rows.shape[0]), "sha256": sha256})


def resampled(kept: Background, n: int, seed: int) -> Background:
    """At most `n` rows of a kept background, drawn as `training_sample` draws training rows; the kept
    background itself when it has no more."""
    if kept.rows.shape[0] <= n:
        return kept
    record = {"source": "sample", "rows": int(n), "seed": int(seed), "drawn_from": dict(kept.record)}
    return Background(sample_rows(kept.rows, n, seed), record)


def for_fit(prepared: PreparedJob, limits: Limits) -> Background | None:
    """The background of a fitted job's explainer: the sample of training rows its spec asks for, or the
    rows of the file sent with it (`prepared.uploaded_background`, in model space); None for
    path-dependent TreeSHAP."""
    from shared.ml.explain.shap import choose_explainer

    if choose_explainer(prepared.model) == "tree":
        return None
    asked = prepared.spec.background
    asked.check(limits)
    if asked.source == "sample":
        return training_sample(prepared.dataset.X_train, asked.row_bound(limits), prepared.spec.seed)
    if prepared.uploaded_background is None or asked.sha256 is None:
        raise ValueError("the job's spec names an uploaded background, but its rows were not given")
    return from_upload(prepared.uploaded_background, asked.sha256)


def asked_record(asked: BackgroundSpec) -> dict[str, Any] | None:
    """What a request chose, as a record: {"source": "sample", "rows": N} or the uploaded file's; None
    for the default."""
    if not asked.asked:
        return None
    if asked.source == "upload":
        return {"source": "upload", "rows": asked.rows, "sha256": asked.sha256}
    return {"source": "sample", "rows": asked.rows}


def not_used(asked: BackgroundSpec) -> dict[str, Any]:
    """The record of an explainer that takes no background rows (path-dependent TreeSHAP)."""
    return {"source": "none", "rows": 0, "asked": asked_record(asked)}


def note(record: dict[str, Any]) -> str:
    """The sentence a SHAP object's notes add when the request chose a background its explainer did not
    use ("" otherwise)."""
    asked = record.get("asked") if record.get("source") == "none" else None
    if not asked:
        return ""
    rows = asked["rows"]
    what = f"an uploaded file of {rows} rows" if asked["source"] == "upload" else f"sample:{rows}"
    return f"The background asked for ({what}) was not used: path-dependent TreeSHAP takes none."


def with_note(notes: str, record: dict[str, Any]) -> str:
    """`notes` followed by `note(record)`, if any."""
    added = note(record)
    return f"{notes} {added}".strip() if added else notes


def legacy_record(rows: np.ndarray, seed: int) -> dict[str, Any]:
    """The record of a background kept before backgrounds had records: always a training sample."""
    return {"source": "sample", "rows": int(rows.shape[0]), "seed": int(seed)}
