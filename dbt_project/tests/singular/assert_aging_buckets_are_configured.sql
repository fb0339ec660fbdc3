-- Every aging row's bucket label, sort position and basis match dim_aging_buckets (the configured
-- vars aging_bucket_edges and aging_basis), and its age lies in that bucket's day range, in both aging
-- marts. Snapshot rows stored under another basis (before a basis change) are skipped. Returns
-- offending rows.

with

aging_rows as (

    select 'fct_ar_aging' as model, invoice_key, aging_basis, aging_bucket, aging_bucket_sort,
        case when aging_basis = 'invoice_date' then days_outstanding else days_past_due end as aging_days
    from {{ ref('fct_ar_aging') }}
    union all
    select 'fct_ar_aging_snapshots' as model, invoice_key, aging_basis, aging_bucket, aging_bucket_sort,
        case when aging_basis = 'invoice_date' then days_outstanding else days_past_due end as aging_days
    from {{ ref('fct_ar_aging_snapshots') }}
    where aging_basis = (select max(aging_basis) from {{ ref('dim_aging_buckets') }})

)

select aging_rows.*
from aging_rows
left join {{ ref('dim_aging_buckets') }} as buckets
    on aging_rows.aging_bucket = buckets.aging_bucket
    and aging_rows.aging_bucket_sort = buckets.aging_bucket_sort
    and aging_rows.aging_basis = buckets.aging_basis
where buckets.aging_bucket is null
    or aging_rows.aging_days < coalesce(buckets.min_days, aging_rows.aging_days)
    or aging_rows.aging_days > coalesce(buckets.max_days, aging_rows.aging_days)
