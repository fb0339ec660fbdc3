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


{#- QuickBooks: the last update wins, then the higher SyncToken, then the later load. A record
    deleted (per change-data-capture) at or after its latest version is dropped. -#}
{% macro quickbooks_latest_version(table) -%}
    {%- set entity_types = {
        'raw_customers': 'Customer', 'raw_invoices': 'Invoice', 'raw_payments': 'Payment',
        'raw_credit_memos': 'CreditMemo', 'raw_refund_receipts': 'RefundReceipt'} -%}
    select latest.* from (
        {{ latest_version(
            source('quickbooks', table),
            'last_updated_at desc, ' ~ dbt.safe_cast('sync_token', dbt.type_bigint()) ~ ' desc, _loaded_at desc, _source_row desc'
        ) }}
    ) as latest
    where not exists (
        select 1 from {{ source('quickbooks', 'raw_deleted_objects') }} as deleted
        where deleted.entity_type = '{{ entity_types[table] }}'
            and deleted.id = latest.id
            and deleted.last_updated_at >= latest.last_updated_at
    )
{%- endmacro %}


{#- Stripe objects carry no version: the most recently loaded copy wins, and within one load the
    copy from the later file (connector files are named by fetch time). -#}
{% macro stripe_latest_version(table) -%}
    {{ latest_version(source('stripe', table), '_loaded_at desc, _source_file desc, _source_row desc') }}
{%- endmacro %}
