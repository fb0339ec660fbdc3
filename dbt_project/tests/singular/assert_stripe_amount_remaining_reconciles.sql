-- Stripe: for every finalized, non-void invoice, amount_remaining must equal amount_due minus the
-- invoice payments with status 'paid' (or, for API versions before 2025-03-31 that have no invoice
-- payments, the succeeded charges naming the invoice). Returns one row per invoice that does not reconcile.

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

),

charge_paid as (

    select
        invoice_id,
        sum(coalesce(amount_captured, amount)) as amount_paid
    from {{ ref('stg_stripe__charges') }}
    where status = 'succeeded' and invoice_id is not null
    group by invoice_id

)

select
    invoices.invoice_id,
    invoices.status,
    invoices.amount_due,
    coalesce(paid.amount_paid, charge_paid.amount_paid, 0) as amount_paid,
    invoices.amount_remaining
from invoices
left join paid
    on invoices.invoice_id = paid.invoice_id
left join charge_paid
    on invoices.invoice_id = charge_paid.invoice_id
where invoices.amount_remaining <> invoices.amount_due - coalesce(paid.amount_paid, charge_paid.amount_paid, 0)
