{#-
    Aging bucket labels from var('aging_bucket_edges') (upper edges, inclusive, in days past due).

    Default edges [30, 60, 90] give:
        days_past_due <= 0 -> 'current'
        1..30  -> '1_30'
        31..60 -> '31_60'
        61..90 -> '61_90'
        > 90   -> 'over_90'
    Any strictly increasing list of positive integers works; names follow the same pattern.
-#}
{% macro aging_bucket_edges() -%}
    {%- set edges = var('aging_bucket_edges', [30, 60, 90]) -%}
    {%- if edges is string or edges is mapping or edges is not iterable or (edges | length) == 0 -%}
        {{ exceptions.raise_compiler_error("var('aging_bucket_edges') must be a non-empty list of integers, got: " ~ edges) }}
    {%- endif -%}
    {%- set ns = namespace(previous=0, clean=[]) -%}
    {%- for edge in edges -%}
        {%- set edge_int = edge | int -%}
        {%- if edge_int <= ns.previous or (edge | string | trim) != (edge_int | string) -%}
            {{ exceptions.raise_compiler_error("var('aging_bucket_edges') must be strictly increasing positive integers, got: " ~ edges) }}
        {%- endif -%}
        {%- set ns.clean = ns.clean + [edge_int] -%}
        {%- set ns.previous = edge_int -%}
    {%- endfor -%}
    {{ return(ns.clean) }}
{%- endmacro %}


{#- Bucket names in order, e.g. ['current', '1_30', '31_60', '61_90', 'over_90']. -#}
{% macro aging_bucket_names() -%}
    {%- set edges = aging_bucket_edges() -%}
    {%- set ns = namespace(lower=1, names=['current']) -%}
    {%- for edge in edges -%}
        {%- set ns.names = ns.names + [ns.lower ~ '_' ~ edge] -%}
        {%- set ns.lower = edge + 1 -%}
    {%- endfor -%}
    {{ return(ns.names + ['over_' ~ edges[-1]]) }}
{%- endmacro %}


{#- SQL case expression mapping a days-past-due expression to its bucket name. -#}
{% macro aging_bucket(days_past_due_expr) -%}
    {%- set edges = aging_bucket_edges() -%}
    {%- set names = aging_bucket_names() -%}
    case
        when {{ days_past_due_expr }} <= 0 then '{{ names[0] }}'
        {%- for edge in edges %}
        when {{ days_past_due_expr }} <= {{ edge }} then '{{ names[loop.index] }}'
        {%- endfor %}
        else '{{ names[-1] }}'
    end
{%- endmacro %}
