-- Every linked pair must end up in one group. Rows here mean a chain of links is longer than
-- var('customer_link_max_hops') label-propagation passes reach: raise the var.
select
    links.customer_id,
    links.linked_customer_id,
    this_group.customer_group_id,
    other_group.customer_group_id as linked_customer_group_id
from {{ ref('int_customer_links') }} as links
inner join {{ ref('int_customer_groups') }} as this_group
    on links.customer_id = this_group.customer_id
inner join {{ ref('int_customer_groups') }} as other_group
    on links.linked_customer_id = other_group.customer_id
where this_group.customer_group_id <> other_group.customer_group_id
