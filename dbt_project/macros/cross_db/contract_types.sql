{#-
    Model contracts declare strings as `varchar` (DuckDB's name). Spark only accepts varchar(n) and
    calls the type `string`, so dbt's contract check (which casts null to each declared type) reads
    `varchar` as `string` on Spark. Other declared types (bigint, boolean, date, decimal(p,s)) are
    the same on both.
-#}
{% macro spark__get_empty_schema_sql(columns) %}
    {%- set translated = {} -%}
    {%- for name in columns -%}
        {%- set col = columns[name] -%}
        {%- if (col.get('data_type') or '') | trim | lower == 'varchar' -%}
            {%- do translated.update({name: dict(col, data_type=dbt.type_string())}) -%}
        {%- else -%}
            {%- do translated.update({name: col}) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(dbt.default__get_empty_schema_sql(translated)) }}
{% endmacro %}
