"""The operational collections tables in DuckDB (schema `analytics`), append-only.

- `analytics.reminder_log`: one row per status change of a reminder (queued, sending, sent, called,
  skipped, failed) with its time and outcome. A reminder's state is its latest row. `queued` rows
  carry `scheduled_for`, the time the reminder is due to be sent.
- `analytics.collection_notes`: promises to pay, holds, do-not-contact flags and releases recorded by
  collectors (`ar-pipeline reminders promise|hold|release`).

Unlike the marts these are not rebuilt from sources: they are the record of what was done.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

import duckdb
import polars as pl

from ar_pipeline.lib.collections.queue import LOG_SCHEMA, NOTE_SCHEMA, empty
from ar_pipeline.lib.warehouse import table_exists

LOG_TABLE = "analytics.reminder_log"
NOTES_TABLE = "analytics.collection_notes"
LOG_STATUSES = ("queued", "sending", "sent", "called", "skipped", "failed")
NOTE_TYPES = ("promise", "hold", "do_not_contact", "release")

DDL = f"""
CREATE SCHEMA IF NOT EXISTS analytics;
CREATE TABLE IF NOT EXISTS {LOG_TABLE} (
    reminder_id VARCHAR NOT NULL,
    as_of_date DATE NOT NULL,
    customer_id VARCHAR NOT NULL,
    level VARCHAR NOT NULL,
    channel VARCHAR NOT NULL,
    status VARCHAR NOT NULL CHECK (status IN {LOG_STATUSES}),
    status_at TIMESTAMPTZ NOT NULL,
    outcome VARCHAR,
    recipient VARCHAR,
    invoice_keys VARCHAR,
    open_amount_home DOUBLE,
    risk_band VARCHAR,
    escalated BOOLEAN,
    attempt_id VARCHAR,
    scheduled_for TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS {NOTES_TABLE} (
    note_id VARCHAR NOT NULL,
    customer_id VARCHAR NOT NULL,
    note_type VARCHAR NOT NULL CHECK (note_type IN {NOTE_TYPES}),
    noted_on DATE NOT NULL,
    until DATE,
    amount DOUBLE,
    note VARCHAR,
    created_at TIMESTAMPTZ NOT NULL
);
"""


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(DDL)
    # warehouses created before reminders were scheduled lack the column
    conn.execute(f"ALTER TABLE {LOG_TABLE} ADD COLUMN IF NOT EXISTS scheduled_for TIMESTAMPTZ")


@dataclass(frozen=True)
class LogEntry:
    reminder_id: str
    as_of_date: date
    customer_id: str
    level: str
    channel: str
    status: str
    status_at: datetime
    outcome: str | None = None
    recipient: str | None = None
    invoice_keys: str | None = None
    open_amount_home: float | None = None
    risk_band: str | None = None
    escalated: bool | None = None
    attempt_id: str | None = None
    scheduled_for: datetime | None = None  # on `queued` rows: when the reminder is due to be sent


def append_log(conn: duckdb.DuckDBPyConnection, entry: LogEntry) -> None:
    """Write one status row. Each row is its own transaction, so it is on disk when this returns."""
    if entry.status not in LOG_STATUSES:
        raise ValueError(f"status {entry.status!r} must be one of {LOG_STATUSES}")
    conn.execute(
        f"INSERT INTO {LOG_TABLE} (reminder_id, as_of_date, customer_id, level, channel, status, status_at, "
        "outcome, recipient, invoice_keys, open_amount_home, risk_band, escalated, attempt_id, scheduled_for) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [entry.reminder_id, entry.as_of_date, entry.customer_id, entry.level, entry.channel, entry.status,
         entry.status_at, entry.outcome, entry.recipient, entry.invoice_keys, entry.open_amount_home,
         entry.risk_band, entry.escalated, entry.attempt_id, entry.scheduled_for],
    )


def read_log(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every log row in the order written (status_at, then insertion order)."""
    if not table_exists(conn, *LOG_TABLE.split(".")):
        return empty(LOG_SCHEMA)
    return conn.sql(f"SELECT * FROM {LOG_TABLE} ORDER BY status_at, rowid").pl()


def latest_status(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """reminder_id -> its latest status."""
    log = read_log(conn)
    if log.height == 0:
        return {}
    last = log.group_by("reminder_id", maintain_order=True).last()
    return dict(zip(last["reminder_id"], last["status"], strict=True))


def add_note(conn: duckdb.DuckDBPyConnection, *, customer_id: str, note_type: str, noted_on: date,
             created_at: datetime, until: date | None = None, amount: float | None = None,
             note: str | None = None) -> str:
    if note_type not in NOTE_TYPES:
        raise ValueError(f"note type {note_type!r} must be one of {NOTE_TYPES}")
    if note_type == "promise" and until is None:
        raise ValueError("a promise to pay needs a date (--until)")
    if until is not None and until < noted_on:
        raise ValueError(f"--until {until} is before the note's date {noted_on}")
    ensure_tables(conn)
    note_id = f"note_{uuid.uuid4().hex[:16]}"
    conn.execute(f"INSERT INTO {NOTES_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 [note_id, customer_id, note_type, noted_on, until, amount, note, created_at])
    return note_id


def read_notes(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    if not table_exists(conn, *NOTES_TABLE.split(".")):
        return empty(NOTE_SCHEMA)
    return conn.sql(f"SELECT * FROM {NOTES_TABLE} ORDER BY noted_on, created_at, rowid").pl()
