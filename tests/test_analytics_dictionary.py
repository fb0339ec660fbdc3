"""The analytics tables' data dictionary (dbt source `analytics`) reaches the Dagster UI as each
asset's `dagster/column_schema`, and dbt sees the same declarations. Whether the documented columns
match the built tables is checked on a real run in test_e2e.py."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from ar_pipeline.lib.data_dictionary import analytics_tables
from ar_pipeline.lib.settings import DBT_PROJECT_DIR

#: Written by commands or collectors, not by a `refresh_ar` asset.
NOT_ASSETS = {"model_backtest_metrics", "forecast_backtest_metrics", "reminder_log", "collection_notes"}


@pytest.fixture(scope="module")
def graph():
    from ar_pipeline.definitions import defs
    from ar_pipeline.defs.transform.project import prepare_dbt_manifest

    prepare_dbt_manifest()
    return defs().resolve_asset_graph()


def test_every_analytics_table_asset_shows_its_documented_columns(graph) -> None:
    documented = {t.name: t for t in analytics_tables()}
    table_assets = {k.path[1] for k in graph.get_all_asset_keys()
                    if len(k.path) == 2 and k.path[0] == "analytics" and k.path[1] != "payment_model"}
    assert table_assets == set(documented) - NOT_ASSETS, "an analytics asset without a documented table (or back)"
    for name in table_assets:
        schema = graph.get(dg.AssetKey(["analytics", name])).metadata.get("dagster/column_schema")
        assert isinstance(schema, dg.TableSchema), name
        assert [(c.name, c.type, c.description) for c in schema.columns] == [
            (c.name, c.data_type, c.description) for c in documented[name].columns], name


def test_dbt_lists_the_analytics_tables_as_a_source() -> None:
    from ar_pipeline.defs.transform.project import prepare_dbt_manifest

    prepare_dbt_manifest()
    manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    sources = {s["name"]: s for s in manifest["sources"].values() if s["source_name"] == "analytics"}
    assert set(sources) == {t.name for t in analytics_tables()}
    queue = sources["reminder_queue"]
    assert queue["schema"] == "analytics" and queue["columns"]["recommended_send_at"]["data_type"] == \
        "timestamp with time zone"


def test_the_spark_loader_does_not_expect_the_documentation_only_source() -> None:
    """The analytics source documents tables Python builds after dbt; no model reads them, so the
    Spark loader (which copies every source dbt reads) leaves them out."""
    from ar_pipeline.lib.spark_loader import dbt_source_tables

    tables = dbt_source_tables()
    assert ("raw_stripe", "raw_invoices") in tables
    assert not [t for t in tables if t[0] == "analytics"]
