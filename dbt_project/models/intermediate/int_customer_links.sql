{%- set rules = customer_link_rules() -%}

-- Customers of different sources that are the same business: one row per linked pair and direction
-- (A->B and B->A), under the first rule of var('customer_link_rules') the pair matches on, with the
-- normalised value they share. Customers of the same source are never linked to each other directly
-- (one system's own records are authoritative: jobs and branches often share an AP mailbox), but
-- can end up in one group through a customer of another source (int_customer_groups).

with

customers as (

    select * from {{ ref('int_customers_unioned') }}

),

match_keys as (

    {% for rule in rules -%}
    select
        customer_id,
        source,
        '{{ rule }}' as matched_on,
        {{ loop.index }} as rule_rank,
        {{ customer_link_key(rule) }} as matched_value
    from customers
    {% if not loop.last %}union all{% endif %}
    {% else -%}
    select
        cast(null as {{ dbt.type_string() }}) as customer_id,
        cast(null as {{ dbt.type_string() }}) as source,
        cast(null as {{ dbt.type_string() }}) as matched_on,
        0 as rule_rank,
        cast(null as {{ dbt.type_string() }}) as matched_value
    from customers
    where 1 = 0
    {%- endfor %}

),

usable_keys as (

    select * from match_keys
    where matched_value is not null

),

matches as (

    select
        this_side.customer_id,
        other_side.customer_id as linked_customer_id,
        this_side.matched_on,
        this_side.rule_rank,
        this_side.matched_value,
        row_number() over (
            partition by this_side.customer_id, other_side.customer_id
            order by this_side.rule_rank
        ) as rule_order
    from usable_keys as this_side
    inner join usable_keys as other_side
        on this_side.matched_on = other_side.matched_on
        and this_side.matched_value = other_side.matched_value
        and this_side.source <> other_side.source

)

select
    customer_id,
    linked_customer_id,
    matched_on,
    matched_value
from matches
where rule_order = 1
