"""Aging for any date, read from `marts.fct_ar_aging_snapshots` (what `ar-pipeline aging` prints)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from ar_pipeline.lib.settings import DBT_PROJECT_DIR


def build_snapshot(as_of: date, duckdb_path: Path) -> None:
    """Rebuild the snapshot for one date from the event history with dbt (only that date's rows
    are replaced; the model's inputs do not depend on the date)."""
    dbt = Path(sys.executable).parent / "dbt"
    variables = {"as_of_date": as_of.isoformat(), "snapshot_only_as_of": True}
    proc = subprocess.run(
        [str(dbt if dbt.exists() else "dbt"), "run", "--select", "fct_ar_aging_snapshots",
         "--vars", json.dumps(variables), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--project-dir", str(DBT_PROJECT_DIR)],
        cwd=DBT_PROJECT_DIR, env={**os.environ, "AR_DUCKDB_PATH": str(duckdb_path)},
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"dbt could not rebuild the snapshot for {as_of}:\n{tail}")


def aging_table(duckdb_path: Path, as_of: date, by: str = "customer") -> pl.DataFrame:
    """Open amounts on `as_of` per invoice (`by="invoice"`) or per customer with one column per
    bucket (`by="customer"`). Home-currency amounts when by customer, invoice currency by invoice."""
    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        rows = conn.sql(
            """SELECT invoice_key, source, source_invoice_id, customer_id, customer_name, invoice_date,
                      due_date, days_past_due, days_outstanding, aging_basis, aging_bucket, aging_bucket_sort,
                      currency, open_amount, home_open_amount
               FROM marts.fct_ar_aging_snapshots WHERE snapshot_date = $as_of
               ORDER BY customer_id, due_date, invoice_key""",
            params={"as_of": as_of},
        ).pl()
        # Every configured bucket is a column, in age order, even when empty on that date.
        buckets = [r[0] for r in conn.sql(
            "SELECT aging_bucket FROM marts.dim_aging_buckets ORDER BY aging_bucket_sort").fetchall()]
    if by == "invoice":
        return rows
    per_customer = rows.pivot(
        on="aging_bucket", index=["customer_id", "customer_name"], values="home_open_amount",
        aggregate_function="sum",
    )
    for bucket in buckets:
        if bucket not in per_customer.columns:
            per_customer = per_customer.with_columns(pl.lit(None, dtype=pl.Decimal(28, 6)).alias(bucket))
    per_customer = per_customer.select("customer_id", "customer_name", *buckets).with_columns(
        [pl.col(b).fill_null(0) for b in buckets]
    )
    return per_customer.with_columns(pl.sum_horizontal(buckets).alias("total")).sort("total", descending=True)
