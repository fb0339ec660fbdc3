with

latest_version as (

    {{ stripe_latest_version('raw_customers') }}

),

currency_exponents as (

    select * from {{ ref('currency_exponents') }}

),

renamed as (

    select
        ----------  ids
        latest_version.id as customer_id,

        ----------  text
        latest_version.name as customer_name,
        latest_version.email,
        -- first tax id; null unless the customer list was expanded with data.tax_ids
        {{ json_extract_text('latest_version.tax_ids', '$.data[0].value') }} as tax_id,
        upper(latest_version.currency) as currency,
        latest_version.address_country,
        {{ json_extract_text('latest_version.metadata', '$.segment') }} as segment,
        {{ json_extract_text('latest_version.metadata', '$.region') }} as region,

        ----------  booleans
        coalesce(latest_version.delinquent, false) as is_delinquent,
        coalesce(latest_version.is_deleted, false) as is_deleted,

        ----------  amounts (major units). Negative balance = credit the customer can use.
        {{ minor_to_major('latest_version.balance', 'coalesce(currency_exponents.exponent, 2)') }} as balance,

        ----------  timestamps (UTC)
        {{ epoch_seconds_to_timestamp('latest_version.created') }} as created_at,

        latest_version.metadata,
        latest_version._loaded_at

    from latest_version
    left join currency_exponents
        on lower(latest_version.currency) = currency_exponents.currency

)

select * from renamed
