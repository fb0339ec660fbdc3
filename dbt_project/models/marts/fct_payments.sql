{%- set as_of_date = ar_as_of_date() -%}

-- One row per amount applied to an invoice (payment, credit memo, credit note) dated on or before
-- the as-of date, plus one row per payment's unapplied cash.

with

applications as (

    select * from {{ ref('int_invoice_applications_unioned') }}
    where applied_date <= {{ as_of_date }}

),

unapplied as (

    select * from {{ ref('int_unapplied_payments_unioned') }}
    where payment_date <= {{ as_of_date }}

),

unioned as (

    select
        application_key as payment_application_key,
        source,
        source_payment_id,
        applied_date as payment_date,
        customer_id,
        invoice_key,
        application_type,
        amount,
        currency,
        exchange_rate,
        exchange_rate_date,
        exchange_rate_source
    from applications

    union all

    select
        unapplied_key as payment_application_key,
        source,
        source_payment_id,
        payment_date,
        customer_id,
        cast(null as {{ dbt.type_string() }}) as invoice_key,
        'unapplied' as application_type,
        amount,
        currency,
        exchange_rate,
        exchange_rate_date,
        exchange_rate_source
    from unapplied

),

final as (

    select
        cast(payment_application_key as {{ dbt.type_string() }}) as payment_application_key,
        cast(source as {{ dbt.type_string() }}) as source,
        cast(source_payment_id as {{ dbt.type_string() }}) as source_payment_id,
        payment_date,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(invoice_key as {{ dbt.type_string() }}) as invoice_key,
        cast(application_type as {{ dbt.type_string() }}) as application_type,
        {{ to_money('amount') }} as amount,
        cast(currency as {{ dbt.type_string() }}) as currency,
        {{ to_rate('exchange_rate') }} as exchange_rate,
        exchange_rate_date,
        cast(exchange_rate_source as {{ dbt.type_string() }}) as exchange_rate_source,
        {{ to_home_amount('amount', 'exchange_rate') }} as home_amount
    from unioned

)

select * from final
