-- The groupings KPI marts report by: one row per customer and grouping ('all', 'segment',
-- 'region', 'collector') with the customer's value in it ('unknown' when not set). Joining a fact on customer_id
-- fans it out to every grouping at once.

with

customers as (

    select
        customer_id,
        coalesce(segment, 'unknown') as segment,
        coalesce(region, 'unknown') as region
    from {{ ref('int_customers_unioned') }}

),

collectors as (

    select customer_id, collector from {{ ref('int_customer_collectors') }}

)

select customer_id, 'all' as dimension, 'all' as dimension_value from customers
union all
select customer_id, 'segment' as dimension, segment as dimension_value from customers
union all
select customer_id, 'region' as dimension, region as dimension_value from customers
union all
select customer_id, 'collector' as dimension, collector as dimension_value from collectors
