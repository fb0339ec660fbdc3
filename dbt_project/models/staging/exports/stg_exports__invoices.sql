-- One row per invoice of each export source: the copy from the latest load (and latest file).

with

latest_version as (

    {{ latest_version(
        source('exports', 'raw_invoices'),
        '_loaded_at desc, _source_file desc, _source_row desc',
        partition_by='export_source, invoice_id'
    ) }}

),

renamed as (

    select
        ----------  ids
        export_source,
        invoice_id,
        coalesce(customer_id, customer_name) as customer_id,

        ----------  text
        customer_name,
        upper(currency) as currency,
        lower(status) as status,
        transaction_type,
        terms,
        po_number,
        section,
        extra,

        ----------  amounts (major units, invoice currency)
        {{ to_money('amount') }} as amount,
        {{ to_money('open_balance') }} as open_balance,

        ----------  dates
        invoice_date,
        coalesce(due_date, invoice_date) as due_date,
        paid_date,
        report_as_of,
        _loaded_at,
        _source_file

    from latest_version

)

select * from renamed
