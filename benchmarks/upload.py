"""How long a large upload takes to submit, and how much memory the API needs for six at once.

A 190,000-row CSV (24 float features, `target`, `training_index`; about 90 MB) is generated in a temp
dir, with its gzip and Parquet versions. Through a real API process (Postgres, Redis; no worker: only
the submit is timed) it measures:
  - one submit of each format (the answer time: upload, validation, conversion, storage), `--repeats`
    times (the same file again: converted and checked again, stored once), the median, and the API
    process's CPU time for each (what decides how many uploads two cores take at once);
  - six concurrent CSV submits (six distinct files): each one's answer time, and the API process's
    peak RSS during them (VmHWM, reset before the round via /proc/<pid>/clear_refs).
The baseline in the same run is `pandas.read_csv` of the same file in this process. With
`--baseline-repo PATH` the CSV rounds are also run against the API of another checkout (e.g. the main
branch before streaming uploads: /work/main), on a fresh stack.

    .venv/bin/python benchmarks/upload.py [--baseline-repo /work/main] [--rows 190000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `tests` and `benchmarks` importable
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks._stack import running_stack  # noqa: E402
from tests.stack import Client, Stack  # noqa: E402

N_FEATURES = 24
CONCURRENT = 6
PARAMS = {"model_type": "xgboost", "n_estimators": 10}
STACK_ENV = {"FITEXPLAIN_MAX_JOB_SECONDS": "100000", "FITEXPLAIN_MAX_STORAGE_BYTES_PER_USER": str(10**11)}
FORMATS = {
    "csv": ("data.csv", "text/csv"),
    "csv.gz": ("data.csv.gz", "application/gzip"),
    "parquet": ("data.parquet", "application/vnd.apache.parquet"),
}


def generate(directory: Path, n_rows: int) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(n_rows, N_FEATURES)), columns=[f"x{j}" for j in range(N_FEATURES)])
    frame["target"] = rng.integers(0, 2, n_rows)
    frame["training_index"] = (rng.random(n_rows) < 0.7).astype(int)
    paths = {"csv": directory / "data.csv", "csv.gz": directory / "data.csv.gz"}
    frame.to_csv(paths["csv"], index=False)
    with open(paths["csv"], "rb") as plain, gzip.open(paths["csv.gz"], "wb", compresslevel=1) as packed:
        shutil.copyfileobj(plain, packed)
    paths["parquet"] = directory / "data.parquet"
    frame.astype({"target": str, "training_index": str}).to_parquet(paths["parquet"], index=False)
    for i in range(CONCURRENT):  # distinct files (own sha256): a header name differs
        variant = directory / f"variant{i}.csv"
        with open(paths["csv"], "rb") as source, open(variant, "wb") as out:
            out.write(source.readline().replace(b"x0,", f"x0_{i},".encode(), 1))
            shutil.copyfileobj(source, out)
        paths[f"variant{i}"] = variant
    return paths


def submit(client: Client, path: Path, name: str, content_type: str) -> tuple[float, int, str]:
    started = time.perf_counter()
    with open(path, "rb") as file:
        response = client.http.post(
            "/gbdtclassification",
            params={key: str(value) for key, value in PARAMS.items()},
            files={"file": (name, file, content_type)},
            timeout=600,
        )
    return time.perf_counter() - started, response.status_code, response.text[:200]


def api_pids(stack: Stack) -> list[int]:
    assert stack.api is not None
    pids = [stack.api.pid]
    children = Path(f"/proc/{stack.api.pid}/task/{stack.api.pid}/children")
    if children.exists():
        pids += [int(pid) for pid in children.read_text().split()]
    return pids


def reset_peak(pids: list[int]) -> None:
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes so far: the work, whatever else shares the machine."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def measure(
    label: str, paths: dict[str, Path], formats: list[str], env: dict[str, str], repeats: int
) -> None:
    with running_stack(0, extra_env={**STACK_ENV, **env}) as (stack, client):
        submit(client, paths["csv"].parent / "warm.csv", "warm.csv", "text/csv")  # imports, connections
        pids = api_pids(stack)
        for kind in formats:
            cpu_before = cpu_seconds(pids)
            answers = [submit(client, paths[kind], *FORMATS[kind]) for _ in range(repeats)]
            cpu_each = (cpu_seconds(pids) - cpu_before) / repeats
            refused = "".join(f" HTTP {code} {text}" for _, code, text in answers if code != 202)
            times = sorted(seconds for seconds, _, _ in answers)
            listed = ", ".join(f"{seconds:.2f}" for seconds, _, _ in answers)
            print(
                f"{label}: one {kind} submit: median {times[len(times) // 2]:.2f} s ({listed}), "
                f"API CPU {cpu_each:.2f} s each{refused}"
            )
        reset_peak(pids)
        cpu_before = cpu_seconds(pids)
        started = time.perf_counter()
        with ThreadPoolExecutor(CONCURRENT) as pool:
            answers = list(
                pool.map(
                    lambda i: submit(client, paths[f"variant{i}"], "data.csv", "text/csv"), range(CONCURRENT)
                )
            )
        wall = time.perf_counter() - started
        times = ", ".join(f"{seconds:.2f} s ({code})" for seconds, code, _ in answers)
        print(f"{label}: {CONCURRENT} concurrent CSV submits: {times}; all done in {wall:.2f} s")
        print(f"{label}: API peak RSS during them: {peak_mb(pids):,.0f} MB")
        cpu = cpu_seconds(pids) - cpu_before
        print(f"{label}: API CPU time for the six: {cpu:.2f} s (load average {load_average()})")
        failed = [text for _, code, text in answers if code != 202]
        if failed:
            print(f"{label}: refused: {failed[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=190_000)
    parser.add_argument("--baseline-repo", type=Path, default=None)
    parser.add_argument(
        "--repeats", type=int, default=3, help="single submits of each format (the same file: stored once)"
    )
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="fx_upload_bench_"))
    try:
        paths = generate(directory, args.rows)
        (directory / "warm.csv").write_bytes((REPO / "tests" / "data" / "iris_dataset2.csv").read_bytes())
        size = paths["csv"].stat().st_size
        print(f"{os.cpu_count()} CPUs, load average (1, 5, 15 min) {load_average()}")
        print(
            f"CSV {size / 1e6:.1f} MB ({args.rows:,} rows x {N_FEATURES} features + target + training_index)"
        )
        sizes = {kind: paths[kind].stat().st_size / 1e6 for kind in ("csv.gz", "parquet")}
        print(f"gzip {sizes['csv.gz']:.1f} MB, Parquet {sizes['parquet']:.1f} MB")
        started = time.perf_counter()
        pd.read_csv(paths["csv"])
        read_csv = time.perf_counter() - started
        print(f"baseline: pandas.read_csv of the CSV in this process: {read_csv:.2f} s")
        measure("this branch", paths, list(FORMATS), {}, args.repeats)
        if args.baseline_repo is not None:
            repo = args.baseline_repo.resolve()
            measure(
                f"baseline {repo}",
                paths,
                ["csv"],
                {"PYTHONPATH": str(repo), "FITEXPLAIN_MAX_UPLOAD_BYTES": str(10**9)},
                args.repeats,
            )
        print(f"(pandas.read_csv: {read_csv:.2f} s in the same run; load average now {load_average()})")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
