"""`ar-pipeline sync` and `ar-pipeline ingest`, and the API sync asset, end to end against a local
HTTP server replaying real Stripe object shapes (tests/fixtures/stripe)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from click.testing import CliRunner
from dagster_duckdb import DuckDBResource

from ar_pipeline.cli import main
from ar_pipeline.defs.ingest.api_sync import build_api_sync_asset
from ar_pipeline.defs.ingest.assets import build_ingest_asset
from ar_pipeline.defs.resources import LandingResource
from ar_pipeline.lib.ingest_config import load_source_spec
from tests.conftest import INGEST_CONFIGS, qbo_records, stripe_objects, write_qbo_page

API_KEY = "sk_test_do_not_leak_4242"
LIST_PATHS = ["customers", "invoices", "invoice_payments", "charges", "refunds", "disputes", "credit_notes",
              "balance_transactions", "payouts"]


def stripe_lists() -> dict[str, list[dict]]:
    objs = stripe_objects()
    customer = dict(copy.deepcopy(objs["customer"]), id="cus_A1", created=1_767_000_000)
    invoice = dict(copy.deepcopy(objs["invoice"]), id="in_A1", customer="cus_A1", status="open",
                   currency="usd", total=5000, amount_due=5000, amount_paid=0, amount_remaining=5000,
                   created=1_767_000_100)
    return {"customers": [customer], "invoices": [invoice]}


@pytest.fixture
def stripe_server(httpserver):
    lists = stripe_lists()
    for name in LIST_PATHS:
        httpserver.expect_request(f"/v1/{name}").respond_with_json(
            {"object": "list", "url": f"/v1/{name}", "has_more": False, "data": lists.get(name, [])})
    httpserver.expect_request("/v1/events").respond_with_json(
        {"object": "list", "url": "/v1/events", "has_more": False, "data": []})
    return httpserver


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AR_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("AR_DUCKDB_PATH", str(tmp_path / "ar.duckdb"))
    monkeypatch.setenv("AR_STATE_DIR", str(tmp_path / "state"))
    for var in ("QBO_CLIENT_ID", "QBO_CLIENT_SECRET", "QBO_REFRESH_TOKEN", "QBO_REALM_ID", "STRIPE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_sync_stripe_lands_pages_and_loads_raw_tables(stripe_server, workdir, monkeypatch) -> None:
    monkeypatch.setenv("STRIPE_API_BASE", stripe_server.url_for("/").rstrip("/"))
    monkeypatch.setenv("STRIPE_API_KEY", API_KEY)
    first = CliRunner().invoke(main, ["sync", "stripe"])
    assert first.exit_code == 0, first.output
    assert "stripe.raw_invoices" in first.output and API_KEY not in first.output
    with duckdb.connect(str(workdir / "ar.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT id, status FROM raw_stripe.raw_invoices").fetchall() == [("in_A1", "open")]
        assert conn.execute("SELECT count(*) FROM raw_stripe.raw_customers").fetchone() == (1,)
    second = CliRunner().invoke(main, ["sync", "stripe"])
    assert second.exit_code == 0, second.output
    with duckdb.connect(str(workdir / "ar.duckdb"), read_only=True) as conn:
        # the overlap window fetches the same objects again: landed, but never loaded twice
        assert conn.execute("SELECT count(*) FROM raw_stripe.raw_invoices").fetchone() == (1,)
    for f in (workdir / "landing").rglob("*.json"):
        assert API_KEY not in f.read_text()


def test_sync_without_credentials_names_the_missing_variables(workdir) -> None:
    result = CliRunner().invoke(main, ["sync", "quickbooks"])
    assert result.exit_code == 1
    assert "QBO_CLIENT_ID" in result.output


def test_api_sync_asset_feeds_the_ingest_asset(stripe_server, workdir, monkeypatch) -> None:
    monkeypatch.setenv("STRIPE_API_BASE", stripe_server.url_for("/").rstrip("/"))
    monkeypatch.setenv("STRIPE_API_KEY", API_KEY)
    source = load_source_spec(INGEST_CONFIGS / "stripe.yaml")
    invoices = next(e for e in source.entities if e.table == "raw_invoices")
    result = dg.materialize(
        [build_api_sync_asset("stripe"), build_ingest_asset(source, invoices)],
        resources={
            "duckdb": DuckDBResource(database=str(workdir / "ar.duckdb")),
            "landing": LandingResource(landing_dir=str(workdir / "landing"), ingest_config_dir=str(INGEST_CONFIGS),
                                       state_dir=str(workdir / "state")),
        },
    )
    assert result.success
    sync_meta = result.asset_materializations_for_node("stripe__api_pages")[0].metadata
    assert sync_meta["skipped"].value is False and sync_meta["files_written"].value == len(LIST_PATHS)
    assert API_KEY not in json.dumps(sync_meta["summary"].value)
    raw_meta = result.asset_materializations_for_node("stripe__raw_invoices")[0].metadata
    assert raw_meta["rows_loaded"].value == 1


def test_api_sync_asset_is_a_no_op_without_credentials(workdir) -> None:
    result = dg.materialize(
        [build_api_sync_asset("quickbooks")],
        resources={"landing": LandingResource(landing_dir=str(workdir / "landing"),
                                              ingest_config_dir=str(INGEST_CONFIGS), state_dir=str(workdir / "state"))},
    )
    assert result.success
    meta = result.asset_materializations_for_node("quickbooks__api_pages")[0].metadata
    assert meta["skipped"].value is True
    assert not (workdir / "landing").exists()


def test_ingest_one_file_reports_quarantine_reasons(workdir) -> None:
    invoices = copy.deepcopy(qbo_records()["Invoice"])
    invoices[2]["DueDate"] = "31/12/2023"
    page = write_qbo_page(workdir / "landing", "Invoice", invoices)
    result = CliRunner().invoke(main, ["ingest", str(page)])
    assert result.exit_code == 1
    assert "quickbooks.raw_invoices" in result.output and "quarantined 1" in result.output
    assert f"{page} record 3" in result.output and "expected a date YYYY-MM-DD, got 31/12/2023" in result.output
    again = CliRunner().invoke(main, ["ingest", str(page)])
    assert "files 0 loaded, 1 unchanged" in again.output


def test_ingest_file_elsewhere_needs_config_and_table(workdir, tmp_path) -> None:
    stray = tmp_path / "export.json"
    stray.write_text(json.dumps({"QueryResponse": {"Invoice": qbo_records()["Invoice"][:1]}}))
    unsure = CliRunner().invoke(main, ["ingest", str(stray)])
    assert unsure.exit_code == 2 and "--config and --table" in unsure.output
    ok = CliRunner().invoke(main, ["ingest", str(stray), "--config", "quickbooks", "--table", "raw_invoices"])
    assert ok.exit_code == 0, ok.output
    assert "loaded 1" in ok.output
