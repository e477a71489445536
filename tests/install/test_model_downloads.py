"""Every download format of every model family, loaded in a fresh virtual environment that has only the
model libraries, skops, onnxruntime, mlflow-skinny, pandas/pyarrow and what the bundle's
requirements.txt lists (no fitexplain), predicts the job's test rows as the job did: exactly for native,
skops and MLflow; for ONNX in float32 within 1e-5 (probabilities) or 1e-5 relative (values) except at most
0.1 % of the rows, counted and printed; and the bundle's predict.py, offline, gives the job's y_pred,
proba and, with --explain, its SHAP values.

The jobs are fitted in this process with the ML core (`prepare` + `kept_from`), no server. The fresh
environment is made once with uv at the lock's versions and cached under a directory named by the
lock's sha256 (FITEXPLAIN_TEST_CACHE, default ~/.cache/fitexplain-tests): a second run reuses it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shared.ml.model import export
from shared.ml.model.kept import KeptModel, kept_from
from shared.ml.pipeline import PreparedJob, explain, prepare
from shared.ml.spec import JobSpec, Limits, ModelSpec
from tests.canonical import canonical
from tests.stack import BIN, REPO

# One fixture fits six jobs, exports them and loads every file in the fresh environment: minutes on a
# loaded machine, past the suite's default deadline of 300 s a test (its setup included).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

DATA = REPO / "tests" / "data"
LOADER = Path(__file__).with_name("load_models.py")
#: What the fresh environment holds: the model libraries (xgboost as the lock's xgboost-cpu, the same
#: library without its GPU libraries), the loaders (skops, onnxruntime, mlflow-skinny), pandas/pyarrow,
#: and what the bundle's predict.py needs besides (shap, numba, scipy, isal).
FRESH_PACKAGES = (
    "xgboost-cpu",
    "lightgbm",
    "catboost",
    "scikit-learn",
    "nnetsauce",
    "skops",
    "onnxruntime",
    "mlflow-skinny",
    "pandas",
    "pyarrow",
    "shap",
    "numba",
    "scipy",
    "isal",
)
#: family -> (file, endpoint's task, model parameters): each endpoint's defaults but the model type.
FAMILIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "xgboost": ("breast_cancer_dataset2.csv", "classification", {"family": "gbdt", "model_type": "xgboost"}),
    "lightgbm": ("iris_dataset2.csv", "classification", {"family": "gbdt", "model_type": "lightgbm"}),
    "catboost": ("boston_dataset2.csv", "regression", {"family": "gbdt", "model_type": "catboost"}),
    "gradientboosting": (
        "diabetes_dataset2.csv",
        "regression",
        {"family": "gbdt", "model_type": "gradientboosting"},
    ),
    "nnetsauce-mlclassification": ("iris_dataset2.csv", "classification", {"family": "ml"}),
    "nnetsauce-mlregression": ("diabetes_dataset2.csv", "regression", {"family": "ml"}),
}
MODEL_FORMATS = ("native", "skops", "onnx", "mlflow")
ONNX_TOLERANCE = 1e-5
ONNX_MISS_SHARE = 0.001


def cache_root() -> Path:
    default = Path.home() / ".cache" / "fitexplain-tests"
    return Path(os.environ.get("FITEXPLAIN_TEST_CACHE", default))


def uv() -> str:
    found = shutil.which("uv", path=str(BIN)) or shutil.which("uv")
    assert found, "uv is in the test group"
    return found


@pytest.fixture(scope="module")
def fresh_python() -> Path:
    """The fresh environment's python, made once per lock (see the module docstring)."""
    lock = (REPO / "uv.lock").read_bytes()
    home = cache_root() / f"model-env-{hashlib.sha256(lock).hexdigest()[:16]}"
    python = home / "bin" / "python"
    if (home / ".complete").is_file():
        return python
    building = home.with_name(f"{home.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    building.parent.mkdir(parents=True, exist_ok=True)
    constraints = building.with_suffix(".constraints.txt")
    subprocess.run(
        [
            *(uv(), "export", "--frozen", "--no-emit-workspace", "--no-hashes", "--all-extras"),
            *("--group", "test", "--quiet", "-o", str(constraints)),
        ],
        cwd=REPO,
        check=True,
    )
    subprocess.run([uv(), "venv", "--quiet", "--python", sys.executable, str(building)], check=True)
    subprocess.run(
        [
            *(uv(), "pip", "install", "--quiet", "--python", str(building / "bin" / "python")),
            *("-c", str(constraints), *FRESH_PACKAGES),
        ],
        check=True,
    )
    # uv venv writes absolute paths into the scripts, not into python itself: the move keeps it working.
    (building / ".complete").write_text("ok\n")
    try:
        building.rename(home)
    except OSError:  # another run finished first: use its environment
        shutil.rmtree(building, ignore_errors=True)
    constraints.unlink(missing_ok=True)
    return python


def fresh_env() -> dict[str, str]:
    """This process's environment without what would let the fresh Python see the test environment."""
    return {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}


@dataclass
class Job:
    family: str
    prepared: PreparedJob
    kept: KeptModel
    folder: Path

    @property
    def classifier(self) -> bool:
        return self.kept.class_labels is not None

    def expected(self) -> dict[str, np.ndarray]:
        X = self.prepared.dataset.X_test
        found = {"pred": self.kept.predict(X)}
        if self.classifier:
            found["proba"] = self.kept.predict_proba(X)
        return found


def fit(family: str, folder: Path) -> Job:
    name, task, model = FAMILIES[family]
    spec = JobSpec(model=ModelSpec(task=task, **model), interpretability=("shap",))  # type: ignore[arg-type]
    prepared = prepare(canonical((DATA / name).read_bytes()), spec, Limits())
    folder.mkdir(parents=True)
    return Job(family, prepared, kept_from(prepared, Limits()), folder)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Job]:
    root = tmp_path_factory.mktemp("downloads")
    return {family: fit(family, root / family) for family in FAMILIES}


