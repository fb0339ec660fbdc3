"""Read the queue's inputs from the warehouse and write the queue tables.

The as-of date is the one the marts were built for (`marts.fct_invoices.as_of_date`, the dbt var
`as_of_date` of the run that built them), never the clock: the queue for a past date is rebuilt
from the marts of that date and the log and notes recorded before it.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from ar_pipeline.lib.collections.policy import CollectionsPolicy, templates_path
from ar_pipeline.lib.collections.queue import (
    CUSTOMER_RISK_SCHEMA,
    INVOICE_RISK_SCHEMA,
    PAYMENT_TIME_SCHEMA,
    QUEUE_SCHEMA,
    SKIPPED_SCHEMA,
    QueueInputs,
    QueueResult,
    build_queue,
    empty,
)
from ar_pipeline.lib.collections.render import render_queue
from ar_pipeline.lib.collections.store import read_log, read_notes
from ar_pipeline.lib.warehouse import marts_as_of

QUEUE_TABLE = "analytics.reminder_queue"
SKIPPED_TABLE = "analytics.reminder_queue_skipped"
INVOICE_RISK_TABLE = "analytics.invoice_risk_scores"
CUSTOMER_RISK_TABLE = "analytics.customer_risk_scores"


def _columns(conn: duckdb.DuckDBPyConnection, qualified: str) -> set[str]:
    schema, table = qualified.split(".")
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [schema, table]).fetchall()
    return {r[0] for r in rows}


def _risk_frame(conn: duckdb.DuckDBPyConnection, table: str, key: str, value: str, schema: dict,
                as_of: date) -> pl.DataFrame | None:
    """A risk-score table's rows for the as-of date, or None when it does not exist (yet) or has no
    row for that date."""
    cols = _columns(conn, table)
    if not {key, value} <= cols:
        return None
    where = "WHERE as_of_date = ?" if "as_of_date" in cols else ""
    frame = conn.sql(f"SELECT CAST({key} AS VARCHAR) AS {key}, {value} FROM {table} {where}",
                     params=[as_of] if where else None).pl()
    frame = frame.cast(schema)  # type: ignore[arg-type]
    return frame if frame.height else None


def read_payment_times(conn: duckdb.DuckDBPyConnection, as_of: date) -> pl.DataFrame:
    """Times of day of customers' payments, where a source records them (the marts keep dates only),
    read from the staging views (latest version of each record), dated on or before the as-of date:

    - Stripe invoice payments' `paid_at` (API 2025-03-31.basil and later) and, for invoices without
      invoice payments (older API versions), their succeeded charges' `created_at`: when the
      customer paid. Invoices Stripe charges automatically are left out (their time is Stripe's
      billing run, not the customer's habit).
    - QuickBooks payments' `MetaData.CreateTime`: when the payment was entered in QuickBooks, which
      is the customer's time for payments received online but the bookkeeper's for cheques and
      transfers entered by hand (timing_reason says which source a customer's hour comes from).
    A source whose staging view does not exist contributes nothing.
    """
    parts = []
    if {"paid_at", "invoice_id"} <= _columns(conn, "staging.stg_stripe__invoice_payments") and _columns(
            conn, "staging.stg_stripe__invoices"):
        parts.append("""
            SELECT 'stripe:' || i.customer_id AS customer_id, epoch(p.paid_at) AS paid_epoch,
                   'stripe_payment' AS time_source
            FROM staging.stg_stripe__invoice_payments p
            JOIN staging.stg_stripe__invoices i ON i.invoice_id = p.invoice_id
            WHERE p.status = 'paid' AND p.paid_at IS NOT NULL
              AND coalesce(i.collection_method, '') <> 'charge_automatically'
              AND CAST(p.paid_at AS DATE) <= $as_of""")
        if {"created_at", "invoice_id", "status"} <= _columns(conn, "staging.stg_stripe__charges"):
            parts.append("""
            SELECT 'stripe:' || coalesce(i.customer_id, c.customer_id) AS customer_id,
                   epoch(c.created_at) AS paid_epoch, 'stripe_payment' AS time_source
            FROM staging.stg_stripe__charges c
            JOIN staging.stg_stripe__invoices i ON i.invoice_id = c.invoice_id
            WHERE c.status = 'succeeded' AND c.created_at IS NOT NULL
              AND coalesce(i.collection_method, '') <> 'charge_automatically'
              AND NOT EXISTS (SELECT 1 FROM staging.stg_stripe__invoice_payments p WHERE p.invoice_id = c.invoice_id)
              AND CAST(c.created_at AS DATE) <= $as_of""")
    if {"created_at", "payment_date", "customer_id"} <= _columns(conn, "staging.stg_quickbooks__payments"):
        parts.append("""
            SELECT 'quickbooks:' || customer_id AS customer_id, epoch(created_at) AS paid_epoch,
                   'quickbooks_entry' AS time_source
            FROM staging.stg_quickbooks__payments
            WHERE created_at IS NOT NULL AND NOT is_voided AND total_amount > 0 AND payment_date <= $as_of""")
    if not parts:
        return empty(PAYMENT_TIME_SCHEMA)
    frame = conn.sql(" UNION ALL ".join(parts), params={"as_of": as_of}).pl()
    return frame.select(
        pl.col("customer_id").cast(pl.String),
        pl.from_epoch(pl.col("paid_epoch").cast(pl.Float64).mul(1_000_000).cast(pl.Int64), time_unit="us")
        .dt.replace_time_zone("UTC").alias("paid_at"),
        pl.col("time_source").cast(pl.String),
    )


def read_inputs(conn: duckdb.DuckDBPyConnection, as_of: date) -> QueueInputs:
    invoice_cols = _columns(conn, "marts.fct_invoices")
    method = "collection_method" if "collection_method" in invoice_cols else "CAST(NULL AS VARCHAR)"
    invoices = conn.sql(f"""
        SELECT invoice_key, invoice_number, customer_id, due_date, currency,
               CAST(open_amount AS DOUBLE) AS open_amount, CAST(home_open_amount AS DOUBLE) AS home_open_amount,
               {method} AS collection_method
        FROM marts.fct_invoices WHERE status = 'open' AND open_amount > 0""").pl()
    customers = conn.sql(
        "SELECT customer_id, customer_name, email, segment, collector FROM marts.dim_customers").pl()
    disputes = conn.sql(
        "SELECT invoice_key, customer_id, opened_date, is_open FROM marts.fct_disputes").pl()
    payments = conn.sql("""
        SELECT customer_id, payment_date, CAST(sum(amount) AS DOUBLE) AS amount
        FROM marts.fct_payments WHERE customer_id IS NOT NULL
        GROUP BY customer_id, source, source_payment_id, payment_date""").pl()
    # same population as marts.ar_customer_payment_stats (fully paid invoices with a positive total)
    history = conn.sql("""
        SELECT customer_id, count(*) AS paid_invoice_count,
               avg(CASE WHEN paid_date > due_date THEN 1.0 ELSE 0.0 END) AS late_share,
               avg(CASE WHEN date_diff('day', due_date, paid_date) > 30 THEN 1.0 ELSE 0.0 END) AS late_30_share
        FROM marts.fct_invoices
        WHERE status = 'paid' AND paid_date IS NOT NULL AND total_amount > 0
        GROUP BY customer_id""").pl()
    return QueueInputs(
        invoices=invoices, customers=customers, disputes=disputes, payments=payments, history=history,
        invoice_risk=_risk_frame(conn, INVOICE_RISK_TABLE, "invoice_key", "p_late_30", INVOICE_RISK_SCHEMA, as_of),
        customer_risk=_risk_frame(conn, CUSTOMER_RISK_TABLE, "customer_id", "risk_band", CUSTOMER_RISK_SCHEMA, as_of),
        payment_times=read_payment_times(conn, as_of),
        log=read_log(conn), notes=read_notes(conn),
    )


def build_and_store(conn: duckdb.DuckDBPyConnection, policy: CollectionsPolicy, policy_path: Path,
                    as_of: date | None = None) -> QueueResult:
    """Build the queue as of the marts' date (or `as_of`, which must match it), render its messages
    and replace analytics.reminder_queue and analytics.reminder_queue_skipped."""
    marts_date = marts_as_of(conn, required=True)
    if as_of is not None and as_of != marts_date:
        raise RuntimeError(f"the marts are built as of {marts_date}, not {as_of}: run "
                           f"`ar-pipeline run --as-of {as_of}` first")
    result = build_queue(read_inputs(conn, marts_date), policy, marts_date)
    queue = render_queue(result.queue, templates_path(policy_path, policy))
    store_queue(conn, queue, result.skipped)
    return QueueResult(queue=queue, skipped=result.skipped)


def store_queue(conn: duckdb.DuckDBPyConnection, queue: pl.DataFrame, skipped: pl.DataFrame) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS analytics")
    for table, frame in ((QUEUE_TABLE, queue), (SKIPPED_TABLE, skipped)):
        conn.register("_frame", frame.to_arrow())
        try:
            conn.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _frame")
        finally:
            conn.unregister("_frame")


def read_queue(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    if not _columns(conn, QUEUE_TABLE):
        raise RuntimeError(f"{QUEUE_TABLE} does not exist: run `ar-pipeline run` or `ar-pipeline reminders build`")
    return conn.sql(f"SELECT * FROM {QUEUE_TABLE} ORDER BY priority_rank").pl()


def empty_queue() -> QueueResult:
    return QueueResult(queue=empty(QUEUE_SCHEMA).with_columns(subject=pl.lit(None, pl.String),
                                                              body=pl.lit(None, pl.String)),
                       skipped=empty(SKIPPED_SCHEMA))
