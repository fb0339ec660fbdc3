{%- set as_of_iso = ar_as_of_date_iso() | trim -%}
{%- set as_of = modules.datetime.date.fromisoformat(as_of_iso) -%}
{%- set window_days = var('kpi_rolling_window_days', 90) -%}
{%- if window_days is not number or window_days < 1 or window_days != window_days | int -%}
    {{ exceptions.raise_compiler_error("var('kpi_rolling_window_days') must be a whole number of days >= 1, got: " ~ window_days) }}
{%- endif -%}
{%- set daily_days = 1 if var('snapshot_only_as_of', false) else var('snapshot_daily_days', 90) -%}

-- Daily-rolling AR KPIs: one row per day of the daily snapshot window (the last
-- var('snapshot_daily_days') days up to the as-of date: the daily snapshot dates of
-- fct_ar_aging_snapshots) x grouping (all, segment, region, collector), home currency.
-- Flows use the same definitions as ar_kpis_monthly (int_ar_flows_daily) over a trailing window of
-- W = var('kpi_rolling_window_days') days ending on the day (both ends included):
--   credit_sales (S_W)  = invoices issued - credits applied in the window
--   dso                 = open_ar / S_W x W
--   best_possible_dso   = open_ar_current / S_W x W      (current = not yet past due)
--   average_days_delinquent = dso - best_possible_dso
-- DSO figures are null when S_W <= 0; percentages are null when open_ar <= 0.

with

days as (

    {% for back in range(daily_days) | reverse -%}
    {%- set day = as_of - modules.datetime.timedelta(days=back) -%}
    select
        cast('{{ day.isoformat() }}' as date) as snapshot_date,
        cast('{{ (day - modules.datetime.timedelta(days=window_days - 1)).isoformat() }}' as date) as window_start
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

customer_dimensions as (

    select * from {{ ref('int_customer_dimensions') }}

),

groupings as (

    select distinct dimension, dimension_value from customer_dimensions

),

grid as (

    select days.snapshot_date, days.window_start, groupings.dimension, groupings.dimension_value
    from days
    cross join groupings

),

ar_by_day as (

    select
        snapshots.snapshot_date,
        dims.dimension,
        dims.dimension_value,
        sum(snapshots.home_open_amount) as open_ar,
        sum(case when snapshots.days_past_due <= 0 then snapshots.home_open_amount else 0 end) as open_ar_current,
        sum(case when snapshots.days_past_due > 90 then snapshots.home_open_amount else 0 end) as open_ar_over_90
    from {{ ref('fct_ar_aging_snapshots') }} as snapshots
    inner join days on snapshots.snapshot_date = days.snapshot_date
    inner join customer_dimensions as dims on snapshots.customer_id = dims.customer_id
    group by snapshots.snapshot_date, dims.dimension, dims.dimension_value

),

flows_by_day as (

    select
        flows.flow_date,
        dims.dimension,
        dims.dimension_value,
        sum(flows.invoiced) as invoiced,
        sum(flows.credited) as credited,
        sum(flows.collected) as collected
    from {{ ref('int_ar_flows_daily') }} as flows
    inner join customer_dimensions as dims on flows.customer_id = dims.customer_id
    where flows.flow_date >= cast('{{ (as_of - modules.datetime.timedelta(days=daily_days - 1 + window_days - 1)).isoformat() }}' as date)
        and flows.flow_date <= cast('{{ as_of_iso }}' as date)
    group by flows.flow_date, dims.dimension, dims.dimension_value

),

rolling_flows as (

    select
        grid.snapshot_date,
        grid.dimension,
        grid.dimension_value,
        sum(flows_by_day.invoiced) - sum(flows_by_day.credited) as credit_sales,
        sum(flows_by_day.collected) as collections
    from grid
    inner join flows_by_day
        on grid.dimension = flows_by_day.dimension
        and grid.dimension_value = flows_by_day.dimension_value
        and flows_by_day.flow_date >= grid.window_start
        and flows_by_day.flow_date <= grid.snapshot_date
    group by grid.snapshot_date, grid.dimension, grid.dimension_value

),

daily as (

    select
        grid.snapshot_date,
        grid.window_start,
        grid.dimension,
        grid.dimension_value,
        coalesce(ar_by_day.open_ar, 0) as open_ar,
        coalesce(ar_by_day.open_ar_current, 0) as open_ar_current,
        coalesce(ar_by_day.open_ar_over_90, 0) as open_ar_over_90,
        coalesce(rolling_flows.credit_sales, 0) as credit_sales,
        coalesce(rolling_flows.collections, 0) as collections
    from grid
    left join ar_by_day
        on grid.snapshot_date = ar_by_day.snapshot_date
        and grid.dimension = ar_by_day.dimension
        and grid.dimension_value = ar_by_day.dimension_value
    left join rolling_flows
        on grid.snapshot_date = rolling_flows.snapshot_date
        and grid.dimension = rolling_flows.dimension
        and grid.dimension_value = rolling_flows.dimension_value

),

final as (

    select
        snapshot_date,
        cast(dimension as {{ dbt.type_string() }}) as dimension,
        cast(dimension_value as {{ dbt.type_string() }}) as dimension_value,
        cast({{ window_days }} as {{ dbt.type_bigint() }}) as window_days,
        window_start,
        {{ to_money('open_ar') }} as open_ar,
        {{ to_money('open_ar_current') }} as open_ar_current,
        {{ to_money('open_ar_over_90') }} as open_ar_over_90,
        {{ to_money('case when open_ar > 0 then open_ar_current / open_ar * 100 end') }} as percent_current,
        {{ to_money('case when open_ar > 0 then open_ar_over_90 / open_ar * 100 end') }} as percent_over_90,
        {{ to_money('credit_sales') }} as credit_sales,
        {{ to_money('collections') }} as collections,
        {{ to_money('case when credit_sales > 0 then open_ar / credit_sales * ' ~ window_days ~ ' end') }} as dso,
        {{ to_money('case when credit_sales > 0 then open_ar_current / credit_sales * ' ~ window_days ~ ' end') }}
            as best_possible_dso,
        {{ to_money('case when credit_sales > 0 then (open_ar - open_ar_current) / credit_sales * ' ~ window_days ~ ' end') }}
            as average_days_delinquent,
        cast({{ ar_home_currency() }} as {{ dbt.type_string() }}) as home_currency
    from daily

)

select * from final
