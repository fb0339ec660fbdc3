{#-
    The reporting ("as of") date as a SQL date literal.

    Uses var('as_of_date') (YYYY-MM-DD). Only when the var is null/empty does it fall back to today's
    date, computed here in Jinja at compile time, so every model of one run sees the same date and the
    SQL never depends on current_date/now().
-#}
{% macro ar_as_of_date_iso() -%}
    {%- set raw_value = var('as_of_date', none) -%}
    {%- if raw_value is none or (raw_value | string | trim | lower) in ('', 'none', 'null') -%}
        {{ modules.datetime.date.today().isoformat() }}
    {%- else -%}
        {%- set iso_date = raw_value | string | trim -%}
        {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', iso_date) -%}
            {{ exceptions.raise_compiler_error("var('as_of_date') must be a YYYY-MM-DD date, got: " ~ raw_value) }}
        {%- endif -%}
        {{ iso_date }}
    {%- endif -%}
{%- endmacro %}


{% macro ar_as_of_date() -%}
    cast('{{ ar_as_of_date_iso() }}' as date)
{%- endmacro %}


{#-
    The snapshot dates for fct_ar_aging_snapshots, computed in Jinja from the as-of date (so the SQL
    stays plain and portable): every calendar month end of the last `snapshot_months` months before
    the as-of date, plus every day of the last `snapshot_daily_days` days up to the as-of date; only
    the as-of date itself when var('snapshot_only_as_of') is true.
    Returns a sorted list of YYYY-MM-DD strings.
-#}
{% macro ar_snapshot_dates() -%}
    {%- set as_of = modules.datetime.date.fromisoformat(ar_as_of_date_iso() | trim) -%}
    {%- if var('snapshot_only_as_of', false) -%}
        {#- `ar-pipeline aging --as-of D`: reproduce just that one date. -#}
        {{ return([as_of.isoformat()]) }}
    {%- endif -%}
    {%- set one_day = modules.datetime.timedelta(days=1) -%}
    {%- set dates = [] -%}
    {%- for back in range(var('snapshot_daily_days', 90)) -%}
        {%- do dates.append((as_of - modules.datetime.timedelta(days=back)).isoformat()) -%}
    {%- endfor -%}
    {#- Month i back: the day before the first of the month that is i months before the as-of month. -#}
    {%- set as_of_month = as_of.year * 12 + as_of.month - 1 -%}
    {%- for i in range(var('snapshot_months', 36)) -%}
        {%- set month = as_of_month - i -%}
        {%- set first_of_month = modules.datetime.date(month // 12, month % 12 + 1, 1) -%}
        {%- do dates.append((first_of_month - one_day).isoformat()) -%}
    {%- endfor -%}
    {{ return(dates | unique | sort) }}
{%- endmacro %}


{#- The home (reporting) currency as a quoted, upper-case SQL string literal. -#}
{% macro ar_home_currency() -%}
    '{{ var("home_currency", "USD") | string | trim | upper }}'
{%- endmacro %}
