-- When the as-of date is on or after the last event in the data (the usual daily run), the open AR
-- in fct_ar_aging must equal what the billing systems themselves say is open: the sum of QuickBooks
-- Invoice.Balance and Stripe amount_remaining over the invoices they report as open. Returns one row
-- per source that does not tie out (to the cent). For a past as-of date it returns nothing.

{%- set as_of_date = ar_as_of_date() %}

with

last_event as (

    select max(event_date) as last_event_date
    from (
        select max(invoice_date) as event_date from {{ ref('int_invoices_unioned') }}
        union all
        select max(applied_date) from {{ ref('int_invoice_applications_unioned') }}
    ) as events

),

aging as (

    select source, sum(open_amount) as open_amount
    from {{ ref('fct_ar_aging') }}
    where source in ('quickbooks', 'stripe')
    group by source

),

source_balances as (

    select source, sum(source_open_amount) as open_amount
    from {{ ref('int_invoices_unioned') }}
    where source in ('quickbooks', 'stripe')
        and source_status = 'open'
        and not is_void
        and invoice_date <= {{ as_of_date }}
    group by source

)

select
    coalesce(aging.source, source_balances.source) as source,
    aging.open_amount as aging_open_amount,
    source_balances.open_amount as source_open_amount
from aging
full outer join source_balances
    on aging.source = source_balances.source
cross join last_event
where {{ as_of_date }} >= last_event.last_event_date
    and round(coalesce(aging.open_amount, 0), 2) <> round(coalesce(source_balances.open_amount, 0), 2)
