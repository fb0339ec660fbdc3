with

latest_version as (

    {{ stripe_latest_version('raw_balance_transactions') }}

),

currency_exponents as (

    select * from {{ ref('currency_exponents') }}

),

renamed as (

    select
        ----------  ids
        latest_version.id as balance_transaction_id,
        latest_version.source as source_id,

        ----------  text
        latest_version.type as transaction_type,
        latest_version.reporting_category,
        latest_version.status,
        latest_version.description,
        upper(latest_version.currency) as currency,

        ----------  amounts (major units, balance currency)
        {{ minor_to_major('latest_version.amount', 'coalesce(currency_exponents.exponent, 2)') }} as amount,
        {{ minor_to_major('latest_version.fee', 'coalesce(currency_exponents.exponent, 2)') }} as fee_amount,
        {{ minor_to_major('latest_version.net', 'coalesce(currency_exponents.exponent, 2)') }} as net_amount,
        latest_version.exchange_rate,

        ----------  timestamps (UTC) and their UTC dates
        {{ epoch_seconds_to_timestamp('latest_version.available_on') }} as available_at,
        {{ epoch_seconds_to_date('latest_version.available_on') }} as available_date,
        {{ epoch_seconds_to_timestamp('latest_version.created') }} as created_at,
        {{ epoch_seconds_to_date('latest_version.created') }} as created_date,

        latest_version._loaded_at

    from latest_version
    left join currency_exponents
        on lower(latest_version.currency) = currency_exponents.currency

)

select * from renamed
