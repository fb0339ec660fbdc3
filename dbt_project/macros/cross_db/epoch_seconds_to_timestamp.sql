{#-
    Unix seconds (UTC) -> timestamp without time zone, expressed in UTC.
    Adapter-specific: add <adapter>__epoch_seconds_to_timestamp to port the project.
-#}
{% macro epoch_seconds_to_timestamp(epoch_seconds_expr) -%}
    {{ return(adapter.dispatch('epoch_seconds_to_timestamp', 'ar_pipeline')(epoch_seconds_expr)) }}
{%- endmacro %}

{% macro default__epoch_seconds_to_timestamp(epoch_seconds_expr) -%}
    {{ exceptions.raise_compiler_error(
        "ar_pipeline: epoch_seconds_to_timestamp() has no implementation for adapter '" ~ adapter.type()
        ~ "'. Add a macro named " ~ adapter.type() ~ "__epoch_seconds_to_timestamp in macros/cross_db/."
    ) }}
{%- endmacro %}

{% macro duckdb__epoch_seconds_to_timestamp(epoch_seconds_expr) -%}
    timezone('UTC', to_timestamp({{ epoch_seconds_expr }}))
{%- endmacro %}

{#- Seconds added to the epoch as timestamp_ntz: the result does not depend on the session time zone. -#}
{% macro spark__epoch_seconds_to_timestamp(epoch_seconds_expr) -%}
    timestampadd(second, {{ epoch_seconds_expr }}, timestamp_ntz'1970-01-01 00:00:00')
{%- endmacro %}


{#- Unix seconds (UTC) -> UTC calendar date (portable once the macro above exists). -#}
{% macro epoch_seconds_to_date(epoch_seconds_expr) -%}
    cast({{ epoch_seconds_to_timestamp(epoch_seconds_expr) }} as date)
{%- endmacro %}
