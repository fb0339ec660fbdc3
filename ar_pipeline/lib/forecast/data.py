"""Read the forecast inputs from the marts (marts.fct_invoices, dim_customers)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

LEDGER_SQL = """
select i.invoice_key, i.customer_id, i.invoice_date, i.due_date, i.paid_date, i.currency,
       cast(i.total_amount as double) as amount, cast(i.home_total_amount as double) as amount_home,
       cast(i.open_amount as double) as open_amount, cast(i.home_open_amount as double) as open_amount_home,
       i.status, i.as_of_date, c.segment
from marts.fct_invoices i left join marts.dim_customers c on c.customer_id = i.customer_id
where i.status <> 'void' and i.invoice_date is not null and i.due_date is not null
  and i.customer_id is not null and i.home_total_amount is not null
"""


@dataclass(frozen=True)
class Ledger:
    """Non-void invoices with customer segment; `data_end` is the marts' as-of date (never the clock)."""

    invoices: pl.DataFrame
    data_end: date
    home_currency: str = "USD"

    def open_amounts(self) -> pl.DataFrame:
        """What is still open at the data end (partial payments deducted), per open invoice."""
        return (self.invoices.filter(pl.col("status") == "open")
                .select("invoice_key", pl.col("open_amount").alias("amount"),
                        pl.col("open_amount_home").alias("amount_home")))


def load_ledger(conn, home_currency: str = "USD") -> Ledger:
    inv = conn.sql(LEDGER_SQL).pl()
    if inv.height == 0:
        raise ValueError("marts.fct_invoices has no invoices: run the pipeline first")
    data_end = inv["as_of_date"].max()
    # a paid date after the as-of date cannot be known; open invoices have none
    inv = inv.with_columns(pl.when(pl.col("status") == "paid").then(pl.col("paid_date")).alias("paid_date"),
                           pl.col("segment").fill_null("unknown"))
    return Ledger(invoices=inv, data_end=data_end, home_currency=home_currency)
