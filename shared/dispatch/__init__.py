"""Getting queued jobs, and their fan-out chunks, to workers.

- `publish`: publish after commit, and the sweep that publishes what was missed or lost.
- `marks`: the dispatch marks of submitted jobs, written a moment after their messages were published.
- `queue`: the Celery app's configuration and the one way to publish a task by name.
- `routing`: which broker queue serves a job (small or large).
- `sql_broker`: the embedded broker on the database, for a service with no Redis.
- `chunks`: a job's explanation cut into rows any worker may claim, compute and store.

Dispatch sits above the job store (`shared.store`): the job row is the truth, the broker only carries ids.
"""
