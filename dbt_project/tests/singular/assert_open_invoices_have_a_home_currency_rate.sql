{{ config(severity='warn') }}

-- Warns (never blocks) about open invoices in a foreign currency that have no exchange rate: their
-- source gives none and the fx_rates table has no rate for the currency on or up to
-- var('fx_max_rate_age_days') days before the invoice date. They are in fct_invoices and
-- fct_ar_aging with null home amounts, so home-currency totals leave them out. Fix: drop a rates
-- file covering those dates into <AR_LANDING_DIR>/reference/fx_rates/ (see ingest_configs/fx_rates.yaml).

select
    invoice_key,
    source,
    customer_id,
    invoice_date,
    currency,
    open_amount
from {{ ref('fct_invoices') }}
where status = 'open'
    and exchange_rate is null
