-- One row per customer across QuickBooks and Stripe, keyed '<source>:<source customer id>'.

with

quickbooks_customers as (

    select * from {{ ref('stg_quickbooks__customers') }}

),

stripe_customers as (

    select * from {{ ref('stg_stripe__customers') }}

),

stripe_deleted_customers as (

    select source_id from {{ ref('stg_stripe__deleted_objects') }}
    where object_type = 'customer'

),

quickbooks as (

    select
        {{ dbt.concat(["'quickbooks:'", 'customer_id']) }} as customer_id,
        'quickbooks' as source,
        customer_id as source_customer_id,
        customer_name,
        email,
        tax_id,
        customer_type_id as segment,
        coalesce(bill_country, bill_region) as region,
        -- A single-currency QBO company sends no CurrencyRef: everything is in the home currency.
        coalesce(currency, {{ ar_home_currency() }}) as currency,
        is_active,
        case
            when parent_customer_id is not null
                then {{ dbt.concat(["'quickbooks:'", 'parent_customer_id']) }}
        end as parent_customer_id
    from quickbooks_customers

),

stripe as (

    select
        {{ dbt.concat(["'stripe:'", 'customer_id']) }} as customer_id,
        'stripe' as source,
        customer_id as source_customer_id,
        customer_name,
        email,
        tax_id,
        segment,
        region,
        currency,
        -- A deleted Stripe customer keeps its invoices; it is kept here, inactive.
        not (
            stripe_customers.is_deleted
            or stripe_deleted_customers.source_id is not null
        ) as is_active,
        cast(null as {{ dbt.type_string() }}) as parent_customer_id
    from stripe_customers
    left join stripe_deleted_customers
        on stripe_customers.customer_id = stripe_deleted_customers.source_id

),

exports as (

    -- Exports carry no customer records: one customer per id (or name) seen on their invoices.
    select
        {{ dbt.concat(['export_source', "':'", 'customer_id']) }} as customer_id,
        export_source as source,
        customer_id as source_customer_id,
        max(customer_name) as customer_name,
        cast(null as {{ dbt.type_string() }}) as email,
        cast(null as {{ dbt.type_string() }}) as tax_id,
        cast(null as {{ dbt.type_string() }}) as segment,
        cast(null as {{ dbt.type_string() }}) as region,
        max(coalesce(currency, {{ ar_home_currency() }})) as currency,
        true as is_active,
        cast(null as {{ dbt.type_string() }}) as parent_customer_id
    from {{ ref('stg_exports__invoices') }}
    group by export_source, customer_id

),

unioned as (

    select * from quickbooks
    union all
    select * from stripe
    union all
    select * from exports

),

attribute_map as (

    select * from {{ ref('customer_attribute_map') }}

)

-- Segment and region in one vocabulary across sources (seed customer_attribute_map);
-- unmapped values pass through as the source sent them.
select
    unioned.customer_id,
    unioned.source,
    unioned.source_customer_id,
    unioned.customer_name,
    unioned.email,
    unioned.tax_id,
    coalesce(segment_map.mapped_value, unioned.segment) as segment,
    coalesce(region_map.mapped_value, unioned.region) as region,
    unioned.currency,
    unioned.is_active,
    unioned.parent_customer_id
from unioned
left join attribute_map as segment_map
    on segment_map.source = unioned.source
    and segment_map.attribute = 'segment'
    and segment_map.source_value = unioned.segment
left join attribute_map as region_map
    on region_map.source = unioned.source
    and region_map.attribute = 'region'
    and region_map.source_value = unioned.region
