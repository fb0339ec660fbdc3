-- The aging report must tie out: per currency, the open amount across all aging buckets equals the
-- open amount of invoices with status 'open' in fct_invoices. Returns the currencies that differ.

with

aging as (

    select
        currency,
        sum(open_amount) as aging_open_amount
    from {{ ref('fct_ar_aging') }}
    group by currency

),

invoices as (

    select
        currency,
        sum(open_amount) as invoices_open_amount
    from {{ ref('fct_invoices') }}
    where status = 'open'
    group by currency

)

select
    coalesce(aging.currency, invoices.currency) as currency,
    coalesce(aging.aging_open_amount, 0) as aging_open_amount,
    coalesce(invoices.invoices_open_amount, 0) as invoices_open_amount
from aging
full outer join invoices
    on aging.currency = invoices.currency
where coalesce(aging.aging_open_amount, 0) <> coalesce(invoices.invoices_open_amount, 0)
