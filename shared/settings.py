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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FITEXPLAIN_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    home: Path = Path("var")
    database_url: str = ""
    broker_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    queue: str = "fitexplain"

    # Waiting for results inside a request.
    compat_wait: float = Field(120.0, ge=0, le=600, description="seconds /techtonique/* waits for a result")
    max_wait: float = Field(60.0, ge=0, le=600)

    # Input limits.
    max_upload_bytes: int = 1_000_000_000
    max_header_bytes: int = Field(65_536, ge=1024, description="request line plus headers; larger: 431")
    max_rows: int = 10_000_000
    max_columns: int = 1_000
    max_cell_chars: int = 1_000
    max_classes: int = 100
    max_explain_rows: int = 100_000
    max_background_rows: int = 500
    max_shap_floats: int = 200_000_000

    # Per-user limits.
    max_running_jobs_per_user: int = 4
    max_submissions_per_minute: int = 60
    # Bytes of uploads and results a user's jobs keep (an upload shared by several users counts for each).
    max_storage_bytes_per_user: int = Field(1_000_000_000, ge=0)
    token_ttl_days: int | None = None

    # Reliability: soft < hard < visibility timeout, so Redis never redelivers a job still running.
    soft_time_limit: int = 1800
    hard_time_limit: int = 1860
    visibility_timeout: int = 7200
    max_attempts: int = 3
    heartbeat_seconds: float = 5.0
    # How often a worker asks whether its running job was cancelled (then kills its computation).
    cancel_poll_seconds: float = Field(1.0, gt=0, le=60)
    stale_after_seconds: float = 60.0
    sweep_seconds: float = 5.0
    # A worker row silent this long is deleted (it shows as dead on the dashboard until then).
    worker_forget_seconds: float = 600.0
    worker_max_memory_per_child_kb: int = 4_000_000
    # A job whose data alone would need more than this in a worker (shared/ml/cost.py) is refused at submit.
    worker_max_memory_mb: int = Field(4_000, gt=0)

    # Cost (estimated worker-seconds, shared/ml/cost.py): jobs above max_job_seconds are refused at submit;
    # jobs above large_job_seconds go to the large queue, so small jobs never wait behind them.
    max_job_seconds: float = Field(180.0, gt=0)
    large_job_seconds: float = Field(30.0, ge=0)

    # Work sizing.
    # Threads per model (boosters, OpenMP, BLAS) in each worker process: 1 suits one worker process per
    # core, the usual deployment; raise it for a single worker on a many-core machine.
    model_threads: int | None = 1
    # Cores this machine's workers share (empty: the ones the OS lets the worker run on). A job fans out to
    # an idle worker on the same machine only while the cores leave room for both (worker/fanout.py).
    worker_cores: int | None = Field(None, ge=1)
    # Fan-out: tree explanations are cheap per row (exact TreeSHAP: about 10 us a row for xgboost or
    # lightgbm trees of depth 3), model-agnostic ones cost thousands of times more. Splitting costs the
    # job's pickled arrays and a merge, so trees split only from hundreds of thousands of rows.
    fanout_min_rows: int = 200_000
    fanout_chunk_rows: int = 100_000
    fanout_min_rows_agnostic: int = 1_000
    fanout_chunk_rows_agnostic: int = 500

    # Results with at least this many rows (test rows) are also stored as Parquet by the worker, so a
    # Parquet download streams a blob instead of converting the JSON in the API (0.3-5 CPU-seconds).
    result_parquet_min_rows: int = Field(10_000, ge=0)

    retention_days: int = 30

    # Job bytes (uploads, results, fan-out parts): empty = FITEXPLAIN_HOME/blobs; else an fsspec URL such
    # as s3://bucket/prefix. Options (JSON) go to the filesystem: for S3 endpoint_url, key, secret...
    storage_url: str = ""
    storage_options: dict[str, Any] = Field(default_factory=dict)
    # A blob that no row references and is older than this is an orphan (a crash between its write and
    # the commit of its row) and is removed by the hourly purge.
    orphan_blob_minutes: float = Field(30.0, gt=0)

    # Webhooks: allow_private lets jobs call back to loopback/private addresses (tests, one-host installs).
    webhook_allow_private: bool = False
    webhook_timeout: float = Field(10.0, gt=0, le=120, description="total seconds of one delivery attempt")
    # Seconds before each retry (±20 % jitter); after the last one the delivery fails for good (~21 h).
    webhook_retry_schedule: str = "5,30,120,600,1800,7200,21600,43200"
    webhook_poll_seconds: float = Field(1.0, gt=0, description="how often the API looks for due deliveries")
    webhook_secret_overlap_seconds: float = 86_400.0  # after a rotation, the old secret signs this long
    webhook_resolver: str = ""  # "module:function" replacing DNS resolution for webhooks (tests only)

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.home / 'fitexplain.db').resolve()}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{(self.home / 'broker.db').resolve()}"
        if self.hard_time_limit <= self.soft_time_limit:
            raise ValueError("FITEXPLAIN_HARD_TIME_LIMIT must be greater than FITEXPLAIN_SOFT_TIME_LIMIT")
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
