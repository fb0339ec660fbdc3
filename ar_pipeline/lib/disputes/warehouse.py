"""Read disputes from the warehouse (DuckDB) into the one shape `workflow` expects.

- Stripe: `marts.fct_disputes` (reason, status, is_open, outcome, evidence_due_date, closed_date).
  `closed_date` comes from Stripe's records where it has one (won: the reinstatement balance
  transaction; charge_refunded: the refund; see the mart's YAML). Otherwise (lost, prevented,
  warning_closed: Stripe keeps no date) it is the load date of the first stored version of the
  dispute in a closed status (`raw_stripe.raw_disputes` keeps every loaded version), and only when
  an earlier load saw it open: an upper bound of the resolution time, as exact as the load
  frequency. A dispute first loaded already closed and lost has none, and is left out of the
  typical resolution time.
- QuickBooks (no dispute object): credit memos (`staging.stg_quickbooks__credit_memos`) and
  invoices (`staging.stg_quickbooks__invoices`) whose private note contains a configured keyword.
  A credit memo is a settled dispute (outcome `quickbooks.credit_memo_outcome`, opened and closed on
  its date). An invoice note is an open dispute while the invoice is open in `marts.fct_invoices`,
  and won once it is paid (closed on the paid date); QuickBooks keeps no date for the note, so the
  invoice date stands in for the opening date.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from ar_pipeline.lib.warehouse import table_exists

from .config import DisputeRoutingConfig
from .workflow import DISPUTE_COLUMNS, build_queue, reason_from_note, reason_summary, risk_invoices

STRIPE_SQL = """
select dispute_id, source, 'stripe_dispute' as origin, invoice_key, customer_id, reason, status, is_open,
       outcome, currency, cast(amount as double) as amount, cast(home_amount as double) as home_amount,
       opened_date, evidence_due_date, closed_date as stripe_closed_date, cast(null as varchar) as note
from marts.fct_disputes
"""

CREDIT_MEMO_SQL = """
select 'quickbooks:cm:' || credit_memo_id as dispute_id, 'quickbooks' as source,
       'quickbooks_credit_memo' as origin, cast(null as varchar) as invoice_key,
       'quickbooks:' || customer_id as customer_id, 'credited' as status, false as is_open, currency,
       cast(total_amount as double) as amount,
       cast(total_amount * coalesce(exchange_rate, 1) as double) as home_amount,
       credit_memo_date as opened_date, cast(null as date) as evidence_due_date,
       credit_memo_date as closed_date, private_note as note
from staging.stg_quickbooks__credit_memos
where credit_memo_date <= $as_of and private_note is not null
"""

INVOICE_NOTE_SQL = """
select 'quickbooks:inv:' || q.invoice_id as dispute_id, 'quickbooks' as source,
       'quickbooks_invoice_note' as origin, f.invoice_key, f.customer_id, f.status as invoice_status,
       f.currency, cast(f.open_amount as double) as open_amount,
       cast(f.home_open_amount as double) as home_open_amount,
       cast(f.total_amount as double) as total_amount, cast(f.home_total_amount as double) as home_total_amount,
       f.invoice_date as opened_date, f.paid_date, q.private_note as note
