{%- set max_hops = var('customer_link_max_hops', 8) -%}
{%- if max_hops is not number or max_hops < 1 -%}
    {{ exceptions.raise_compiler_error("var('customer_link_max_hops') must be a whole number >= 1, got: " ~ max_hops) }}
{%- endif -%}

-- One row per customer with the group of customers linked to it (int_customer_links), transitively:
-- A-B by email and B-C by tax id put A, B and C in one group. The group id is the smallest
-- customer_id in the group (a QuickBooks id when the group has one: 'quickbooks:' sorts before
-- 'stripe:'); an unlinked customer is its own group.
--
-- Grouping is label propagation, unrolled var('customer_link_max_hops') times: each pass gives every
-- linked customer the smallest group id among itself and its direct links. After N passes a group
-- whose customers are at most N links apart has converged. Test
-- assert_customer_link_groups_converged fails if a chain is longer than that (raise the var).

with

customers as (

    select customer_id, customer_name from {{ ref('int_customers_unioned') }}

),

links as (

    select customer_id, linked_customer_id from {{ ref('int_customer_links') }}

),

labels_0 as (

    select distinct customer_id, customer_id as customer_group_id
    from links

),

{% for hop in range(1, max_hops + 1) %}
labels_{{ hop }} as (

    select customer_id, min(customer_group_id) as customer_group_id
    from (
        select customer_id, customer_group_id from labels_{{ hop - 1 }}
        union all
        select links.customer_id, neighbour.customer_group_id
        from links
        inner join labels_{{ hop - 1 }} as neighbour
            on links.linked_customer_id = neighbour.customer_id
    ) as candidates
    group by customer_id

),
{% endfor %}

grouped as (

    select
        customers.customer_id,
        coalesce(labels.customer_group_id, customers.customer_id) as customer_group_id
    from customers
    left join labels_{{ max_hops }} as labels
        on customers.customer_id = labels.customer_id

)

select
    grouped.customer_id,
    grouped.customer_group_id,
    representative.customer_name as customer_group_name
from grouped
left join customers as representative
    on grouped.customer_group_id = representative.customer_id
