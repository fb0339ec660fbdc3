-- Stripe: for every finalized, non-void invoice, amount_remaining must equal amount_due minus the
-- invoice payments with status 'paid'. Returns one row per invoice that does not reconcile.

with

invoices as (

    select * from {{ ref('stg_stripe__invoices') }}
    where status not in ('draft', 'void')

),

paid as (

    select
        invoice_id,
        sum(amount_paid) as amount_paid
    from {{ ref('stg_stripe__invoice_payments') }}
    where status = 'paid'
    group by invoice_id

)

select
    invoices.invoice_id,
    invoices.status,
    invoices.amount_due,
    coalesce(paid.amount_paid, 0) as paid_through_invoice_payments,
    invoices.amount_remaining
from invoices
left join paid
    on invoices.invoice_id = paid.invoice_id
where invoices.amount_remaining <> invoices.amount_due - coalesce(paid.amount_paid, 0)
