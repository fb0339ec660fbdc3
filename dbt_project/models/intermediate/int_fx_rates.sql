-- One row per foreign currency and rate date from the fx_rates files: how many home-currency units
-- (var home_currency) 1 unit of the currency was worth that day, and the last day the rate may be
-- used for a document (valid_through). A rate stays valid until the day before the currency's next
-- rate, and at most var('fx_max_rate_age_days') days after its own date, so a document dated D uses
-- the latest rate dated on or before D that is not too old (macros fx_rate_join / fx_rate_columns).
--
-- Rows quoted in the home currency (quote_currency = home, or blank) are used as they are. Rows
-- quoted the other way round (currency = home, e.g. ECB's "1 EUR = 1.0812 USD" for a EUR home
-- currency) are inverted (1 / rate, 10 decimals) unless a direct rate exists for that day. Other
-- pairs are ignored. When several fx_rates sources give a rate for the same day, the latest load
-- wins (then the source name, for a stable choice).

with

rates as (

    select * from {{ ref('stg_exports__fx_rates') }}

),

direct as (

    select
        currency,
        rate_date,
        rate as exchange_rate,
        1 as quote_priority,
        export_source,
        _loaded_at
    from rates
    where coalesce(quote_currency, {{ ar_home_currency() }}) = {{ ar_home_currency() }}
        and currency <> {{ ar_home_currency() }}

),

inverted as (

    select
        quote_currency as currency,
        rate_date,
        {{ to_rate('1 / rate') }} as exchange_rate,
        2 as quote_priority,
        export_source,
        _loaded_at
    from rates
    where currency = {{ ar_home_currency() }}
        and quote_currency is not null
        and quote_currency <> {{ ar_home_currency() }}

),

candidates as (

    select * from direct
    union all
    select * from inverted

),

ranked as (

    select
        candidates.*,
        row_number() over (
            partition by currency, rate_date
            order by quote_priority, _loaded_at desc, export_source
        ) as rate_rank
    from candidates

),

chosen as (

    select
        currency,
        rate_date,
        exchange_rate,
        export_source,
        lead(rate_date) over (partition by currency order by rate_date) as next_rate_date
    from ranked
    where rate_rank = 1

),

final as (

    select
        cast(currency as {{ dbt.type_string() }}) as currency,
        rate_date,
        {{ to_rate('exchange_rate') }} as exchange_rate,
        cast(case
            when next_rate_date is not null
                and next_rate_date <= {{ dbt.dateadd('day', var('fx_max_rate_age_days', 7) | int, 'rate_date') }}
                then {{ dbt.dateadd('day', -1, 'next_rate_date') }}
            else {{ dbt.dateadd('day', var('fx_max_rate_age_days', 7) | int, 'rate_date') }}
        end as date) as valid_through,
        cast(export_source as {{ dbt.type_string() }}) as export_source
    from chosen

)

select * from final
