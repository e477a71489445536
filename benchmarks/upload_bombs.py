"""Bombs against the service (stack): how fast each kind is refused, against accepting a legitimate upload
of the same size and format, and what a user sending bombs in a loop does to another user's submits.

    .venv/bin/python benchmarks/upload_bombs.py [--repeats 5] [--submits 40]

Part 1, on a stack with the default limits: for each bomb of `tests/bombs.py` (at the scale of the probes
that found them), the median seconds from sending it to its 4xx, and the median seconds to a 202 for a
legitimate upload of about as many bytes in the same format (random normal values: a gzip CSV, a plain
CSV, a Parquet file or an Arrow IPC stream); the ratio of the two, the code, and what the refusal read.

Part 2, on one stack per rejected-upload budget (off, i.e. 10^9 a minute, so that only the read limits
work; then the default): user A's trivial submit (iris, 5 lightgbm trees, answered 202) `--submits`
times alone, then as many times while user B sends bombs in a loop (one after another, each kind in
turn), then alone again; the median of each phase and the ratio of the bombed one to the mean of the
two quiet ones. A control row does the same with user B sending legitimate uploads of the bombs' sizes
and formats (accepted): the cost of the upload traffic itself. User B's loop runs in a process of its
own. No worker runs: every submit is answered by the API alone, which is what is measured.
"""

from __future__ import annotations

import argparse
import gzip
import io
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stack import running_stack

from tests.bombs import BOMBS, TRIVIAL_MODEL, Upload, long_line, post_upload
from tests.stack import DATA, Client

UNLIMITED = {
    "FITEXPLAIN_MAX_RUNNING_JOBS_PER_USER": "1000000000",
    "FITEXPLAIN_MAX_SUBMISSIONS_PER_MINUTE": "1000000000",
}
NO_BUDGET = {**UNLIMITED, "FITEXPLAIN_MAX_REJECTED_UPLOADS_PER_MINUTE": "1000000000"}
DEFAULT_BUDGET = {**UNLIMITED, "FITEXPLAIN_MAX_REJECTED_UPLOADS_PER_MINUTE": "30"}


def legitimate_like(bomb: Upload) -> Upload:
    """Random normal values (x0..x9, target) in the bomb's format, about as many bytes as the bomb."""
    name, content_type, content = bomb
    target_size = len(content)
    rng = np.random.default_rng(7)
    rows = 64
    while True:
        table = pa.table(
            {**{f"x{i}": rng.standard_normal(rows) for i in range(10)}, "target": rng.standard_normal(rows)}
        )
        encoded = _encode(table, name)
        if len(encoded) >= target_size or rows > 5_000_000:
            return f"legit-{name}", content_type, encoded
        rows = max(rows + 1, int(rows * target_size / max(1, len(encoded)) * 1.05))


def _encode(table: pa.Table, name: str) -> bytes:
    sink = io.BytesIO()
    if name.endswith(".parquet"):
        pq.write_table(table, sink)
    elif name.endswith(".arrows"):
        with ipc.new_stream(sink, table.schema, options=ipc.IpcWriteOptions(compression="zstd")) as writer:
            writer.write_table(table)
    else:
        table.to_pandas().to_csv(sink, index=False, float_format="%.6g")
        if name.endswith(".gz"):
            return gzip.compress(sink.getvalue(), 6)
    return sink.getvalue()


def post(client: Client, upload: Upload) -> tuple[float, int, dict[str, object]]:
    started = time.perf_counter()
    response = post_upload(client.http, upload)
    seconds = time.perf_counter() - started
    return seconds, response.status_code, response.json()


