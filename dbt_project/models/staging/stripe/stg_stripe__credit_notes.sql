with

latest_version as (

    {{ stripe_latest_version('raw_credit_notes') }}

),

currency_exponents as (

    select * from {{ ref('currency_exponents') }}

),

renamed as (

    select
        ----------  ids
        latest_version.id as credit_note_id,
        latest_version.number as credit_note_number,
        latest_version.invoice as invoice_id,
        latest_version.customer as customer_id,

        ----------  text
        latest_version.type as credit_note_type,
        latest_version.status,
        latest_version.reason,
        upper(latest_version.currency) as currency,

        ----------  amounts (major units, invoice currency)
        {{ minor_to_major('latest_version.amount', 'coalesce(currency_exponents.exponent, 2)') }} as amount,
        {{ minor_to_major('latest_version.total', 'coalesce(currency_exponents.exponent, 2)') }} as total_amount,
        {{ minor_to_major('coalesce(latest_version.pre_payment_amount, 0)', 'coalesce(currency_exponents.exponent, 2)') }} as pre_payment_amount,
        {{ minor_to_major('coalesce(latest_version.post_payment_amount, 0)', 'coalesce(currency_exponents.exponent, 2)') }} as post_payment_amount,
        {{ minor_to_major('coalesce(latest_version.out_of_band_amount, 0)', 'coalesce(currency_exponents.exponent, 2)') }} as out_of_band_amount,

        ----------  timestamps (UTC) and their UTC dates
        {{ epoch_seconds_to_timestamp('latest_version.created') }} as created_at,
        {{ epoch_seconds_to_date('latest_version.created') }} as created_date,
        {{ epoch_seconds_to_timestamp('latest_version.effective_at') }} as effective_at,
        {{ epoch_seconds_to_date('latest_version.effective_at') }} as effective_date,
        {{ epoch_seconds_to_timestamp('latest_version.voided_at') }} as voided_at,

        latest_version._loaded_at

    from latest_version
    left join currency_exponents
        on lower(latest_version.currency) = currency_exponents.currency

)

select * from renamed
