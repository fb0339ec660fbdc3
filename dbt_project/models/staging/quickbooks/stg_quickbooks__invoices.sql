with

latest_version as (

    {{ quickbooks_latest_version('raw_invoices') }}

),

renamed as (

    select
        ----------  ids
        id as invoice_id,
        doc_number as invoice_number,
        customer_id,
        sales_term_id,

        ----------  text
        customer_name,
        upper(currency) as currency,
        email_status,
        bill_email,
        private_note,

        ----------  booleans
        -- QBO voids keep the record, zero its amounts and prepend 'Voided' to PrivateNote.
        coalesce(private_note like 'Voided%' and total_amount = 0, false) as is_voided,

        ----------  amounts (major units, invoice currency)
        {{ to_rate('exchange_rate') }} as exchange_rate,
        {{ to_money('total_amount') }} as total_amount,
        {{ to_money('balance') }} as balance,
        {{ to_money('home_total_amount') }} as home_total_amount,
        {{ to_money('home_balance') }} as home_balance,
        {{ to_money('total_tax') }} as total_tax,

        ----------  dates and timestamps
        txn_date as invoice_date,
        due_date,
        created_at,
        last_updated_at,

        ----------  raw JSON kept for downstream parsing
        lines,
        linked_txns,
        custom_fields,

        sync_token,
        _loaded_at

    from latest_version

)

select * from renamed
