-- One row per receivable invoice across QuickBooks and Stripe (Stripe drafts excluded), keyed
-- '<source>:<source invoice id>'. Amounts in major units of the invoice currency.
--
-- Stripe total_amount is the amount billed through receivables before credit notes:
-- amount_due + pre_payment_amount of the issued credit notes (Stripe already nets those out of
-- amount_due; int_invoice_applications_unioned brings them back as 'credit_note' applications).
--
-- exchange_rate: QuickBooks' rate, 1 in the home currency, else the fx_rates table's rate for the
-- invoice date (macro fx_rate_columns); exchange_rate_date / exchange_rate_source say which.

with

quickbooks_invoices as (

    select * from {{ ref('stg_quickbooks__invoices') }}

),

stripe_invoices as (

    select * from {{ ref('stg_stripe__invoices') }}
    where status <> 'draft'
        -- only drafts can be deleted in Stripe; a deletion seen for any other invoice still wins
        and invoice_id not in (
            select source_id from {{ ref('stg_stripe__deleted_objects') }} where object_type = 'invoice'
        )

),

stripe_pre_payment_credits as (

    select
        invoice_id,
        sum(pre_payment_amount) as pre_payment_credit_amount
    from {{ ref('stg_stripe__credit_notes') }}
    where status = 'issued'
    group by invoice_id

),

export_invoices as (

    select * from {{ ref('stg_exports__invoices') }}

),

quickbooks as (

    select
        {{ dbt.concat(["'quickbooks:'", 'invoice_id']) }} as invoice_key,
        'quickbooks' as source,
        invoice_id as source_invoice_id,
        invoice_number,
        {{ dbt.concat(["'quickbooks:'", 'customer_id']) }} as customer_id,
        invoice_date,
        coalesce(due_date, invoice_date) as due_date,
        coalesce(currency, {{ ar_home_currency() }}) as currency,
        coalesce(
            exchange_rate,
            case when coalesce(currency, {{ ar_home_currency() }}) = {{ ar_home_currency() }} then 1 end
        ) as exchange_rate,
        total_amount,
        is_voided as is_void,
        -- QBO does not record when an invoice was voided.
        cast(null as date) as voided_date,
        cast(null as date) as uncollectible_date,
        balance as source_open_amount,
        case
            when is_voided then 'void'
            when balance = 0 then 'paid'
            else 'open'
        end as source_status,
        cast(null as {{ dbt.type_string() }}) as collection_method
    from quickbooks_invoices

),

stripe as (

    select
        {{ dbt.concat(["'stripe:'", 'stripe_invoices.invoice_id']) }} as invoice_key,
        'stripe' as source,
        stripe_invoices.invoice_id as source_invoice_id,
        stripe_invoices.invoice_number,
        {{ dbt.concat(["'stripe:'", 'stripe_invoices.customer_id']) }} as customer_id,
        coalesce(
            stripe_invoices.effective_date,
            stripe_invoices.finalized_date,
            stripe_invoices.created_date
        ) as invoice_date,
        -- charge_automatically invoices have no due date: they are due on issue.
        coalesce(
            stripe_invoices.due_date,
            stripe_invoices.effective_date,
            stripe_invoices.finalized_date,
            stripe_invoices.created_date
        ) as due_date,
        stripe_invoices.currency,
        case when stripe_invoices.currency = {{ ar_home_currency() }} then 1 end as exchange_rate,
        stripe_invoices.amount_due
            + coalesce(stripe_pre_payment_credits.pre_payment_credit_amount, 0) as total_amount,
        stripe_invoices.status = 'void' as is_void,
        stripe_invoices.voided_date,
        stripe_invoices.marked_uncollectible_date as uncollectible_date,
        stripe_invoices.amount_remaining as source_open_amount,
        stripe_invoices.status as source_status,
        stripe_invoices.collection_method
    from stripe_invoices
    left join stripe_pre_payment_credits
        on stripe_invoices.invoice_id = stripe_pre_payment_credits.invoice_id

),

exports as (

    select
        {{ dbt.concat(['export_source', "':'", 'invoice_id']) }} as invoice_key,
        export_source as source,
        invoice_id as source_invoice_id,
        invoice_id as invoice_number,
        {{ dbt.concat(['export_source', "':'", 'customer_id']) }} as customer_id,
        invoice_date,
        due_date,
        coalesce(currency, {{ ar_home_currency() }}) as currency,
        case when coalesce(currency, {{ ar_home_currency() }}) = {{ ar_home_currency() }} then 1 end as exchange_rate,
        amount as total_amount,
        coalesce(status in ('void', 'voided'), false) as is_void,
        cast(null as date) as voided_date,
        cast(null as date) as uncollectible_date,
        coalesce(open_balance, case when paid_date is not null then 0 end) as source_open_amount,
        coalesce(status, case when paid_date is not null then 'paid' else 'open' end) as source_status,
        cast(null as {{ dbt.type_string() }}) as collection_method
    from export_invoices

),

unioned as (

    select * from quickbooks
    union all
    select * from stripe
    union all
    select * from exports

),

final as (

    select
        invoice_key,
        source,
        source_invoice_id,
        invoice_number,
        customer_id,
        invoice_date,
        due_date,
        currency,
        {{ fx_rate_columns('unioned.exchange_rate', 'unioned.currency', 'unioned.invoice_date') }},
        {{ to_money('total_amount') }} as total_amount,
        is_void,
        voided_date,
        uncollectible_date,
        {{ to_money('source_open_amount') }} as source_open_amount,
        source_status,
        collection_method
    from unioned
    {{ fx_rate_join('unioned.exchange_rate', 'unioned.currency', 'unioned.invoice_date') }}

)

select * from final
