{%- set as_of_date = ar_as_of_date() -%}

-- Cash collected per week (payments applied to invoices, home currency), for all customers and by
-- customer segment, region and collector, for the weeks up to the as-of date. Weeks start on the day
-- dbt.date_trunc('week') gives on the warehouse (Monday on DuckDB).

with

customer_dimensions as (

    select * from {{ ref('int_customer_dimensions') }}

),

payments as (

    select
        cast({{ dbt.date_trunc('week', 'applied_date') }} as date) as week_start,
        customer_id,
        invoice_key,
        {{ to_home_amount('amount', 'exchange_rate') }} as home_amount
    from {{ ref('int_invoice_applications_unioned') }}
    where application_type = 'payment'
        and applied_date <= {{ as_of_date }}

),

final as (

    select
        payments.week_start,
        cast(dims.dimension as {{ dbt.type_string() }}) as dimension,
        cast(dims.dimension_value as {{ dbt.type_string() }}) as dimension_value,
        {{ to_money('sum(payments.home_amount)') }} as collections,
        cast(count(*) as {{ dbt.type_bigint() }}) as payment_count,
        cast(count(distinct payments.invoice_key) as {{ dbt.type_bigint() }}) as invoices_paid_into,
        cast({{ ar_home_currency() }} as {{ dbt.type_string() }}) as home_currency
    from payments
    inner join customer_dimensions as dims
        on payments.customer_id = dims.customer_id
    group by payments.week_start, dims.dimension, dims.dimension_value

)

select * from final
