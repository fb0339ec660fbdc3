-- One row per payment that left cash unapplied to any invoice (QBO Payment.UnappliedAmt > 0).
-- Stripe has no unapplied-cash object in the ingested tables (overpayments become customer
-- balance), so only QuickBooks contributes today.

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

)

select * from quickbooks
