"""The loader against real QuickBooks/Stripe payload shapes, bad input and re-runs."""

from __future__ import annotations

import copy
import os
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from ar_pipeline.lib.ingest import AUDIT_SCHEMA, load_entity
from ar_pipeline.lib.ingest_config import IngestConfigError, load_source_spec, load_source_specs
from tests.conftest import (
    INGEST_CONFIGS,
    qbo_records,
    stripe_objects,
    write_qbo_page,
    write_stripe_page,
)


def load_all(conn, landing: Path) -> dict[str, object]:
    results = {}
    for source in load_source_specs(INGEST_CONFIGS):
        for entity in source.entities:
            results[f"{source.source}.{entity.table}"] = load_entity(conn, source, entity, landing)
    return results


def spec(source: str, table: str):
    src = load_source_spec(INGEST_CONFIGS / f"{source}.yaml")
    return src, next(e for e in src.entities if e.table == table)


def test_real_fixtures_load_with_types(fixture_landing: Path, tmp_path: Path) -> None:
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    results = load_all(conn, fixture_landing)
    qbo_invoices = qbo_records()["Invoice"]
    assert results["quickbooks.raw_invoices"].rows_loaded == len(qbo_invoices)
    assert all(r.reconciles and r.rows_quarantined == 0 for r in results.values())
    row = conn.execute(
        "SELECT total_amount, balance, txn_date, customer_id, json_array_length(lines) "
        "FROM raw_quickbooks.raw_invoices WHERE id = '119'"
    ).fetchone()
    source = next(i for i in qbo_invoices if i["Id"] == "119")
    assert row[0] == Decimal(str(source["TotalAmt"]))
    assert row[1] == Decimal(str(source["Balance"]))
    assert str(row[2]) == source["TxnDate"]
    assert row[3] == source["CustomerRef"]["value"]
    assert row[4] == len(source["Line"])
    # lineage columns point back at the file and the record's position in it
    f, pos = conn.execute(
        "SELECT _source_file, _source_row FROM raw_quickbooks.raw_invoices WHERE id = '119'"
    ).fetchone()
    assert f.endswith("invoice/page_00001.json")
    assert qbo_invoices[pos - 1]["Id"] == "119"
    inv = stripe_objects()["invoice"]
    got = conn.execute("SELECT id, total, status FROM raw_stripe.raw_invoices").fetchone()
    assert got == (inv["id"], inv["total"], inv["status"])


def test_rerun_on_same_files_changes_nothing(fixture_landing: Path, tmp_path: Path) -> None:
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    load_all(conn, fixture_landing)
    before = conn.execute("SELECT count(*), max(_loaded_at) FROM raw_quickbooks.raw_payments").fetchone()
    second = load_all(conn, fixture_landing)
    after = conn.execute("SELECT count(*), max(_loaded_at) FROM raw_quickbooks.raw_payments").fetchone()
    assert before == after
    assert all(r.files_loaded == 0 and r.files_skipped_unchanged == r.files_seen for r in second.values())


