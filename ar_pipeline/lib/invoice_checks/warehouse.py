"""Read the invoices to check and their customers' history from the warehouse (DuckDB).

Sent invoices come from `marts.fct_invoices` (issued on or before the as-of date, voids left out);
the fields the marts do not carry are read from the staging views:

- QuickBooks: `bill_email`, `email_status` (`NeedToSend` = not yet sent) and the tax rate
  `total_tax / (total_amount - total_tax)`;
- Stripe: `customer_email`, `collection_method`, and the drafts (status `draft`, created on or before
  the as-of date, not deleted), which are not AR and so are not in the marts. Stripe tax is not
  staged separately (total - subtotal also nets discounts), so the tax rule does not judge Stripe;
- exports: `status` (pending statuses from the YAML) and `po_number`. Exports carry no billing
  email, and staging fills a missing due date with the invoice date, so the email and due-date
  rules cannot judge exports (a blank due date shows up as 0-day terms instead).

`email_status` is the invoice's latest state, so which QuickBooks invoices are "pending" reflects
the last load, not the as-of date.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from ar_pipeline.lib.warehouse import table_exists

from .checks import CANDIDATE_COLUMNS, find_issues, history_window
from .config import InvoiceRulesConfig

ENRICHED_SQL = """
with sent as (
    select f.invoice_key, f.invoice_number, f.source, f.customer_id, f.invoice_date, f.due_date,
           f.currency, f.total_amount, f.collection_method
    from marts.fct_invoices f
    where f.status <> 'void'
),
qb as (
    select 'quickbooks:' || invoice_id as invoice_key, bill_email, email_status,
           case when total_tax is not null and total_amount - total_tax > 0
                then total_tax / (total_amount - total_tax) end as tax_rate
    from staging.stg_quickbooks__invoices
),
st as (
    select 'stripe:' || invoice_id as invoice_key, customer_email
    from staging.stg_stripe__invoices
),
ex as (
    select export_source || ':' || invoice_id as invoice_key, status as export_status, po_number
    from staging.stg_exports__invoices
),
drafts as (
    select 'stripe:' || invoice_id as invoice_key, invoice_number, 'stripe' as source,
           'stripe:' || customer_id as customer_id, created_date as invoice_date, due_date, currency,
           total_amount, collection_method, customer_email
    from staging.stg_stripe__invoices
    where status = 'draft' and created_date <= $as_of
      and invoice_id not in (
          select source_id from staging.stg_stripe__deleted_objects where object_type = 'invoice')
)
select s.invoice_key, s.invoice_number, s.source, s.customer_id, s.invoice_date, s.due_date,
       s.currency, cast(s.total_amount as double) as total_amount,
       cast(qb.tax_rate as double) as tax_rate,
       coalesce(qb.bill_email, st.customer_email) as billing_email,
       (qb.invoice_key is not null
        or (st.invoice_key is not null and coalesce(s.collection_method, '') <> 'charge_automatically'))
           as email_checked,
       ex.po_number, ex.invoice_key is not null as po_checked,
       ex.invoice_key is null and coalesce(s.collection_method, '') <> 'charge_automatically'
           as due_date_required,
       coalesce(qb.email_status = 'NeedToSend', false)
           or coalesce(list_contains($pending_statuses, ex.export_status), false) as is_pending
from sent s
left join qb on s.invoice_key = qb.invoice_key
left join st on s.invoice_key = st.invoice_key
left join ex on s.invoice_key = ex.invoice_key
union all
select invoice_key, invoice_number, source, customer_id, invoice_date, due_date, currency,
       cast(total_amount as double), cast(null as double), customer_email,
       coalesce(collection_method, '') <> 'charge_automatically', cast(null as varchar), false,
       coalesce(collection_method, '') <> 'charge_automatically', true
from drafts
"""


def load_invoices(conn, as_of: date, cfg: InvoiceRulesConfig) -> pl.DataFrame:
    """Every sent invoice (from the marts) and every Stripe draft, with the fields the rules need."""
    needed = [
        "stg_quickbooks__invoices",
        "stg_stripe__invoices",
        "stg_exports__invoices",
        "stg_stripe__deleted_objects",
    ]
    missing = [v for v in needed if not table_exists(conn, "staging", v)]
    if missing:
        raise ValueError(f"staging views missing (run the dbt build first): {missing}")
    statuses = [s.lower() for s in cfg.export_pending_statuses]
    return conn.sql(ENRICHED_SQL, params={"as_of": as_of, "pending_statuses": statuses}).pl()


def split_candidates(invoices: pl.DataFrame, as_of: date, cfg: InvoiceRulesConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(candidates, history): pending invoices plus the ones sent within `recent_sent_days` are
    checked; every sent invoice in the history window is history."""
    recent_start = as_of - timedelta(days=cfg.recent_sent_days)
    sent = invoices.filter(~pl.col("is_pending"))
    pending = invoices.filter(pl.col("is_pending")).with_columns(stage=pl.lit("pending"))
    recent = sent.filter(pl.col("invoice_date").is_between(recent_start, as_of)).with_columns(
        stage=pl.lit("recently_sent")
    )
    candidates = pl.concat([pending, recent]).select(list(CANDIDATE_COLUMNS))
    return candidates, history_window(sent, as_of, cfg)


def invoice_issues_from_warehouse(conn, as_of: date, cfg: InvoiceRulesConfig) -> pl.DataFrame:
    candidates, history = split_candidates(load_invoices(conn, as_of, cfg), as_of, cfg)
    return find_issues(candidates, history, cfg)
