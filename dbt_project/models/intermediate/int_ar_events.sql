-- The AR event history: one row per dated event across all sources, whatever its kind, so the open
-- balance of any invoice (and the unapplied credit of any customer) as of any date is a sum of the
-- events dated on or before it. No as-of filter here (fct_ar_events applies it).
--
--   event_type               invoice_balance_effect   customer_credit_effect
--   invoice_issued           + total (invoice date)          0
--   invoice_voided           - total (invoice date: a voided invoice was never receivable, as
--                                     the aging treats it; the source's void date is in detail)
--   payment                  - amount applied                0
--   credit_applied           - amount (QBO credit memo        - amount (the customer's credit
--                              applied to the invoice)          is used up)
--   credit_note              - pre-payment amount (Stripe)   0
--   write_off                - open balance on the day: Stripe "marked uncollectible"; QuickBooks
--                              credit memos whose note or lines name var('write_off_keywords')
--                              (the QuickBooks bad-debt procedure) — these replace credit_applied
--   write_off_reversal       + a payment received after a Stripe write-off (the payment event
--                              follows), so a written-off invoice stays at zero
--   unapplied_cash_received  0                               + amount not applied to any invoice
--   credit_memo_issued       0                               + credit memo total (QuickBooks)
--   refund, dispute_opened   0 (cash returned / charge disputed: recorded, no balance change)
{%- set keywords = var('write_off_keywords', ['bad debt', 'write off', 'write-off', 'writeoff']) %}

with

invoices as (

    select * from {{ ref('int_invoices_unioned') }}

),

applications as (

    select * from {{ ref('int_invoice_applications_unioned') }}

),

-- QuickBooks records a credit applied to an invoice as a zero-total payment linking both; the credit
-- memo tells whether it was a bad-debt write-off.
quickbooks_credit_memos as (

    select
        credit_memo_id,
        case when
            {%- for keyword in keywords %}
            lower(coalesce(private_note, '')) like '%{{ keyword | lower }}%'
            or lower(coalesce(cast(lines as {{ dbt.type_string() }}), '')) like '%{{ keyword | lower }}%'
            {%- if not loop.last %} or {% endif %}
            {%- endfor %}
        then 1 else 0 end as is_write_off
    from {{ ref('stg_quickbooks__credit_memos') }}

),

quickbooks_write_off_payments as (

    select payment_lines.payment_id
    from {{ ref('stg_quickbooks__payment_lines') }} as payment_lines
    inner join quickbooks_credit_memos
        on payment_lines.linked_txn_id = quickbooks_credit_memos.credit_memo_id
    where payment_lines.linked_txn_type = 'CreditMemo'
    group by payment_lines.payment_id
    having max(quickbooks_credit_memos.is_write_off) = 1

),

-- Stripe "marked uncollectible": what was still open that day is written off.
stripe_write_offs as (

    select
        invoices.invoice_key,
        invoices.uncollectible_date,
        invoices.total_amount - coalesce(sum(
            case when applications.applied_date <= invoices.uncollectible_date then applications.amount end
        ), 0) as written_off_amount
    from invoices
    left join applications
        on invoices.invoice_key = applications.invoice_key
    where invoices.uncollectible_date is not null
        and not invoices.is_void
    group by invoices.invoice_key, invoices.uncollectible_date, invoices.total_amount

),

issued as (

    select
        {{ dbt.concat(['invoice_key', "':issued'"]) }} as event_key,
        'invoice_issued' as event_type,
        invoice_date as event_date,
        source,
        invoice_key,
        customer_id,
        source_invoice_id as source_document_id,
        currency,
        exchange_rate,
        total_amount as amount,
        total_amount as invoice_balance_effect,
        0 as customer_credit_effect,
        cast(null as {{ dbt.type_string() }}) as detail
    from invoices

),

voided as (

    select
        {{ dbt.concat(['invoice_key', "':voided'"]) }} as event_key,
        'invoice_voided' as event_type,
        invoice_date as event_date,
        source,
        invoice_key,
        customer_id,
        source_invoice_id as source_document_id,
        currency,
        exchange_rate,
        total_amount as amount,
        -1 * total_amount as invoice_balance_effect,
        0 as customer_credit_effect,
        case
            when voided_date is not null
                then {{ dbt.concat(["'voided on '", 'cast(voided_date as ' ~ dbt.type_string() ~ ')']) }}
        end as detail
    from invoices
    where is_void

),

applied as (

    select
        applications.application_key as event_key,
        case
            when applications.application_type = 'credit_memo'
                and quickbooks_write_off_payments.payment_id is not null then 'write_off'
            when applications.application_type = 'credit_memo' then 'credit_applied'
            else applications.application_type
        end as event_type,
        applications.applied_date as event_date,
        applications.source,
        applications.invoice_key,
        applications.customer_id,
        applications.source_payment_id as source_document_id,
        applications.currency,
        applications.exchange_rate,
        applications.amount,
        -1 * applications.amount as invoice_balance_effect,
        case
            when applications.application_type = 'credit_memo' then -1 * applications.amount
            else 0
        end as customer_credit_effect,
        cast(null as {{ dbt.type_string() }}) as detail
    from applications
    left join quickbooks_write_off_payments
        on applications.source = 'quickbooks'
        and applications.source_payment_id = quickbooks_write_off_payments.payment_id

),

written_off as (

    select
        {{ dbt.concat(['stripe_write_offs.invoice_key', "':write_off'"]) }} as event_key,
        'write_off' as event_type,
        stripe_write_offs.uncollectible_date as event_date,
        invoices.source,
        invoices.invoice_key,
        invoices.customer_id,
        invoices.source_invoice_id as source_document_id,
        invoices.currency,
        invoices.exchange_rate,
        stripe_write_offs.written_off_amount as amount,
        -1 * stripe_write_offs.written_off_amount as invoice_balance_effect,
        0 as customer_credit_effect,
        'marked uncollectible' as detail
    from stripe_write_offs
    inner join invoices
        on stripe_write_offs.invoice_key = invoices.invoice_key
    where stripe_write_offs.written_off_amount > 0

),

write_off_reversals as (

    select
        {{ dbt.concat(['applications.application_key', "':write_off_reversal'"]) }} as event_key,
        'write_off_reversal' as event_type,
        applications.applied_date as event_date,
        applications.source,
        applications.invoice_key,
        applications.customer_id,
        applications.source_payment_id as source_document_id,
        applications.currency,
        applications.exchange_rate,
        applications.amount,
        applications.amount as invoice_balance_effect,
        0 as customer_credit_effect,
        'payment after write-off' as detail
    from applications
    inner join stripe_write_offs
        on applications.invoice_key = stripe_write_offs.invoice_key
        and applications.applied_date > stripe_write_offs.uncollectible_date

),

unapplied as (

    select
        unapplied_key as event_key,
        'unapplied_cash_received' as event_type,
        payment_date as event_date,
        source,
        cast(null as {{ dbt.type_string() }}) as invoice_key,
        customer_id,
        source_payment_id as source_document_id,
        currency,
        exchange_rate,
        amount,
        0 as invoice_balance_effect,
        amount as customer_credit_effect,
        cast(null as {{ dbt.type_string() }}) as detail
    from {{ ref('int_unapplied_payments_unioned') }}

),

-- credit_memo_applied is the other side of credit_applied above: not repeated.
credit_events as (

    select
        event_key,
        event_type,
        event_date,
        source,
        cast(null as {{ dbt.type_string() }}) as invoice_key,
        customer_id,
        source_document_id,
        currency,
        exchange_rate,
        amount,
        0 as invoice_balance_effect,
        case when event_type = 'credit_memo_issued' then amount else 0 end as customer_credit_effect,
        case
            when reason is not null or status is not null
                then {{ dbt.concat(["coalesce(reason, '')", "' / '", "coalesce(status, '')"]) }}
        end as detail
    from {{ ref('int_customer_credit_events_unioned') }}
    where event_type in ('credit_memo_issued', 'refund', 'dispute_opened')

),

unioned as (

    select * from issued
    union all
    select * from voided
    union all
    select * from applied
    union all
    select * from written_off
    union all
    select * from write_off_reversals
    union all
    select * from unapplied
    union all
    select * from credit_events

)

select
    event_key,
    event_type,
    event_date,
    source,
    invoice_key,
    customer_id,
    source_document_id,
    currency,
    {{ to_rate('exchange_rate') }} as exchange_rate,
    {{ to_money('amount') }} as amount,
    {{ to_money('invoice_balance_effect') }} as invoice_balance_effect,
    {{ to_money('customer_credit_effect') }} as customer_credit_effect,
    detail
from unioned
