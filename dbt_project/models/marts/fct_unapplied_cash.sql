{%- set as_of_date = ar_as_of_date() -%}

-- Money and credit the customer has with us that is not applied to any invoice on the as-of date:
--   unapplied_payment  payments (or parts of them) applied to no invoice: QuickBooks
--                      Payment.UnappliedAmt, payment-export rows naming no loaded invoice. QuickBooks
--                      dates a later application at the payment's own date, so the amount
--                      still unapplied today is also what was unapplied on any date since the payment.
--   credit_memo        QuickBooks credit memos with credit left: total minus the applications dated
--                      on or before the as-of date.
-- Collectors net these against open invoices before chasing a customer; cash application (matching
-- them to invoices) works from this list.

with

unapplied_payments as (

    select
        unapplied_key as credit_key,
        'unapplied_payment' as credit_type,
        source,
        source_payment_id as source_document_id,
        customer_id,
        payment_date as document_date,
        currency,
        exchange_rate,
        amount as original_amount,
        amount as unapplied_amount
    from {{ ref('int_unapplied_payments_unioned') }}
    where payment_date <= {{ as_of_date }}

),

credit_memo_events as (

    select * from {{ ref('int_customer_credit_events_unioned') }}
    where event_type in ('credit_memo_issued', 'credit_memo_applied')
        and event_date <= {{ as_of_date }}

),

credit_memos as (

    select
        {{ dbt.concat(["'quickbooks:credit_memo:'", 'source_document_id']) }} as credit_key,
        'credit_memo' as credit_type,
        max(source) as source,
        source_document_id,
        max(customer_id) as customer_id,
        min(case when event_type = 'credit_memo_issued' then event_date end) as document_date,
        max(currency) as currency,
        max(case when event_type = 'credit_memo_issued' then exchange_rate end) as exchange_rate,
        sum(case when event_type = 'credit_memo_issued' then amount else 0 end) as original_amount,
        sum(amount) as unapplied_amount
    from credit_memo_events
    group by source_document_id
    -- an application without its issue (memo not loaded) is not a credit we hold
    having sum(case when event_type = 'credit_memo_issued' then 1 else 0 end) > 0

),

credits as (

    select * from unapplied_payments
    union all
    select * from credit_memos

),

customers as (

    select customer_id, customer_name from {{ ref('int_customers_unioned') }}

),

final as (

    select
        {{ as_of_date }} as as_of_date,
        cast(credits.credit_key as {{ dbt.type_string() }}) as credit_key,
        cast(credits.credit_type as {{ dbt.type_string() }}) as credit_type,
        cast(credits.source as {{ dbt.type_string() }}) as source,
        cast(credits.source_document_id as {{ dbt.type_string() }}) as source_document_id,
        cast(credits.customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(customers.customer_name as {{ dbt.type_string() }}) as customer_name,
        credits.document_date,
        cast({{ dbt.datediff('credits.document_date', as_of_date, 'day') }} as {{ dbt.type_bigint() }}) as days_unapplied,
        cast(credits.currency as {{ dbt.type_string() }}) as currency,
        {{ to_money('credits.original_amount') }} as original_amount,
        {{ to_money('credits.unapplied_amount') }} as unapplied_amount,
        {{ to_rate('credits.exchange_rate') }} as exchange_rate,
        {{ to_home_amount('credits.unapplied_amount', 'credits.exchange_rate') }} as home_unapplied_amount
    from credits
    left join customers
        on credits.customer_id = customers.customer_id
    where credits.unapplied_amount > 0

)

select * from final
