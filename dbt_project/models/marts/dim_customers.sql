{%- set as_of_date = ar_as_of_date() -%}

-- One row per customer (QuickBooks and Stripe) with their open receivables as of the as-of date.

with

customers as (

    select * from {{ ref('int_customers_unioned') }}

),

open_invoices as (

    select
        customer_id,
        count(*) as open_invoice_count,
        sum(home_open_amount) as open_amount_home
    from {{ ref('fct_invoices') }}
    where status = 'open'
    group by customer_id

),

customer_groups as (

    select * from {{ ref('int_customer_groups') }}

),

collectors as (

    select * from {{ ref('int_customer_collectors') }}

),

credit_events as (

    select
        customer_id,
        sum(case when event_type in ('credit_memo_issued', 'credit_memo_applied') then amount else 0 end)
            as open_credit_amount,
        sum(case when event_type = 'refund' then amount else 0 end) as refunded_amount,
        sum(case when event_type = 'dispute_opened' then 1 else 0 end) as dispute_count,
        sum(case when event_type = 'dispute_opened' then amount else 0 end) as disputed_amount
    from {{ ref('int_customer_credit_events_unioned') }}
    where event_date <= {{ as_of_date }}
    group by customer_id

),

final as (

    select
        cast(customers.customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(customers.source as {{ dbt.type_string() }}) as source,
        cast(customers.source_customer_id as {{ dbt.type_string() }}) as source_customer_id,
        cast(customers.customer_name as {{ dbt.type_string() }}) as customer_name,
        cast(customers.email as {{ dbt.type_string() }}) as email,
        cast(customers.segment as {{ dbt.type_string() }}) as segment,
        cast(customers.region as {{ dbt.type_string() }}) as region,
        cast(customers.currency as {{ dbt.type_string() }}) as currency,
        customers.is_active,
        cast(customers.parent_customer_id as {{ dbt.type_string() }}) as parent_customer_id,
        cast(customer_groups.customer_group_id as {{ dbt.type_string() }}) as customer_group_id,
        cast(customer_groups.customer_group_name as {{ dbt.type_string() }}) as customer_group_name,
        cast(collectors.collector as {{ dbt.type_string() }}) as collector,
        cast(collectors.collector_assigned_by as {{ dbt.type_string() }}) as collector_assigned_by,
        cast(coalesce(open_invoices.open_invoice_count, 0) as {{ dbt.type_bigint() }}) as open_invoice_count,
        {{ to_money('coalesce(open_invoices.open_amount_home, 0)') }} as open_amount_home,
        {{ to_money('coalesce(credit_events.open_credit_amount, 0)') }} as open_credit_amount,
        {{ to_money('coalesce(credit_events.refunded_amount, 0)') }} as refunded_amount,
        cast(coalesce(credit_events.dispute_count, 0) as {{ dbt.type_bigint() }}) as dispute_count,
        {{ to_money('coalesce(credit_events.disputed_amount, 0)') }} as disputed_amount,
        {{ as_of_date }} as as_of_date
    from customers
    left join open_invoices
        on customers.customer_id = open_invoices.customer_id
    left join credit_events
        on customers.customer_id = credit_events.customer_id
    left join customer_groups
        on customers.customer_id = customer_groups.customer_id
    left join collectors
        on customers.customer_id = collectors.customer_id

)

select * from final
