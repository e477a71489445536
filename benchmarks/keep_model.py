"""A fit's worker time with and without writing the skops file at fit time, in the same run.

The job: scikit-learn's gradient boosting, 1,000 trees of depth 4 on 3,200 rows x 8 (2,240 training rows),
no explanation: the cluster benchmark's medium job. Each round fits it once (`shared.ml.pipeline.prepare`,
as the worker's computation does), then keeps the model with `worker.keep_model.plan_model` twice, in
alternating order: with the formats written at fit time now (`export.AT_FIT_TIME`) and with skops added
(the baseline: what every fit paid when skops was written at fit time). A round's worker time is its fit
plus its keep. It also times the skops conversion alone, which the first skops download now pays once in
a worker. No database: `plan_model` writes nothing.

    .venv/bin/python benchmarks/keep_model.py [--rounds 3] [--rows 3200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from api.endpoint_params import PARAMS_BY_ENDPOINT  # noqa: E402
from shared.ml.model import export  # noqa: E402
from shared.ml.model.kept import kept_from  # noqa: E402
from shared.ml.pipeline import prepare  # noqa: E402
from shared.settings import Settings  # noqa: E402
from tests.canonical import canonical  # noqa: E402
from tests.faults.conftest import slow_csv, slow_params  # noqa: E402
from worker.keep_model import plan_model  # noqa: E402

NOW = export.AT_FIT_TIME
WITH_SKOPS = (*export.AT_FIT_TIME, "skops")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="fits, each kept both ways")
    parser.add_argument("--rows", type=int, default=3200, help="rows of the table (70 %% train)")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    settings = Settings()
    spec = PARAMS_BY_ENDPOINT["gbdtclassification"].model_validate(slow_params()).to_spec()
    source = canonical(slow_csv(n_rows=args.rows))
    fits: list[float] = []
    keeps: dict[tuple[str, ...], list[float]] = {NOW: [], WITH_SKOPS: []}
    stored: dict[tuple[str, ...], int] = {}
    conversions: list[float] = []
    ratios: list[float] = []  # a round's fit + keep with skops at fit time / without
    for round_ in range(args.rounds):
        started = time.perf_counter()
        prepared = prepare(source, spec, settings.limits(), n_threads=settings.model_threads)
        fits.append(time.perf_counter() - started)
        kept = kept_from(prepared, settings.limits())
        applicable = set(export.formats_for(kept))
        order = (NOW, WITH_SKOPS) if round_ % 2 == 0 else (WITH_SKOPS, NOW)
        for formats in order:
            started = time.perf_counter()
            plan = plan_model(f"bench-{round_}", prepared, settings, at_fit_time=formats)
            keeps[formats].append(time.perf_counter() - started)
            assert plan is not None and plan.model is not None, "the model is kept"
            assert {found.format for found in plan.model.files} == set(formats) & applicable
            stored[formats] = len(plan.model.body) + sum(len(found.body) for found in plan.model.files)
        started = time.perf_counter()
        export.export(kept, "skops")
        conversions.append(time.perf_counter() - started)
        ratios.append((fits[-1] + keeps[WITH_SKOPS][-1]) / (fits[-1] + keeps[NOW][-1]))
        print(
            f"round {round_ + 1}: fit {fits[-1]:.2f} s, keep {keeps[NOW][-1]:.3f} s "
            f"(with skops {keeps[WITH_SKOPS][-1]:.3f} s): worker time x{ratios[-1]:.2f} with skops"
        )
    fit = statistics.median(fits)
    print(f"\nmedians of {args.rounds} rounds ({args.rows} rows, 1,000 trees of depth 4)")
    print(f"{'fit-time formats':<22}{'keep, s':>10}{'fit + keep, s':>15}{'stored, MB':>12}")
    for formats in (NOW, WITH_SKOPS):
        keep = statistics.median(keeps[formats])
        print(f"{'+'.join(formats):<22}{keep:>10.3f}{fit + keep:>15.2f}{stored[formats] / 1e6:>12.1f}")
    conversion = statistics.median(conversions)
    print(f"fit alone: {fit:.2f} s; the skops conversion alone (its first download): {conversion:.2f} s")
    print(f"worker time with skops at fit time / without (median): {statistics.median(ratios):.2f}")
    print(f"stored bytes with skops at fit time / without: {stored[WITH_SKOPS] / stored[NOW]:.1f}")


if __name__ == "__main__":
    main()
