"""Read the invoices to check and their customers' history from the warehouse (DuckDB).

Sent invoices come from `marts.fct_invoices` (issued on or before the as-of date, voids left out);
the fields the marts do not carry are read from the staging views:

- QuickBooks: `bill_email`, `email_status` (`NeedToSend` = not yet sent), `total_tax` and
  `custom_fields`;
- Stripe: `customer_email`, `collection_method`, `total_excluding_tax_amount`, `custom_fields`,
  `metadata`, and the drafts (status `draft`, created on or before the as-of date, not deleted),
  which are not AR and so are not in the marts;
- exports: `status` (pending statuses from the YAML), `po_number` and `extra`. Exports carry no
  billing email, and staging fills a missing due date with the invoice date, so the email and
  due-date rules cannot judge exports (a blank due date shows up as 0-day terms instead).

The PO number and the tax rate of every source are read from those fields as invoice_rules.yaml
names them (`fields.with_po_and_tax`).

`email_status` is the invoice's latest state, so which QuickBooks invoices are "pending" reflects
the last load, not the as-of date.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from ar_pipeline.lib.warehouse import table_exists

from .checks import CANDIDATE_COLUMNS, find_issues, history_window
from .config import InvoiceRulesConfig
from .fields import with_po_and_tax

ENRICHED_SQL = """
with sent as (
    select f.invoice_key, f.invoice_number, f.source, f.customer_id, f.invoice_date, f.due_date,
           f.currency, f.total_amount, f.collection_method
    from marts.fct_invoices f
    where f.status <> 'void'
),
qb as (
    select 'quickbooks:' || invoice_id as invoice_key, bill_email, email_status, total_tax,
           cast(custom_fields as varchar) as custom_fields
    from staging.stg_quickbooks__invoices
),
st as (
    select 'stripe:' || invoice_id as invoice_key, customer_email, total_excluding_tax_amount,
           cast(custom_fields as varchar) as custom_fields, cast(metadata as varchar) as metadata
    from staging.stg_stripe__invoices
),
ex as (
    select export_source || ':' || invoice_id as invoice_key, status as export_status, po_number,
           cast(extra as varchar) as extra
    from staging.stg_exports__invoices
),
drafts as (
    select 'stripe:' || invoice_id as invoice_key, invoice_number, 'stripe' as source,
           'stripe:' || customer_id as customer_id, created_date as invoice_date, due_date, currency,
           total_amount, collection_method, customer_email, total_excluding_tax_amount,
           cast(custom_fields as varchar) as custom_fields, cast(metadata as varchar) as metadata
    from staging.stg_stripe__invoices
    where status = 'draft' and created_date <= $as_of
      and invoice_id not in (
          select source_id from staging.stg_stripe__deleted_objects where object_type = 'invoice')
)
select s.invoice_key, s.invoice_number, s.source, s.customer_id, s.invoice_date, s.due_date,
       s.currency, cast(s.total_amount as double) as total_amount,
       coalesce(qb.bill_email, st.customer_email) as billing_email,
       (qb.invoice_key is not null
        or (st.invoice_key is not null and coalesce(s.collection_method, '') <> 'charge_automatically'))
           as email_checked,
       ex.invoice_key is not null as is_export, cast(qb.total_tax as double) as qb_total_tax,
       qb.custom_fields as qb_custom_fields, cast(st.total_excluding_tax_amount as double) as st_total_excluding_tax,
       st.custom_fields as st_custom_fields, st.metadata as st_metadata, ex.po_number as ex_po_number,
       ex.extra as ex_extra,
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
       cast(total_amount as double), customer_email,
       coalesce(collection_method, '') <> 'charge_automatically', false, cast(null as double),
       cast(null as varchar), cast(total_excluding_tax_amount as double), custom_fields, metadata,
       cast(null as varchar), cast(null as varchar),
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
    raw = conn.sql(ENRICHED_SQL, params={"as_of": as_of, "pending_statuses": statuses}).pl()
    return with_po_and_tax(raw, cfg)


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
