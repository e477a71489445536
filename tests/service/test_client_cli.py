"""The `fitexplain` command's user subcommands against the real stack: submit with a progress bar,
--out, --plot and --json, every plot kind, jobs/status/result/cancel/delete, id prefixes, login, and each
exit code from a real failure (0 ok, 1 job failed or cancelled, 2 bad usage or a rejected request, 3 not
finished, 4 not found, 5 unreachable, 6 authentication). Run as `python -m fitexplain_client`, which is
what the console script calls."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from tests.client.test_transport import dead_url
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
        done = fitexplain(env, "submit", str(DATA / csv), endpoint, *options, "--wait", "--progress",
                          "--out", str(out), "--plot", str(plot))  # fmt: skip
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
    assert table.returncode == 0 and job["id"][:8] in table.stdout  # ids as 8-character prefixes


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
        (
            ["submit", "tests/data/iris_dataset2.csv", "mlclassification", "-p", "training_index=x"],
            "--training-index",
        ),
        (["submit", "tests/data/iris_dataset2.csv", "mlclassification", "-p", "seed=abc"], "seed"),
        (["jobs", "--bogus"], "--bogus"),
        (["status"], "job_id"),
    ],
)
def test_exit_code_2_for_bad_usage_is_one_line(env: dict[str, str], args: list[str], message: str) -> None:
    done = fitexplain(env, *args, cwd=REPO)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr


def test_exit_code_1_for_a_failed_or_cancelled_job(env: dict[str, str], tmp_path: Path) -> None:
    csv = tmp_path / "slow.csv"
    csv.write_bytes(slow_csv())
    params = [arg for name, value in slow_params().items() for arg in ("-p", f"{name}={value}")]
    done = fitexplain(env, "submit", str(csv), "gbdtclassification", *params)
    job_id = done.stdout.strip()
    cancelled = fitexplain(env, "cancel", job_id)
    assert cancelled.returncode == 0 and job_id in cancelled.stdout
    result = fitexplain(env, "result", job_id)
    assert result.returncode == 1 and "cancelled" in result.stderr, result.stderr
    listed = json.loads(fitexplain(env, "status", job_id, "--json").stdout)
    assert listed["status"] == "cancelled", "cancel keeps the job"


def test_login_checks_and_stores_the_token(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "fitexplain" / "config.json"
    login_env = {**env, "FITEXPLAIN_CONFIG": str(config)}
    url, token = login_env.pop("FITEXPLAIN_URL"), login_env.pop("FITEXPLAIN_TOKEN")
    wrong = fitexplain(login_env, "login", "--url", url, "--token", "fx_wrong")
    assert wrong.returncode == 6 and not config.exists()
    done = fitexplain(login_env, "login", "--url", url, "--token", token)
    assert done.returncode == 0, done.stderr
    assert json.loads(config.read_text()) == {"url": url, "token": token}
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    listed = fitexplain(login_env, "jobs", "--json")  # no URL or token but the stored ones
    assert listed.returncode == 0, listed.stderr


@pytest.fixture(scope="module")
def slow_job(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A job that runs for minutes (cancelled by the tests that need it finished)."""
    csv = tmp_path_factory.mktemp("slow") / "slow.csv"
    csv.write_bytes(slow_csv())
    params = [arg for name, value in slow_params().items() for arg in ("-p", f"{name}={value}")]
    done = fitexplain(env, "submit", str(csv), "gbdtclassification", *params)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def finished_job(env: dict[str, str]) -> str:
    iris = str(DATA / "iris_dataset2.csv")
    done = fitexplain(env, "submit", iris, "gbdtclassification", "--wait", "--json", "--out", os.devnull)
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["id"])


def test_exit_code_3_for_a_job_not_finished(env: dict[str, str], slow_job: str) -> None:
    result = fitexplain(env, "result", slow_job)
    assert result.returncode == 3 and "no result yet" in result.stderr, result.stderr
    csv = DATA / "breast_cancer_dataset2.csv"
    waited = fitexplain(env, "submit", str(csv), "mlclassification", "-p", "interpretability=shap", "--wait",
                        "--timeout", "0.01")  # fmt: skip
    assert waited.returncode == 3 and "still" in waited.stderr, waited.stderr  # the job goes on


def test_exit_code_4_for_an_unknown_job(env: dict[str, str]) -> None:
    for command in ("status", "result", "cancel", "delete"):
        done = fitexplain(env, command, "0123456789abcdef")
        assert done.returncode == 4, (command, done.stderr)
        assert "HTTP 404" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_exit_code_5_when_the_service_is_unreachable(env: dict[str, str]) -> None:
    url = dead_url()
    done = fitexplain(env, "jobs", "--url", url)
    assert done.returncode == 5, done.stderr
    assert url in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_exit_code_6_for_a_wrong_token(env: dict[str, str]) -> None:
    done = fitexplain(env, "jobs", "--token", "fx_wrong")
    assert done.returncode == 6 and "HTTP 401" in done.stderr, done.stderr


