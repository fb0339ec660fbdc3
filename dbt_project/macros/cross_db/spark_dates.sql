{#-
    dbt-spark's dateadd and datediff wrap each argument in null assertions (meant for date strings)
    that repeat it three to five times; nested as in ar_kpis_monthly (last_day over date_trunc,
    dateadd inside date_trunc) the SQL grows to thousands of terms and Spark spent most of the
    model's time analysing it. Our arguments are typed dates or timestamps, so these use Spark's
    own timestampadd / datediff for the date parts and defer to dbt-spark for the rest. Same results
    (a timestamp for dateadd, whole days for datediff), much smaller plans.
-#}
{% macro spark__dateadd(datepart, interval, from_date_or_timestamp) -%}
    {%- if datepart | lower in ['day', 'week', 'month', 'quarter', 'year'] -%}
        timestampadd({{ datepart }}, {{ interval }}, {{ from_date_or_timestamp }})
    {%- else -%}
        {{ return(dbt.spark__dateadd(datepart, interval, from_date_or_timestamp)) }}
    {%- endif -%}
{%- endmacro %}

{% macro spark__datediff(first_date, second_date, datepart) -%}
    {%- if datepart | lower == 'day' -%}
        datediff(cast({{ second_date }} as date), cast({{ first_date }} as date))
    {%- else -%}
        {{ return(dbt.spark__datediff(first_date, second_date, datepart)) }}
    {%- endif -%}
{%- endmacro %}
