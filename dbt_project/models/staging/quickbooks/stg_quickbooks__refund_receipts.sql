with

latest_version as (

    {{ quickbooks_latest_version('raw_refund_receipts') }}

),

renamed as (

    select
        ----------  ids
        id as refund_receipt_id,
        doc_number as refund_receipt_number,
        customer_id,

        ----------  text
        upper(currency) as currency,
        private_note,

        ----------  amounts (major units, receipt currency)
        {{ to_rate('exchange_rate') }} as exchange_rate,
        {{ to_money('total_amount') }} as total_amount,

        ----------  dates and timestamps
        txn_date as refund_date,
        created_at,
        last_updated_at,
        _loaded_at

    from latest_version

)

select * from renamed