@pytest.fixture(scope="module")
def loaded(jobs: dict[str, Job], fresh_python: Path) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """What the fresh environment predicts from each file, by (family, format); one process for all."""
    manifest = []
    for job in jobs.values():
        rows = job.folder / "rows.npy"
        np.save(rows, job.prepared.dataset.X_test)
        for fmt in export.formats_for(job.kept):
            if fmt not in MODEL_FORMATS:
                continue
            exported = export.export(job.kept, fmt)
            path = job.folder / exported.filename
            path.write_bytes(exported.body)
            manifest.append(
                {
                    "family": job.family,
                    "format": fmt,
                    "path": str(path),
                    "rows": str(rows),
                    "classifier": job.classifier,
                    "feature_names": job.kept.feature_names,
                    "out": str(job.folder / f"{fmt}.npz"),
                }
            )
    listing = jobs["xgboost"].folder.parent / "manifest.json"
    listing.write_text(json.dumps(manifest))
    done = subprocess.run(
        [str(fresh_python), str(LOADER), str(listing)],
        capture_output=True,
        text=True,
        timeout=900,
        env=fresh_env(),
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return {(entry["family"], entry["format"]): dict(np.load(entry["out"])) for entry in manifest}


EXPECTED_FORMATS = {
    "xgboost": ["native", "skops", "onnx", "mlflow", "bundle"],
    "lightgbm": ["native", "skops", "onnx", "mlflow", "bundle"],
    "catboost": ["native", "skops", "onnx", "mlflow", "bundle"],
    "gradientboosting": ["skops", "onnx", "mlflow", "bundle"],
    "nnetsauce-mlclassification": ["skops", "mlflow", "bundle"],
    "nnetsauce-mlregression": ["skops", "mlflow", "bundle"],
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_file_predicts_the_job_test_rows_in_a_fresh_environment(
    family: str, jobs: dict[str, Job], loaded: dict[tuple[str, str], dict[str, np.ndarray]]
) -> None:
    job = jobs[family]
    assert export.formats_for(job.kept) == EXPECTED_FORMATS[family]
    expected = job.expected()
    for fmt in ("native", "skops", "mlflow"):
        if (family, fmt) not in loaded:
            continue
        found = loaded[family, fmt]
        if not (fmt == "native" and job.classifier):  # LightGBM's text model gives probabilities only
            np.testing.assert_array_equal(found["pred"].astype(expected["pred"].dtype), expected["pred"])
        if job.classifier:
            np.testing.assert_array_equal(found["proba"], expected["proba"], err_msg=f"{family} {fmt}")
    if (family, "onnx") in loaded:
        assert_onnx_close(family, loaded[family, "onnx"], expected, job.classifier)


def assert_onnx_close(
    family: str, found: dict[str, np.ndarray], expected: dict[str, np.ndarray], classifier: bool
) -> None:
    if classifier:
        misses = np.abs(found["proba"] - expected["proba"]).max(axis=1) > ONNX_TOLERANCE
    else:
        scale = np.maximum(np.abs(expected["pred"]), np.finfo(np.float64).tiny)
        misses = np.abs(found["pred"] - expected["pred"]) > ONNX_TOLERANCE * scale
    precision = "double" if bool(found["double"]) else "float32"
    print(f"onnx {family} ({precision}): {int(misses.sum())} of {len(misses)} rows beyond {ONNX_TOLERANCE}")
    assert misses.sum() <= ONNX_MISS_SHARE * len(misses)


def uploaded_test_rows(job: Job, path: Path) -> Path:
    """The job's test rows as uploaded (their text), in the result's order."""
    name = FAMILIES[job.family][0]
    uploaded = pd.read_csv(DATA / name, dtype=str, keep_default_na=False)
    assert job.prepared.dataset.test_rows is not None
    uploaded.iloc[job.prepared.dataset.test_rows].to_csv(path, index=False)
    return path


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_bundle_scores_and_explains_offline_as_the_job_did(
    family: str, jobs: dict[str, Job], fresh_python: Path
) -> None:
    job = jobs[family]
    bundle = job.folder / "bundle"
    zipfile.ZipFile(io.BytesIO(export.export(job.kept, "bundle").body)).extractall(bundle)
    assert_requirements_met(fresh_python, bundle / "requirements.txt")
    rows = uploaded_test_rows(job, job.folder / "rows.csv")
    out = job.folder / "scored.parquet"
    done = subprocess.run(
        [str(fresh_python), "predict.py", str(rows), "--explain", "--out", str(out)],
        cwd=bundle,
        capture_output=True,
        text=True,
        timeout=600,
        env=fresh_env(),
    )
    assert done.returncode == 0, done.stderr[-4000:]
    scored = pd.read_parquet(out)
    result = job.prepared.result
    assert [str(value) for value in scored["y_pred"]] == [str(value) for value in result["y_pred"]]
    if job.classifier:
        columns = [f"proba_{label}" for label in job.kept.class_labels or []]
        np.testing.assert_array_equal(scored[columns].to_numpy(), np.asarray(result["proba"]))
    shap = explain(job.prepared, "shap", Limits())
    values = shap.values
    if values.ndim == 3:
        codes = job.kept.predict(job.prepared.dataset.X_test)
        values = values[np.arange(len(codes)), :, codes]
    found = scored[[f"shap_{name}" for name in job.kept.feature_names]].to_numpy()
    if shap.exact:
        np.testing.assert_allclose(found, values, rtol=0, atol=1e-6)
    else:  # sampled: the same seed gives the same values, bit for bit
        np.testing.assert_array_equal(found, values)


def assert_requirements_met(python: Path, requirements: Path) -> None:
    """Every line of the bundle's requirements.txt is installed in the fresh environment at its version
    (xgboost as xgboost-cpu)."""
    listing = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, json; "
            "print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = json.loads(listing.stdout)
    for line in requirements.read_text().split():
        name, _, version = line.partition("==")
        name = name.lower()
        have = installed.get(name) or installed.get(f"{name}-cpu")
        assert have == version, f"{line}: the fresh environment has {name} {have}"
