"""Scoring and explaining new rows with a kept model (`shared.ml.model.kept.KeptModel`).

`checks` checks an upload against the model's training schema (every missing column and wrong dtype named
at once, extra columns listed, unseen categories counted or refused); `options` holds a predict request's
parameters; `selection` decides which rows a threshold explains and their top reasons; `scoring` scores
and explains an upload batch by batch and joins the batches into the result, in the fit's own names.
"""
