-- One row per exchange rate (date, currency pair) of each fx_rates source: the copy from the latest
-- load (and latest file). quote_currency null = the home currency.

with

latest_version as (

    {{ latest_version(
        source('exports', 'raw_fx_rates'),
        '_loaded_at desc, _source_file desc, _source_row desc',
        partition_by='export_source, rate_date, currency, quote_currency'
    ) }}

),

renamed as (

    select
        ----------  ids
        export_source,

        ----------  currencies
        upper(currency) as currency,
        upper(quote_currency) as quote_currency,

        ----------  rate (quote_currency units per 1 unit of currency)
        {{ to_rate('rate') }} as rate,

        ----------  dates
        rate_date,
        _loaded_at

    from latest_version

)

select * from renamed
