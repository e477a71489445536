"""The `fitexplain` command's user subcommands against the real stack: submit with a live progress bar,
--out, --plot and --json, every plot kind, jobs/status/result/cancel, login, and the exit codes
(0 done, 1 failed job, 2 bad usage or a 4xx answer). Run as `python -m fitexplain_client`, which is what
the console script calls."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.faults.conftest import slow_csv, slow_params
from tests.stack import DATA, REPO, Stack

pytestmark = pytest.mark.service

SUBMITS = {  # endpoint: (CSV, -p parameters, the plot --submit draws by default)
    "mlclassification": (
        "breast_cancer_dataset2.csv",
        ["base_model=RandomForestClassifier", "interpretability=shap"],
    ),
    "gbdtclassification": ("breast_cancer_dataset2.csv", ["interpretability=permutation"]),
    "mlregression": ("boston_dataset2.csv", ["interpretability=permutation,shap", "return_pi=True"]),
    "gbdtregression": ("boston_dataset2.csv", ["interpretability=shap", "return_pi=true"]),
}


@pytest.fixture(scope="module")
def env(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    paths = [str(REPO / "clients" / "python"), str(REPO), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(path for path in paths if path),
        "FITEXPLAIN_URL": stack.url,
        "FITEXPLAIN_TOKEN": stack.token("cli-user"),
        "FITEXPLAIN_CONFIG": str(tmp_path_factory.mktemp("config") / "none.json"),
        "COLUMNS": "120",
    }


def fitexplain(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fitexplain_client", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    assert path.stat().st_size > 5000, f"{path} is almost empty"


@pytest.fixture(scope="module")
def submitted(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    """Each endpoint through `submit --wait --out --plot`, all four at once."""
    where = tmp_path_factory.mktemp("cli")

    def run(endpoint: str) -> tuple:
        csv, params = SUBMITS[endpoint]
        options = [arg for param in params for arg in ("-p", param)]
        out, plot = where / f"{endpoint}.json", where / f"{endpoint}.png"
        done = fitexplain(env, "submit", str(DATA / csv), endpoint, *options, "--wait", "--out", str(out),
                          "--plot", str(plot))  # fmt: skip
        return done, out, plot

    with ThreadPoolExecutor(4) as pool:
        return dict(zip(SUBMITS, pool.map(run, SUBMITS), strict=True))


@pytest.mark.parametrize("endpoint", SUBMITS)
def test_submit_waits_with_progress_and_writes_result_and_plot(submitted: dict, endpoint: str) -> None:
    done, out, plot = submitted[endpoint]
    assert done.returncode == 0, done.stderr
    assert "100%" in done.stderr and "succeeded" in done.stderr, done.stderr  # the progress bar's last state
    assert ("accuracy" if "classification" in endpoint else "R²") in done.stdout
    result = json.loads(out.read_text())
    assert result["y_pred"] and result["interpretability"]
    assert_png(plot)


@pytest.mark.parametrize(
    "endpoint, kind",
    [
        ("mlclassification", "shap-summary"),
        ("mlclassification", "shap-beeswarm"),
        ("gbdtclassification", "importance"),
        ("mlregression", "importance"),
        ("mlregression", "shap-beeswarm"),
        ("gbdtregression", "intervals"),
        ("gbdtregression", "shap-summary"),
    ],
)
def test_plot_each_kind_from_a_saved_result(
    env: dict[str, str], submitted: dict, endpoint: str, kind: str, tmp_path: Path
) -> None:
    _, out, _ = submitted[endpoint]
    png = tmp_path / f"{kind}.png"
    done = fitexplain(env, "plot", str(out), "--kind", kind, "-o", str(png))
    assert done.returncode == 0, done.stderr
    assert_png(png)


def test_plot_of_what_the_result_lacks_is_bad_usage(
    env: dict[str, str], submitted: dict, tmp_path: Path
) -> None:
    _, out, _ = submitted["gbdtclassification"]  # permutation only, no intervals
    done = fitexplain(env, "plot", str(out), "--kind", "intervals", "-o", str(tmp_path / "x.png"))
    assert done.returncode == 2 and "prediction intervals" in done.stderr
    done = fitexplain(env, "plot", str(out), "--kind", "shap-summary", "-o", str(tmp_path / "x.png"))
    assert done.returncode == 2 and "no shap explanation" in done.stderr


def test_json_for_scripts_status_result_and_jobs(env: dict[str, str], tmp_path: Path) -> None:
    done = fitexplain(env, "submit", str(DATA / "iris_dataset2.csv"), "gbdtclassification", "--json")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "queued" and job["endpoint"] == "gbdtclassification"
    waited = fitexplain(
        env, "submit", str(DATA / "iris_dataset2.csv"), "gbdtclassification", "--wait", "--json"
    )
    assert waited.returncode == 0 and json.loads(waited.stdout)["y_pred"]  # the result itself on stdout
    assert "━" not in waited.stderr, "no progress bar in --json mode"

    listed = json.loads(fitexplain(env, "jobs", "--json", "--limit", "100").stdout)
    assert job["id"] in [item["id"] for item in listed]
    for _ in range(600):  # the job is tiny; poll through the CLI itself
        status = json.loads(fitexplain(env, "status", job["id"], "--json").stdout)
        if status["status"] == "succeeded":
            break
    assert status["status"] == "succeeded" and status["progress"] == 1.0
    target = tmp_path / "result.json"
    assert fitexplain(env, "result", job["id"], "--out", str(target)).returncode == 0
    assert json.loads(target.read_text())["y_true"]
    table = fitexplain(env, "jobs")
    assert table.returncode == 0 and job["id"] in table.stdout


def test_exit_code_2_for_a_bad_column_naming_it(env: dict[str, str]) -> None:
    done = fitexplain(env, "submit", str(DATA / "malformed" / "non_numeric.csv"), "mlclassification")
    assert done.returncode == 2
    assert "non_numeric" in done.stderr and "column 'b'" in done.stderr.lower(), done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["submit", "tests/data/iris_dataset2.csv", "mlclassification", "-p", "seed"], "NAME=VALUE"),
        (["submit", "tests/data/iris_dataset2.csv", "randomforest"], "randomforest"),
        (["submit", "tests/data/iris_dataset2.csv", "mlclassification", "-p", "colour=red"], "colour"),
        (["submit", "tests/data/no_such.csv", "mlclassification"], "no_such.csv"),
        (["submit", "tests/data/iris_dataset2.csv", "mlclassification", "--out", "x.json"], "--wait"),
        (["status", "no-such-job"], "no-such-job"),
    ],
)
def test_exit_code_2_for_bad_usage_and_4xx(env: dict[str, str], args: list[str], message: str) -> None:
    done = fitexplain(env, *args, cwd=REPO)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr, done.stderr


def test_exit_code_1_for_a_failed_or_cancelled_job(env: dict[str, str], tmp_path: Path) -> None:
    csv = tmp_path / "slow.csv"
    csv.write_bytes(slow_csv())
    params = [arg for name, value in slow_params().items() for arg in ("-p", f"{name}={value}")]
    done = fitexplain(env, "submit", str(csv), "gbdtclassification", *params)
    job_id = done.stdout.strip()
    cancelled = fitexplain(env, "cancel", job_id)
    assert cancelled.returncode == 0 and job_id in cancelled.stdout
    waited = fitexplain(env, "submit", str(csv), "gbdtclassification", "--wait", "--timeout", "0.01", *params)
    assert waited.returncode == 1 and "still" in waited.stderr  # gave up waiting; the job goes on
    second = waited.stderr.split("job ", 1)[1].split()[0]
    assert fitexplain(env, "cancel", second).returncode == 0
    result = fitexplain(env, "result", job_id)
    assert result.returncode == 1 and "cancelled" in result.stderr, result.stderr


def test_login_checks_and_stores_the_token(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "fitexplain" / "config.json"
    login_env = {**env, "FITEXPLAIN_CONFIG": str(config)}
    url, token = login_env.pop("FITEXPLAIN_URL"), login_env.pop("FITEXPLAIN_TOKEN")
    wrong = fitexplain(login_env, "login", "--url", url, "--token", "fx_wrong")
    assert wrong.returncode == 2 and not config.exists()
    done = fitexplain(login_env, "login", "--url", url, "--token", token)
    assert done.returncode == 0, done.stderr
    assert json.loads(config.read_text()) == {"url": url, "token": token}
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    listed = fitexplain(login_env, "jobs", "--json")  # no URL or token but the stored ones
    assert listed.returncode == 0, listed.stderr
