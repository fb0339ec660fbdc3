-- QuickBooks: for every non-void invoice, TotalAmt minus all amounts applied to it (payment and
-- credit memo lines, whatever their date) must equal the Balance QBO reports.
-- Returns one row per invoice that does not reconcile (to the cent).

with

invoices as (

    select * from {{ ref('int_invoices_unioned') }}
    where source = 'quickbooks'
        and not is_void

),

applied as (

    select
        invoice_key,
        sum(amount) as applied_amount
    from {{ ref('int_invoice_applications_unioned') }}
    where source = 'quickbooks'
    group by invoice_key

)

select
    invoices.invoice_key,
    invoices.total_amount,
    coalesce(applied.applied_amount, 0) as applied_amount,
    invoices.source_open_amount as qbo_balance,
    invoices.total_amount - coalesce(applied.applied_amount, 0) - invoices.source_open_amount as difference
from invoices
left join applied
    on invoices.invoice_key = applied.invoice_key
where abs(invoices.total_amount - coalesce(applied.applied_amount, 0) - invoices.source_open_amount) >= 0.005
