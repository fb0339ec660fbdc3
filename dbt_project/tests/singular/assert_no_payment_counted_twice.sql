-- No payment is counted twice, within or across sources. Returns one row per problem:
--   over_applied      an invoice whose applications add up to more than its total (a payment or
--                     credit taken from two places lands on the same invoice twice);
--   in_two_sources    a Stripe charge or PaymentIntent applied through the Stripe API AND through a
--                     payment export (the same money loaded both ways).

with

applications as (

    select * from {{ ref('int_invoice_applications_unioned') }}

),

over_applied as (

    select
        'over_applied' as problem,
        invoices.invoice_key as subject,
        max(invoices.total_amount) as expected,
        sum(applications.amount) as actual
    from applications
    inner join {{ ref('int_invoices_unioned') }} as invoices
        on applications.invoice_key = invoices.invoice_key
    group by invoices.invoice_key
    having sum(applications.amount) - max(invoices.total_amount) >= 0.005

),

stripe_money_ids as (

    select charge_id as money_id from {{ ref('stg_stripe__charges') }}
    where charge_id in (select source_payment_id from applications where source = 'stripe')
        or payment_intent_id in (select source_payment_id from applications where source = 'stripe')
    union all
    select payment_intent_id as money_id from {{ ref('stg_stripe__charges') }}
    where payment_intent_id in (select source_payment_id from applications where source = 'stripe')

),

in_two_sources as (

    select
        'in_two_sources' as problem,
        applications.application_key as subject,
        cast(null as {{ dbt.type_numeric() }}) as expected,
        applications.amount as actual
    from applications
    inner join stripe_money_ids
        on applications.source_payment_id = stripe_money_ids.money_id
    where applications.source <> 'stripe'

)

select * from over_applied
union all
select * from in_two_sources