from staging.stg_quickbooks__invoices q
join marts.fct_invoices f on f.invoice_key = 'quickbooks:' || q.invoice_id
where q.private_note is not null and not q.is_voided and f.status <> 'void'
"""


def stripe_closed_dates(conn, as_of: date) -> pl.DataFrame:
    """dispute_id -> first load date (on or before as-of) at which the stored dispute was closed."""
    if not table_exists(conn, "raw_stripe", "raw_disputes"):
        return pl.DataFrame(schema={"dispute_id": pl.String, "closed_date": pl.Date})
    q = """
        with versions as (
            select id, cast(_loaded_at as date) as loaded_date,
                   status in ('won', 'lost', 'prevented', 'warning_closed') as is_closed
            from raw_stripe.raw_disputes
            where cast(_loaded_at as date) <= $as_of
        ),
        first_closed as (
            select id, min(loaded_date) as closed_date from versions where is_closed group by id
        )
        -- only when an earlier load saw the dispute open: a dispute first loaded already closed
        -- (e.g. a backfill) has no usable closing date
        select c.id as dispute_id, c.closed_date
        from first_closed c
        where exists (select 1 from versions v where v.id = c.id and not v.is_closed and v.loaded_date < c.closed_date)
    """
    return conn.sql(q, params={"as_of": as_of}).pl().cast({"dispute_id": pl.String, "closed_date": pl.Date})


def load_disputes(conn, as_of: date, cfg: DisputeRoutingConfig) -> pl.DataFrame:
    stripe = conn.sql(STRIPE_SQL).pl().join(stripe_closed_dates(conn, as_of), on="dispute_id", how="left")
    stripe = stripe.with_columns(
        closed_date=pl.when(pl.col("is_open")).then(None).otherwise(pl.coalesce("stripe_closed_date", "closed_date"))
    )
    frames = [stripe.select([pl.col(c).cast(t) for c, t in DISPUTE_COLUMNS.items()])]
    qb = cfg.quickbooks
    keywords = qb.reason_keywords
    if qb.credit_memo_notes and keywords:
        cm = conn.sql(CREDIT_MEMO_SQL, params={"as_of": as_of}).pl()
        cm = cm.with_columns(
            reason=pl.col("note").map_elements(lambda x: reason_from_note(x, keywords), return_dtype=pl.String),
            outcome=pl.lit(qb.credit_memo_outcome),
        ).filter(pl.col("reason").is_not_null())
        frames.append(cm.select([pl.col(c).cast(t) for c, t in DISPUTE_COLUMNS.items()]))
    if qb.invoice_notes and keywords:
        inv = conn.sql(INVOICE_NOTE_SQL).pl()
        is_open = pl.col("invoice_status").is_in(["open", "uncollectible"])
        inv = inv.with_columns(
            reason=pl.col("note").map_elements(lambda x: reason_from_note(x, keywords), return_dtype=pl.String),
            is_open=is_open,
            status=pl.col("invoice_status"),
            outcome=pl.when(pl.col("invoice_status") == "paid").then(pl.lit("won")),
            amount=pl.when(is_open).then(pl.col("open_amount")).otherwise(pl.col("total_amount")),
            home_amount=pl.when(is_open).then(pl.col("home_open_amount")).otherwise(pl.col("home_total_amount")),
            evidence_due_date=pl.lit(None, dtype=pl.Date),
            closed_date=pl.when(pl.col("invoice_status") == "paid").then(pl.col("paid_date")),
        ).filter(pl.col("reason").is_not_null())
        frames.append(inv.select([pl.col(c).cast(t) for c, t in DISPUTE_COLUMNS.items()]))
    return pl.concat(frames)


def customers(conn) -> pl.DataFrame:
    return conn.sql("select customer_id, customer_name, segment from marts.dim_customers").pl()


def open_invoices(conn) -> pl.DataFrame:
    return conn.sql(
        "select invoice_key, invoice_number, customer_id, due_date, currency, "
        "cast(open_amount as double) as open_amount, "
        "cast(home_open_amount as double) as home_open_amount from marts.fct_invoices where status = 'open'"
    ).pl()


def dispute_tables(conn, as_of: date, cfg: DisputeRoutingConfig) -> dict[str, pl.DataFrame]:
    """The three analytics tables: dispute_queue, dispute_reasons, dispute_risk_invoices."""
    disputes = load_disputes(conn, as_of, cfg)
    cust = customers(conn)
    return {
        "dispute_queue": build_queue(disputes, cust, as_of, cfg),
        "dispute_reasons": reason_summary(disputes, cust, as_of, cfg),
        "dispute_risk_invoices": risk_invoices(open_invoices(conn), disputes, as_of, cfg),
    }
