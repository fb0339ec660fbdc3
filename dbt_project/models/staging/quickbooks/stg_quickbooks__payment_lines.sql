-- One row per Payment Line x LinkedTxn of the latest version of each QBO payment.
-- Line.Amount is the amount of the payment applied to the linked transaction.

with

payments as (

    select
        payment_id,
        lines
    from {{ ref('stg_quickbooks__payments') }}

),

payment_lines as (

    select
        payments.payment_id,
        line_json_unnested.line_number,
        line_json_unnested.line_json
    from payments
    {{ unnest_json_array('payments.lines', 'line_json', 'line_number') }}

),

linked_transactions as (

    select
        payment_lines.payment_id,
        payment_lines.line_number,
        linked_txn_json_unnested.linked_txn_index,
        {{ json_extract_text('linked_txn_json_unnested.linked_txn_json', '$.TxnId') }} as linked_txn_id,
        {{ json_extract_text('linked_txn_json_unnested.linked_txn_json', '$.TxnType') }} as linked_txn_type,
        {{ to_money(json_extract_text('payment_lines.line_json', '$.Amount')) }} as amount
    from payment_lines
    {{ unnest_json_array('payment_lines.line_json', 'linked_txn_json', 'linked_txn_index', '$.LinkedTxn') }}

),

final as (

    select
        {{ dbt.concat([
            'payment_id', "':'",
            dbt.safe_cast('line_number', dbt.type_string()), "':'",
            dbt.safe_cast('linked_txn_index', dbt.type_string())
        ]) }} as payment_line_key,
        payment_id,
        cast(line_number as {{ dbt.type_int() }}) as line_number,
        cast(linked_txn_index as {{ dbt.type_int() }}) as linked_txn_index,
        linked_txn_id,
        linked_txn_type,
        amount
    from linked_transactions

)

select * from final
