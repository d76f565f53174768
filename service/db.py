"""Job records and their event log in a SQL database (SQLAlchemy Core; SQLite by default).

Tables:
- ``jobs``: one row per job: status, times (UTC), tile counts, the request and the job spec.
- ``events``: every event of every job, (job_id, seq) with seq = 1, 2, ... per job, so a
  client that connects late or reconnects gets everything it missed, and a restarted service
  knows where each job stood.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("started", sa.DateTime(timezone=True)),
    sa.Column("finished", sa.DateTime(timezone=True)),
    sa.Column("message", sa.Text),
    sa.Column("tiles_done", sa.Integer, nullable=False, default=0),
    sa.Column("tiles_total", sa.Integer, nullable=False),
    sa.Column("nanobragg", sa.Text),
    sa.Column("spec", sa.JSON, nullable=False),  # JobSpec.to_dict()
    sa.Column("summary", sa.JSON, nullable=False),  # shape, levels, grid, geometry (records)
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("store", sa.Text, nullable=False),  # absolute path of the zarr store
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def connect(url: str) -> Engine:
    """An engine for ``url`` with the tables created (SQLite: WAL, shared across threads)."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = sa.create_engine(url, pool_pre_ping=True)
    metadata.create_all(engine)
    return engine


def aware(value: datetime | None) -> datetime | None:
    """``value`` as a UTC-aware datetime (SQLite returns naive ones)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
