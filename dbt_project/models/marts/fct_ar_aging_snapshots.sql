{#- Spark's parquet tables have no delete+insert: overwriting the snapshot_date partitions a run
    computes keeps older snapshots the same way. A column added in a new release is appended to an
    existing table (older snapshot rows get null there) so upgrading never drops the history. -#}
{{
    config(
        materialized='incremental',
        unique_key=['snapshot_date', 'invoice_key'],
        incremental_strategy='insert_overwrite' if target.type == 'spark' else 'delete+insert',
        partition_by=['snapshot_date'] if target.type == 'spark' else none,
        on_schema_change='append_new_columns'
    )
}}
{%- set snapshot_dates = ar_snapshot_dates() -%}

-- AR aging history: one row per (snapshot date, invoice open on that date), for every month end of
-- the last var('snapshot_months') months and every day of the last var('snapshot_daily_days') days.
-- Each snapshot is rebuilt from the dated applications exactly as fct_ar_aging is for one date, so
-- fct_ar_aging for a past as-of date equals this table's rows for that date. Incremental: a run
-- replaces the snapshot dates it computes and keeps older ones (history survives later runs).

with

snapshot_dates as (

    {% for d in snapshot_dates -%}
    select cast('{{ d }}' as date) as snapshot_date
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

invoices as (

    select * from {{ ref('int_invoices_unioned') }}
    where not is_void

),

applications as (

    select invoice_key, applied_date, amount
    from {{ ref('int_invoice_applications_unioned') }}

),

-- An invoice can only be open between its invoice date and the day its applications first cover
-- its total; pairing it with those snapshot dates only keeps the work proportional to open AR.
settled as (

    select
        invoice_key,
        min(case when cumulative_applied >= total_amount then applied_date end) as settled_date
    from (
        select
            applications.invoice_key,
            applications.applied_date,
            invoices.total_amount,
            sum(applications.amount) over (
                partition by applications.invoice_key
                order by applications.applied_date
                rows between unbounded preceding and current row
            ) as cumulative_applied
        from applications
        inner join invoices
            on applications.invoice_key = invoices.invoice_key
    ) as running
    group by invoice_key

),

candidates as (

    select
        snapshot_dates.snapshot_date,
        invoices.*
    from invoices
    left join settled
        on invoices.invoice_key = settled.invoice_key
    inner join snapshot_dates
        on invoices.invoice_date <= snapshot_dates.snapshot_date
        and (settled.settled_date is null or settled.settled_date > snapshot_dates.snapshot_date)
        and (invoices.uncollectible_date is null or invoices.uncollectible_date > snapshot_dates.snapshot_date)

),

open_amounts as (

    select
        candidates.snapshot_date,
        candidates.invoice_key,
        max(candidates.total_amount) - coalesce(sum(applications.amount), 0) as open_amount
    from candidates
    left join applications
        on candidates.invoice_key = applications.invoice_key
        and applications.applied_date <= candidates.snapshot_date
    group by candidates.snapshot_date, candidates.invoice_key

),

customers as (

    select customer_id, customer_name from {{ ref('int_customers_unioned') }}

),

final as (

    select
        open_amounts.snapshot_date,
        cast(candidates.invoice_key as {{ dbt.type_string() }}) as invoice_key,
        cast(candidates.source as {{ dbt.type_string() }}) as source,
        cast(candidates.source_invoice_id as {{ dbt.type_string() }}) as source_invoice_id,
        cast(candidates.customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(customers.customer_name as {{ dbt.type_string() }}) as customer_name,
        candidates.invoice_date,
        candidates.due_date,
        cast({{ dbt.datediff('candidates.due_date', 'open_amounts.snapshot_date', 'day') }} as {{ dbt.type_bigint() }})
            as days_past_due,
        cast({{ dbt.datediff('candidates.invoice_date', 'open_amounts.snapshot_date', 'day') }} as {{ dbt.type_bigint() }})
            as days_outstanding,
        cast('{{ aging_basis() }}' as {{ dbt.type_string() }}) as aging_basis,
        cast({{ aging_bucket(aging_days('candidates.due_date', 'candidates.invoice_date', 'open_amounts.snapshot_date')) }}
            as {{ dbt.type_string() }}) as aging_bucket,
        cast({{ aging_bucket_sort(aging_days('candidates.due_date', 'candidates.invoice_date', 'open_amounts.snapshot_date')) }}
            as {{ dbt.type_bigint() }}) as aging_bucket_sort,
        cast(candidates.currency as {{ dbt.type_string() }}) as currency,
        {{ to_money('open_amounts.open_amount') }} as open_amount,
        {{ to_rate('candidates.exchange_rate') }} as exchange_rate,
        candidates.exchange_rate_date,
        cast(candidates.exchange_rate_source as {{ dbt.type_string() }}) as exchange_rate_source,
        {{ to_home_amount('open_amounts.open_amount', 'candidates.exchange_rate') }} as home_open_amount
    from open_amounts
    inner join candidates
        on open_amounts.snapshot_date = candidates.snapshot_date
        and open_amounts.invoice_key = candidates.invoice_key
    left join customers
        on candidates.customer_id = customers.customer_id
    where open_amounts.open_amount > 0

)

select * from final
