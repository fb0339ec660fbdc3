-- One row per deleted Stripe object (type and id).

with

deletions as (

    select
        object as object_type,
        id as source_id,
        _loaded_at,
        row_number() over (partition by object, id order by _loaded_at desc) as deletion_rank
    from {{ source('stripe', 'raw_deleted_objects') }}
    where deleted

)

select object_type, source_id, _loaded_at
from deletions
where deletion_rank = 1
