-- One row per payment that left cash unapplied to any invoice: QBO Payment.UnappliedAmt > 0, and
-- payment-export rows (e.g. Stripe unified payments) that name no invoice, or one that is not
-- loaded; Stripe API charges tied to no invoice (no charge.invoice, no InvoicePayment), less what
-- was refunded. Stripe API overpayments become customer balance and are not in the ingested tables.
-- exchange_rate: the QuickBooks payment's rate, 1 in the home currency, else the fx_rates table's
-- rate for the payment date (macro fx_rate_columns).

with

quickbooks_payments as (

    select * from {{ ref('stg_quickbooks__payments') }}
    where unapplied_amount > 0

),

quickbooks as (

    select
        {{ dbt.concat(["'quickbooks:'", 'payment_id', "':unapplied'"]) }} as unapplied_key,
        'quickbooks' as source,
        payment_id as source_payment_id,
        {{ dbt.concat(["'quickbooks:'", 'customer_id']) }} as customer_id,
        payment_date,
        unapplied_amount as amount,
        coalesce(currency, {{ ar_home_currency() }}) as currency,
        {{ to_rate(
            "coalesce(exchange_rate, case when coalesce(currency, " ~ ar_home_currency() ~ ") = "
            ~ ar_home_currency() ~ " then 1 end)"
        ) }} as exchange_rate
    from quickbooks_payments

),

export_payments as (

    select
        {{ dbt.concat(['payments.export_source', "':'", 'payments.payment_id', "':unapplied'"]) }} as unapplied_key,
        payments.export_source as source,
        payments.payment_id as source_payment_id,
        {{ dbt.concat(['payments.pays_invoices_of', "':'", 'payments.customer_id']) }} as customer_id,
        payments.payment_date,
        payments.amount,
        coalesce(payments.currency, {{ ar_home_currency() }}) as currency,
        {{ to_rate(
            "case when coalesce(payments.currency, " ~ ar_home_currency() ~ ") = "
            ~ ar_home_currency() ~ " then 1 end"
        ) }} as exchange_rate
    from {{ ref('stg_exports__payments') }} as payments
    left join {{ ref('int_invoices_unioned') }} as invoices
        on invoices.invoice_key = {{ dbt.concat(['payments.pays_invoices_of', "':'", 'payments.invoice_id']) }}
    where payments.status in ('paid', 'succeeded', 'refunded', 'partially_refunded')
        and payments.amount <> 0
        and invoices.invoice_key is null

),

stripe_charges as (

    select
        {{ dbt.concat(["'stripe:'", 'charges.charge_id', "':unapplied'"]) }} as unapplied_key,
        'stripe' as source,
        charges.charge_id as source_payment_id,
        {{ dbt.concat(["'stripe:'", 'charges.customer_id']) }} as customer_id,
        charges.created_date as payment_date,
        coalesce(charges.amount_captured, charges.amount) - coalesce(charges.amount_refunded, 0) as amount,
        charges.currency,
        {{ to_rate("case when charges.currency = " ~ ar_home_currency() ~ " then 1 end") }} as exchange_rate
    from {{ ref('stg_stripe__charges') }} as charges
    where charges.status = 'succeeded'
        and charges.invoice_id is null
        and charges.customer_id is not null
        and coalesce(charges.amount_captured, charges.amount) - coalesce(charges.amount_refunded, 0) > 0
        and not exists (
            select 1 from {{ ref('stg_stripe__invoice_payments') }} as invoice_payments
            where invoice_payments.charge_id = charges.charge_id
        )

),

unioned as (

    select * from quickbooks
    union all
    select * from stripe_charges
    union all
    select * from export_payments

)

select
    unioned.unapplied_key,
    unioned.source,
    unioned.source_payment_id,
    unioned.customer_id,
    unioned.payment_date,
    unioned.amount,
    unioned.currency,
    {{ fx_rate_columns('unioned.exchange_rate', 'unioned.currency', 'unioned.payment_date') }}
from unioned
{{ fx_rate_join('unioned.exchange_rate', 'unioned.currency', 'unioned.payment_date') }}
