with

latest_version as (

    {{ stripe_latest_version('raw_invoices') }}

),

currency_exponents as (

    select * from {{ ref('currency_exponents') }}

),

renamed as (

    select
        ----------  ids
        latest_version.id as invoice_id,
        latest_version.number as invoice_number,
        latest_version.customer as customer_id,
        latest_version.charge as charge_id,

        ----------  text
        latest_version.status,
        latest_version.collection_method,
        upper(latest_version.currency) as currency,
        latest_version.customer_email,
        latest_version.customer_name,

        ----------  amounts (major units, invoice currency)
        {{ minor_to_major('latest_version.subtotal', 'coalesce(currency_exponents.exponent, 2)') }} as subtotal_amount,
        {{ minor_to_major('latest_version.total', 'coalesce(currency_exponents.exponent, 2)') }} as total_amount,
        {{ minor_to_major('latest_version.total_excluding_tax', 'coalesce(currency_exponents.exponent, 2)') }} as total_excluding_tax_amount,
        {{ minor_to_major('latest_version.amount_due', 'coalesce(currency_exponents.exponent, 2)') }} as amount_due,
        {{ minor_to_major('latest_version.amount_paid', 'coalesce(currency_exponents.exponent, 2)') }} as amount_paid,
        {{ minor_to_major('latest_version.amount_remaining', 'coalesce(currency_exponents.exponent, 2)') }} as amount_remaining,

        ----------  timestamps (UTC) and their UTC dates
        {{ epoch_seconds_to_timestamp('latest_version.created') }} as created_at,
        {{ epoch_seconds_to_date('latest_version.created') }} as created_date,
        {{ epoch_seconds_to_timestamp('latest_version.effective_at') }} as effective_at,
        {{ epoch_seconds_to_date('latest_version.effective_at') }} as effective_date,
        {{ epoch_seconds_to_timestamp('latest_version.finalized_at') }} as finalized_at,
        {{ epoch_seconds_to_date('latest_version.finalized_at') }} as finalized_date,
        {{ epoch_seconds_to_timestamp('latest_version.due_date') }} as due_at,
        {{ epoch_seconds_to_date('latest_version.due_date') }} as due_date,
        {{ epoch_seconds_to_timestamp('latest_version.paid_at') }} as paid_at,
        {{ epoch_seconds_to_date('latest_version.paid_at') }} as paid_date,
        {{ epoch_seconds_to_timestamp('latest_version.voided_at') }} as voided_at,
        {{ epoch_seconds_to_date('latest_version.voided_at') }} as voided_date,
        {{ epoch_seconds_to_timestamp('latest_version.marked_uncollectible_at') }} as marked_uncollectible_at,
        {{ epoch_seconds_to_date('latest_version.marked_uncollectible_at') }} as marked_uncollectible_date,

        latest_version.metadata,
        latest_version.custom_fields,
        latest_version._loaded_at

    from latest_version
    left join currency_exponents
        on lower(latest_version.currency) = currency_exponents.currency

)

select * from renamed
