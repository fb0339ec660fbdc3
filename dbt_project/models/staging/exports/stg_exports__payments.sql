-- One row per payment of each payment-export source: the copy from the latest load (and latest file).

with

latest_version as (

    {{ latest_version(
        source('exports', 'raw_payments'),
        '_loaded_at desc, _source_file desc, _source_row desc',
        partition_by='export_source, payment_id'
    ) }}

),

renamed as (

    select
        ----------  ids
        export_source,
        pays_invoices_of,
        payment_id,
        coalesce(customer_id, customer_name) as customer_id,
        invoice_id,

        ----------  text
        customer_name,
        invoice_number,
        upper(currency) as currency,
        lower(status) as status,
        method,
        extra,

        ----------  amounts (major units)
        {{ to_money('amount') }} as amount,
        {{ to_money('coalesce(amount_refunded, 0)') }} as amount_refunded,

        ----------  dates
        payment_date,
        _loaded_at

    from latest_version

)

select * from renamed
