{#-
    JSON helpers. Adapter-specific: add <adapter>__json_extract_text and <adapter>__unnest_json_array
    in this folder to port the project.
-#}

{#- Scalar at a JSONPath ('$.Amount') of a JSON value, as text (null when missing). -#}
{% macro json_extract_text(json_expr, json_path) -%}
    {{ return(adapter.dispatch('json_extract_text', 'ar_pipeline')(json_expr, json_path)) }}
{%- endmacro %}

{% macro default__json_extract_text(json_expr, json_path) -%}
    {{ exceptions.raise_compiler_error(
        "ar_pipeline: json_extract_text() has no implementation for adapter '" ~ adapter.type()
        ~ "'. Add a macro named " ~ adapter.type() ~ "__json_extract_text in macros/cross_db/json.sql."
    ) }}
{%- endmacro %}

{% macro duckdb__json_extract_text(json_expr, json_path) -%}
    json_extract_string({{ json_expr }}, '{{ json_path }}')
{%- endmacro %}

{#- JSON columns are strings on Spark. Spark reads JSON numbers as doubles: amounts stay exact up to
    15 significant digits (below 10^13 at cent precision), then cast to decimal by the caller. -#}
{% macro spark__json_extract_text(json_expr, json_path) -%}
    get_json_object({{ json_expr }}, '{{ json_path }}')
{%- endmacro %}


{#-
    FROM-clause fragment that unnests the JSON array found at json_path ('$' = the value itself,
    '$.LinkedTxn' = a member) of a JSON column: one row per element, exposing
    <element_alias>_unnested.<element_alias> (JSON) and <element_alias>_unnested.<index_alias>
    (1-based position). Rows whose array is null, missing or empty produce no output rows.
    Use as:  from t {{ unnest_json_array('t.lines', 'line_json', 'line_number') }}
-#}
{% macro unnest_json_array(json_expr, element_alias, index_alias, json_path='$') -%}
    {{ return(adapter.dispatch('unnest_json_array', 'ar_pipeline')(json_expr, element_alias, index_alias, json_path)) }}
{%- endmacro %}

{% macro default__unnest_json_array(json_expr, element_alias, index_alias, json_path='$') -%}
    {{ exceptions.raise_compiler_error(
        "ar_pipeline: unnest_json_array() has no implementation for adapter '" ~ adapter.type()
        ~ "'. Add a macro named " ~ adapter.type() ~ "__unnest_json_array in macros/cross_db/json.sql."
    ) }}
{%- endmacro %}

{% macro duckdb__unnest_json_array(json_expr, element_alias, index_alias, json_path='$') -%}
    cross join lateral (
        select
            unnest(json_extract({{ json_expr }}, '{{ json_path }}[*]')) as {{ element_alias }},
            generate_subscripts(json_extract({{ json_expr }}, '{{ json_path }}[*]'), 1) as {{ index_alias }}
    ) as {{ element_alias }}_unnested
{%- endmacro %}

{#- from_json to array<string> keeps each element as its JSON text; posexplode's position is 0-based. -#}
{% macro spark__unnest_json_array(json_expr, element_alias, index_alias, json_path='$') -%}
    {%- set array_json = json_expr if json_path == '$' else "get_json_object(" ~ json_expr ~ ", '" ~ json_path ~ "')" %}
    cross join lateral (
        select
            col as {{ element_alias }},
            pos + 1 as {{ index_alias }}
        from posexplode(from_json({{ array_json }}, 'array<string>'))
    ) as {{ element_alias }}_unnested
{%- endmacro %}
