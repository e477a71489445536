"""Scoring and explaining many new rows with a kept xgboost model: the predict job's worker phases against
a plain script doing the same work, in the same run.

The data: a regression table of `--features` numeric features; the model is fitted once on `--train-rows`
rows as /gbdtregression?model_type=xgboost fits it (100 trees, depth 3, the job's seed, one thread), kept
(`shared.ml.model.kept`) and pickled as the worker keeps it. The new rows (`--rows`, 1,000,000 by default)
are a Parquet file.

- The worker's phases, in this process, as `worker.tasks.compute_predict` runs them: the upload converted
  to the canonical file (the API's part, shown apart), then load (the kept model's bytes verified and
  unpickled), read, predict and explain batch by batch (`shared.ml.model.predict.scoring`), merge, and
  store (the result's gzip JSON and its Parquet form, as `jobstore.succeed` and the worker make them).
- The baseline: read the same Parquet file, load the native model (xgboost UBJSON), `Booster.predict` and
  `pred_contribs` with the same thread count, write the predictions and contributions as Parquet.

Acceptance: the worker's phases <= 1.5x the baseline. This benchmark does not start the service: submit ->
result downloaded (<= 2.5x) is not measured here. On a machine shared with other work, the figures are
noisy: run it on a quiet one.

    .venv/bin/python benchmarks/predict_rows.py                    # 1,000,000 x 50
    .venv/bin/python benchmarks/predict_rows.py --rows 100000      # a quicker run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import orjson  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from isal import igzip  # noqa: E402

from shared.ml.ingest.upload import ingest  # noqa: E402
from shared.ml.model import codec  # noqa: E402
from shared.ml.model.kept import kept_from  # noqa: E402
from shared.ml.model.predict.options import PredictOptions  # noqa: E402
from shared.ml.model.predict.scoring import read_batches, score  # noqa: E402
from shared.ml.phases import Phases  # noqa: E402
from shared.ml.pipeline import prepare  # noqa: E402
from shared.ml.spec import JobSpec, Limits, ModelSpec  # noqa: E402
from shared.results.formats import parquet_to_store  # noqa: E402

SPEC = JobSpec(model=ModelSpec(task="regression", family="gbdt", model_type="xgboost"))
LIMITS = Limits(max_rows=20_000_000, max_shap_floats=2_000_000_000, max_predict_explain_rows=10_000_000)


def table(n_rows: int, n_features: int, seed: int, with_target: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features))
    columns = {f"x{j}": X[:, j] for j in range(n_features)}
    if with_target:
        columns["target"] = X[:, :5] @ np.arange(1, 6) + np.sin(X[:, 5]) + rng.normal(scale=0.1, size=n_rows)
    return pa.table(columns)


def worker_phases(model_body: bytes, sha256: str, canonical: Path, threads: int) -> tuple[Phases, dict]:
    phases = Phases()
    with phases.timed("load"):
        kept = codec.load(model_body, sha256)
        kept.model.set_params(n_jobs=threads)
    result = score(
        kept,
        read_batches(canonical),
        PredictOptions(interpretability="shap", top_n=3),
        arrays=True,
        phases=phases,
    )
    with phases.timed("store"):
        body = orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)
        igzip.compress(body, 1)
        parquet_to_store(result, 10_000)
    return phases, result


def baseline(model_path: Path, data: Path, out: Path, threads: int) -> Phases:
    import xgboost

    phases = Phases()
    with phases.timed("read"):
        X = pq.read_table(data).to_pandas().to_numpy(dtype=np.float64)
    with phases.timed("load"):
        booster = xgboost.Booster(model_file=str(model_path))
        booster.set_param({"nthread": threads})
    with phases.timed("predict"):
        matrix = xgboost.DMatrix(X, nthread=threads)
        y_pred = booster.predict(matrix)
    with phases.timed("explain"):
        contributions = booster.predict(matrix, pred_contribs=True)
    with phases.timed("write"):
        columns = {"y_pred": y_pred, "base_value": contributions[:, -1]}
        columns.update({f"shap_x{j}": contributions[:, j] for j in range(X.shape[1])})
        pq.write_table(pa.table(columns), out, compression="zstd")
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        pq.write_table(table(args.train_rows, args.features, 1, True), work / "fit.parquet")
        fit_source = ingest(work / "fit.parquet", work / "fit.canonical.parquet", LIMITS).path
        prepared = prepare(fit_source, SPEC, LIMITS, n_threads=args.threads)
        kept = kept_from(prepared, LIMITS)
        body = codec.dump(kept)
        sha256 = codec.sha256_of(body)
        kept.model.save_model(work / "model.ubj")
        pq.write_table(table(args.rows, args.features, 2, False), work / "new.parquet")
        started = time.perf_counter()
        canonical = ingest(work / "new.parquet", work / "new.canonical.parquet", LIMITS).path
        converted = time.perf_counter() - started

        plain = baseline(work / "model.ubj", work / "new.parquet", work / "plain.parquet", args.threads)
        phases, result = worker_phases(body, sha256, canonical, args.threads)

    plain_total = sum(plain.seconds.values())
    worker_total = sum(phases.seconds.values())
    print(
        f"{args.rows:,} rows x {args.features} features, xgboost 100 trees depth 3, {args.threads} thread(s)"
    )
    print(f"upload converted to the canonical file (the API's part): {converted:.2f} s")
    print(f"worker:   {phases}  total={worker_total:.2f}s")
    print(f"baseline: {plain}  total={plain_total:.2f}s")
    print(f"ratio worker / baseline: {worker_total / plain_total:.2f} (acceptance <= 1.5)")
    print(f"explained rows: {len(result['explained_rows']):,}")


if __name__ == "__main__":
    main()
