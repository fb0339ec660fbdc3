-- Who collects each customer, from seed collector_assignments: the most specific row wins,
-- customer_id > segment > region > default; 'unassigned' when no row matches and there is no
-- default. Values are matched exactly as they appear in dim_customers (case-sensitive).

with

customers as (

    select customer_id, segment, region from {{ ref('int_customers_unioned') }}

),

assignments as (

    select match_on, match_value, collector from {{ ref('collector_assignments') }}

),

final as (

    select
        customers.customer_id,
        coalesce(
            by_customer.collector, by_segment.collector, by_region.collector, by_default.collector,
            'unassigned'
        ) as collector,
        case
            when by_customer.collector is not null then 'customer_id'
            when by_segment.collector is not null then 'segment'
            when by_region.collector is not null then 'region'
            when by_default.collector is not null then 'default'
            else 'none'
        end as collector_assigned_by
    from customers
    left join assignments as by_customer
        on by_customer.match_on = 'customer_id' and by_customer.match_value = customers.customer_id
    left join assignments as by_segment
        on by_segment.match_on = 'segment' and by_segment.match_value = customers.segment
    left join assignments as by_region
        on by_region.match_on = 'region' and by_region.match_value = customers.region
    left join assignments as by_default
        on by_default.match_on = 'default'

)

select * from final
