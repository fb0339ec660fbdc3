"""The short AR summary printed after a run: read from the marts, never recomputed from raw data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb


@dataclass(frozen=True)
class OverdueCustomer:
    customer_id: str
    customer_name: str
    overdue_amount: Decimal
    open_invoices: int
    max_days_past_due: int


@dataclass(frozen=True)
class ArSummary:
    as_of_date: date | None
    home_currency: str
    total_open: Decimal
    open_invoices: int
    buckets: dict[str, Decimal]
    credit_sales_window: Decimal
    dso_window_days: int | None
    dso_days: Decimal | None
    top_overdue: list[OverdueCustomer]


def ar_summary(duckdb_path: Path, top: int = 10) -> ArSummary:
    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        head = conn.execute(
            """SELECT max(as_of_date), coalesce(max(home_currency), 'USD'),
                      coalesce(sum(home_open_amount), 0), count(*)
               FROM marts.fct_ar_aging"""
        ).fetchone()
        as_of, home_currency, total_open, open_invoices = head
        # every configured bucket (dbt vars aging_bucket_edges / aging_basis), in age order
        buckets = {
            bucket: Decimal(amount)
            for bucket, amount in conn.execute(
                """SELECT b.aging_bucket, coalesce(sum(a.home_open_amount), 0)
                   FROM marts.dim_aging_buckets b
                   LEFT JOIN marts.fct_ar_aging a ON a.aging_bucket = b.aging_bucket
                   GROUP BY b.aging_bucket, b.aging_bucket_sort ORDER BY b.aging_bucket_sort"""
            ).fetchall()
        }
        # DSO as marts.ar_kpis_daily defines it (one definition): open AR over the net credit sales
        # of the trailing window (var kpi_rolling_window_days) ending on the as-of date.
        kpi = conn.execute(
            """SELECT window_days, credit_sales, dso FROM marts.ar_kpis_daily
               WHERE dimension = 'all' AND snapshot_date = ?""",
            [as_of],
        ).fetchall()
        window_days, credit_sales, dso = kpi[0] if kpi else (None, Decimal(0), None)
        rows = conn.execute(
            """SELECT customer_id, any_value(customer_name), sum(home_open_amount), count(*),
                      max(days_past_due)
               FROM marts.fct_ar_aging WHERE days_past_due > 0
               GROUP BY customer_id ORDER BY 3 DESC, 1 LIMIT ?""",
            [top],
        ).fetchall()
    return ArSummary(
        as_of_date=as_of,
        home_currency=home_currency,
        total_open=Decimal(total_open),
        open_invoices=int(open_invoices),
        buckets=buckets,
        credit_sales_window=Decimal(credit_sales or 0),
        dso_window_days=window_days,
        dso_days=Decimal(dso).quantize(Decimal("0.1")) if dso is not None else None,
        top_overdue=[OverdueCustomer(r[0], r[1] or r[0], Decimal(r[2]), int(r[3]), int(r[4])) for r in rows],
    )


def _money(amount: Decimal, currency: str) -> str:
    return f"{currency} {amount:,.2f}"


def render_summary(s: ArSummary):
    """A rich renderable: headline, aging buckets and top overdue customers."""
    from rich.console import Group
    from rich.table import Table

    head = Table(title=f"Accounts receivable as of {s.as_of_date}", show_header=False)
    head.add_row("Total open AR", _money(s.total_open, s.home_currency))
    head.add_row("Open invoices", f"{s.open_invoices:,}")
    head.add_row(
        f"DSO ({s.dso_window_days}-day, standard)",
        f"{s.dso_days} days" if s.dso_days is not None else "n/a (no credit sales in window)",
    )
    aging = Table(title="Aging")
    aging.add_column("bucket")
    aging.add_column("open amount", justify="right")
    aging.add_column("share", justify="right")
    for bucket, amount in s.buckets.items():
        share = (amount / s.total_open * 100) if s.total_open else Decimal(0)
        aging.add_row(bucket, _money(amount, s.home_currency), f"{share:.1f}%")
    top = Table(title="Top overdue customers")
    for col in ("customer", "overdue amount", "invoices", "max days past due"):
        top.add_column(col, justify="left" if col == "customer" else "right")
    for c in s.top_overdue:
        top.add_row(c.customer_name, _money(c.overdue_amount, s.home_currency),
                    str(c.open_invoices), str(c.max_days_past_due))
    return Group(head, aging, top)
