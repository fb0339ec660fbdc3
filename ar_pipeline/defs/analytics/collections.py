"""The collections worklist as Dagster assets: `analytics/reminder_queue` (one reminder per customer
to contact on the marts' as-of date, in priority order, with its rendered message) and
`analytics/reminder_queue_skipped` (customers with overdue invoices left out today, and why).

Logic lives in `ar_pipeline.lib.collections`; this module only wires it to the warehouse. The
queue is built as of the date the marts were built for (the dbt var `as_of_date` the same run passed
to `ar_dbt_models`), never the clock. The definitions are registered in `collections_defs.py`.
"""

from functools import cache
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from ar_pipeline.defs.resources import LandingResource
from ar_pipeline.lib.collections.policy import find_policy, load_policy
from ar_pipeline.lib.collections.warehouse import QUEUE_TABLE, SKIPPED_TABLE, build_and_store, store_queue

QUEUE_KEY = dg.AssetKey(["analytics", "reminder_queue"])
SKIPPED_KEY = dg.AssetKey(["analytics", "reminder_queue_skipped"])
#: The marts the queue reads (risk scores are read when analytics.invoice_risk_scores exists).
MART_DEPS = [dg.AssetKey(["marts", t]) for t in ("fct_invoices", "dim_customers", "fct_disputes", "fct_payments")]
# priority = money at risk from the risk scores: build them first in the same run
RISK_DEPS = [dg.AssetKey(["analytics", "invoice_risk_scores"]), dg.AssetKey(["analytics", "customer_risk_scores"])]


class ReminderQueueConfig(dg.Config):
    as_of_date: str | None = Field(
        default=None,
        description="Expected as-of date (YYYY-MM-DD); the run fails if the marts were built for another "
        "date. Default: the marts' as-of date.",
    )


@cache
def build_collections_assets() -> dg.AssetsDefinition:
    @dg.multi_asset(
        specs=[
            dg.AssetSpec(QUEUE_KEY, deps=MART_DEPS + RISK_DEPS, group_name="analytics", kinds={"duckdb", "polars"},
                         description="Today's collections worklist: one reminder per customer, by money at risk."),
            dg.AssetSpec(SKIPPED_KEY, deps=MART_DEPS + RISK_DEPS, group_name="analytics", kinds={"duckdb", "polars"},
                         description="Customers with remindable invoices left out of today's queue, and why."),
        ],
        pool="duckdb",
    )
    def reminder_queue(context: dg.AssetExecutionContext, config: ReminderQueueConfig, duckdb: DuckDBResource,
                       landing: LandingResource):
        from datetime import date

        from ar_pipeline.lib.collections.warehouse import empty_queue

        policy_path = find_policy(Path(landing.ingest_config_dir))
        expected = date.fromisoformat(config.as_of_date) if config.as_of_date else None
        with duckdb.get_connection() as conn:
            if policy_path is None:
                context.log.warning(f"No kind: collections_policy file in {landing.ingest_config_dir}: empty queue")
                result = empty_queue()
                store_queue(conn, result.queue, result.skipped)
                policy_name = "none"
            else:
                policy = load_policy(policy_path)
                result = build_and_store(conn, policy, policy_path, as_of=expected)
                policy_name = f"{policy.name} ({policy_path.name})"
        queue, skipped = result.queue, result.skipped
        as_of = str(queue["as_of_date"][0]) if queue.height else None
        context.log.info(f"{queue.height} reminders queued, {skipped.height} customers skipped")
        yield dg.MaterializeResult(asset_key=QUEUE_KEY, metadata={
            "table": QUEUE_TABLE, "policy": policy_name, "as_of_date": as_of or "",
            "reminders": queue.height,
            "by_level": dg.MetadataValue.json(
                {r["level"]: r["len"] for r in queue.group_by("level").len().sort("level").iter_rows(named=True)}),
            "escalated": int(queue["escalated"].sum()) if queue.height else 0,
            "money_at_risk": float(queue["money_at_risk"].sum()) if queue.height else 0.0,
            "risk_scores": "analytics.invoice_risk_scores" if queue.height and not
            queue["priority_reason"].str.contains("not available").any() else "fallback: historical late share",
        })
        yield dg.MaterializeResult(asset_key=SKIPPED_KEY, metadata={
            "table": SKIPPED_TABLE, "customers": skipped.height,
            "by_reason": dg.MetadataValue.json(
                {r["reason"]: r["len"] for r in skipped.group_by("reason").len().sort("reason").iter_rows(named=True)}),
        })

    return reminder_queue
