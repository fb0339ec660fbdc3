with

latest_version as (

    {{ quickbooks_latest_version('raw_customers') }}

),

renamed as (

    select
        ----------  ids
        id as customer_id,
        parent_id as parent_customer_id,
        customer_type_id,
        sales_term_id,

        ----------  text
        display_name as customer_name,
        company_name,
        fully_qualified_name,
        email,
        -- masked by the QBO API (only its last five characters, e.g. XXXXXX56789)
        primary_tax_identifier as tax_id,
        phone,
        upper(currency) as currency,
        bill_country,
        bill_region,

        ----------  booleans
        coalesce(is_job, false) as is_job,
        coalesce(is_active, true) as is_active,

        ----------  amounts (major units, customer currency, as of the sync)
        {{ to_money('balance') }} as balance,
        {{ to_money('balance_with_jobs') }} as balance_with_jobs,

        ----------  timestamps
        created_at,
        last_updated_at,
        sync_token,
        _loaded_at

    from latest_version

)

select * from renamed
