"""Ground-truth parquet files derived from the simulation (not read by the loader)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from .simulate import CURRENCIES, EPOCH, NEVER, QBO, SOURCES, Sim


def month_ends_before(start_day: int, end_day: int) -> list[int]:
    """Calendar month ends strictly before end_day and on/after start_day."""
    out = []
    d = EPOCH + timedelta(days=start_day)
    y, m = d.year, d.month
    while True:
        nm = date(y + (m == 12), m % 12 + 1, 1)
        me = (nm - EPOCH).days - 1
        if me >= end_day:
            break
        if me >= start_day:
            out.append(me)
        y, m = nm.year, nm.month
    return out


def aging_bucket(dpd: pl.Expr) -> pl.Expr:
    return (
        pl.when(dpd <= 0)
        .then(pl.lit("current"))
        .when(dpd <= 30)
        .then(pl.lit("1_30"))
        .when(dpd <= 60)
        .then(pl.lit("31_60"))
        .when(dpd <= 90)
        .then(pl.lit("61_90"))
        .otherwise(pl.lit("over_90"))
    )


def build(
    sim: Sim, qbo_ids: pl.DataFrame, stripe_frames: dict[str, pl.DataFrame]
) -> dict[str, pl.DataFrame]:
    cu = sim.customers
    # source ids
    s_cus = stripe_frames["customers"].select("cust", pl.col("cus_id").alias("source_customer_id"))
    inv = sim.invoices
    s_inv = (
        stripe_frames["invoices"]
        .filter(~pl.col("draft"))
        .select("inv", pl.col("in_id").alias("sid"), pl.col("number").alias("num"))
    )
    q_inv = qbo_ids.select("inv", pl.col("Id").alias("sid"), pl.col("DocNumber").alias("num"))
    ids = pl.concat([q_inv, s_inv])
    q_all = (
        sim.customers.filter(pl.col("source") == QBO)
        .sort("created", "cust")
        .with_columns(source_customer_id=pl.int_range(1, pl.len() + 1).cast(pl.String))
        .select("cust", "source_customer_id")
    )
    cust_ids = pl.concat([q_all, s_cus])

    cur_name = pl.col("currency").replace_strict(
        dict(enumerate(CURRENCIES)), return_dtype=pl.String
    )
    src_name = pl.col("source").replace_strict(dict(enumerate(SOURCES)), return_dtype=pl.String)
    # '<source>:<source id>' of each customer, to name the customer a customer is linked to
    keys = cu.join(cust_ids, on="cust", how="left", maintain_order="left").select(
        pl.col("cust").alias("linked_cust"),
        pl.concat_str(src_name, pl.lit(":"), pl.col("source_customer_id")).alias("linked_customer_id"),
    )
    customers = (
        cu.join(cust_ids, on="cust", how="left", maintain_order="left")
        .join(keys, on="linked_cust", how="left", maintain_order="left")
        .select(
            src_name.alias("source"),
            "source_customer_id",
            "archetype",
            "segment",
            "region",
            pl.col("terms").alias("terms_days"),
            cur_name.alias("currency"),
            "linked_customer_id",
        )
        .sort("source", "source_customer_id")
    )

    def to_date(c: str) -> pl.Expr:
        return pl.col(c).cast(pl.Int32).cast(pl.Date)

    rate_s = pl.concat_str(
        [
            (pl.col("rate") // 1_000_000).cast(pl.String),
            pl.lit("."),
            (pl.col("rate") % 1_000_000).cast(pl.String).str.zfill(6),
        ]
    )
    iv = (
        inv.join(ids, on="inv", how="left", maintain_order="left")
        .join(cust_ids, on="cust", how="left", maintain_order="left")
        .join(cu.select("cust", "archetype"), on="cust", how="left", maintain_order="left")
    )
    # QBO voided invoices carry TotalAmt 0 in the source; Stripe keeps the original total
    credit_applied = pl.when(pl.col("has_credit") & ~pl.col("credit_unapplied"))
    # QuickBooks converts a credit memo's application at the rate of its (zero-total) payment, i.e.
    # of the day it is applied; Stripe invoices are all in the home currency (rate 1).
    applied_np = (inv["has_credit"] & ~inv["credit_unapplied"]).to_numpy()
    apply_rate = sim.fx_rate(inv["currency"].to_numpy(), inv["credit_apply_day"].to_numpy())
    credit_home = np.where(applied_np, (inv["credit_amount"].to_numpy() * apply_rate + 500_000) // 1_000_000, 0)
    total_w = pl.when(pl.col("void") & (pl.col("source") == QBO)).then(0).otherwise(pl.col("total"))
    invoices = iv.select(
        src_name.alias("source"),
        pl.col("sid").alias("source_invoice_id"),
        pl.col("num").alias("invoice_number"),
        "source_customer_id",
        "archetype",
        to_date("day").alias("invoice_date"),
        to_date("due").alias("due_date"),
        cur_name.alias("currency"),
        total_w.cast(pl.Int64).alias("total_minor"),
        pl.col("status").alias("status_at_end"),
        pl.when(pl.col("fully_paid")).then(to_date("paid_date")).otherwise(None).alias("paid_date"),
        pl.when(pl.col("fully_paid"))
        .then(pl.col("paid_date") - pl.col("due"))
        .otherwise(None)
        .cast(pl.Int64)
        .alias("days_late"),
        rate_s.alias("exchange_rate"),
        # credit memo / credit note applied to the invoice (invoice currency), and when
        credit_applied.then(pl.col("credit_amount")).otherwise(0).cast(pl.Int64).alias("credit_minor"),
        credit_applied.then(to_date("credit_apply_day")).otherwise(None).alias("credit_applied_date"),
        pl.Series("credit_home_minor", credit_home, dtype=pl.Int64),
    )

    # open balances at month ends and end_date
    n = inv.height
    day = inv["day"].to_numpy()
    due = inv["due"].to_numpy()
    total = inv["total"].to_numpy()
    void = inv["void"].to_numpy()
    mark = inv["mark_day"].to_numpy()
    rate = inv["rate"].to_numpy()
    cr_ok = (inv["has_credit"] & ~inv["credit_unapplied"]).to_numpy()
    cr_day = np.where(cr_ok, inv["credit_apply_day"].to_numpy(), NEVER)
    cr_amt = inv["credit_amount"].to_numpy()
    ap = sim.applications
    a_inv = ap["inv"].to_numpy()
    a_day = ap["day"].to_numpy()
    a_amt = ap["amount"].to_numpy()
    o = np.argsort(a_day, kind="stable")
    a_inv, a_day, a_amt = a_inv[o], a_day[o], a_amt[o]

    frames = []
    base = iv.select(
        src_name.alias("source"),
        pl.col("sid").alias("source_invoice_id"),
        pl.col("num").alias("invoice_number"),
        "source_customer_id",
        cur_name.alias("currency"),
        to_date("day").alias("invoice_date"),
        to_date("due").alias("due_date"),
    )
    for d in month_ends_before(sim.start_day, sim.end_day) + [sim.end_day]:
        k = np.searchsorted(a_day, d, side="right")
        paid = np.bincount(a_inv[:k], weights=a_amt[:k], minlength=n).astype(np.int64)
        open_amt = total - paid - np.where(cr_day <= d, cr_amt, 0)
        m = (day <= d) & ~void & (mark > d) & (open_amt > 0)
        idx = np.flatnonzero(m)
        oa = open_amt[idx]
        dpd = d - due[idx]
        home = (oa * rate[idx] + 500_000) // 1_000_000
        frames.append(
            base[idx].with_columns(
                as_of_date=pl.lit(EPOCH + timedelta(days=int(d))),
                days_past_due=pl.Series(dpd, dtype=pl.Int64),
                open_amount_minor=pl.Series(oa, dtype=pl.Int64),
                home_open_amount_minor=pl.Series(home, dtype=pl.Int64),
            )
        )
    ob = pl.concat(frames).with_columns(aging_bucket=aging_bucket(pl.col("days_past_due")))
    ob = ob.select(
        "as_of_date",
        "source",
        "source_invoice_id",
        "invoice_number",
        "source_customer_id",
        "currency",
        "invoice_date",
        "due_date",
        "days_past_due",
        "aging_bucket",
        "open_amount_minor",
        "home_open_amount_minor",
    )
    return {
        "customers": customers,
        "invoices": invoices.sort("source", "invoice_date", "source_invoice_id"),
        "open_balances": ob,
    }


def write(tables: dict[str, pl.DataFrame], folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    nbytes = 0
    for name, df in tables.items():
        p = folder / f"{name}.parquet"
        df.write_parquet(p, compression="zstd", statistics=False)
        nbytes += p.stat().st_size
    return nbytes
