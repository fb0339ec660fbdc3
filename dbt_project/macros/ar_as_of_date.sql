{#-
    The reporting ("as of") date as a SQL date literal.

    Uses var('as_of_date') (YYYY-MM-DD). Only when the var is null/empty does it fall back to today's
    date, computed here in Jinja at compile time, so every model of one run sees the same date and the
    SQL never depends on current_date/now().
-#}
{% macro ar_as_of_date() -%}
    {%- set raw_value = var('as_of_date', none) -%}
    {%- if raw_value is none or (raw_value | string | trim | lower) in ('', 'none', 'null') -%}
        {%- set iso_date = modules.datetime.date.today().isoformat() -%}
    {%- else -%}
        {%- set iso_date = raw_value | string | trim -%}
        {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', iso_date) -%}
            {{ exceptions.raise_compiler_error("var('as_of_date') must be a YYYY-MM-DD date, got: " ~ raw_value) }}
        {%- endif -%}
    {%- endif -%}
    cast('{{ iso_date }}' as date)
{%- endmacro %}


{#- The home (reporting) currency as a quoted, upper-case SQL string literal. -#}
{% macro ar_home_currency() -%}
    '{{ var("home_currency", "USD") | string | trim | upper }}'
{%- endmacro %}
