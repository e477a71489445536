"""The model as a skops file (`skops.io`), which loads without pickle once its types are trusted.

The file holds only classes of the model's libraries (scikit-learn, nnetsauce, the boosters), none of
ours, so it loads where fitexplain is not installed: a model that one-hot encodes its categorical columns
inside (`OneHotModel`) is written as a scikit-learn `Pipeline` of a `ColumnTransformer` holding the very
fitted encoders, then the model; CatBoost's wrapper is left out (give CatBoost the categorical columns as
integers, a missing one as -1). Its untrusted types (the classes skops does not trust by default) are
listed in the `X-Skops-Untrusted-Types` header and on the model card, for `skops.io.load(path,
trusted=[...])`.
"""

from __future__ import annotations

import zipfile
from typing import Any

import numpy as np

from shared.ml.categories import CatBoostCategories, OneHotModel
from shared.ml.model.export import Exported
from shared.ml.model.kept import KeptModel

UNTRUSTED_HEADER = "X-Skops-Untrusted-Types"
MEDIA_TYPE = "application/octet-stream"


def refusal(kept: KeptModel) -> str | None:
    return None


def portable(model: Any) -> Any:
    """The model as classes of its libraries only (see the module docstring)."""
    if isinstance(model, CatBoostCategories):
        return model.model
    if isinstance(model, OneHotModel):
        return _pipeline(model)
    return model


def _pipeline(model: OneHotModel) -> Any:
    """A fitted Pipeline(ColumnTransformer, model) whose transform is `model.encode`: one transformer per
    original column, in order (a categorical column's fitted OneHotEncoder, a numeric one passed through)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    n_features = len(model.groups_)
    steps = [
        (f"x{position}", "passthrough" if position not in model.encoders_ else OneHotEncoder(), [position])
        for position in range(n_features)
    ]
    columns = ColumnTransformer(steps, remainder="drop", sparse_threshold=0.0)
    columns.fit(np.zeros((1, n_features)))  # the columns' layout; the fitted encoders replace the stand-ins
    # The stand-ins are named x<position>; a trailing remainder entry, if any, stays as it is.
    columns.transformers_ = [
        (name, model.encoders_.get(int(name[1:]), fitted) if name.startswith("x") else fitted, selected)
        for name, fitted, selected in columns.transformers_
    ]
    return Pipeline([("encode", columns), ("model", model.model)])


def export(kept: KeptModel) -> Exported:
    import skops.io as sio

    # Deflated: a model's schema.json (nnetsauce's calibrated trees, for one) shrinks about 14 times.
    body = sio.dumps(portable(kept.model), compression=zipfile.ZIP_DEFLATED)
    untrusted = sio.get_untrusted_types(data=body)
    return Exported(body, "model.skops", MEDIA_TYPE, {UNTRUSTED_HEADER: ",".join(untrusted)})


def untrusted_types(body: bytes) -> list[str]:
    import skops.io as sio

    return list(sio.get_untrusted_types(data=body))
