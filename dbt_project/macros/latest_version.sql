{#-
    Raw tables are append-only: a record fetched again (a new QuickBooks SyncToken, a re-listed
    Stripe object) is a new row. Staging keeps one row per id, the latest version, via these macros.
-#}
{% macro latest_version(relation, order_by, partition_by='id') -%}
    select * from (
        select
            versions.*,
            row_number() over (partition by {{ partition_by }} order by {{ order_by }}) as version_rank
        from {{ relation }} as versions
    ) as ranked
    where version_rank = 1
{%- endmacro %}


{#- QuickBooks: the last update wins, then the higher SyncToken, then the later load. -#}
{% macro quickbooks_latest_version(table) -%}
    {{ latest_version(
        source('quickbooks', table),
        'last_updated_at desc, ' ~ dbt.safe_cast('sync_token', dbt.type_bigint()) ~ ' desc, _loaded_at desc, _source_row desc'
    ) }}
{%- endmacro %}


{#- Stripe objects carry no version: the most recently loaded copy wins. -#}
{% macro stripe_latest_version(table) -%}
    {{ latest_version(source('stripe', table), '_loaded_at desc, _batch_id desc, _source_row desc') }}
{%- endmacro %}
