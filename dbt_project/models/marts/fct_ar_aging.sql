{%- set as_of_date = ar_as_of_date() -%}

-- One row per invoice still open on the as-of date, aged by days past its due date (or, with
-- var('aging_basis') = 'invoice_date', by days since its invoice date).

with

open_invoices as (

    select * from {{ ref('fct_invoices') }}
    where status = 'open'
        and open_amount > 0

),

customers as (

    select customer_id, customer_name from {{ ref('dim_customers') }}

),

aged as (

    select
        open_invoices.*,
        customers.customer_name,
        {{ dbt.datediff('open_invoices.due_date', as_of_date, 'day') }} as days_past_due,
        {{ dbt.datediff('open_invoices.invoice_date', as_of_date, 'day') }} as days_outstanding,
        {{ aging_days('open_invoices.due_date', 'open_invoices.invoice_date', as_of_date) }} as aging_days
    from open_invoices
    left join customers
        on open_invoices.customer_id = customers.customer_id

),

final as (

    select
        {{ as_of_date }} as as_of_date,
        cast(invoice_key as {{ dbt.type_string() }}) as invoice_key,
        cast(source as {{ dbt.type_string() }}) as source,
        cast(source_invoice_id as {{ dbt.type_string() }}) as source_invoice_id,
        cast(invoice_number as {{ dbt.type_string() }}) as invoice_number,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(customer_name as {{ dbt.type_string() }}) as customer_name,
        invoice_date,
        due_date,
        cast(days_past_due as {{ dbt.type_bigint() }}) as days_past_due,
        cast(days_outstanding as {{ dbt.type_bigint() }}) as days_outstanding,
        cast('{{ aging_basis() }}' as {{ dbt.type_string() }}) as aging_basis,
        cast({{ aging_bucket('aging_days') }} as {{ dbt.type_string() }}) as aging_bucket,
        cast({{ aging_bucket_sort('aging_days') }} as {{ dbt.type_bigint() }}) as aging_bucket_sort,
        cast(currency as {{ dbt.type_string() }}) as currency,
        {{ to_money('open_amount') }} as open_amount,
        {{ to_rate('exchange_rate') }} as exchange_rate,
        exchange_rate_date,
        cast(exchange_rate_source as {{ dbt.type_string() }}) as exchange_rate_source,
        cast({{ ar_home_currency() }} as {{ dbt.type_string() }}) as home_currency,
        {{ to_money('home_open_amount') }} as home_open_amount
    from aged

)

select * from final