def test_same_record_in_two_files_is_loaded_once(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    invoices = qbo_records()["Invoice"]
    write_qbo_page(landing, "Invoice", invoices[:3], page=1)
    write_qbo_page(landing, "Invoice", invoices[2:], page=2)  # overlapping export
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    src, ent = spec("quickbooks", "raw_invoices")
    result = load_entity(conn, src, ent, landing)
    assert result.rows_in_files == 6
    assert (result.rows_loaded, result.rows_duplicate) == (5, 1)
    assert conn.execute("SELECT count(DISTINCT id), count(*) FROM raw_quickbooks.raw_invoices").fetchone() == (5, 5)


def test_changed_file_replaces_its_rows(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    invoices = qbo_records()["Invoice"]
    page = write_qbo_page(landing, "Invoice", invoices)
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    src, ent = spec("quickbooks", "raw_invoices")
    load_entity(conn, src, ent, landing)
    edited = copy.deepcopy(invoices)
    edited[0]["Balance"] = 0
    edited[0]["SyncToken"] = str(int(edited[0]["SyncToken"]) + 1)
    write_qbo_page(landing, "Invoice", edited)
    os.utime(page, ns=(page.stat().st_atime_ns, page.stat().st_mtime_ns + 10**9))
    result = load_entity(conn, src, ent, landing)
    assert result.files_loaded == 1
    rows = conn.execute("SELECT id, balance FROM raw_quickbooks.raw_invoices").fetchall()
    assert len(rows) == len(invoices)
    assert dict(rows)[edited[0]["Id"]] == 0


def test_bad_records_are_quarantined_with_file_row_column(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    invoices = copy.deepcopy(qbo_records()["Invoice"])
    invoices[1]["TotalAmt"] = "three hundred"
    del invoices[3]["CustomerRef"]
    invoices[4]["TxnDate"] = "2023-02-30"
    page = write_qbo_page(landing, "Invoice", invoices)
    broken = landing / "quickbooks" / "invoice" / "page_00002.json"
    broken.write_text('{"QueryResponse": {"Invoice": [ {"Id": "1"')
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    src, ent = spec("quickbooks", "raw_invoices")
    result = load_entity(conn, src, ent, landing)
    assert result.rows_loaded == 2
    assert result.rows_quarantined == 4  # three bad records + one unreadable file
    assert result.reconciles
    q = conn.execute(
        f"SELECT source_file, source_row, column_name, expected, raw_value, reason "
        f"FROM {AUDIT_SCHEMA}.quarantine ORDER BY source_file, source_row"
    ).fetchall()
    by_row = {r[1]: r for r in q if r[0] == str(page)}
    assert by_row[2][2:5] == ("total_amount", "a decimal number", "three hundred")
    assert "$.TotalAmt" in by_row[2][5]
    assert by_row[4][2] == "customer_id" and "missing required field $.CustomerRef.value" in by_row[4][5]
    assert by_row[5][2] == "txn_date" and "2023-02-30" in by_row[5][5]
    file_row = next(r for r in q if r[0] == str(broken))
    assert file_row[1] is None and file_row[5] == "file is not valid JSON"


def test_stripe_integer_amount_with_fraction_is_rejected(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    charge = dict(stripe_objects()["charge"])
    bad = dict(charge, id="ch_bad", amount=12.5)
    write_stripe_page(landing, "charge", [charge, bad])
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    src, ent = spec("stripe", "raw_charges")
    result = load_entity(conn, src, ent, landing)
    assert (result.rows_loaded, result.rows_quarantined) == (1, 1)
    assert "expected an integer, got 12.5" in result.quarantine_samples[0]


def test_pre_basil_stripe_invoice_keeps_its_charge_link(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    inv = dict(stripe_objects("pre_basil")["invoice"], charge="ch_123")
    write_stripe_page(landing, "invoice", [inv])
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    src, ent = spec("stripe", "raw_invoices")
    load_entity(conn, src, ent, landing)
    assert conn.execute("SELECT charge FROM raw_stripe.raw_invoices").fetchone() == ("ch_123",)


def test_invalid_config_names_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = (INGEST_CONFIGS / "stripe.yaml").read_text().replace("type: bigint", "type: bigint_", 1)
    bad.write_text(text)
    with pytest.raises(IngestConfigError) as err:
        load_source_spec(bad)
    message = str(err.value)
    assert str(bad) in message and "entities.0.columns" in message and "type" in message


def test_chunks_respect_the_byte_limit_and_keep_every_file() -> None:
    from ar_pipeline.lib.ingest import chunk_by_size

    names = [f"f{i}" for i in range(7)]
    sizes = dict(zip(names, [5, 5, 5, 20, 1, 1, 9], strict=True))
    chunks = chunk_by_size(names, sizes, 10)
    assert [n for c in chunks for n in c] == names
    assert all(sum(sizes[n] for n in c) <= 10 or len(c) == 1 for c in chunks)
    assert ["f3"] in chunks  # larger than the limit: alone


def test_unknown_currency_code_is_quarantined(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    payment = dict(stripe_objects()["invoice_payment"])  # the OpenAPI sample says "currency": "currency"
    good = dict(payment, id="inpay_ok", currency="eur")
    write_stripe_page(landing, "invoice_payment", [payment, good])
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    src, ent = spec("stripe", "raw_invoice_payments")
    result = load_entity(conn, src, ent, landing)
    assert (result.rows_loaded, result.rows_quarantined) == (1, 1)
    assert "$.currency: expected a 3-letter ISO currency code, got currency" in result.quarantine_samples[0]
    assert conn.execute("SELECT currency FROM raw_stripe.raw_invoice_payments").fetchone() == ("eur",)


def test_a_column_added_to_the_config_is_added_to_an_existing_table(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write_qbo_page(landing, "Customer", qbo_records()["Customer"])
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    src, ent = spec("quickbooks", "raw_customers")
    older = ent.model_copy(update={"columns": [c for c in ent.columns if c.name != "primary_tax_identifier"]})
    load_entity(conn, src, older, landing)
    columns = lambda: {r[0] for r in conn.execute("DESCRIBE raw_quickbooks.raw_customers").fetchall()}  # noqa: E731
    assert "primary_tax_identifier" not in columns()
    write_qbo_page(landing, "Customer", [{**qbo_records()["Customer"][0], "PrimaryTaxIdentifier": "XXXXXX56789",
                                          "SyncToken": "99"}], page=2)
    load_entity(conn, src, ent, landing)
    assert "primary_tax_identifier" in columns()
    assert conn.execute("SELECT count(*) FROM raw_quickbooks.raw_customers "
                        "WHERE primary_tax_identifier = 'XXXXXX56789' AND sync_token = '99'").fetchall()[0][0] == 1
