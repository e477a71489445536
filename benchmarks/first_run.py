"""A new user's first ten minutes, timed: a fresh clone of a revision, `make run` in it, a token, one job
submitted and its result fetched. Each revision is cloned and run in turn, with the machine's caches as
they are (pip's, uv's): the baseline is the revision given first, measured in the same run.

    .venv/bin/python benchmarks/first_run.py BASELINE_REV [REV ...] [--cold-uv-cache]

Prints, per revision: seconds until `make run` has installed, until the API answers, until a worker is
alive (/readyz), until the first job's result is fetched; the environment's size (du of .venv); and the
ratio of each to the baseline's. --cold-uv-cache gives each run an empty uv cache (UV_CACHE_DIR), so uv
downloads every wheel.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.processes import descendants  # noqa: E402
from tests.stack import free_port  # noqa: E402

DATA = ROOT / "tests" / "data" / "iris_dataset2.csv"


def du(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True).stdout.split()[0])


def until(condition: object, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if condition():  # type: ignore[operator]
                return time.monotonic()
        time.sleep(0.2)
    raise TimeoutError


def first_run(rev: str, work: Path, cold_uv_cache: bool) -> dict[str, float]:
    clone = work / rev.replace("/", "_")
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", rev], check=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FITEXPLAIN_", "VIRTUAL_ENV"))}
    env.update({"FITEXPLAIN_PORT": str(port), "FITEXPLAIN_HOME": str(clone / "var"), "CI": "true"})
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(ROOT)))
    if cold_uv_cache:
        env["UV_CACHE_DIR"] = str(work / f"uv-cache-{clone.name}")
    log = (work / f"{clone.name}.log").open("wb")
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, trust_env=False, timeout=30)
    start = time.monotonic()
    make = subprocess.Popen(
        ["make", "run"],
        cwd=clone,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        installed = until(lambda: any((clone / ".venv").glob(".installed*")), 900)
        answers = until(lambda: http.get("/healthz").status_code == 200, 600)
        alive = until(lambda: (http.get("/readyz").json().get("workers_alive") or 0) >= 1, 600)
        token = subprocess.run(
            [str(clone / ".venv" / "bin" / "fitexplain"), "create-token", "alice"],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-1]
        http.headers["Authorization"] = f"Bearer {token}"
        job = http.post("/gbdtclassification", files={"file": DATA.open("rb")}).json()
        result = until(lambda: http.get(f"/jobs/{job['id']}/result").status_code == 200, 600)
    finally:
        family = descendants(make.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(make.pid, signal.SIGINT)
        try:
            make.wait(timeout=60)
        except subprocess.TimeoutExpired:
            for pid in [make.pid, *family]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    return {
        "installed s": installed - start,
        "API answers s": answers - start,
        "worker alive s": alive - start,
        "first result s": result - start,
        "env GB": du(clone / ".venv") / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revisions", nargs="+", help="the baseline first")
    parser.add_argument("--cold-uv-cache", action="store_true")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    work = Path(tempfile.mkdtemp(prefix="first-run-"))
    try:
        rows = {rev: first_run(rev, work, args.cold_uv_cache) for rev in args.revisions}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    baseline = rows[args.revisions[0]]
    columns = list(baseline)
    print("| revision | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for rev, row in rows.items():
        cells = [f"{row[c]:.1f} ({row[c] / baseline[c]:.2f}x)" for c in columns]
        print(f"| {rev} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
