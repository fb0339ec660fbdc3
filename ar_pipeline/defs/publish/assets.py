"""Published read-only copies for BI tools, built after everything else in a run.

`["published", "ar_tables"]` depends on every mart (and analytics table), so in a run it comes last
and only when they all materialized: a failed dbt test or blocking check stops the run before it,
and the previous published copy stays in place (see `ar_pipeline.lib.publish`).
"""

import importlib
import pkgutil
from functools import cache

import dagster as dg
from dagster_duckdb import DuckDBResource

from ar_pipeline.defs.resources import PublishResource
from ar_pipeline.defs.transform.assets import build_ar_dbt_assets
from ar_pipeline.lib.publish import PUBLISHED_DB_NAME, PUBLISHED_SCHEMAS, publish_tables

PUBLISHED_KEY = dg.AssetKey(["published", "ar_tables"])
DASHBOARD_KEY = dg.AssetKey(["published", "ar_dashboard"])
DASHBOARD_FILE = "ar_dashboard.html"


def analytics_asset_keys() -> list[dg.AssetKey]:
    """The Python analytics assets (schema `analytics`), read from the definitions of every module in
    `ar_pipeline/defs/analytics/`, so a new analytics module is published without being listed here."""
    import ar_pipeline.defs.analytics as analytics

    keys: set[dg.AssetKey] = set()
    for module_info in pkgutil.iter_modules(analytics.__path__):
        module = importlib.import_module(f"{analytics.__name__}.{module_info.name}")
        definitions = getattr(module, "defs", None)
        if callable(definitions):
            keys |= {key for asset in definitions().assets or [] for key in asset.keys}
    return [key for key in keys if key.path[0] == "analytics"]


def published_upstream_keys() -> list[dg.AssetKey]:
    """The assets whose tables are published: every dbt model in a published schema and every
    analytics asset."""
    dbt_keys = [key for key in build_ar_dbt_assets().keys if key.path[0] in PUBLISHED_SCHEMAS]
    return sorted(dbt_keys + analytics_asset_keys(), key=lambda k: k.to_user_string())


@cache
def build_published_asset() -> dg.AssetsDefinition:
    @dg.asset(
        key=PUBLISHED_KEY,
        deps=published_upstream_keys(),
        group_name="published",
        pool="duckdb",
        description="Read-only copy of the marts and analytics tables for BI tools: "
        "<AR_PUBLISH_DIR>/ar.duckdb (replaced atomically) and parquet/<schema>/<table>.parquet.",
    )
    def published_ar_tables(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                            publish: PublishResource) -> dg.MaterializeResult:
        publish_dir = publish.path()
        with duckdb.get_connection() as conn:
            result = publish_tables(conn, publish_dir)
        context.log.info(f"Published {len(result.tables)} tables to {result.duckdb_path}")
        return dg.MaterializeResult(
            metadata={
                "duckdb_path": dg.MetadataValue.path(str(result.duckdb_path)),
                "parquet_dir": dg.MetadataValue.path(str(publish_dir / "parquet")),
                "as_of_date": str(result.as_of_date),
                "tables": dg.MetadataValue.md(
                    "| table | rows |\n|---|---|\n"
                    + "\n".join(f"| {t.schema}.{t.table} | {t.rows:,} |" for t in result.tables)
                ),
                "table_count": len(result.tables),
            }
        )

    return published_ar_tables


@dg.asset(
    key=DASHBOARD_KEY,
    deps=[PUBLISHED_KEY],
    group_name="published",
    description="Self-contained HTML AR dashboard (<AR_PUBLISH_DIR>/ar_dashboard.html, opens offline) "
    "rendered from the published copy; targets in ingest_configs/dashboard/targets.yaml.",
)
def published_ar_dashboard(context: dg.AssetExecutionContext, publish: PublishResource) -> dg.MaterializeResult:
    from ar_pipeline.lib.dashboard import load_targets, write_dashboard

    out = write_dashboard(publish.path() / PUBLISHED_DB_NAME, publish.path() / DASHBOARD_FILE, load_targets())
    context.log.info(f"Wrote the dashboard to {out}")
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(out)),
                                          "size_kb": round(out.stat().st_size / 1024)})


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[build_published_asset(), published_ar_dashboard])
