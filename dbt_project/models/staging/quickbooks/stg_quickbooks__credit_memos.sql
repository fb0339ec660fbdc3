with

source as (

    select * from {{ source('quickbooks', 'raw_credit_memos') }}

),

latest_version as (

    select
        source.*,
        row_number() over (
            partition by id
            order by
                last_updated_at desc,
                {{ dbt.safe_cast('sync_token', dbt.type_bigint()) }} desc,
                _loaded_at desc,
                _source_row desc
        ) as version_rank
    from source

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
    where version_rank = 1

)

select * from renamed
