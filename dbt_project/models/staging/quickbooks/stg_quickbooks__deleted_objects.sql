-- One row per deleted QuickBooks record (the latest deletion seen for an entity type and id).

with

deletions as (

    select
        entity_type,
        id as source_id,
        status,
        last_updated_at as deleted_at,
        _loaded_at,
        row_number() over (
            partition by entity_type, id order by last_updated_at desc, _loaded_at desc
        ) as deletion_rank
    from {{ source('quickbooks', 'raw_deleted_objects') }}

)

select entity_type, source_id, status, deleted_at, _loaded_at
from deletions
where deletion_rank = 1
