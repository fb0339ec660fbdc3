-- One row per dated amount applied to an invoice, across QuickBooks and Stripe:
--   * QBO payment lines linked to an Invoice: 'payment', or 'credit_memo' when the payment has a
--     zero total and also a line linked to a CreditMemo (that is how QBO records applying a credit);
--   * Stripe invoice payments with status 'paid' ('payment', dated paid_at);
--   * Stripe issued credit notes' pre_payment_amount ('credit_note', dated effective_at);
--   * invoice exports: what was paid (amount - open balance, or everything when a paid date is given
--     and no open balance) dated at the paid date, else at the report's as-of date, else the load date;
--   * payment exports (e.g. Stripe "unified payments" CSV): each paid row naming a known invoice pays
--     it on its date. They never double count: rows for an invoice already paid through its own
--     source are ignored, and an invoice with such rows no longer uses its export's open balance.
--   * Stripe API versions before 2025-03-31 have no invoice payments: a succeeded charge that names
--     its invoice pays it ('payment', dated at the charge), for invoices without invoice payments.
-- Zero amounts (e.g. lines of voided QBO payments) are dropped. No as-of filter here.
-- exchange_rate: the QuickBooks payment's rate, 1 in the home currency, else the fx_rates table's
-- rate for the applied date (macro fx_rate_columns).

with

quickbooks_payment_lines as (

    select * from {{ ref('stg_quickbooks__payment_lines') }}

),

quickbooks_payments as (

    select * from {{ ref('stg_quickbooks__payments') }}

),

stripe_invoice_payments as (

    select * from {{ ref('stg_stripe__invoice_payments') }}
    where status = 'paid'

),

stripe_credit_notes as (

    select * from {{ ref('stg_stripe__credit_notes') }}
    where status = 'issued'

),

stripe_invoices as (

    select invoice_id, customer_id from {{ ref('stg_stripe__invoices') }}

),

stripe_charges as (

    select * from {{ ref('stg_stripe__charges') }}
    where status = 'succeeded' and invoice_id is not null

),

quickbooks_credit_memo_payments as (

    select payment_id
    from quickbooks_payment_lines
    where linked_txn_type = 'CreditMemo'
    group by payment_id

),

quickbooks as (

    select
        {{ dbt.concat(["'quickbooks:'", 'quickbooks_payment_lines.payment_line_key']) }} as application_key,
        'quickbooks' as source,
        quickbooks_payment_lines.payment_id as source_payment_id,
        {{ dbt.concat(["'quickbooks:'", 'quickbooks_payment_lines.linked_txn_id']) }} as invoice_key,
        {{ dbt.concat(["'quickbooks:'", 'quickbooks_payments.customer_id']) }} as customer_id,
        quickbooks_payments.payment_date as applied_date,
        case
            when quickbooks_credit_memo_payments.payment_id is not null
                and quickbooks_payments.total_amount = 0
                then 'credit_memo'
            else 'payment'
        end as application_type,
        quickbooks_payment_lines.amount,
        coalesce(quickbooks_payments.currency, {{ ar_home_currency() }}) as currency,
        coalesce(
            quickbooks_payments.exchange_rate,
            case
                when coalesce(quickbooks_payments.currency, {{ ar_home_currency() }}) = {{ ar_home_currency() }}
                    then 1
            end
        ) as exchange_rate
    from quickbooks_payment_lines
    inner join quickbooks_payments
        on quickbooks_payment_lines.payment_id = quickbooks_payments.payment_id
    left join quickbooks_credit_memo_payments
        on quickbooks_payment_lines.payment_id = quickbooks_credit_memo_payments.payment_id
    where quickbooks_payment_lines.linked_txn_type = 'Invoice'
        and quickbooks_payment_lines.amount <> 0

),

stripe_payments as (

    select
        {{ dbt.concat(["'stripe:'", 'stripe_invoice_payments.invoice_payment_id']) }} as application_key,
        'stripe' as source,
        coalesce(
            stripe_invoice_payments.payment_intent_id,
            stripe_invoice_payments.charge_id,
            stripe_invoice_payments.invoice_payment_id
        ) as source_payment_id,
        {{ dbt.concat(["'stripe:'", 'stripe_invoice_payments.invoice_id']) }} as invoice_key,
        {{ dbt.concat(["'stripe:'", 'stripe_invoices.customer_id']) }} as customer_id,
        coalesce(stripe_invoice_payments.paid_date, stripe_invoice_payments.created_date) as applied_date,
        'payment' as application_type,
        stripe_invoice_payments.amount_paid as amount,
        stripe_invoice_payments.currency,
        case when stripe_invoice_payments.currency = {{ ar_home_currency() }} then 1 end as exchange_rate
    from stripe_invoice_payments
    left join stripe_invoices
        on stripe_invoice_payments.invoice_id = stripe_invoices.invoice_id
    where stripe_invoice_payments.amount_paid <> 0

),

export_invoices as (

    select * from {{ ref('stg_exports__invoices') }}

),

