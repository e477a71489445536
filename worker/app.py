"""The Celery worker application: shared configuration plus this package's tasks.

The ML stack is imported here, once, before the pool forks: a cold import of nnetsauce, shap and
xgboost costs seconds, which no job should pay.
"""

from __future__ import annotations

from celery.signals import worker_process_init

from shared.dispatch.queue import get_celery

app = get_celery()
app.conf.include = ["worker.tasks", "worker.convert_model"]


def warm_imports() -> None:
    """Everything a job imports, including what reading a stored upload pulls in (pandas' conversion of
    Arrow tables), so that a computation child's first job imports nothing."""
    import catboost  # noqa: F401
    import lightgbm  # noqa: F401
    import nnetsauce  # noqa: F401
    import pyarrow.pandas_compat  # noqa: F401
    import shap  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    import xgboost  # noqa: F401

    import shared.ml.ingest.canonical
    import shared.ml.pipeline  # noqa: F401
    from shared.ml.explain import _tabulated_treeshap
    from shared.ml.explain._nnetsauce_pair_kernel import warm_up

    warm_up()  # compiled SHAP loops, inherited by the forked children
    _tabulated_treeshap.warm_up()


@worker_process_init.connect
def _prepare_child(**_: object) -> None:
    """A forked child must not reuse the parent's database connections, and its native thread pools
    (OpenMP, BLAS) follow FITEXPLAIN_MODEL_THREADS, so workers sharing a machine do not oversubscribe it."""
    from threadpoolctl import threadpool_limits

    from shared.db import get_engine
    from shared.settings import get_settings
    from worker.lifeline import die_with_parent

    die_with_parent()  # a pool process never outlives its worker (killed with SIGKILL, say)
    get_engine().dispose(close=False)
    threads = get_settings().model_threads
    if threads is not None:
        threadpool_limits(limits=threads)


warm_imports()

import worker.registry  # noqa: E402, F401  (connects the worker-row signals)
