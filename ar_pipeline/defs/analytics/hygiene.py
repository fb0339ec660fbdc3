"""The rest of the AR cycle, as Python tables in schema `analytics` built from the marts:

- `analytics.cash_application_suggestions`: unapplied money (QuickBooks unapplied payments and
  credit memos and Stripe charges tied to no invoice, from `marts.fct_unapplied_cash`; bank-statement
  CSV lines) matched to open invoices, with a confidence, an explanation and an auto-apply flag; bank
  lines that are Stripe payouts are matched to `marts.fct_stripe_payouts` instead
  (`ar_pipeline.lib.cash_application`).
- `analytics.invoice_issues`: pre-send checks on draft/unsent and recently sent invoices
  (`ar_pipeline.lib.invoice_checks`), with a WARN check summarising new issues.
- `analytics.dispute_queue`: disputes with routing, deadlines and a suggested next action, with
  `analytics.dispute_reasons` (recurring reasons by month, segment, customer) and
  `analytics.dispute_risk_invoices` (open invoices of customers with recent disputes)
  (`ar_pipeline.lib.disputes`).

Configs live in `<AR_INGEST_CONFIG_DIR>/analytics/*.yaml`. Every table carries the run's as-of date,
read from the marts' `as_of_date` column (never the clock).
"""

from pathlib import Path

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from ar_pipeline.defs.analytics.column_schemas import with_column_schemas
from ar_pipeline.defs.resources import LandingResource
from ar_pipeline.lib.cash_application import suggestions_from_warehouse
from ar_pipeline.lib.cash_application.config import load_yaml_model
from ar_pipeline.lib.disputes import DisputeRoutingConfig, dispute_tables
from ar_pipeline.lib.invoice_checks import InvoiceRulesConfig, invoice_issues_from_warehouse
from ar_pipeline.lib.settings import DBT_PROJECT_DIR
from ar_pipeline.lib.warehouse import marts_as_of, table_exists

ANALYTICS_CONFIG_SUBDIR = "analytics"
CASH_KEY = dg.AssetKey(["analytics", "cash_application_suggestions"])
INVOICE_ISSUES_KEY = dg.AssetKey(["analytics", "invoice_issues"])
DISPUTE_KEYS = {
    name: dg.AssetKey(["analytics", name]) for name in ("dispute_queue", "dispute_reasons", "dispute_risk_invoices")
}


