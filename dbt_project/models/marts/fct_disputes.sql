{%- set as_of_date = ar_as_of_date() -%}

-- One row per Stripe dispute (chargeback) opened on or before the as-of date, with the invoice and
-- customer it concerns, whether it is still open, its outcome and its age.

with

disputes as (

    select * from {{ ref('stg_stripe__disputes') }}
    where created_date <= {{ as_of_date }}

),

charges as (

    select charge_id, customer_id, invoice_id from {{ ref('stg_stripe__charges') }}

),

-- API versions from 2025-03-31 link charges to invoices only through invoice payments
charge_invoices as (

    select charge_id, min(invoice_id) as invoice_id
    from {{ ref('stg_stripe__invoice_payments') }}
    where charge_id is not null
    group by charge_id

),

-- closing date from Stripe's own records: a won dispute's funds come back in a reinstatement balance
-- transaction (reporting_category dispute_reversal, source = the dispute); a refund closes a
-- charge_refunded inquiry. A lost dispute leaves no dated trace (see closed_date in the YAML).
reinstatements as (

    select source_id as dispute_id, min(created_date) as reinstated_date
    from {{ ref('stg_stripe__balance_transactions') }}
    where reporting_category = 'dispute_reversal'
    group by source_id

),

charge_refunds as (

    select charge_id, min(created_date) as refunded_date
    from {{ ref('stg_stripe__refunds') }}
    group by charge_id

),

final as (

    select
        cast(disputes.dispute_id as {{ dbt.type_string() }}) as dispute_id,
        cast('stripe' as {{ dbt.type_string() }}) as source,
        cast(disputes.charge_id as {{ dbt.type_string() }}) as charge_id,
        cast(case when coalesce(charges.invoice_id, charge_invoices.invoice_id) is not null
            then {{ dbt.concat(["'stripe:'", 'coalesce(charges.invoice_id, charge_invoices.invoice_id)']) }}
        end as {{ dbt.type_string() }}) as invoice_key,
        cast(case when charges.customer_id is not null
            then {{ dbt.concat(["'stripe:'", 'charges.customer_id']) }}
        end as {{ dbt.type_string() }}) as customer_id,
        cast(disputes.reason as {{ dbt.type_string() }}) as reason,
        cast(disputes.status as {{ dbt.type_string() }}) as status,
        disputes.status in ('warning_needs_response', 'warning_under_review', 'needs_response', 'under_review')
            as is_open,
        cast(case
            when disputes.status in ('won', 'lost', 'prevented') then disputes.status
            when disputes.status = 'warning_closed' then 'closed_without_chargeback'
        end as {{ dbt.type_string() }}) as outcome,
        cast(disputes.currency as {{ dbt.type_string() }}) as currency,
        {{ to_money('disputes.amount') }} as amount,
        {{ to_home_amount('disputes.amount', 'coalesce(case when disputes.currency = ' ~ ar_home_currency() ~ ' then 1 end, fx.fx_exchange_rate)') }}
            as home_amount,
        disputes.created_date as opened_date,
        cast(disputes.evidence_due_at as date) as evidence_due_date,
        cast({{ dbt.datediff('disputes.created_date', as_of_date, 'day') }} as {{ dbt.type_bigint() }}) as age_days,
        {{ as_of_date }} as as_of_date,
        case
            when disputes.status = 'won' and reinstatements.reinstated_date <= {{ as_of_date }}
                then reinstatements.reinstated_date
            when disputes.status = 'charge_refunded' and charge_refunds.refunded_date <= {{ as_of_date }}
                then charge_refunds.refunded_date
        end as closed_date,
        cast(case
            when disputes.status = 'won' and reinstatements.reinstated_date <= {{ as_of_date }}
                then 'reinstatement_balance_transaction'
            when disputes.status = 'charge_refunded' and charge_refunds.refunded_date <= {{ as_of_date }}
                then 'refund'
        end as {{ dbt.type_string() }}) as closed_date_source
    from disputes
    left join charges
        on disputes.charge_id = charges.charge_id
    left join charge_invoices
        on disputes.charge_id = charge_invoices.charge_id
    left join reinstatements
        on disputes.dispute_id = reinstatements.dispute_id
    left join charge_refunds
        on disputes.charge_id = charge_refunds.charge_id
    {{ fx_rate_join('case when disputes.currency = ' ~ ar_home_currency() ~ ' then 1 end', 'disputes.currency', 'disputes.created_date') }}

)

select * from final
