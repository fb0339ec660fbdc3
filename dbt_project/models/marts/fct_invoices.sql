{%- set as_of_date = ar_as_of_date() -%}

-- One row per invoice issued on or before the as-of date, with its open amount and status
-- reconstructed as of that date from the dated applications (payments, credit memos, credit notes).

with

invoices as (

    select * from {{ ref('int_invoices_unioned') }}
    where invoice_date <= {{ as_of_date }}

),

applications as (

    select
        invoice_key,
        application_key,
        applied_date,
        amount
    from {{ ref('int_invoice_applications_unioned') }}
    where applied_date <= {{ as_of_date }}

),

applications_running as (

    select
        applications.invoice_key,
        applications.applied_date,
        applications.amount,
        invoices.total_amount,
        sum(applications.amount) over (
            partition by applications.invoice_key
            order by applications.applied_date, applications.application_key
            rows between unbounded preceding and current row
        ) as cumulative_applied_amount
    from applications
    inner join invoices
        on applications.invoice_key = invoices.invoice_key

),

applied_per_invoice as (

    select
        invoice_key,
        sum(amount) as applied_amount,
        min(
            case when cumulative_applied_amount >= total_amount then applied_date end
        ) as fully_applied_date
    from applications_running
    group by invoice_key

),

open_amounts as (

    select
        invoices.*,
        coalesce(applied_per_invoice.applied_amount, 0) as applied_amount,
        applied_per_invoice.fully_applied_date,
        case
            when invoices.is_void then 0
            else invoices.total_amount - coalesce(applied_per_invoice.applied_amount, 0)
        end as open_amount
    from invoices
    left join applied_per_invoice
        on invoices.invoice_key = applied_per_invoice.invoice_key

),

statuses as (

    select
        open_amounts.*,
        case
            when is_void then 'void'
            when uncollectible_date <= {{ as_of_date }} and open_amount > 0 then 'uncollectible'
            when open_amount <= 0 then 'paid'
            else 'open'
        end as status
    from open_amounts

),

final as (

    select
        cast(invoice_key as {{ dbt.type_string() }}) as invoice_key,
        cast(source as {{ dbt.type_string() }}) as source,
        cast(source_invoice_id as {{ dbt.type_string() }}) as source_invoice_id,
        cast(invoice_number as {{ dbt.type_string() }}) as invoice_number,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        invoice_date,
        due_date,
        cast(currency as {{ dbt.type_string() }}) as currency,
        {{ to_rate('exchange_rate') }} as exchange_rate,
        exchange_rate_date,
        cast(exchange_rate_source as {{ dbt.type_string() }}) as exchange_rate_source,
        {{ to_money('total_amount') }} as total_amount,
        {{ to_money('applied_amount') }} as applied_amount,
        {{ to_money('open_amount') }} as open_amount,
        {{ to_home_amount('total_amount', 'exchange_rate') }} as home_total_amount,
        {{ to_home_amount('open_amount', 'exchange_rate') }} as home_open_amount,
        cast(status as {{ dbt.type_string() }}) as status,
        cast(collection_method as {{ dbt.type_string() }}) as collection_method,
        case
            -- a zero-total invoice needs no application: it is settled on issue
            when status = 'paid' then coalesce(fully_applied_date, invoice_date)
        end as paid_date,
        {{ as_of_date }} as as_of_date
    from statuses

)

select * from final
