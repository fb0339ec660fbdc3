with

latest_version as (

    {{ stripe_latest_version('raw_charges') }}

),

currency_exponents as (

    select * from {{ ref('currency_exponents') }}

),

renamed as (

    select
        ----------  ids
        latest_version.id as charge_id,
        latest_version.customer as customer_id,
        latest_version.payment_intent as payment_intent_id,
        latest_version.invoice as invoice_id,
        latest_version.balance_transaction as balance_transaction_id,

        ----------  text
        latest_version.status,
        upper(latest_version.currency) as currency,

        ----------  booleans
        coalesce(latest_version.paid, false) as is_paid,
        coalesce(latest_version.refunded, false) as is_refunded,
        coalesce(latest_version.disputed, false) as is_disputed,

        ----------  amounts (major units, charge currency)
        {{ minor_to_major('latest_version.amount', 'coalesce(currency_exponents.exponent, 2)') }} as amount,
        {{ minor_to_major('latest_version.amount_captured', 'coalesce(currency_exponents.exponent, 2)') }} as amount_captured,
        {{ minor_to_major('latest_version.amount_refunded', 'coalesce(currency_exponents.exponent, 2)') }} as amount_refunded,

        ----------  timestamps (UTC) and their UTC dates
        {{ epoch_seconds_to_timestamp('latest_version.created') }} as created_at,
        {{ epoch_seconds_to_date('latest_version.created') }} as created_date,

        latest_version._loaded_at

    from latest_version
    left join currency_exponents
        on lower(latest_version.currency) = currency_exponents.currency

)

select * from renamed
