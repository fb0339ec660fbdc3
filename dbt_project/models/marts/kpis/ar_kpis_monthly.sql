{%- set cei_months = var('cei_months', 3) -%}
{%- set cei_sales_mode = var('cei_sales_mode', 'monthly_average') -%}
{%- if cei_sales_mode not in ('period_total', 'monthly_average') -%}
    {{ exceptions.raise_compiler_error("var('cei_sales_mode') must be period_total or monthly_average, got " ~ cei_sales_mode) }}
{%- endif -%}

-- Monthly AR KPIs per month end, overall and by customer segment, region and collector, in the home currency.
-- Definitions (shared/research/peers.md §(b), recommendation): credit sales S = invoices issued in
-- the month minus credits applied in the month; AR = open AR at the month end (fct_ar_aging_snapshots);
--   dso                = AR_end / S x days in month
--   countback_dso      = walk back month by month, subtracting each month's sales from AR_end and
--                        adding its days, until a month's sales cover the rest (that month adds the
--                        covered share of its days); null if the history runs out or a month has S <= 0
--   best_possible_dso  = AR_current_end / S x days in month (current = not yet past due)
--   average_days_delinquent = dso - best_possible_dso
--   cei (%)            = (AR_beg + S' - AR_end) / (AR_beg + S' - AR_current_end) x 100 over the last
--                        var('cei_months') months, AR_beg = AR at the month end before that window and
--                        S' = the window's credit sales (period_total) or their monthly average
--                        (monthly_average); cei_sales_mode records which.

with

month_ends as (

    select distinct snapshot_date as month_end
    from {{ ref('fct_ar_aging_snapshots') }}
    where {{ dbt.dateadd('day', 1, 'snapshot_date') }} = {{ dbt.date_trunc('month', dbt.dateadd('day', 1, 'snapshot_date')) }}

),

customer_dimensions as (

    select * from {{ ref('int_customer_dimensions') }}

),

dimensioned_snapshots as (

    select snapshots.snapshot_date as month_end, dims.dimension, dims.dimension_value,
           snapshots.home_open_amount, snapshots.days_past_due
    from {{ ref('fct_ar_aging_snapshots') }} as snapshots
    inner join month_ends on snapshots.snapshot_date = month_ends.month_end
    inner join customer_dimensions as dims on snapshots.customer_id = dims.customer_id

),

ar_by_month as (

    select
        month_end,
        dimension,
        dimension_value,
        sum(home_open_amount) as ar_end,
        sum(case when days_past_due <= 0 then home_open_amount else 0 end) as ar_current_end,
        sum(case when days_past_due > 90 then home_open_amount else 0 end) as ar_over_90_end
    from dimensioned_snapshots
    group by month_end, dimension, dimension_value

),

flows as (

    -- credit-sales and collections inputs shared with ar_kpis_daily (int_ar_flows_daily)
    select
        {{ dbt.last_day(dbt.date_trunc('month', 'flow_date'), 'month') }} as month_end,
        customer_id,
        invoiced,
        credited,
        collected
    from {{ ref('int_ar_flows_daily') }}

),

flows_by_month as (

    select
        flows.month_end,
        dims.dimension,
        dims.dimension_value,
        sum(flows.invoiced) - sum(flows.credited) as credit_sales,
        sum(flows.collected) as collections
    from flows
    inner join month_ends on flows.month_end = month_ends.month_end
    inner join customer_dimensions as dims on flows.customer_id = dims.customer_id
    group by flows.month_end, dims.dimension, dims.dimension_value

),

monthly as (

    select
        ar_by_month.month_end,
        ar_by_month.dimension,
        ar_by_month.dimension_value,
        {{ dbt.datediff(dbt.date_trunc('month', 'ar_by_month.month_end'), 'ar_by_month.month_end', 'day') }} + 1
            as days_in_month,
        ar_by_month.ar_end,
        ar_by_month.ar_current_end,
        ar_by_month.ar_over_90_end,
        coalesce(flows_by_month.credit_sales, 0) as credit_sales,
        coalesce(flows_by_month.collections, 0) as collections
    from ar_by_month
    left join flows_by_month
        on ar_by_month.month_end = flows_by_month.month_end
        and ar_by_month.dimension = flows_by_month.dimension
        and ar_by_month.dimension_value = flows_by_month.dimension_value

),

