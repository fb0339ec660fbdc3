with

latest_version as (

    {{ stripe_latest_version('raw_invoice_payments') }}

),

currency_exponents as (

    select * from {{ ref('currency_exponents') }}

),

renamed as (

    select
        ----------  ids
        latest_version.id as invoice_payment_id,
        latest_version.invoice as invoice_id,
        latest_version.payment_charge as charge_id,
        latest_version.payment_intent as payment_intent_id,

        ----------  text
        latest_version.status,
        latest_version.payment_type,
        upper(latest_version.currency) as currency,

        ----------  booleans
        coalesce(latest_version.is_default, false) as is_default,

        ----------  amounts (major units, invoice currency)
        {{ minor_to_major('latest_version.amount_paid', 'coalesce(currency_exponents.exponent, 2)') }} as amount_paid,
        {{ minor_to_major('latest_version.amount_requested', 'coalesce(currency_exponents.exponent, 2)') }} as amount_requested,

        ----------  timestamps (UTC) and their UTC dates
        {{ epoch_seconds_to_timestamp('latest_version.created') }} as created_at,
        {{ epoch_seconds_to_date('latest_version.created') }} as created_date,
        {{ epoch_seconds_to_timestamp('latest_version.paid_at') }} as paid_at,
        {{ epoch_seconds_to_date('latest_version.paid_at') }} as paid_date,
        {{ epoch_seconds_to_timestamp('latest_version.canceled_at') }} as canceled_at,

        latest_version._loaded_at

    from latest_version
    left join currency_exponents
        on lower(latest_version.currency) = currency_exponents.currency

)

select * from renamed
