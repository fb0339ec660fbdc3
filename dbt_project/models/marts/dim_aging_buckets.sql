-- One row per aging bucket of the configured edges and basis (vars aging_bucket_edges, aging_basis),
-- in age order: BI tools join it to sort bucket labels and show their day ranges.
{%- set edges = aging_bucket_edges() %}
{%- set names = aging_bucket_names() %}

{%- set ns = namespace(rows=[]) %}
{%- if aging_basis() == 'due_date' %}
    {%- set ns.rows = [[names[0], 'null', '0']] %}
    {%- set lower = 1 %}
{%- else %}
    {%- set lower = 0 %}
{%- endif %}
{%- set ns.lower = lower %}
{%- for edge in edges %}
    {%- set ns.rows = ns.rows + [[names[ns.rows | length], ns.lower ~ '', edge ~ '']] %}
    {%- set ns.lower = edge + 1 %}
{%- endfor %}
{%- set ns.rows = ns.rows + [[names[-1], ns.lower ~ '', 'null']] %}

with

buckets as (

    {% for row in ns.rows -%}
    select
        '{{ row[0] }}' as aging_bucket,
        {{ loop.index }} as aging_bucket_sort,
        {{ row[1] }} as min_days,
        {{ row[2] }} as max_days
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

)

select
    cast(aging_bucket as {{ dbt.type_string() }}) as aging_bucket,
    cast(aging_bucket_sort as {{ dbt.type_bigint() }}) as aging_bucket_sort,
    cast('{{ aging_basis() }}' as {{ dbt.type_string() }}) as aging_basis,
    cast(min_days as {{ dbt.type_bigint() }}) as min_days,
    cast(max_days as {{ dbt.type_bigint() }}) as max_days
from buckets
