"""Ingest assets as Dagster runs them: checks are evaluated, and the blocking gate stops downstream work."""

from __future__ import annotations

import copy
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from ar_pipeline.defs.ingest.assets import NO_QUARANTINE, RECONCILES, build_ingest_asset
from ar_pipeline.defs.resources import LandingResource
from ar_pipeline.lib.ingest_config import load_source_spec
from tests.conftest import INGEST_CONFIGS, qbo_records, write_qbo_page

INVOICES_KEY = dg.AssetKey(["quickbooks", "raw_invoices"])


def invoice_asset() -> dg.AssetsDefinition:
    source = load_source_spec(INGEST_CONFIGS / "quickbooks.yaml")
    entity = next(e for e in source.entities if e.table == "raw_invoices")
    return build_ingest_asset(source, entity)


@dg.asset(deps=[INVOICES_KEY])
def downstream_report() -> None:
    """Stands in for the dbt models: must not run when the gate fails."""


def run(landing: Path, db: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [invoice_asset(), downstream_report],
        resources={
            "duckdb": DuckDBResource(database=str(db)),
            "landing": LandingResource(landing_dir=str(landing), ingest_config_dir=str(INGEST_CONFIGS),
                                       state_dir=str(landing.parent / "state")),
        },
        raise_on_error=False,
    )


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_quarantine_warns_and_lets_the_run_continue(tmp_path: Path) -> None:
    invoices = copy.deepcopy(qbo_records()["Invoice"])
    invoices[0]["TotalAmt"] = "n/a"
    write_qbo_page(tmp_path / "landing", "Invoice", invoices)
    result = run(tmp_path / "landing", tmp_path / "w.duckdb")
    assert result.success
    got = checks(result)
    assert got[RECONCILES].passed
    assert not got[NO_QUARANTINE].passed
    assert got[NO_QUARANTINE].severity == dg.AssetCheckSeverity.WARN
    assert got[NO_QUARANTINE].metadata["rows_quarantined"].value == 1
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey("downstream_report") in materialized


def test_lost_raw_rows_fail_the_gate_and_block_downstream(tmp_path: Path) -> None:
    landing, db = tmp_path / "landing", tmp_path / "w.duckdb"
    write_qbo_page(landing, "Invoice", qbo_records()["Invoice"])
    assert run(landing, db).success
    with duckdb.connect(str(db)) as conn:  # someone deletes loaded rows by hand
        conn.execute("DELETE FROM raw_quickbooks.raw_invoices WHERE id = '119'")
    result = run(landing, db)  # file unchanged: skipped, so the hole is not silently refilled
    assert not result.success
    gate = checks(result)[RECONCILES]
    assert not gate.passed
    assert gate.metadata["rows_in_files"].value == gate.metadata["rows_in_raw_table"].value + 1
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey("downstream_report") not in materialized
