"""The rest of the AR cycle, as Python tables in schema `analytics` built from the marts:

- `analytics.cash_application_suggestions`: unapplied money (QuickBooks unapplied payments and
  credit memos from `marts.fct_unapplied_cash`, bank-statement CSV lines) matched to open invoices,
  with a confidence, an explanation and an auto-apply flag (`ar_pipeline.lib.cash_application`).
- `analytics.invoice_issues`: pre-send checks on draft/unsent and recently sent invoices
  (`ar_pipeline.lib.invoice_checks`), with a WARN check summarising new issues.
- `analytics.dispute_queue`: disputes with routing, deadlines and a suggested next action
  (`ar_pipeline.lib.disputes`).

Configs live in `<AR_INGEST_CONFIG_DIR>/analytics/*.yaml`. Every table carries the run's as-of date,
read from the marts' `as_of_date` column (never the clock).
"""

from pathlib import Path

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from ar_pipeline.defs.resources import LandingResource
from ar_pipeline.lib.cash_application import suggestions_from_warehouse
from ar_pipeline.lib.settings import DBT_PROJECT_DIR

ANALYTICS_CONFIG_SUBDIR = "analytics"
CASH_KEY = dg.AssetKey(["analytics", "cash_application_suggestions"])


def analytics_config_dir(landing: LandingResource) -> Path:
    """`<AR_INGEST_CONFIG_DIR>/analytics`, or the repository's shipped one when that folder does not
    exist (an ingest config folder kept elsewhere need not copy the analytics configs)."""
    configured = Path(landing.ingest_config_dir) / ANALYTICS_CONFIG_SUBDIR
    return configured if configured.is_dir() else DBT_PROJECT_DIR.parent / "ingest_configs" / ANALYTICS_CONFIG_SUBDIR


def marts_as_of(conn, table: str = "marts.fct_invoices"):
    """The as-of date the marts were built for (one value per build)."""
    rows = conn.sql(f"SELECT DISTINCT as_of_date FROM {table}").fetchall()
    if len(rows) > 1:
        raise ValueError(f"{table} holds several as_of_date values: {sorted(r[0] for r in rows)}")
    if not rows:
        rows = conn.sql("SELECT DISTINCT as_of_date FROM marts.dim_customers").fetchall()
    return rows[0][0] if rows else None


def write_table(conn, name: str, df: pl.DataFrame) -> None:
    conn.sql("CREATE SCHEMA IF NOT EXISTS analytics")
    conn.register("_hygiene_df", df.to_arrow())
    try:
        conn.sql(f"CREATE OR REPLACE TABLE analytics.{name} AS SELECT * FROM _hygiene_df")
    finally:
        conn.unregister("_hygiene_df")


@dg.asset(
    key=CASH_KEY,
    deps=[
        dg.AssetKey(["marts", "fct_invoices"]),
        dg.AssetKey(["marts", "fct_unapplied_cash"]),
        dg.AssetKey(["marts", "dim_customers"]),
    ],
    group_name="analytics",
    pool="duckdb",
    description="Unapplied money (QuickBooks unapplied payments/credit memos, bank-statement lines) matched to "
    "open invoices: one row per (payment, suggested invoice) with confidence, explanation and auto_apply.",
)
def cash_application_suggestions(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, landing: LandingResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as conn:
        as_of = marts_as_of(conn)
        out = suggestions_from_warehouse(conn, landing.landing_path(), analytics_config_dir(landing), as_of)
        write_table(conn, "cash_application_suggestions", out)
    per_payment = out.unique("payment_key")
    auto = int(per_payment["auto_apply"].sum())
    context.log.info(f"{per_payment.height} payments, {auto} auto-applied, as of {as_of}")
    return dg.MaterializeResult(
        metadata={
            "as_of_date": str(as_of),
            "payments": per_payment.height,
            "bank_lines": int((per_payment["payment_source"] == "bank_statement").sum()),
            "auto_apply_payments": auto,
            "review_payments": per_payment.height - auto,
            "dagster/row_count": out.height,
        }
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[cash_application_suggestions])
