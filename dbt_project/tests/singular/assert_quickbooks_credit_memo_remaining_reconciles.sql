-- QuickBooks: each credit memo's total minus every application of it (whatever its date) equals
-- the RemainingCredit QuickBooks reports. Returns credit memos that do not reconcile (to the cent).

with

credit_memos as (

    select credit_memo_id, total_amount, remaining_credit
    from {{ ref('stg_quickbooks__credit_memos') }}
    where remaining_credit is not null

),

applied as (

    select source_document_id as credit_memo_id, -1 * sum(amount) as applied_amount
    from {{ ref('int_customer_credit_events_unioned') }}
    where event_type = 'credit_memo_applied'
    group by source_document_id

)

select
    credit_memos.credit_memo_id,
    credit_memos.total_amount,
    coalesce(applied.applied_amount, 0) as applied_amount,
    credit_memos.remaining_credit
from credit_memos
left join applied
    on credit_memos.credit_memo_id = applied.credit_memo_id
where abs(credit_memos.total_amount - coalesce(applied.applied_amount, 0) - credit_memos.remaining_credit) >= 0.005
