"""The SHAP background of a predict job, for that job only: the kept model's (the fit's), at most N rows
of it (`sample:N`, drawn with the fit's seed), or the rows of a file sent with the job, made into model
space as its new rows are. Path-dependent TreeSHAP takes none: its record says so, and what was asked.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from shared.ml.explain import background as backgrounds
from shared.ml.model.kept import KeptModel
from shared.ml.spec import BackgroundSpec


def with_background(
    kept: KeptModel, asked: BackgroundSpec, uploaded: pd.DataFrame | None = None
) -> KeptModel:
    """`kept` as the job explains with it: its background replaced as `asked` (`uploaded`: the file's
    kept feature columns, as `shared.ml.model.background_file.read_background` reads them), the model
    itself shared. A model without background rows keeps none (a non-tree one is then refused by
    `scoring.check_explainable`)."""
    from shared.ml.explain.shap import choose_explainer

    if choose_explainer(kept.model) == "tree":
        return replace(kept, background=None, background_record=backgrounds.not_used(asked))
    if asked.source == "upload":
        if uploaded is None or asked.sha256 is None:
            raise ValueError("the predict spec names an uploaded background, but its rows were not given")
        X, _ = kept.matrix(uploaded)
        chosen = backgrounds.from_upload(X, asked.sha256)
    elif asked.rows is not None and kept.background is not None:
        current = backgrounds.Background(kept.background, kept.background_used())
        chosen = backgrounds.resampled(current, asked.rows, kept.spec.seed)
    else:
        return kept
    return replace(kept, background=chosen.rows, background_record=chosen.record)
