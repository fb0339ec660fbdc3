-- Customers linked across sources (see int_customer_links and var('customer_link_rules')): one row
-- per linked pair and direction, so filtering customer_id shows every direct link of a customer.

with

links as (

    select * from {{ ref('int_customer_links') }}

),

customers as (

    select customer_id, source, customer_name from {{ ref('int_customers_unioned') }}

),

groups as (

    select customer_id, customer_group_id, customer_group_name from {{ ref('int_customer_groups') }}

),

final as (

    select
        cast(links.customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(this_customer.source as {{ dbt.type_string() }}) as source,
        cast(this_customer.customer_name as {{ dbt.type_string() }}) as customer_name,
        cast(links.linked_customer_id as {{ dbt.type_string() }}) as linked_customer_id,
        cast(linked_customer.source as {{ dbt.type_string() }}) as linked_source,
        cast(linked_customer.customer_name as {{ dbt.type_string() }}) as linked_customer_name,
        cast(links.matched_on as {{ dbt.type_string() }}) as matched_on,
        cast(links.matched_value as {{ dbt.type_string() }}) as matched_value,
        cast(groups.customer_group_id as {{ dbt.type_string() }}) as customer_group_id,
        cast(groups.customer_group_name as {{ dbt.type_string() }}) as customer_group_name
    from links
    inner join customers as this_customer
        on links.customer_id = this_customer.customer_id
    inner join customers as linked_customer
        on links.linked_customer_id = linked_customer.customer_id
    inner join groups
        on links.customer_id = groups.customer_id

)

select * from final
