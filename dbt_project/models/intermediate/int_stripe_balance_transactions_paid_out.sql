-- One row per Stripe balance transaction that is not itself a payout, with the automatic payout that
-- paid it out. The BalanceTransaction object does not name its payout; Stripe's automatic payouts
-- pay every transaction of the currency that became available (available_on) up to the payout's
-- creation, so a transaction belongs to the earliest automatic payout of its currency created at or
-- after its available_at. Manual payouts are not linked (payout_id null, as for transactions not yet
-- paid out).

with

transactions as (

    select * from {{ ref('stg_stripe__balance_transactions') }}
    where transaction_type not in ('payout', 'payout_cancel', 'payout_failure')

),

payouts as (

    select payout_id, currency, created_at
    from {{ ref('stg_stripe__payouts') }}
    where is_automatic and status not in ('canceled', 'failed')

),

first_payout as (

    select
        transactions.balance_transaction_id,
        min(payouts.created_at) as payout_created_at
    from transactions
    inner join payouts
        on payouts.currency = transactions.currency
        and payouts.created_at >= transactions.available_at
    group by transactions.balance_transaction_id

)

select
    transactions.balance_transaction_id,
    transactions.transaction_type,
    transactions.reporting_category,
    transactions.source_id,
    transactions.currency,
    transactions.amount,
    transactions.fee_amount,
    transactions.net_amount,
    transactions.available_at,
    transactions.created_at,
    transactions.created_date,
    payouts.payout_id
from transactions
left join first_payout
    on first_payout.balance_transaction_id = transactions.balance_transaction_id
left join payouts
    on payouts.currency = transactions.currency
    and payouts.created_at = first_payout.payout_created_at