def analytics_config_dir(landing: LandingResource) -> Path:
    """`<AR_INGEST_CONFIG_DIR>/analytics`, or the repository's shipped one when that folder does not
    exist (an ingest config folder kept elsewhere need not copy the analytics configs)."""
    configured = Path(landing.ingest_config_dir) / ANALYTICS_CONFIG_SUBDIR
    return configured if configured.is_dir() else DBT_PROJECT_DIR.parent / "ingest_configs" / ANALYTICS_CONFIG_SUBDIR


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
        dg.AssetKey(["marts", "fct_stripe_payouts"]),
    ],
    group_name="analytics",
    pool="duckdb",
    description="Unapplied money (QuickBooks unapplied payments/credit memos, Stripe charges tied to no invoice, "
    "bank-statement lines) matched to open invoices: one row per (payment, suggested invoice) with confidence, "
    "explanation and auto_apply; bank lines that are Stripe payouts are matched to the payout (payout_id).",
)
def cash_application_suggestions(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, landing: LandingResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as conn:
        as_of = marts_as_of(conn, required=False)
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


def previous_issue_keys(conn) -> set[tuple[str, str]]:
    """(invoice_key, rule_id) pairs in the table the previous run wrote (empty on the first run)."""
    if not table_exists(conn, "analytics", "invoice_issues"):
        return set()
    return {(k, r) for k, r in conn.sql("select invoice_key, rule_id from analytics.invoice_issues").fetchall()}


def mark_new(issues: pl.DataFrame, previous: set[tuple[str, str]]) -> pl.DataFrame:
    """`is_new`: the (invoice, rule) pair was not in the previous run's table."""
    seen = [f"{k}\x1f{r}" for k, r in previous]
    pair = pl.concat_str([pl.col("invoice_key"), pl.col("rule_id")], separator="\x1f")
    return issues.with_columns(is_new=~pair.is_in(pl.Series(seen, dtype=pl.String)))


@dg.asset(
    key=INVOICE_ISSUES_KEY,
    deps=[
        dg.AssetKey(["marts", "fct_invoices"]),
        dg.AssetKey(["staging", "stg_quickbooks__invoices"]),
        dg.AssetKey(["staging", "stg_stripe__invoices"]),
        dg.AssetKey(["staging", "stg_exports__invoices"]),
    ],
    group_name="analytics",
    pool="duckdb",
    description="Pre-send checks: one row per (invoice, rule fired) for invoices not yet sent (Stripe drafts, "
    "QuickBooks NeedToSend, export rows with a pending status) and invoices sent recently, with severity, rule_id, "
    "a sentence for the billing clerk and is_new (not in the previous run). Rules: invoice_rules.yaml.",
)
def invoice_issues(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, landing: LandingResource
) -> dg.MaterializeResult:
    cfg = load_yaml_model(analytics_config_dir(landing) / "invoice_rules.yaml", InvoiceRulesConfig)
    with duckdb.get_connection() as conn:
        as_of = marts_as_of(conn, required=False)
        issues = invoice_issues_from_warehouse(conn, as_of, cfg)
        out = mark_new(issues, previous_issue_keys(conn)).with_columns(as_of_date=pl.lit(as_of, dtype=pl.Date))
        write_table(conn, "invoice_issues", out)
    context.log.info(f"{out.height} invoice issues ({int(out['is_new'].sum())} new), as of {as_of}")
    by_rule = {r: int(n) for r, n in out.group_by("rule_id").len().sort("rule_id").iter_rows()}
    return dg.MaterializeResult(
        metadata={
            "as_of_date": str(as_of),
            "issues": out.height,
            "new_issues": int(out["is_new"].sum()),
            "pending_invoices_with_issues": out.filter(pl.col("stage") == "pending")["invoice_key"].n_unique(),
            "issues_by_rule": by_rule,
            "dagster/row_count": out.height,
        }
    )


@dg.asset_check(asset=INVOICE_ISSUES_KEY, description="Warns when this run found issues the previous run did not.")
def invoice_issues_new(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as conn:
        rows = conn.sql(
            "select severity, rule_id, count(*) from analytics.invoice_issues where is_new group by 1, 2 order by 1, 2"
        ).fetchall()
    total = sum(n for _, _, n in rows)
    return dg.AssetCheckResult(
        passed=total == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{total} new invoice issue(s) this run" if total else "no new invoice issues",
        metadata={"new_issues": total, **{f"new/{sev}/{rule}": n for sev, rule, n in rows}},
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            DISPUTE_KEYS["dispute_queue"],
            deps=[dg.AssetKey(["marts", "fct_disputes"]), dg.AssetKey(["marts", "dim_customers"]),
                  dg.AssetKey(["marts", "fct_invoices"]), dg.AssetKey(["staging", "stg_quickbooks__credit_memos"]),
                  dg.AssetKey(["staging", "stg_quickbooks__invoices"])],
            group_name="analytics",
            description="Every dispute (Stripe disputes; QuickBooks credit memos and invoices whose note names a "
            "dispute reason) with owner/team from dispute_routing.yaml, response deadline, days left and a suggested "
            "next action from closed disputes of the same reason.",
        ),
        dg.AssetSpec(
            DISPUTE_KEYS["dispute_reasons"],
            deps=[dg.AssetKey(["marts", "fct_disputes"]), dg.AssetKey(["marts", "dim_customers"])],
            group_name="analytics",
            description="Disputes by opening month, segment, customer and reason; is_recurring when a customer's "
            "disputes of one reason reach risk.recurring_min.",
        ),
        dg.AssetSpec(
            DISPUTE_KEYS["dispute_risk_invoices"],
            deps=[dg.AssetKey(["marts", "fct_disputes"]), dg.AssetKey(["marts", "fct_invoices"])],
            group_name="analytics",
            description="Open invoices of customers with disputes in the last risk.lookback_days, to check before "
            "sending or chasing.",
        ),
    ],
    pool="duckdb",
)
def dispute_workflow(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, landing: LandingResource
):
    cfg = load_yaml_model(analytics_config_dir(landing) / "dispute_routing.yaml", DisputeRoutingConfig)
    with duckdb.get_connection() as conn:
        as_of = marts_as_of(conn, required=False)
        tables = dispute_tables(conn, as_of, cfg)
        for name, df in tables.items():
            write_table(conn, name, df)
    queue = tables["dispute_queue"]
    context.log.info(f"{queue.height} disputes ({int(queue['is_open'].sum())} open), as of {as_of}")
    for name, df in tables.items():
        meta = {"as_of_date": str(as_of), "dagster/row_count": df.height}
        if name == "dispute_queue":
            meta |= {
                "open_disputes": int(df["is_open"].sum()),
                "overdue": int(df.filter(pl.col("is_open") & (pl.col("days_left") < 0)).height),
                "by_origin": {o: int(n) for o, n in df.group_by("origin").len().sort("origin").iter_rows()},
            }
        yield dg.MaterializeResult(asset_key=DISPUTE_KEYS[name], metadata=meta)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=with_column_schemas([cash_application_suggestions, invoice_issues, dispute_workflow]),
        asset_checks=[invoice_issues_new],
    )
