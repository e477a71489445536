"""The seed's own plotting code (techtonique's blog post, Python version) runs on our results.

The seed's eight requests (docs/performance.md) go through the service twice: on the main endpoints with
`wait=60` and on the `/techtonique` mount; each answer is read exactly as users' scripts read it
(`data["interpretability"]["feature_names"]`, ...) and plotted with matplotlib.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest

from tests.stack import DATA, Client, Stack

matplotlib.use("Agg")
import matplotlib.pyplot as plt

pytestmark = [pytest.mark.service]

BC, BOSTON = "breast_cancer_dataset2.csv", "boston_dataset2.csv"
SEED_REQUESTS = [
    ("mlclassification", BC, {"interpretability": "permutation"}),
    ("mlclassification", BC, {"interpretability": "shap"}),
    ("gbdtclassification", BC, {"interpretability": "permutation"}),
    ("gbdtclassification", BC, {"interpretability": "shap"}),
    ("mlregression", BOSTON, {"interpretability": "permutation", "return_pi": "True"}),
    ("mlregression", BOSTON, {"interpretability": "shap"}),
    ("gbdtregression", BOSTON, {"interpretability": "permutation"}),
    ("gbdtregression", BOSTON, {"interpretability": "shap"}),
]
MOUNTS = {"main": "", "techtonique": "/techtonique"}


def plot_permutation(data: dict[str, Any], path: Path) -> None:
    """The blog post's permutation plot: importances_mean with importances_std error bars."""
    plt.figure(figsize=(10, 6))
    plt.bar(
        data["interpretability"]["feature_names"],
        data["interpretability"]["importances_mean"],
        yerr=data["interpretability"]["importances_std"],
    )
    plt.xticks(rotation=90)
    plt.title("Permutation importance")
    plt.tight_layout()
    plt.savefig(path)
    plt.close()


def plot_shap(data: dict[str, Any], path: Path, *, classification: bool) -> None:
    """The blog post's SHAP plot: the class-1 slice for a classifier, mean |SHAP| for a regressor."""
    shap_values = data["interpretability"]["values"]
    feature_names = data["interpretability"]["feature_names"]
    if classification:
        heights = [abs(s[1]) for s in shap_values[0]]
    else:
        heights = np.mean(np.abs(np.array(shap_values)), axis=0)
    plt.figure(figsize=(10, 6))
    plt.barh(feature_names, heights)
    plt.title("SHAP values")
    plt.tight_layout()
    plt.savefig(path)
    plt.close()


@pytest.fixture(scope="module")
def seed_results(stack: Stack) -> dict[tuple[str, int], dict[str, Any]]:
    """The eight requests on both mounts, four at a time, each answered with the result itself (200)."""
    client = Client(stack.url, stack.token("plotter"))

    def ask(mount: str, index: int) -> dict[str, Any]:
        endpoint, csv, params = SEED_REQUESTS[index]
        query = {**params, "wait": "60"} if mount == "main" else params
        response = client.http.post(
            f"{MOUNTS[mount]}/{endpoint}",
            params=query,
            files={"file": (csv, (DATA / csv).read_bytes(), "text/csv")},
        )
        assert response.status_code == 200, f"{mount} {endpoint} {params}: {response.text[:300]}"
        return response.json()

    keys = [(mount, index) for mount in MOUNTS for index in range(len(SEED_REQUESTS))]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda key: ask(*key), keys))
    return dict(zip(keys, answers, strict=True))


@pytest.mark.parametrize("mount", list(MOUNTS))
@pytest.mark.parametrize("index", range(len(SEED_REQUESTS)))
def test_the_seed_plotting_code_runs_on_every_seed_result(
    seed_results: dict, mount: str, index: int, tmp_path: Path
) -> None:
    endpoint, _, params = SEED_REQUESTS[index]
    data = seed_results[mount, index]
    path = tmp_path / f"{mount}-{endpoint}-{params['interpretability']}.png"
    if params["interpretability"] == "permutation":
        plot_permutation(data, path)
        assert len(data["interpretability"]["importances_mean"]) == len(
            data["interpretability"]["feature_names"]
        )
    else:
        plot_shap(data, path, classification=endpoint.endswith("classification"))
        n_features = len(data["interpretability"]["feature_names"])
        assert np.asarray(data["interpretability"]["values"]).shape[1] == n_features
    assert path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
