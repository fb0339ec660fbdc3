-- The event history rebuilds every open balance: for each invoice, the sum of its events'
-- invoice_balance_effect up to the as-of date equals fct_invoices.open_amount (zero when void or
-- written off), and up to each month end of the last 12 months equals that snapshot's open amount
-- in fct_ar_aging_snapshots (zero when the invoice is not in that snapshot). Returns mismatches.
{%- set as_of_date = ar_as_of_date() %}

with

events as (

    select invoice_key, event_date, invoice_balance_effect
    from {{ ref('fct_ar_events') }}
    where invoice_key is not null

),

at_as_of as (

    select
        invoices.invoice_key,
        {{ as_of_date }} as balance_date,
        case when invoices.status in ('void', 'uncollectible') then 0 else invoices.open_amount end as expected,
        coalesce(sum(events.invoice_balance_effect), 0) as from_events
    from {{ ref('fct_invoices') }} as invoices
    left join events
        on invoices.invoice_key = events.invoice_key
    group by invoices.invoice_key, invoices.status, invoices.open_amount

),

month_ends as (

    select distinct snapshot_date
    from {{ ref('fct_ar_aging_snapshots') }}
    where {{ dbt.dateadd('day', 1, 'snapshot_date') }} = {{ dbt.date_trunc('month', dbt.dateadd('day', 1, 'snapshot_date')) }}
        and snapshot_date <= {{ as_of_date }}
        and snapshot_date > {{ dbt.dateadd('month', -12, as_of_date) }}

),

event_balances as (

    select
        events.invoice_key,
        month_ends.snapshot_date as balance_date,
        sum(events.invoice_balance_effect) as from_events
    from events
    inner join month_ends
        on events.event_date <= month_ends.snapshot_date
    group by events.invoice_key, month_ends.snapshot_date

),

snapshots as (

    select snapshots.invoice_key, snapshots.snapshot_date as balance_date, snapshots.open_amount
    from {{ ref('fct_ar_aging_snapshots') }} as snapshots
    inner join month_ends
        on snapshots.snapshot_date = month_ends.snapshot_date

),

at_month_ends as (

    select
        coalesce(snapshots.invoice_key, event_balances.invoice_key) as invoice_key,
        coalesce(snapshots.balance_date, event_balances.balance_date) as balance_date,
        coalesce(snapshots.open_amount, 0) as expected,
        -- the snapshot keeps positive balances only
        case when event_balances.from_events > 0 then event_balances.from_events else 0 end as from_events
    from snapshots
    full outer join event_balances
        on snapshots.invoice_key = event_balances.invoice_key
        and snapshots.balance_date = event_balances.balance_date

)

select * from at_as_of where abs(expected - from_events) >= 0.005
union all
select * from at_month_ends where abs(expected - from_events) >= 0.005
