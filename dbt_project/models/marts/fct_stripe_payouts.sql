{%- set as_of_date = ar_as_of_date() -%}

-- One row per Stripe payout created on or before the as-of date, with the balance transactions it
-- paid out (int_stripe_balance_transactions_paid_out): gross charges, Stripe fees, refunds and
-- disputes, and whether they add up to the payout amount.

with

payouts as (

    select * from {{ ref('stg_stripe__payouts') }}
    where created_date <= {{ as_of_date }}

),

parts as (

    select
        payout_id,
        sum(case when transaction_type in ('charge', 'payment') then 1 else 0 end) as charge_count,
        sum(case when transaction_type in ('charge', 'payment') then amount else 0 end) as charge_gross_amount,
        sum(fee_amount) as fee_amount,
        -sum(case when transaction_type in ('refund', 'payment_refund') then amount else 0 end) as refund_amount,
        -sum(case when reporting_category in ('dispute', 'dispute_reversal') then amount else 0 end) as dispute_amount,
        sum(net_amount) as transaction_net_amount
    from {{ ref('int_stripe_balance_transactions_paid_out') }}
    where payout_id is not null
    group by payout_id

)

select
    cast(payouts.payout_id as {{ dbt.type_string() }}) as payout_id,
    cast('stripe' as {{ dbt.type_string() }}) as source,
    cast(payouts.currency as {{ dbt.type_string() }}) as currency,
    {{ to_money('payouts.amount') }} as amount,
    payouts.created_date,
    payouts.arrival_date,
    cast(payouts.status as {{ dbt.type_string() }}) as status,
    payouts.is_automatic,
    cast(coalesce(parts.charge_count, 0) as bigint) as charge_count,
    {{ to_money('coalesce(parts.charge_gross_amount, 0)') }} as charge_gross_amount,
    {{ to_money('coalesce(parts.fee_amount, 0)') }} as fee_amount,
    {{ to_money('coalesce(parts.refund_amount, 0)') }} as refund_amount,
    {{ to_money('coalesce(parts.dispute_amount, 0)') }} as dispute_amount,
    {{ to_money('coalesce(parts.transaction_net_amount, 0)') }} as transaction_net_amount,
    coalesce(abs(parts.transaction_net_amount - payouts.amount) < 0.005, false) as is_reconciled
from payouts
left join parts
    on parts.payout_id = payouts.payout_id
