-- One row per dated event that changes a customer's credit or dispute position, from both sources:
--   quickbooks credit_memo_issued (+total) and credit_memo_applied (-amount applied to an invoice),
--   stripe refund (amount refunded on a charge) and dispute_opened (amount disputed on a charge).
-- dim_customers sums these as of the reporting date; they are also history for risk features.

with

credit_memos as (

    select * from {{ ref('stg_quickbooks__credit_memos') }}

),

payment_lines as (

    select * from {{ ref('stg_quickbooks__payment_lines') }}

),

payments as (

    select * from {{ ref('stg_quickbooks__payments') }}

),

refund_receipts as (

    select * from {{ ref('stg_quickbooks__refund_receipts') }}
    where customer_id is not null

),

charges as (

    select * from {{ ref('stg_stripe__charges') }}

),

refunds as (

    select * from {{ ref('stg_stripe__refunds') }}

),

disputes as (

    select * from {{ ref('stg_stripe__disputes') }}

),

memo_issued as (

    select
        {{ dbt.concat(["'quickbooks:credit_memo:'", 'credit_memo_id']) }} as event_key,
        'quickbooks' as source,
        {{ dbt.concat(["'quickbooks:'", 'customer_id']) }} as customer_id,
        'credit_memo_issued' as event_type,
        credit_memo_id as source_document_id,
        credit_memo_date as event_date,
        total_amount as amount,
        coalesce(currency, {{ ar_home_currency() }}) as currency,
        coalesce(
            exchange_rate,
            case when coalesce(currency, {{ ar_home_currency() }}) = {{ ar_home_currency() }} then 1 end
        ) as exchange_rate,
        cast(null as {{ dbt.type_string() }}) as status,
        cast(null as {{ dbt.type_string() }}) as reason
    from credit_memos
    where total_amount <> 0

),

memo_applied as (

    -- QuickBooks records a credit applied to an invoice as a payment line linking the credit memo.
    select
        {{ dbt.concat(["'quickbooks:credit_memo_applied:'", 'payment_lines.payment_line_key']) }} as event_key,
        'quickbooks' as source,
        {{ dbt.concat(["'quickbooks:'", 'payments.customer_id']) }} as customer_id,
        'credit_memo_applied' as event_type,
        payment_lines.linked_txn_id as source_document_id,
        payments.payment_date as event_date,
        -1 * payment_lines.amount as amount,
        coalesce(payments.currency, {{ ar_home_currency() }}) as currency,
        coalesce(
            payments.exchange_rate,
            case when coalesce(payments.currency, {{ ar_home_currency() }}) = {{ ar_home_currency() }} then 1 end
        ) as exchange_rate,
        cast(null as {{ dbt.type_string() }}) as status,
        cast(null as {{ dbt.type_string() }}) as reason
    from payment_lines
    inner join payments
        on payment_lines.payment_id = payments.payment_id
    where payment_lines.linked_txn_type = 'CreditMemo'
        and payment_lines.amount <> 0

),

quickbooks_refunds as (

    select
        {{ dbt.concat(["'quickbooks:refund_receipt:'", 'refund_receipt_id']) }} as event_key,
        'quickbooks' as source,
        {{ dbt.concat(["'quickbooks:'", 'customer_id']) }} as customer_id,
        'refund' as event_type,
        refund_receipt_id as source_document_id,
        refund_date as event_date,
        total_amount as amount,
        coalesce(currency, {{ ar_home_currency() }}) as currency,
        case when coalesce(currency, {{ ar_home_currency() }}) = {{ ar_home_currency() }} then 1 end as exchange_rate,
        cast(null as {{ dbt.type_string() }}) as status,
        cast(null as {{ dbt.type_string() }}) as reason
    from refund_receipts

),

stripe_refunds as (

    select
        {{ dbt.concat(["'stripe:refund:'", 'refunds.refund_id']) }} as event_key,
        'stripe' as source,
        {{ dbt.concat(["'stripe:'", 'charges.customer_id']) }} as customer_id,
        'refund' as event_type,
        refunds.refund_id as source_document_id,
        refunds.created_date as event_date,
        refunds.amount,
        refunds.currency,
        case when refunds.currency = {{ ar_home_currency() }} then 1 end as exchange_rate,
        refunds.status,
        refunds.reason
    from refunds
    inner join charges
        on refunds.charge_id = charges.charge_id
    where charges.customer_id is not null

),

stripe_disputes as (

    select
        {{ dbt.concat(["'stripe:dispute:'", 'disputes.dispute_id']) }} as event_key,
        'stripe' as source,
        {{ dbt.concat(["'stripe:'", 'charges.customer_id']) }} as customer_id,
        'dispute_opened' as event_type,
        disputes.dispute_id as source_document_id,
        disputes.created_date as event_date,
        disputes.amount,
        disputes.currency,
        case when disputes.currency = {{ ar_home_currency() }} then 1 end as exchange_rate,
        disputes.status,
        disputes.reason
    from disputes
    inner join charges
        on disputes.charge_id = charges.charge_id
    where charges.customer_id is not null

)

select * from memo_issued
union all
select * from memo_applied
union all
select * from quickbooks_refunds
union all
select * from stripe_refunds
union all
select * from stripe_disputes
