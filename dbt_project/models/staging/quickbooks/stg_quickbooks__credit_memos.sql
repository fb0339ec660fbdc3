with

latest_version as (

    {{ quickbooks_latest_version('raw_credit_memos') }}

),

renamed as (

    select
        ----------  ids
        id as credit_memo_id,
        doc_number as credit_memo_number,
        customer_id,

        ----------  text
        upper(currency) as currency,
        private_note,

        ----------  amounts (major units, credit memo currency)
        {{ to_rate('exchange_rate') }} as exchange_rate,
        {{ to_money('total_amount') }} as total_amount,
        {{ to_money('balance') }} as balance,
        {{ to_money('remaining_credit') }} as remaining_credit,

        ----------  dates and timestamps
        txn_date as credit_memo_date,
        created_at,
        last_updated_at,

        lines,

        sync_token,
        _loaded_at

    from latest_version

)

select * from renamed
