-- The snapshot taken on the as-of date must be exactly fct_ar_aging: same invoices, same amounts,
-- same buckets. Returns the invoices where the two disagree.

{%- set as_of_date = ar_as_of_date() %}

with

snapshot as (

    select invoice_key, open_amount, aging_bucket
    from {{ ref('fct_ar_aging_snapshots') }}
    where snapshot_date = {{ as_of_date }}

),

aging as (

    select invoice_key, open_amount, aging_bucket
    from {{ ref('fct_ar_aging') }}

)

select
    coalesce(snapshot.invoice_key, aging.invoice_key) as invoice_key,
    snapshot.open_amount as snapshot_open_amount,
    aging.open_amount as aging_open_amount,
    snapshot.aging_bucket as snapshot_bucket,
    aging.aging_bucket as aging_bucket
from snapshot
full outer join aging
    on snapshot.invoice_key = aging.invoice_key
where snapshot.invoice_key is null
    or aging.invoice_key is null
    or snapshot.open_amount <> aging.open_amount
    or snapshot.aging_bucket <> aging.aging_bucket
