{#-
    Aging bucket labels from var('aging_bucket_edges') (upper edges, inclusive, in days past due).

    Default edges [30, 60, 90] give:
        days_past_due <= 0 -> 'current'
        1..30  -> '1_30'
        31..60 -> '31_60'
        61..90 -> '61_90'
        > 90   -> 'over_90'
    Any strictly increasing list of positive integers works; names follow the same pattern.

    var('aging_basis') picks the age being bucketed: 'due_date' (default; days past due, as above)
    or 'invoice_date' (days since the invoice date; the first bucket then holds ages 0..edge1, e.g.
    '0_30', '31_60', '61_90', 'over_90', as invoice-date aging reports print them).
-#}
{% macro aging_basis() -%}
    {%- set basis = var('aging_basis', 'due_date') -%}
    {%- if basis not in ('due_date', 'invoice_date') -%}
        {{ exceptions.raise_compiler_error("var('aging_basis') must be due_date or invoice_date, got: " ~ basis) }}
    {%- endif -%}
    {{ return(basis) }}
{%- endmacro %}

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


{#- Bucket names in order, e.g. ['current', '1_30', '31_60', '61_90', 'over_90'] (due-date basis)
    or ['0_30', '31_60', '61_90', 'over_90'] (invoice-date basis). -#}
{% macro aging_bucket_names() -%}
    {%- set edges = aging_bucket_edges() -%}
    {%- if aging_basis() == 'invoice_date' -%}
        {%- set ns = namespace(lower=0, names=[]) -%}
    {%- else -%}
        {%- set ns = namespace(lower=1, names=['current']) -%}
    {%- endif -%}
    {%- for edge in edges -%}
        {%- set ns.names = ns.names + [ns.lower ~ '_' ~ edge] -%}
        {%- set ns.lower = edge + 1 -%}
    {%- endfor -%}
    {{ return(ns.names + ['over_' ~ edges[-1]]) }}
{%- endmacro %}


{#- The age the buckets apply to: days past due (due-date basis) or days since the invoice date. -#}
{% macro aging_days(due_date_expr, invoice_date_expr, as_of_expr) -%}
    {%- if aging_basis() == 'invoice_date' -%}
        {{ dbt.datediff(invoice_date_expr, as_of_expr, 'day') }}
    {%- else -%}
        {{ dbt.datediff(due_date_expr, as_of_expr, 'day') }}
    {%- endif -%}
{%- endmacro %}


{#- SQL case expression mapping an age in days (aging_days()) to its bucket name. -#}
{% macro aging_bucket(aging_days_expr) -%}
    {%- set edges = aging_bucket_edges() -%}
    {%- set names = aging_bucket_names() -%}
    {%- set offset = 0 if aging_basis() == 'invoice_date' else 1 -%}
    case
        {%- if offset == 1 %}
        when {{ aging_days_expr }} <= 0 then '{{ names[0] }}'
        {%- endif %}
        {%- for edge in edges %}
        when {{ aging_days_expr }} <= {{ edge }} then '{{ names[loop.index0 + offset] }}'
        {%- endfor %}
        else '{{ names[-1] }}'
    end
{%- endmacro %}


{#- 1-based position of the bucket (aging_days()) in aging_bucket_names(), so BI tools can sort
    bucket labels in age order instead of alphabetically. -#}
{% macro aging_bucket_sort(aging_days_expr) -%}
    {%- set edges = aging_bucket_edges() -%}
    {%- set offset = 0 if aging_basis() == 'invoice_date' else 1 -%}
    case
        {%- if offset == 1 %}
        when {{ aging_days_expr }} <= 0 then 1
        {%- endif %}
        {%- for edge in edges %}
        when {{ aging_days_expr }} <= {{ edge }} then {{ loop.index + offset }}
        {%- endfor %}
        else {{ (edges | length) + 1 + offset }}
    end
{%- endmacro %}