export_payments as (

    select
        {{ dbt.concat(['export_source', "':'", 'invoice_id', "':paid'"]) }} as application_key,
        export_source as source,
        invoice_id as source_payment_id,
        {{ dbt.concat(['export_source', "':'", 'invoice_id']) }} as invoice_key,
        {{ dbt.concat(['export_source', "':'", 'customer_id']) }} as customer_id,
        coalesce(paid_date, report_as_of, cast(_loaded_at as date)) as applied_date,
        'payment' as application_type,
        amount - coalesce(open_balance, case when paid_date is not null then 0 else amount end) as amount,
        coalesce(currency, {{ ar_home_currency() }}) as currency,
        case when coalesce(currency, {{ ar_home_currency() }}) = {{ ar_home_currency() }} then 1 end as exchange_rate
    from export_invoices
    where coalesce(status, '') not in ('void', 'voided')

),

stripe_charge_payments as (

    select
        {{ dbt.concat(["'stripe:'", 'stripe_charges.charge_id']) }} as application_key,
        'stripe' as source,
        stripe_charges.charge_id as source_payment_id,
        {{ dbt.concat(["'stripe:'", 'stripe_charges.invoice_id']) }} as invoice_key,
        {{ dbt.concat(["'stripe:'", 'coalesce(stripe_invoices.customer_id, stripe_charges.customer_id)']) }} as customer_id,
        stripe_charges.created_date as applied_date,
        'payment' as application_type,
        coalesce(stripe_charges.amount_captured, stripe_charges.amount) as amount,
        stripe_charges.currency,
        case when stripe_charges.currency = {{ ar_home_currency() }} then 1 end as exchange_rate
    from stripe_charges
    left join stripe_invoices
        on stripe_charges.invoice_id = stripe_invoices.invoice_id
    where not exists (
        select 1 from stripe_invoice_payments
        where stripe_invoice_payments.invoice_id = stripe_charges.invoice_id
    )

),

stripe_credits as (

    select
        {{ dbt.concat(["'stripe:'", 'stripe_credit_notes.credit_note_id']) }} as application_key,
        'stripe' as source,
        stripe_credit_notes.credit_note_id as source_payment_id,
        {{ dbt.concat(["'stripe:'", 'stripe_credit_notes.invoice_id']) }} as invoice_key,
        {{ dbt.concat(["'stripe:'", 'coalesce(stripe_invoices.customer_id, stripe_credit_notes.customer_id)']) }} as customer_id,
        coalesce(stripe_credit_notes.effective_date, stripe_credit_notes.created_date) as applied_date,
        'credit_note' as application_type,
        stripe_credit_notes.pre_payment_amount as amount,
        stripe_credit_notes.currency,
        case when stripe_credit_notes.currency = {{ ar_home_currency() }} then 1 end as exchange_rate
    from stripe_credit_notes
    left join stripe_invoices
        on stripe_credit_notes.invoice_id = stripe_invoices.invoice_id
    where stripe_credit_notes.pre_payment_amount <> 0

),

export_payment_rows as (

    select
        {{ dbt.concat(['payments.export_source', "':'", 'payments.payment_id']) }} as application_key,
        payments.export_source as source,
        payments.payment_id as source_payment_id,
        invoices.invoice_key,
        invoices.customer_id,
        payments.payment_date as applied_date,
        'payment' as application_type,
        payments.amount,
        coalesce(payments.currency, {{ ar_home_currency() }}) as currency,
        case when coalesce(payments.currency, {{ ar_home_currency() }}) = {{ ar_home_currency() }} then 1 end as exchange_rate
    from {{ ref('stg_exports__payments') }} as payments
    inner join {{ ref('int_invoices_unioned') }} as invoices
        on invoices.invoice_key = {{ dbt.concat(['payments.pays_invoices_of', "':'", 'payments.invoice_id']) }}
    where payments.status in ('paid', 'succeeded', 'refunded', 'partially_refunded')
        and payments.amount <> 0

),

source_applications as (

    select * from quickbooks
    union all
    select * from stripe_payments
    union all
    select * from stripe_charge_payments
    union all
    select * from stripe_credits

),

export_payment_rows_used as (

    select * from export_payment_rows
    where invoice_key not in (
        select invoice_key from source_applications where application_type = 'payment'
    )

),

unioned as (

    select * from source_applications
    union all
    select * from export_payments
    where amount <> 0
        and invoice_key not in (select invoice_key from export_payment_rows_used)
    union all
    select * from export_payment_rows_used

),

final as (

    select
        application_key,
        source,
        source_payment_id,
        invoice_key,
        customer_id,
        applied_date,
        application_type,
        {{ to_money('amount') }} as amount,
        currency,
        {{ fx_rate_columns('unioned.exchange_rate', 'unioned.currency', 'unioned.applied_date') }}
    from unioned
    {{ fx_rate_join('unioned.exchange_rate', 'unioned.currency', 'unioned.applied_date') }}

)

select * from final
