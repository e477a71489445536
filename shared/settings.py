"""Service settings, read once from `FITEXPLAIN_*` environment variables (and `.env`).

Without a database or broker URL the service runs embedded: SQLite for both, under `home`.
"""

from __future__ import annotations

from dataclasses import fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.ml.spec import Limits

LIMITS = Limits()
"""The ML core's limits as it declares them: their settings take these defaults (one definition each)."""


class Settings(BaseSettings):
    """Every setting, read from FITEXPLAIN_<NAME>; each description is its line in the docs' settings table
    (scripts/settings_table.py prints it)."""

    model_config = SettingsConfigDict(env_prefix="FITEXPLAIN_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = Field(
        "development", description="what the deployment is (`development` or `production`), for its operators"
    )
    home: Path = Field(
        Path("var"), description="where the embedded databases, blobs and uploads in progress live"
    )
    database_url: str = Field(
        "", description="e.g. `postgresql+psycopg://user:pw@host/db`; empty: SQLite under the home"
    )
    broker_url: str = Field(
        "",
        description="e.g. `redis://host:6379/0`; empty: SQLite under the home (kombu's SQLAlchemy transport)",
    )
    host: str = Field("127.0.0.1", description="address the API listens on")
    port: int = Field(8000, description="API port")
    queue: str = Field(
        "fitexplain", description="the broker queue of small jobs; large jobs go to this name + `.large`"
    )

    metrics_token: str = Field(
        "",
        description="a bearer token that opens `/metrics` to other hosts (Prometheus' `authorization` "
        "credentials); empty: `/metrics` answers only requests from this host",
    )

    # Waiting for results inside a request.
    compat_wait: float = Field(120.0, ge=0, le=600, description="seconds the `/techtonique` mount waits")

    # Input limits.
    max_upload_bytes: int = Field(
        1_000_000_000,
        description="larger uploads get 413 before they are parsed; an upload with a missing or bad token "
        "gets 401, and one of 64 KiB or more (or of undeclared size) over the rate or running-jobs limit "
        "(or with the storage quota used up) 429/413, before its body is read; a smaller one gets the same "
        "answer once its data has been checked, before anything is kept",
    )
    max_header_bytes: int = Field(
        65_536, ge=1024, description="request line plus headers; a larger request head gets 431"
    )
    max_rows: int = Field(LIMITS.max_rows, description="rows of an upload (422 beyond)")
    max_columns: int = Field(LIMITS.max_columns, description="columns of an upload (422 beyond)")
    max_cell_chars: int = Field(LIMITS.max_cell_chars, description="characters of one CSV cell (422 beyond)")
    max_line_bytes: int = Field(
        LIMITS.max_line_bytes, gt=0, description="bytes of one CSV line (422 `line_too_long` beyond)"
    )
    max_decompressed_bytes: int = Field(
        LIMITS.max_decompressed_bytes,
        gt=0,
        description="bytes an upload may decode to: a gzip CSV's text, or what a Parquet or Arrow file's "
        "data declare and decode to (413 `decompressed_too_large` as soon as it is met)",
    )
    max_decompression_ratio: float = Field(
        LIMITS.max_decompression_ratio,
        gt=0,
        description="decoded bytes per byte read, beyond the first MiB decoded (413 "
        "`compression_ratio_too_high` as soon as it is met: a decompression bomb)",
    )
    max_classes: int = Field(
        LIMITS.max_classes, description="classes of a classification target (422 beyond)"
    )
    max_explain_rows: int = Field(LIMITS.max_explain_rows, description="test rows SHAP explains (422 beyond)")
    max_predict_explain_rows: int = Field(
        LIMITS.max_predict_explain_rows,
        gt=0,
        description="rows SHAP explains in a predict job (`POST /jobs/{id}/predict`; 422 beyond), computed "
        "in batches",
    )
    predict_batch_rows: int = Field(
        LIMITS.predict_batch_rows,
        gt=0,
        description="rows a predict job scores and explains at a time, each batch one row group of its "
        "result's Parquet form (its memory: about rows x features x 8 bytes a copy)",
    )
    max_background_rows: int = Field(
        LIMITS.max_background_rows,
        description="SHAP's background: a seeded sample of at most this many training rows, and the most "
        "`background=sample:N` or a background file may hold (422 beyond)",
    )
    max_shap_floats: int = Field(
        LIMITS.max_shap_floats, description="SHAP values of one job (rows x features x classes; 422 beyond)"
    )
    max_categories: int = Field(
        LIMITS.max_categories,
        description="one-hot columns of a categorical feature; rarer categories share one",
        ge=2,
    )

    # Per-user limits.
    max_running_jobs_per_user: int = Field(
        4, description="unfinished jobs of one user (429 with Retry-After)"
    )
    max_submissions_per_minute: int = Field(
        60, description="submits of one user a minute (429 with Retry-After)"
    )
    max_rejected_uploads_per_minute: int = Field(
        30,
        gt=0,
        description="refused uploads of one user a minute (a 4xx once the body was read), each counting "
        "one and one more per 16 MiB it cost to read; past it, the user's submits get 429 with Retry-After "
        "before their body is read",
    )
    max_storage_bytes_per_user: int = Field(
        1_000_000_000,
        ge=0,
        description="bytes of uploads, results and kept models a user's jobs keep, an upload or model "
        "shared by several users counting for each (413 beyond; see Storage quota)",
    )
    token_ttl_days: int | None = Field(
        None,
        description="days a token made by `fitexplain create-token` is valid, unless `--ttl-days` says; "
        "unset: no expiry",
    )

    # Reliability: soft < hard < visibility timeout, so Redis never redelivers a job still running.
    soft_time_limit: int = Field(
        1800,
        description="seconds of computation before a job is killed (`time_limit`, not retried); must be "
        "below the hard limit",
    )
    hard_time_limit: int = Field(
        1860,
        description="Celery's backstop (its soft limit is halfway to this); must be below the visibility "
        "timeout",
    )
    visibility_timeout: int = Field(
        7200, description="seconds before Redis redelivers an unacknowledged job message"
    )
    max_attempts: int = Field(3, description="a job that loses its worker this often fails as `worker_lost`")
    heartbeat_seconds: float = Field(
        2.0, gt=0, description="how often a worker records its job's progress and its own liveness"
    )
    cancel_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="how often a worker checks that its running job was not cancelled"
    )
    stale_after_seconds: float = Field(
        6.0,
        gt=0,
        description="a worker silent this long is lost: `/readyz` and the dashboard count it out, its job "
        "is requeued at the next sweep, and it can no longer write the job (at least twice the heartbeat)",
    )
    sweep_seconds: float = Field(
        1.0,
        gt=0,
        description="how often the API publishes jobs the broker missed and requeues lost workers' jobs",
    )
    stop_grace_seconds: float = Field(
        30.0,
        ge=0,
        description="how long a stopping `fitexplain serve` lets its workers finish their running jobs; "
        "a job still running then is stopped and runs again after the next start",
    )
    worker_forget_seconds: float = Field(
        600.0,
        description="a worker row silent this long is deleted (shown as dead on the dashboard until then)",
    )
    worker_max_memory_per_child_kb: int = Field(
        4_000_000, description="a worker pool process using more is replaced after its job"
    )
    worker_max_memory_mb: int = Field(
        LIMITS.worker_max_memory_mb,
        gt=0,
        description="jobs whose data would need more in a worker (rows x (features + 2) x 8 bytes x 6 "
        "copies) are refused at submit (422 `over_memory`), as soon as the rows read or a file's metadata "
        "say so; xgboost jobs run on the Dask cluster instead when `dask_scheduler` is set",
    )
    dask_scheduler: str = Field(
        "",
        description="address of a Dask `distributed` scheduler (`tcp://host:8786`): xgboost jobs too large "
        "for one worker (worker_max_memory_mb) are fitted and explained there; needs the `dask` extra. "
        "Empty: they are refused",
    )
    dask_partition_mb: int = Field(
        128,
        gt=0,
        description="the size of the partitions a Dask job reads its upload in (whole row groups of the "
        "stored Parquet file: 4 MB of CSV text, or 65,536 rows of a Parquet or Arrow upload)",
    )

    fair_share_window_seconds: float = Field(
        600.0,
        gt=0,
        description="fair share: the next job to start is that of the user who used the least worker time "
        "in this many seconds (their running jobs, and those finished within it), the oldest among equals",
    )

    # Cost (estimated worker-seconds, shared/ml/cost.py).
    max_job_seconds: float = Field(
        180.0, gt=0, description="per-job budget: jobs estimated above it are refused (422 `over_budget`)"
    )
    large_job_seconds: float = Field(
        30.0,
        ge=0,
        description="jobs estimated above it go to the large queue, so small jobs never wait behind them",
    )

    # Work sizing.
    model_threads: int | None = Field(
        1,
        description="threads per model (boosters, OpenMP, BLAS) in a worker process; 1 suits one worker "
        "process per core, raise it for one worker on a many-core machine",
    )
    worker_cores: int | None = Field(
        None,
        ge=1,
        description="cores this machine's workers share; unset: the CPUs the worker may run on (set it in "
        "a container with a CPU quota, which the worker cannot see)",
    )
    # Tree explanations are cheap per row (exact TreeSHAP: about 10 us a row for xgboost or lightgbm trees
    # of depth 3), model-agnostic ones cost thousands of times more. Splitting costs the job's pickled
    # arrays and a merge, so trees split only from hundreds of thousands of rows.
    fanout_min_rows: int = Field(
        200_000,
        description="test rows from which a tree explanation is split across workers; a job fans out only "
        "while another live worker of its queue is idle and adds cores (on another machine, or on this one "
        "while `FITEXPLAIN_WORKER_CORES` leaves room for both jobs' `FITEXPLAIN_MODEL_THREADS`)",
    )
    fanout_chunk_rows: int = Field(100_000, description="test rows of one chunk of a split tree explanation")
    fanout_min_rows_agnostic: int = Field(
        1_000,
        description="`FITEXPLAIN_FANOUT_MIN_ROWS` for model-agnostic and nnetsauce explanations",
    )
    fanout_chunk_rows_agnostic: int = Field(
        500,
        description="`FITEXPLAIN_FANOUT_CHUNK_ROWS` for model-agnostic and nnetsauce explanations",
    )

    max_model_bytes: int = Field(
        200_000_000,
        ge=0,
        description="a succeeded job's fitted model is kept (GET /jobs/{id}/model) when its pickle is at "
        "most this many bytes; a larger one is not, and its card says so (the job still succeeds)",
    )
    model_conversion_republish_seconds: float = Field(
        120.0,
        gt=0,
        description="a model download format made on first download (skops, onnx, mlflow, bundle) whose "
        "conversion was asked for this many seconds ago and has neither stored its file nor failed is asked "
        "for again by the next download (its worker was lost); sooner, downloads only answer 202",
    )
    result_parquet_min_rows: int = Field(
        10_000,
        ge=0,
        description="results with this many test rows or more are also stored as Parquet, so a Parquet "
        "download is not converted on request; a predict job's result of this many rows or more is stored "
        "only as Parquet, and its JSON written from it as it is sent",
    )

    retention_days: int = Field(
        30, description="finished jobs, results and uploads older than this are deleted"
    )

    storage_url: str = Field(
        "",
        description="where job bytes live: a directory, `file:///path`, `s3://bucket/prefix` (see Storage); "
        "empty: the home's `blobs`",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description='JSON passed to the fsspec filesystem, e.g. `{"endpoint_url": "http://minio:9000"}`',
    )
    orphan_blob_minutes: float = Field(
        30.0,
        gt=0,
        description="a blob no row references (a crash between its write and its row's commit), older than "
        "this, is deleted by the hourly sweep",
    )

    webhook_allow_private: bool = Field(
        False, description="let `webhook_url` point at loopback/private addresses (tests, one-host installs)"
    )
    webhook_timeout: float = Field(10.0, gt=0, le=120, description="seconds for one whole delivery attempt")
    webhook_retry_schedule: str = Field(
        "5,30,120,600,1800,7200,21600,43200",
        description="seconds before each retry (±20 % jitter); after the last one the delivery is `failed`",
    )
    webhook_tests_per_minute: int = Field(
        10,
        ge=1,
        description="`POST /webhooks/test` calls of one user a minute, counted in each API process (429 "
        "with Retry-After beyond)",
    )
    webhook_poll_seconds: float = Field(1.0, gt=0, description="how often the API sends due webhooks")
    webhook_secret_overlap_seconds: float = Field(
        86_400.0, description="after a rotation, the old secret signs this long too"
    )
    webhook_resolver: str = Field(
        "", description="`module:function` replacing DNS resolution for webhooks (tests only)"
    )

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.home / 'fitexplain.db').resolve()}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{(self.home / 'broker.db').resolve()}"
        if self.hard_time_limit <= self.soft_time_limit:
            raise ValueError("FITEXPLAIN_HARD_TIME_LIMIT must be greater than FITEXPLAIN_SOFT_TIME_LIMIT")
        if self.stale_after_seconds < 2 * self.heartbeat_seconds:
            raise ValueError(
                "FITEXPLAIN_STALE_AFTER_SECONDS must be at least twice FITEXPLAIN_HEARTBEAT_SECONDS"
            )
        if self.visibility_timeout <= self.hard_time_limit:
            raise ValueError("FITEXPLAIN_VISIBILITY_TIMEOUT must be greater than FITEXPLAIN_HARD_TIME_LIMIT")
        _ = self.webhook_retry_delays  # refuse a malformed schedule at start-up
        return self

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        """FITEXPLAIN_WEBHOOK_RETRY_SCHEDULE as seconds: comma-separated, each > 0 (may be empty)."""
        try:
            delays = tuple(float(part) for part in self.webhook_retry_schedule.split(",") if part.strip())
        except ValueError:
            delays = (-1.0,)
        if any(not delay > 0 for delay in delays):
            raise ValueError(
                "FITEXPLAIN_WEBHOOK_RETRY_SCHEDULE must be comma-separated positive seconds, "
                f"got {self.webhook_retry_schedule!r}"
            )
        return delays

    @property
    def webhook_lease_seconds(self) -> float:
        """How long a dispatcher owns a delivery it claimed: longer than any attempt can take."""
        return 2 * self.webhook_timeout + 5

    @property
    def large_queue(self) -> str:
        """The queue of jobs whose estimated cost is large; `queue` carries the small ones."""
        return f"{self.queue}.large"

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite")

    def limits(self) -> Limits:
        """The ML core's Limits, read from the settings of the same names (one place to add a limit)."""
        return Limits(**{f.name: getattr(self, f.name) for f in fields(Limits)})


@lru_cache
def get_settings() -> Settings:
    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    return settings