def refusal_times(repeats: int) -> None:
    print("\n## A bomb's refusal against a legitimate upload of the same size (default limits)\n")
    print(
        "| bomb | bytes sent | refused in (s) | answer | read (decoded bytes, rows) "
        "| legitimate 202 in (s) | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    with running_stack(0, extra_env=NO_BUDGET) as (_, client):
        for label, build in BOMBS.items():
            bomb = build()
            legit = legitimate_like(bomb)
            bomb_times, legit_times = [], []
            for _ in range(repeats):  # alternate, so that drift affects both alike
                seconds, status, body = post(client, bomb)
                bomb_times.append(seconds)
                legit_seconds, legit_status, legit_body = post(client, legit)
                if legit_status != 202:
                    raise RuntimeError(f"legitimate {label}: {legit_status} {legit_body}")
                legit_times.append(legit_seconds)
            read = body.get("read") or {}
            refused, accepted = statistics.median(bomb_times), statistics.median(legit_times)
            print(
                f"| {label} | {len(bomb[2]):,} | {refused:.3f} | {status} {body.get('code')} | "
                f"{read.get('decoded_bytes', 0):,}, {read.get('rows', 0):,} | {accepted:.3f} "
                f"(of {len(legit[2]):,} bytes) | {refused / accepted:.2f} |"
            )


# The bombs of part 1, with a shorter long line.
LOOP_BOMBS: list[Callable[[], Upload]] = list({**BOMBS, "long line": lambda: long_line(8 << 20)}.values())


def trivial_submits(client: Client, count: int) -> list[float]:
    iris = (DATA / "iris_dataset2.csv").read_bytes()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.http.post(
            "/gbdtclassification", params=TRIVIAL_MODEL, files={"file": ("iris.csv", iris, "text/csv")}
        )
        times.append(time.perf_counter() - started)
        if response.status_code != 202:
            raise RuntimeError(f"trivial submit: {response.status_code} {response.text[:300]}")
    return times


def bomb_loop(url: str, token: str, bombs: list[Upload], stop: Event, answers: Queue[dict[str, int]]) -> None:
    """User B's loop, in a process of its own (sharing no GIL with user A's client): each bomb in turn
    until `stop`; the count of each answer put on `answers`."""
    bomber = Client(url, token)
    counts: dict[str, int] = {}
    while not stop.is_set():
        for bomb in bombs:
            if stop.is_set():
                break
            _, status, body = post(bomber, bomb)
            key = f"{status} {body.get('code')}"
            counts[key] = counts.get(key, 0) + 1
    answers.put(counts)


def under_bombs(submits: int, bombs: list[Upload], env: dict[str, str], label: str) -> None:
    context = multiprocessing.get_context("fork")  # the child inherits the bombs, built once
    with running_stack(0, extra_env=env) as (stack, victim):
        trivial_submits(victim, 5)  # warm up
        quiet = trivial_submits(victim, submits)
        stop, answers = context.Event(), context.Queue()
        loop = context.Process(
            target=bomb_loop, args=(stack.url, stack.token("bomber"), bombs, stop, answers)
        )
        loop.start()
        bombed = trivial_submits(victim, submits)
        stop.set()
        counts = answers.get(timeout=600)
        loop.join()
        quiet_again = trivial_submits(victim, submits)
    quiet_p50 = (statistics.median(quiet) + statistics.median(quiet_again)) / 2
    bombed_p50 = statistics.median(bombed)
    print(
        f"| {label} | {statistics.median(quiet) * 1000:.1f} / {statistics.median(quiet_again) * 1000:.1f} | "
        f"{bombed_p50 * 1000:.1f} | {bombed_p50 / quiet_p50:.2f} | "
        + ", ".join(f"{count} x {key}" for key, count in sorted(counts.items()))
        + " |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--submits", type=int, default=40)
    parser.add_argument("--loop-only", action="store_true", help="only part 2, the trivial submits")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if not args.loop_only:
        refusal_times(args.repeats)
    bombs = [build() for build in LOOP_BOMBS]
    print("\n## Another user's trivial submit while one user sends bombs in a loop\n")
    print(
        "| rejected-upload budget | p50 alone, before / after (ms) | p50 under bombs (ms) | ratio "
        "| bomber's answers |"
    )
    print("|---|---|---|---|---|")
    under_bombs(args.submits, bombs, NO_BUDGET, "off (10^9 a minute)")
    under_bombs(args.submits, bombs, DEFAULT_BUDGET, "default (30 a minute)")
    legitimate = [legitimate_like(bomb) for bomb in bombs]
    under_bombs(
        args.submits, legitimate, NO_BUDGET, "control: legitimate uploads of the same sizes, accepted"
    )


if __name__ == "__main__":
    main()
