{#-
    Exchange-rate resolution for documents (invoices, payment applications, unapplied payments).

    A document's rate is, in order:
      1. the source's own rate (QuickBooks ExchangeRate), or 1 in the home currency: passed in as
         `source_rate_expr` (null when the source gives none);
      2. else the fx_rates table (int_fx_rates): the latest rate for the document's currency dated on
         or before the document date, at most var('fx_max_rate_age_days') days old;
      3. else null (the home amounts stay null; see the warn test
         assert_open_invoices_have_a_home_currency_rate).

    Usage, in a model selecting from `docs`:
        select docs.*, {{ fx_rate_columns('docs.exchange_rate', 'docs.currency', 'docs.invoice_date') }}
        from docs
        {{ fx_rate_join('docs.exchange_rate', 'docs.currency', 'docs.invoice_date') }}
    The join adds columns prefixed fx_ only, so unqualified names of the document stay unambiguous.
-#}
{% macro fx_rate_join(source_rate_expr, currency_expr, date_expr, fx_alias='fx') -%}
    left join (
        select
            currency as fx_currency,
            rate_date as fx_rate_date,
            exchange_rate as fx_exchange_rate,
            valid_through as fx_valid_through
        from {{ ref('int_fx_rates') }}
    ) as {{ fx_alias }}
        on {{ source_rate_expr }} is null
        and {{ fx_alias }}.fx_currency = {{ currency_expr }}
        and {{ date_expr }} >= {{ fx_alias }}.fx_rate_date
        and {{ date_expr }} <= {{ fx_alias }}.fx_valid_through
{%- endmacro %}


{#- exchange_rate, exchange_rate_date and exchange_rate_source of a document joined by fx_rate_join. -#}
{% macro fx_rate_columns(source_rate_expr, currency_expr, date_expr, fx_alias='fx') -%}
        {{ to_rate('coalesce(' ~ source_rate_expr ~ ', ' ~ fx_alias ~ '.fx_exchange_rate)') }} as exchange_rate,
        case
            when {{ source_rate_expr }} is not null then {{ date_expr }}
            else {{ fx_alias }}.fx_rate_date
        end as exchange_rate_date,
        cast(case
            when {{ source_rate_expr }} is not null and {{ currency_expr }} = {{ ar_home_currency() }}
                then 'home_currency'
            when {{ source_rate_expr }} is not null then 'source'
            when {{ fx_alias }}.fx_exchange_rate is not null then 'fx_rates'
        end as {{ dbt.type_string() }}) as exchange_rate_source
{%- endmacro %}
