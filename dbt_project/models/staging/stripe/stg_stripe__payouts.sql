with

latest_version as (

    {{ stripe_latest_version('raw_payouts') }}

),

currency_exponents as (

    select * from {{ ref('currency_exponents') }}

),

renamed as (

    select
        ----------  ids
        latest_version.id as payout_id,
        latest_version.balance_transaction as balance_transaction_id,

        ----------  text
        latest_version.status,
        latest_version.method,
        latest_version.type as payout_type,
        latest_version.failure_code,
        latest_version.statement_descriptor,
        latest_version.description,
        upper(latest_version.currency) as currency,

        ----------  booleans
        coalesce(latest_version.automatic, false) as is_automatic,

        ----------  amounts (major units)
        {{ minor_to_major('latest_version.amount', 'coalesce(currency_exponents.exponent, 2)') }} as amount,

        ----------  timestamps (UTC) and their UTC dates
        {{ epoch_seconds_to_date('latest_version.arrival_date') }} as arrival_date,
        {{ epoch_seconds_to_timestamp('latest_version.created') }} as created_at,
        {{ epoch_seconds_to_date('latest_version.created') }} as created_date,

        latest_version._loaded_at

    from latest_version
    left join currency_exponents
        on lower(latest_version.currency) = currency_exponents.currency

)

select * from renamed
