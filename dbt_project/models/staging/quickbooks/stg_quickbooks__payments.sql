with

latest_version as (

    {{ quickbooks_latest_version('raw_payments') }}

),

renamed as (

    select
        ----------  ids
        id as payment_id,
        customer_id,
        payment_method_id,
        deposit_to_account_id,

        ----------  text
        upper(currency) as currency,
        payment_ref_num,
        private_note,

        ----------  booleans
        coalesce(private_note like 'Voided%' and total_amount = 0, false) as is_voided,

        ----------  amounts (major units, payment currency)
        {{ to_rate('exchange_rate') }} as exchange_rate,
        {{ to_money('total_amount') }} as total_amount,
        {{ to_money('coalesce(unapplied_amount, 0)') }} as unapplied_amount,

        ----------  dates and timestamps
        txn_date as payment_date,
        created_at,
        last_updated_at,

        ----------  raw JSON (the API's Line array), parsed by stg_quickbooks__payment_lines
        lines,

        sync_token,
        _loaded_at

    from latest_version

)

select * from renamed
