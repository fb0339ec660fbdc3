-- The credit-sales and collections inputs of the KPI marts (ar_kpis_monthly, ar_kpis_daily), so
-- both use one definition: one row per customer and day with, in the home currency,
--   invoiced  = totals of the non-void invoices issued that day,
--   credited  = credit memos / credit notes applied to invoices that day,
--   collected = payments applied to invoices that day.
-- Each document is converted at its own rate and rounded to cents (to_home_amount) before summing;
-- amounts without a rate count as null. Credit sales of a period = sum(invoiced) - sum(credited).

with

invoices as (

    select
        invoice_date as flow_date,
        customer_id,
        {{ to_home_amount('total_amount', 'exchange_rate') }} as invoiced
    from {{ ref('int_invoices_unioned') }}
    where not is_void

),

applications as (

    select
        applied_date as flow_date,
        customer_id,
        case when application_type in ('credit_memo', 'credit_note')
            then {{ to_home_amount('amount', 'exchange_rate') }} else 0 end as credited,
        case when application_type = 'payment'
            then {{ to_home_amount('amount', 'exchange_rate') }} else 0 end as collected
    from {{ ref('int_invoice_applications_unioned') }}

),

flows as (

    select flow_date, customer_id, invoiced, 0 as credited, 0 as collected from invoices
    union all
    select flow_date, customer_id, 0, credited, collected from applications

)

select
    flow_date,
    customer_id,
    sum(invoiced) as invoiced,
    sum(credited) as credited,
    sum(collected) as collected
from flows
group by flow_date, customer_id