def test_cancel_of_a_finished_job_is_refused_and_keeps_it(env: dict[str, str], finished_job: str) -> None:
    done = fitexplain(env, "cancel", finished_job)
    assert done.returncode == 2 and "job_finished" in done.stderr, done.stderr
    assert "fitexplain delete" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert json.loads(fitexplain(env, "status", finished_job, "--json").stdout)["status"] == "succeeded"


def test_delete_removes_the_job(env: dict[str, str]) -> None:
    done = fitexplain(
        env, "submit", str(DATA / "iris_dataset2.csv"), "gbdtclassification", "--wait", "--json"
    )
    job_id = json.loads(fitexplain(env, "jobs", "--json", "--limit", "1").stdout)[0]["id"]
    assert done.returncode == 0
    deleted = fitexplain(env, "delete", job_id[:8])
    assert deleted.returncode == 0 and f"{job_id} deleted" in deleted.stdout, deleted.stderr
    assert fitexplain(env, "status", job_id).returncode == 4


def copies_sharing_a_prefix(stack: Stack, job_id: str, prefix: str) -> list[str]:
    """Two cancelled copies of a job whose ids start with `prefix` (random ids share none in practice)."""
    ids = [prefix + uuid.uuid4().hex[len(prefix) :] for _ in range(2)]
    dsn = stack.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        query = "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs' ORDER BY 1"
        names = [row[0] for row in conn.execute(query)]
        chosen = {"id": "%s", "dataset_sha256": "NULL", "status": "'cancelled'"}
        select = ", ".join(chosen.get(name, name) for name in names)
        for new_id in ids:
            conn.execute(f"INSERT INTO jobs ({', '.join(names)}) SELECT {select} FROM jobs WHERE id = %s",
                         (new_id, job_id))  # fmt: skip
    return ids


def test_id_prefixes_unique_ambiguous_and_too_short(
    env: dict[str, str], stack: Stack, finished_job: str
) -> None:
    unique = fitexplain(env, "status", finished_job[:8])
    assert unique.returncode == 0 and unique.stdout.startswith(f"{finished_job} succeeded"), unique.stderr
    result = fitexplain(env, "result", finished_job[:6])
    assert result.returncode == 0 and json.loads(result.stdout)["y_pred"]
    short = fitexplain(env, "status", finished_job[:5])
    assert short.returncode == 2 and "id_too_short" in short.stderr, short.stderr
    first, second = copies_sharing_a_prefix(stack, finished_job, "fedcba9")
    ambiguous = fitexplain(env, "status", "fedcba9")
    assert ambiguous.returncode == 2 and "ambiguous_id" in ambiguous.stderr, ambiguous.stderr
    assert fitexplain(env, "status", first[:12]).returncode == 0, "a longer prefix tells them apart"
    other_user = {**env, "FITEXPLAIN_TOKEN": stack.token("cli-other")}
    assert fitexplain(other_user, "status", first[:12]).returncode == 4, "another user's job is not found"
    for job_id in (first, second):
        fitexplain(env, "delete", job_id)


def test_jobs_table_shows_model_data_status_score_and_duration(
    env: dict[str, str], finished_job: str
) -> None:
    table = fitexplain({**env, "COLUMNS": "200"}, "jobs", "--limit", "100")
    assert table.returncode == 0, table.stderr
    header = table.stdout.splitlines()[1]
    for column in ("id", "endpoint", "model", "data", "status", "score", "duration"):
        assert column in header, header
    row = next(line for line in table.stdout.splitlines() if finished_job[:8] in line)
    assert "gbdtclassification" in row and "lightgbm" in row and "iris_dataset2.csv" in row, row
    assert "accuracy" in row and " s " in row + " ", row


def test_plot_draws_what_its_name_says(env: dict[str, str], submitted: dict, tmp_path: Path) -> None:
    """A result with permutation and SHAP: `shap.png` draws SHAP, `importance.png` the importance."""
    _, out, _ = submitted["mlregression"]  # interpretability=permutation,shap
    for name, kind in (
        ("shap.png", "shap-summary"),
        ("beeswarm.png", "shap-beeswarm"),
        ("importance.png", "importance"),
    ):
        done = fitexplain(env, "plot", str(out), "-o", str(tmp_path / name))
        assert done.returncode == 0 and f"{kind} plot written" in done.stderr, done.stderr
        assert_png(tmp_path / name)


def test_target_id_column_and_training_index_name_the_files_columns(
    env: dict[str, str], tmp_path: Path
) -> None:
    table = pd.read_csv(REPO / "tests/data/tables/customers.csv")
    table["split"] = [int(row % 4 != 0) for row in range(len(table))]
    path = tmp_path / "customers.csv"
    table.to_csv(path, index=False)
    out = tmp_path / "result.json"
    done = fitexplain(
        env, "submit", str(path), "gbdtclassification", "--target", "churned", "--id-column", "customer_id",
        "--training-index", "split", "-p", "model_type=xgboost", "--wait", "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    test_rows = table[table["split"] == 0]
    assert result["test_ids"] == test_rows["customer_id"].tolist()
    assert result["y_true"] == test_rows["churned"].tolist()
