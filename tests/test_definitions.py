"""The Dagster definitions load, and the asset graph is one lineage from files to marts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from ar_pipeline.lib.ingest_config import (
    load_export_specs,
    load_fx_rates_specs,
    load_payment_export_specs,
    load_source_specs,
)
from tests.conftest import INGEST_CONFIGS, PROJECT_ROOT


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    from ar_pipeline.definitions import defs
    from ar_pipeline.defs.transform.project import prepare_dbt_manifest

    prepare_dbt_manifest()
    return defs()


def test_graph_is_one_connected_lineage(definitions: dg.Definitions) -> None:
    graph = definitions.resolve_asset_graph()
    keys = set(graph.get_all_asset_keys())
    ingest = {k for k in keys if k.path[0] in {"quickbooks", "stripe"} and k.path[1].startswith("raw_")}
    api_pages = {dg.AssetKey(["quickbooks", "api_pages"]), dg.AssetKey(["stripe", "api_pages"])}
    models = {k for k in keys if k.path[0] in {"staging", "intermediate", "marts"}}
    specs = load_source_specs(INGEST_CONFIGS)  # kind: api_json only
    assert ingest == {dg.AssetKey([s.source, e.table]) for s in specs for e in s.entities}
    # every kind: invoice_export config feeds the one shared exports table
    exports = {dg.AssetKey(["exports", "raw_invoices"])} if load_export_specs(INGEST_CONFIGS) else set()
    # and every kind: payment_export config feeds the one shared exports payments table
    if load_payment_export_specs(INGEST_CONFIGS):
        exports.add(dg.AssetKey(["exports", "raw_payments"]))
    # and every kind: fx_rates config feeds the one shared exchange-rates table
    if load_fx_rates_specs(INGEST_CONFIGS):
        exports.add(dg.AssetKey(["exports", "raw_fx_rates"]))
    assert exports <= keys
    ingest |= exports
    assert {dg.AssetKey(["marts", t]) for t in ("fct_ar_aging", "fct_invoices", "dim_customers",
                                                "fct_payments")} <= models
    analytics = {k for k in keys if k.path[0] == "analytics"}  # Python assets reading the marts
    published = dg.AssetKey(["published", "ar_tables"])
    dashboard = dg.AssetKey(["published", "ar_dashboard"])
    assert ingest | api_pages | models | analytics | {published, dashboard} == keys
    assert graph.get(dashboard).parent_keys == {published}
    # the BI copy is built after every mart and analytics table, so a failed one or a check stops it
    assert {k for k in models if k.path[0] == "marts"} | analytics <= graph.get(published).parent_keys
    # the risk models hang off the marts they learn from
    risk = {dg.AssetKey(["analytics", t]) for t in ("payment_model", "invoice_risk_scores", "customer_risk_scores")}
    assert risk <= analytics and all(dg.AssetKey(["marts", "fct_invoices"]) in graph.get(k).parent_keys for k in risk)
    # every Python table in schema analytics is built from the marts
    assert all(any(p.path[0] == "marts" for p in graph.get(k).parent_keys) for k in analytics)
    assert all(api_pages & graph.get(k).parent_keys for k in ingest - exports)  # each raw table waits for its API sync
    # dbt sources resolve to the ingest assets themselves: no dangling external source assets
    assert all(graph.get(k).is_materializable for k in keys), "an asset is an unmaterializable stub"
    # weakly connected: walk parents and children from one raw table and reach every asset
    seen, frontier = set(), [dg.AssetKey(["quickbooks", "raw_invoices"])]
    while frontier:
        key = frontier.pop()
        if key in seen:
            continue
        seen.add(key)
        node = graph.get(key)
        frontier.extend(node.parent_keys | node.child_keys)
    assert seen | exports == keys  # the exports table may not feed a dbt model yet
    # the collections worklist hangs off the marts it reads
    assert {dg.AssetKey(["marts", "fct_invoices"]), dg.AssetKey(["marts", "dim_customers"])} <= graph.get(
        dg.AssetKey(["analytics", "reminder_queue"])).parent_keys
    # the aging mart is built from the invoice and payment tables of both sources
    upstream = set(graph.upstream_key_iterator(dg.AssetKey(["marts", "fct_ar_aging"])))
    assert {dg.AssetKey(["quickbooks", "raw_invoices"]), dg.AssetKey(["quickbooks", "raw_payments"]),
            dg.AssetKey(["stripe", "raw_invoices"]), dg.AssetKey(["stripe", "raw_invoice_payments"]),
            dg.AssetKey(["stripe", "raw_credit_notes"])} <= upstream


def test_ingest_gates_are_blocking(definitions: dg.Definitions) -> None:
    graph = definitions.resolve_asset_graph()
    specs = [s for s in graph.asset_check_keys]
    assert dg.AssetCheckKey(dg.AssetKey(["stripe", "raw_invoices"]), "all_records_accounted_for") in specs
    check = graph.get_check_spec(dg.AssetCheckKey(dg.AssetKey(["stripe", "raw_invoices"]),
                                                  "all_records_accounted_for"))
    assert check.blocking


def test_dg_check_defs_passes() -> None:
    dg_bin = Path(sys.executable).parent / "dg"
    proc = subprocess.run([str(dg_bin), "check", "defs"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All definitions loaded successfully" in proc.stdout + proc.stderr


def test_dbt_project_parses_without_deprecations(tmp_path: Path) -> None:
    dbt_bin = Path(sys.executable).parent / "dbt"
    proc = subprocess.run(
        [str(dbt_bin), "parse", "--no-partial-parse", "--show-all-deprecations", "--profiles-dir", ".",
         "--target-path", str(tmp_path / "target")],
        cwd=PROJECT_ROOT / "dbt_project", capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "AR_DUCKDB_PATH": str(tmp_path / "parse.duckdb")},
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "deprecat" not in output.lower(), output
