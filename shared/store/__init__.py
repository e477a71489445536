"""The job store: everything that reads or writes the service's rows for a job's life.

- `jobstore`: a job's guarded state changes (submit, claim, succeed, fail, cancel, requeue, delete), each
  a single SQL statement that says what it expects, and the stored result's bytes.
- `job_ids`: a user's jobs found by a prefix of their id, on an index.
- `job_events`: the NOTIFY that wakes requests waiting for a job.
- `uploads`: uploads stored once per content, and each user's storage counts.
- `backgrounds`: the SHAP background file sent with a job, kept on a row of its own.
- `working_data`: what a running job keeps for its fan-out helpers, dropped when it finishes.
- `retention`: finished jobs deleted after the retention period.
- `workers`: the workers' heartbeat rows.
- `migrate`: the schema, built by Alembic from `migrations/` (the one place that sets Alembic up).

The tables themselves are `shared.tables`; the store sits above the blob store (`shared.blobs`) and the
webhook outbox (`shared.webhooks`), whose rows it writes in a job's own transaction.
"""
