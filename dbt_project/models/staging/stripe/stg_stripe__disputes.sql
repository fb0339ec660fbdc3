with

latest_version as (

    {{ stripe_latest_version('raw_disputes') }}

),

currency_exponents as (

    select * from {{ ref('currency_exponents') }}

),

renamed as (

    select
        ----------  ids
        latest_version.id as dispute_id,
        latest_version.charge as charge_id,
        latest_version.payment_intent as payment_intent_id,

        ----------  text
        latest_version.status,
        latest_version.reason,
        upper(latest_version.currency) as currency,

        ----------  booleans
        coalesce(latest_version.is_charge_refundable, false) as is_charge_refundable,

        ----------  amounts (major units)
        {{ minor_to_major('latest_version.amount', 'coalesce(currency_exponents.exponent, 2)') }} as amount,

        ----------  timestamps (UTC) and their UTC dates
        {{ epoch_seconds_to_timestamp('latest_version.evidence_due_by') }} as evidence_due_at,
        {{ epoch_seconds_to_timestamp('latest_version.created') }} as created_at,
        {{ epoch_seconds_to_date('latest_version.created') }} as created_date,

        latest_version._loaded_at

    from latest_version
    left join currency_exponents
        on lower(latest_version.currency) = currency_exponents.currency

)

select * from renamed