-- countback: pair each month with itself and every earlier month of the same grouping
countback_pairs as (

    select
        latest.month_end,
        latest.dimension,
        latest.dimension_value,
        latest.ar_end,
        earlier.month_end as earlier_month_end,
        earlier.credit_sales as earlier_sales,
        earlier.days_in_month as earlier_days,
        coalesce(sum(earlier.credit_sales) over (
            partition by latest.month_end, latest.dimension, latest.dimension_value
            order by earlier.month_end desc
            rows between unbounded preceding and 1 preceding
        ), 0) as sales_after,
        coalesce(sum(earlier.days_in_month) over (
            partition by latest.month_end, latest.dimension, latest.dimension_value
            order by earlier.month_end desc
            rows between unbounded preceding and 1 preceding
        ), 0) as days_after,
        min(earlier.credit_sales) over (
            partition by latest.month_end, latest.dimension, latest.dimension_value
            order by earlier.month_end desc
            rows between unbounded preceding and current row
        ) as min_sales_so_far
    from monthly as latest
    inner join monthly as earlier
        on earlier.dimension = latest.dimension
        and earlier.dimension_value = latest.dimension_value
        and earlier.month_end <= latest.month_end

),

countback as (

    -- the exhausting month: the sales after it do not cover AR, its own sales do
    select
        month_end, dimension, dimension_value,
        days_after + (ar_end - sales_after) / earlier_sales * earlier_days as countback_dso
    from countback_pairs
    where min_sales_so_far > 0
        and sales_after < ar_end
        and sales_after + earlier_sales >= ar_end

),

cei_window as (

    select
        monthly.month_end,
        monthly.dimension,
        monthly.dimension_value,
        sum(monthly.credit_sales) over (
            partition by monthly.dimension, monthly.dimension_value
            order by monthly.month_end
            rows between {{ cei_months - 1 }} preceding and current row
        ) as window_sales,
        count(*) over (
            partition by monthly.dimension, monthly.dimension_value
            order by monthly.month_end
            rows between {{ cei_months - 1 }} preceding and current row
        ) as window_months,
        lag(monthly.ar_end, {{ cei_months }}) over (
            partition by monthly.dimension, monthly.dimension_value
            order by monthly.month_end
        ) as window_ar_beg
    from monthly

),

final as (

    select
        monthly.month_end,
        cast(monthly.dimension as {{ dbt.type_string() }}) as dimension,
        cast(monthly.dimension_value as {{ dbt.type_string() }}) as dimension_value,
        cast(monthly.days_in_month as {{ dbt.type_bigint() }}) as days_in_month,
        {{ to_money('monthly.ar_end') }} as ar_end,
        {{ to_money('monthly.ar_current_end') }} as ar_current_end,
        {{ to_money('monthly.credit_sales') }} as credit_sales,
        {{ to_money('monthly.collections') }} as collections,
        {{ to_money('case when monthly.credit_sales > 0 then monthly.ar_end / monthly.credit_sales * monthly.days_in_month end') }}
            as dso,
        {{ to_money('countback.countback_dso') }} as countback_dso,
        {{ to_money('case when monthly.credit_sales > 0 then monthly.ar_current_end / monthly.credit_sales * monthly.days_in_month end') }}
            as best_possible_dso,
        {{ to_money('case when monthly.credit_sales > 0 then (monthly.ar_end - monthly.ar_current_end) / monthly.credit_sales * monthly.days_in_month end') }}
            as average_days_delinquent,
        {{ to_money('case when monthly.ar_end > 0 then monthly.ar_current_end / monthly.ar_end * 100 end') }}
            as percent_current,
        {{ to_money('case when monthly.ar_end > 0 then monthly.ar_over_90_end / monthly.ar_end * 100 end') }}
            as percent_over_90,
        {%- set cei_sales = 'cei_window.window_sales' if cei_sales_mode == 'period_total'
                            else '(cei_window.window_sales / ' ~ cei_months ~ ')' %}
        {{ to_money(
            'case when cei_window.window_months = ' ~ cei_months ~ ' and cei_window.window_ar_beg is not null'
            ~ ' and (cei_window.window_ar_beg + ' ~ cei_sales ~ ' - monthly.ar_current_end) <> 0'
            ~ ' then (cei_window.window_ar_beg + ' ~ cei_sales ~ ' - monthly.ar_end)'
            ~ ' / (cei_window.window_ar_beg + ' ~ cei_sales ~ ' - monthly.ar_current_end) * 100 end'
        ) }} as cei,
        cast('{{ cei_sales_mode }}' as {{ dbt.type_string() }}) as cei_sales_mode,
        cast({{ cei_months }} as {{ dbt.type_bigint() }}) as cei_months,
        cast({{ ar_home_currency() }} as {{ dbt.type_string() }}) as home_currency
    from monthly
    left join countback
        on monthly.month_end = countback.month_end
        and monthly.dimension = countback.dimension
        and monthly.dimension_value = countback.dimension_value
    left join cei_window
        on monthly.month_end = cei_window.month_end
        and monthly.dimension = cei_window.dimension
        and monthly.dimension_value = cei_window.dimension_value

)

select * from final
