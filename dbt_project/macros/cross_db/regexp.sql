{#-
    Replace every match of a regular expression. Keep patterns free of backslashes (use character
    classes such as [^a-z0-9] and [ ]) so the same literal reads alike on DuckDB (RE2) and Spark
    (Java regex, where backslashes in string literals are escapes).
-#}
{% macro regexp_replace_all(expr, pattern, replacement) -%}
    {{ return(adapter.dispatch('regexp_replace_all', 'ar_pipeline')(expr, pattern, replacement)) }}
{%- endmacro %}

{#- DuckDB and Postgres replace only the first match unless given the 'g' flag. -#}
{% macro default__regexp_replace_all(expr, pattern, replacement) -%}
    regexp_replace({{ expr }}, '{{ pattern }}', '{{ replacement }}', 'g')
{%- endmacro %}

{#- Spark's regexp_replace replaces every match. -#}
{% macro spark__regexp_replace_all(expr, pattern, replacement) -%}
    regexp_replace({{ expr }}, '{{ pattern }}', '{{ replacement }}')
{%- endmacro %}
