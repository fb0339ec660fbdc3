{%- set as_of_date = ar_as_of_date() -%}

-- Per customer, how it pays: average days to pay (paid date - invoice date) and average days past
-- due (paid date - due date) over its invoices fully paid on or before the as-of date, unweighted
-- and weighted by invoice amount (peers.md §(b) 5 and 7: ADTP / ADPD, credit memos excluded).

with

paid as (

    select
        customer_id,
        home_total_amount,
        total_amount,
        {{ dbt.datediff('invoice_date', 'paid_date', 'day') }} as days_to_pay,
        {{ dbt.datediff('due_date', 'paid_date', 'day') }} as days_past_due_at_payment
    from {{ ref('fct_invoices') }}
    where status = 'paid'
        and paid_date is not null
        and total_amount > 0

),

stats as (

    select
        customer_id,
        count(*) as paid_invoice_count,
        avg(days_to_pay) as average_days_to_pay,
        sum(days_to_pay * total_amount) / sum(total_amount) as weighted_average_days_to_pay,
        avg(days_past_due_at_payment) as average_days_past_due,
        sum(days_past_due_at_payment * total_amount) / sum(total_amount) as weighted_average_days_past_due,
        avg(case when days_past_due_at_payment > 0 then 1.0 else 0.0 end) * 100 as percent_paid_late
    from paid
    group by customer_id

),

final as (

    select
        cast(customers.customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(customers.customer_name as {{ dbt.type_string() }}) as customer_name,
        cast(customers.segment as {{ dbt.type_string() }}) as segment,
        cast(customers.region as {{ dbt.type_string() }}) as region,
        cast(coalesce(stats.paid_invoice_count, 0) as {{ dbt.type_bigint() }}) as paid_invoice_count,
        {{ to_money('stats.average_days_to_pay') }} as average_days_to_pay,
        {{ to_money('stats.weighted_average_days_to_pay') }} as weighted_average_days_to_pay,
        {{ to_money('stats.average_days_past_due') }} as average_days_past_due,
        {{ to_money('stats.weighted_average_days_past_due') }} as weighted_average_days_past_due,
        {{ to_money('stats.percent_paid_late') }} as percent_paid_late,
        {{ as_of_date }} as as_of_date
    from {{ ref('dim_customers') }} as customers
    left join stats
        on customers.customer_id = stats.customer_id

)

select * from final
