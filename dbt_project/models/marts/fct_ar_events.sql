{%- set as_of_date = ar_as_of_date() -%}

-- Every AR event dated on or before the as-of date (int_ar_events: invoices issued and voided,
-- payments, credits, write-offs, unapplied cash, credit memos, refunds, disputes). The open balance of
-- an invoice on any date D <= as_of_date is the sum of its invoice_balance_effect over events dated
-- on or before D (the test assert_ar_events_rebuild_open_balances holds it to fct_invoices and to
-- every month end in fct_ar_aging_snapshots).

with

events as (

    select * from {{ ref('int_ar_events') }}
    where event_date <= {{ as_of_date }}

),

final as (

    select
        cast(event_key as {{ dbt.type_string() }}) as event_key,
        cast(event_type as {{ dbt.type_string() }}) as event_type,
        event_date,
        cast(source as {{ dbt.type_string() }}) as source,
        cast(invoice_key as {{ dbt.type_string() }}) as invoice_key,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(source_document_id as {{ dbt.type_string() }}) as source_document_id,
        cast(currency as {{ dbt.type_string() }}) as currency,
        {{ to_money('amount') }} as amount,
        {{ to_money('invoice_balance_effect') }} as invoice_balance_effect,
        {{ to_money('customer_credit_effect') }} as customer_credit_effect,
        {{ to_rate('exchange_rate') }} as exchange_rate,
        {{ to_home_amount('invoice_balance_effect', 'exchange_rate') }} as home_invoice_balance_effect,
        cast(detail as {{ dbt.type_string() }}) as detail,
        {{ as_of_date }} as as_of_date
    from events

)

select * from final
