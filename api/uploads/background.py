"""A submit's or a predict's second file part, `background`: SHAP's background rows for this job.

It takes the `file` part's path and limits (streamed to the workspace, converted in a conversion slot
once the `file` part's is released, refused uploads charged alike), then is checked against the model's
features (`shared.ml.model.background_file`) and kept as its feature columns, with the job, in the
transaction that stores it. It replaces `background=sample:N`: a request with both is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from api.uploads.files import ReceivedUpload, converted
from shared.ml.errors import ParameterError, UserInputError
from shared.ml.model.background_file import check_background, feature_columns
from shared.ml.model.predict.checks import feature_of
from shared.ml.model.schema import FeatureSchema
from shared.ml.spec import BackgroundSpec, Limits


@dataclass(frozen=True)
class CheckedBackground:
    """The background the job's spec names, and the Parquet bytes of its feature columns to keep."""

    asked: BackgroundSpec
    parquet: bytes


def refuse_both(asked: BackgroundSpec, received: ReceivedUpload | None) -> None:
    """A `background` file and `background=sample:N` in one request: 422 naming the parameter."""
    if received is not None and asked.asked:
        raise ParameterError(
            "bad_parameter",
            f"background={asked.describe()} and a `background` file were both sent: send one of them.",
            details={"parameter": "background"},
        )


def checked_background(
    received: ReceivedUpload,
    features: Sequence[Mapping[str, Any] | FeatureSchema],
    limits: Limits,
    *,
    target: str,
    handles_missing: bool,
) -> CheckedBackground:
    """Convert the part (blocking: in a thread) and check it; DataError or LimitExceeded (422) naming what
    is wrong, with `parameter` "background"."""
    names = [feature_of(feature).name for feature in features]
    try:
        with converted(received, limits) as ingested:
            labels, path = ingested.labels, ingested.path
    except UserInputError as error:  # its format, or a limit met while it was read
        error.message = f"The background file: {error.message}"
        error.details["parameter"] = "background"
        raise
    asked = check_background(
        features, labels, received.digest, limits, target=target, handles_missing=handles_missing
    )
    return CheckedBackground(asked, feature_columns(path, names))
