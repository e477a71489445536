"""A user's jobs by a prefix of their id (lowercase hex, `shared.tables.new_id`).

The prefix is matched as a range of ids, `prefix <= id < prefix with its last character incremented`,
compared byte by byte whatever the database's collation: on Postgres with the pattern operators
(`~>=~`, `~<~`), which the index `ix_jobs_user_id_prefix` (`user_id, id varchar_pattern_ops`) answers even
in a generic plan; on SQLite with plain comparisons (its default collation compares bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from shared.db import on_postgres
from shared.tables import Job

MIN_PREFIX = 6
"""The fewest characters of an id that name a job (16⁶ ≈ 17 million prefixes)."""
FULL_ID = 32
HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class PrefixMatches:
    """The caller's jobs whose id starts with a prefix: `count` of them, the newest `ids` first (at most
    the limit asked)."""

    count: int
    ids: list[str]


def is_id_text(text: str) -> bool:
    """Whether `text` can be (a prefix of) a job id: lowercase hex, at most an id long."""
    return 0 < len(text) <= FULL_ID and set(text) <= HEX


def jobs_with_prefix(session: Session, user_id: int, prefix: str, *, limit: int = 10) -> PrefixMatches:
    """The user's jobs whose id starts with `prefix` (lowercase hex, checked by `is_id_text`)."""
    mine = owned_with_prefix(session, user_id, prefix)
    ids = list(
        session.scalars(select(Job.id).where(mine).order_by(Job.created_at.desc(), Job.id).limit(limit))
    )
    count = len(ids) if len(ids) < limit else session.scalar(select(func.count()).where(mine)) or 0
    return PrefixMatches(count, ids)


def owned_with_prefix(session: Session, user_id: int, prefix: str) -> ColumnElement[bool]:
    """SQL: a job of the user whose id starts with `prefix` (lowercase hex, checked by `is_id_text`)."""
    if not is_id_text(prefix):
        raise ValueError(f"not a job id prefix: {prefix!r}")
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # past every id that starts with the prefix
    if on_postgres(session):
        starts = and_(Job.id.op("~>=~")(prefix), Job.id.op("~<~")(upper))
    else:
        starts = and_(Job.id >= prefix, Job.id < upper)
    return and_(Job.user_id == user_id, starts)
