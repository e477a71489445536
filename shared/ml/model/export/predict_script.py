"""Score a table with a fitexplain model, offline (this file is `predict.py` in a model bundle).

    pip install -r requirements.txt
    python predict.py INPUT.csv|INPUT.parquet [--explain] [--out OUT.csv|OUT.parquet]

Writes one row per input row, in order: `y_pred` (the class label, or the value), `proba_<class>` for a
classifier, `pi_lower`/`pi_upper` for a model fitted with return_pi, and with `--explain` the SHAP values
`shap_<feature>` (for a classifier, those of the predicted class) and `shap_base`, the output they add
up to from. CSV goes to standard output without `--out`. The input is read, encoded and imputed by
fitexplain's own ML core (vendored beside this file, in `shared/ml/`), as the job read its upload, and
explained by the job's explainer with the job's seed: the job's own test rows give the job's values.

`model.skops` is loaded only once its sha256 matches `model.skops.sha256`, trusting the types of the
model libraries and of fitexplain's ML core and nothing else.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODEL_FILE = "model.skops"
#: Module prefixes of the types model.skops may hold; any other type is refused.
TRUSTED_MODULES = (
    "shared.ml.",
    "sklearn.",
    "xgboost.",
    "lightgbm.",
    "catboost.",
    "nnetsauce.",
    "numpy.",
    "scipy.",
    "collections.OrderedDict",
)


def load_model(folder: Path = HERE) -> Any:
    """The bundle's KeptModel, verified (sha256) and loaded with skops trusting only TRUSTED_MODULES."""
    import skops.io

    body = (folder / MODEL_FILE).read_bytes()
    expected = (folder / f"{MODEL_FILE}.sha256").read_text().strip()
    found = hashlib.sha256(body).hexdigest()
    if found != expected:
        raise SystemExit(f"{MODEL_FILE}: sha256 {found} is not the recorded {expected}; not loaded")
    untrusted = skops.io.get_untrusted_types(data=body)
    refused = [name for name in untrusted if not name.startswith(TRUSTED_MODULES)]
    if refused:
        raise SystemExit(f"{MODEL_FILE} holds types this script does not trust: {', '.join(refused)}")
    return skops.io.loads(body, trusted=untrusted)


def read_rows(path: Path) -> Any:
    """The table as the service reads an upload (CSV, gzip CSV, Parquet or Arrow): its canonical form."""
    from shared.ml.ingest import canonical
    from shared.ml.ingest.upload import ingest
    from shared.ml.spec import Limits

    with tempfile.TemporaryDirectory() as folder:
        stored = ingest(path, Path(folder) / "canonical.parquet", Limits(), filename=path.name)
        return canonical.read_table(stored.path.read_bytes())


def score(kept: Any, frame: Any, explain: bool = False) -> Any:
    """The output table for the rows of `frame` (see the module docstring)."""
    import numpy as np
    import pandas as pd

    X, _ = kept.matrix(frame)
    out = pd.DataFrame(index=range(len(X)))
    if kept.class_labels is not None:
        codes = kept.predict(X)
        out["y_pred"] = kept.predict_labels(X)
        proba = kept.predict_proba(X)
        for position, label in enumerate(kept.class_labels):
            out[f"proba_{label}"] = proba[:, position]
    else:
        out["y_pred"] = kept.predict(X)
        if kept.interval is not None:
            out["pi_lower"], out["pi_upper"] = kept.predict_interval(X)
    if explain:
        values, base = shap_values(kept, X)
        if values.ndim == 3:  # rows x features x classes: the predicted class's values
            rows = np.arange(len(X))
            values, base = values[rows, :, codes], base[rows, codes]
        for position, name in enumerate(kept.feature_names):
            out[f"shap_{name}"] = values[:, position]
        out["shap_base"] = base
    return out


def shap_values(kept: Any, X: Any) -> tuple[Any, Any]:
    """The job's SHAP values for these rows: its explainer, its background, its seed; a row's sampling
    is seeded by its position, as the job seeded its test rows."""
    import numpy as np

    from shared.ml.explain.shap import choose_explainer, explain_shap

    background = kept.background
    if background is None:
        if choose_explainer(kept.model) != "tree":
            raise SystemExit("this model was kept without a SHAP background: it cannot be explained here")
        background = np.empty((0, X.shape[1]))
    raw = explain_shap(
        kept.model,
        background,
        X,
        task=kept.spec.task,
        random_state=kept.spec.seed,
        row_ids=np.arange(len(X)),
    )
    return np.asarray(raw["values"], dtype=np.float64), np.asarray(raw["base_values"], dtype=np.float64)


def write(out: Any, path: Path | None) -> None:
    if path is None:
        out.to_csv(sys.stdout, index=False)
    elif path.suffix.lower() == ".parquet":
        out.to_parquet(path, index=False)
    else:
        out.to_csv(path, index=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Score a CSV or Parquet file with this bundle's model.")
    parser.add_argument("input", type=Path, help="INPUT.csv or INPUT.parquet: the feature columns by name")
    parser.add_argument("--explain", action="store_true", help="add shap_<feature> columns")
    parser.add_argument("--out", type=Path, help="OUT.csv or OUT.parquet (default: CSV to standard output)")
    args = parser.parse_args(argv)
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))  # the vendored ML core, and the types model.skops names
    write(score(load_model(), read_rows(args.input), args.explain), args.out)


if __name__ == "__main__":
    main()
