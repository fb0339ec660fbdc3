"""Read the prediction inputs from the marts (marts.fct_invoices, fct_ar_events, dim_customers) and,
once collections has sent any, the reminders in analytics.reminder_log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from ar_pipeline.lib.warehouse import table_exists

from .features import REMINDER_EVENT


@dataclass(frozen=True)
class History:
    """A loaded AR history: the ledger (non-void invoices), dated customer events, customer
    attributes, the date the marts were computed as of (the data end) and the home currency."""

    ledger: pl.DataFrame
    events: pl.DataFrame
    customers: pl.DataFrame
    data_end: date
    home_currency: str = "USD"
    open_invoices: pl.DataFrame | None = None


LEDGER_SQL = """
select invoice_key, customer_id, source, invoice_date, due_date, paid_date, currency,
       cast(home_total_amount as double) as amount_home, status,
       cast(home_open_amount as double) as open_amount_home, as_of_date
from marts.fct_invoices
where status <> 'void' and invoice_date is not null and due_date is not null and customer_id is not null
"""
EVENTS_SQL = """
select customer_id, event_type, event_date from marts.fct_ar_events
where event_type in ('dispute_opened', 'credit_memo_issued', 'credit_note', 'write_off')
  and customer_id is not null and event_date is not null
"""
CUSTOMERS_SQL = "select customer_id, segment, region from marts.dim_customers"
#: reminders delivered (e-mail sent or call made), dated by when that happened in UTC
REMINDERS_SQL = f"""
select customer_id, '{REMINDER_EVENT}' as event_type, cast(timezone('UTC', status_at) as date) as event_date
from analytics.reminder_log
where status in ('sent', 'called') and customer_id is not null
"""


def load_events(conn) -> pl.DataFrame:
    """Dated customer events: disputes, credit memos and write-offs from the marts, plus reminders sent
    when analytics.reminder_log exists (it appears once `ar-pipeline reminders` has been used)."""
    events = conn.sql(EVENTS_SQL).pl()
    if table_exists(conn, "analytics", "reminder_log"):
        events = pl.concat([events, conn.sql(REMINDERS_SQL).pl()], how="vertical_relaxed")
    return events


def load_history(conn, home_currency: str = "USD") -> History:
    """The history in the marts of a DuckDB connection. Paid dates after the marts' as-of date
    cannot exist there; the data end is that as-of date."""
    inv = conn.sql(LEDGER_SQL).pl()
    if inv.height == 0:
        raise ValueError("marts.fct_invoices has no invoices: run the pipeline first")
    data_end = inv["as_of_date"].max()
    open_inv = inv.filter(pl.col("status") == "open")
    ledger = inv.with_columns(pl.col("amount_home").fill_null(0.0))
    return History(
        ledger=ledger,
        events=load_events(conn),
        customers=conn.sql(CUSTOMERS_SQL).pl(),
        data_end=data_end,
        home_currency=home_currency,
        open_invoices=open_inv,
    )
