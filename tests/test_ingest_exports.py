"""Invoice exports (CSV / Excel reports downloaded by hand) into raw_exports.raw_invoices.

The corpus in tests/fixtures/exports/ is hand-made to the layouts documented in the research notes
(formats.md §2 and §3.7); see tests/fixtures/SOURCES.md. Excel files are built here with openpyxl.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import openpyxl
import pytest
from click.testing import CliRunner
from dagster_duckdb import DuckDBResource

from ar_pipeline.cli import main
from ar_pipeline.defs.automation.jobs import source_asset_selection
from ar_pipeline.defs.ingest.assets import (
    EXPORTS_KEY,
    NO_QUARANTINE,
    PAYMENTS_KEY,
    RECONCILES,
    build_export_asset,
)
from ar_pipeline.defs.resources import LandingResource
from ar_pipeline.lib.ingest import AUDIT_SCHEMA
from ar_pipeline.lib.ingest_config import (
    IngestConfigError,
    InvoiceExportSpec,
    PaymentExportSpec,
    load_all_specs,
    load_export_spec,
    load_export_specs,
    load_fx_rates_specs,
    load_payment_export_spec,
    load_payment_export_specs,
    load_source_spec,
    load_source_specs,
)
from ar_pipeline.lib.ingest_exports import (
    ISO_CURRENCIES,
    export_files,
    load_export,
)
from tests.conftest import FIXTURES, INGEST_CONFIGS

EXPORTS = FIXTURES / "exports"
MALFORMED = EXPORTS / "malformed"


def spec(name: str) -> InvoiceExportSpec:
    return load_export_spec(INGEST_CONFIGS / f"{name}.yaml")


def land(landing: Path, config: str, fixture: Path, name: str | None = None) -> Path:
    """Copy a fixture into the config's landing folder, as a user dropping a download there."""
    folder = landing / spec(config).landing_subdir
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or fixture.name)
    shutil.copyfile(fixture, target)
    return target


@pytest.fixture
def conn(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as c:
        yield c


def rows(conn, where: str = "true") -> dict[str, dict]:
    cur = conn.execute(f"SELECT * FROM raw_exports.raw_invoices WHERE {where} ORDER BY _source_row")
    names = [d[0] for d in cur.description]
    return {r[0 + names.index("invoice_id")]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def quarantine(conn) -> list[dict]:
    cur = conn.execute(f"SELECT * FROM {AUDIT_SCHEMA}.quarantine ORDER BY source_file, source_row")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def file_loads_reconcile(conn) -> None:
    bad = conn.execute(
        f"""SELECT source_file FROM {AUDIT_SCHEMA}.file_loads
            WHERE rows_in_file != rows_loaded + rows_duplicate + rows_quarantined
               OR rows_duplicate < 0"""
    ).fetchall()
    assert bad == []
    # quarantine rows and file_loads agree file by file
    mismatch = conn.execute(
        f"""SELECT f.source_file FROM {AUDIT_SCHEMA}.file_loads f
            LEFT JOIN (SELECT source, source_file, count(*) AS n FROM {AUDIT_SCHEMA}.quarantine
                       GROUP BY ALL) q USING (source, source_file)
            WHERE f.rows_quarantined != coalesce(q.n, 0)"""
    ).fetchall()
    assert mismatch == []


# ---------------------------------------------------------------------------------------------
# well-formed exports


def test_ar_aging_detail_csv(conn, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    path = land(landing, "quickbooks_ar_aging_detail", EXPORTS / "qbo_ar_aging_detail.csv")
    result = load_export(conn, spec("quickbooks_ar_aging_detail"), landing)
    # 5 invoices; the payment and the credit memo rows are left out by keep_only
    assert (result.rows_in_files, result.rows_loaded, result.rows_quarantined) == (5, 5, 0)
    assert result.rows_filtered == 2 and result.reconciles
    got = rows(conn)
    assert list(got) == ["1042", "1045", "1037", "1012", "1009"]
    amy = got["1042"]
    assert amy["export_source"] == "quickbooks_ar_aging_detail"
    assert amy["amount"] == Decimal("1500.0000") and amy["open_balance"] == Decimal("1500.0000")
    assert (amy["invoice_date"], amy["due_date"]) == (date(2026, 11, 2), date(2026, 12, 2))
    assert amy["customer_id"] == amy["customer_name"] == "Amy's Bird Sanctuary"
    assert amy["currency"] == "USD" and amy["transaction_type"] == "Invoice" and amy["terms"] == "Net 30"
    assert amy["report_as_of"] == date(2026, 11, 22)
    assert amy["section"] == "Current"
    assert json.loads(amy["extra"]) == {"Memo": "Landscaping design"}
    assert got["1037"]["customer_name"] == "Cool Cars, Inc."  # quoted comma
    assert got["1037"]["section"] == "1 - 30 days past due"
    assert got["1009"]["open_balance"] == Decimal("-30.0000")  # "(30.00)"
    assert got["1009"]["section"] == "91 or more days past due"
    # lineage: the file and its 1-based line number
    assert amy["_source_file"] == str(path.resolve())
    line = path.read_text().splitlines()[amy["_source_row"] - 1]
    assert ",1042," in line
    file_loads_reconcile(conn)


def write_aging_xlsx(path: Path, broken_total: bool = False) -> Path:
    """The A/R Aging Detail report as QuickBooks' Excel export lays it out: real dates and numbers."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "AR Aging Detail"
    header = [None, "Date", "Transaction Type", "Num", "Customer", "Due Date", "Amount", "Open Balance"]
    data = [
        ["Craig's Design and Landscaping Services"],
        ["A/R Aging Detail Report"],
        ["As of Sep 23, 2026"],
        [],
        header,
        ["Current"],
        [None, datetime(2026, 9, 2), "Invoice", 1042, "Amy's Bird Sanctuary", datetime(2026, 10, 2), 1500, 1500],
        [None, datetime(2026, 9, 10), "Payment", None, "Bill's Windsurf Shop", datetime(2026, 9, 10), -50, -50],
        ["Total for Current", None, None, None, None, None, 1450, 1450],
        ["1 - 30 days past due"],
        [None, datetime(2026, 7, 30), "Invoice", 1037, "Cool Cars, Inc.", datetime(2026, 8, 29), 2369.52, 1369.52],
        ["Total for 1 - 30 days past due", None, None, None, None, None, 2369.52, 1369.52],
        ["TOTAL", None, None, None, None, None, 3819.52, 2819.52],
        [],
        ["Accrual Basis Wednesday, September 23, 2026 01:27 AM GMT-05:00"],
    ]
    for row in data:
        ws.append(row)
    for cell in ws["B"][6:] + ws["F"][6:]:
        cell.number_format = "mm/dd/yyyy"
    wb.save(path)
    return path


def test_ar_aging_detail_xlsx(conn, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    folder = landing / "exports" / "quickbooks_ar_aging_detail"
    folder.mkdir(parents=True)
    write_aging_xlsx(folder / "aging_2026-09-23.xlsx")
    result = load_export(conn, spec("quickbooks_ar_aging_detail"), landing)
    assert (result.rows_in_files, result.rows_loaded, result.rows_filtered) == (2, 2, 1)
    assert result.reconciles
    got = rows(conn)
    assert set(got) == {"1042", "1037"}  # 1042 stored as a number in the cell, loaded as text "1042"
    assert got["1037"]["amount"] == Decimal("2369.5200")
    assert got["1037"]["due_date"] == date(2026, 8, 29)
    assert got["1037"]["_source_row"] == 11
    assert got["1042"]["report_as_of"] == date(2026, 9, 23)
    assert got["1042"]["section"] == "Current"
    file_loads_reconcile(conn)


def test_invoice_list_sentence_case_headers(conn, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    land(landing, "quickbooks_invoice_list", EXPORTS / "qbo_invoice_list.csv")
    result = load_export(conn, spec("quickbooks_invoice_list"), landing)
    assert (result.rows_in_files, result.rows_loaded, result.rows_quarantined) == (4, 4, 0)
    got = rows(conn)
    assert got["1003"]["amount"] == Decimal("2000") and got["1003"]["open_balance"] == Decimal("1000")
    assert got["1003"]["status"] == "Partially paid"
    assert got["1004"]["due_date"] == got["1004"]["invoice_date"] == date(2026, 10, 20)  # blank due date
    assert got["1001"]["report_as_of"] is None  # "All Dates"
    assert all(r["section"] is None for r in got.values())  # the footer stamp is not a section


def test_stripe_invoices_export(conn, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    land(landing, "stripe_invoices_export", EXPORTS / "stripe_invoices.csv")
    result = load_export(conn, spec("stripe_invoices_export"), landing)
    assert (result.rows_loaded, result.rows_quarantined) == (4, 0)
    got = rows(conn)
    first = got["in_1QAbCdEf000001"]
    assert first["customer_id"] == "cus_QzX001" and first["customer_name"] == "Acme Analytics Ltd"
    assert first["amount"] == Decimal("1500") and first["open_balance"] == Decimal("0")
    assert first["currency"] == "USD" and first["status"] == "paid"
    assert (first["invoice_date"], first["due_date"]) == (date(2026, 9, 1), date(2026, 10, 1))
    assert json.loads(first["extra"])["Number"] == "4F2B1C-0001"
    assert got["in_1QAbCdEf000003"]["currency"] == "EUR"
    assert got["in_1QAbCdEf000003"]["due_date"] == date(2026, 10, 15)  # no due date: the invoice date


def test_generic_semicolon_and_decimal_comma(conn, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    land(landing, "generic_invoices", EXPORTS / "generic_invoices.csv")
    result = load_export(conn, spec("generic_invoices"), landing)
    assert (result.rows_loaded, result.rows_quarantined) == (4, 0), result.quarantine_samples
    got = rows(conn)
    assert got["INV-2026-0101"]["amount"] == Decimal("1234.56")
    assert got["INV-2026-0101"]["invoice_date"] == date(2026, 9, 3)  # DD/MM/YYYY
    assert got["INV-2026-0101"]["paid_date"] == date(2026, 9, 28)
    assert got["INV-2026-0101"]["customer_id"] == "C-001"
    assert got["INV-2026-0101"]["customer_name"] == "Müller Gartenbau GmbH"
    assert got["INV-2026-0102"]["currency"] == "EUR"  # "eur"
    assert got["INV-2026-0103"]["amount"] == Decimal("-120.50")
    assert got["INV-2026-0104"]["amount"] == Decimal("12000") and got["INV-2026-0104"]["currency"] == "GBP"


# ---------------------------------------------------------------------------------------------
# malformed corpus: each case's quarantine reason


MALFORMED_CASES = [
    # file, config, (rows_in, loaded, quarantined), [(source_row, column, reason substring)]
    ("wrong_delimiter.csv", "quickbooks_invoice_list", (1, 0, 1), [(
        None, None,
        "expected columns Num, Customer, Date, Amount; the file's header looks like "
        "'Date;Num;Customer;Due Date;Amount;Open Balance;Status' — is the delimiter ';'?",
    )]),
    ("missing_amount_column.csv", "quickbooks_invoice_list", (1, 0, 1), [(
        None, None, "the header row (row 4) has no column Amount (looked for 'Amount')",
    )]),
    ("bad_date.csv", "quickbooks_invoice_list", (3, 2, 1), [(
        3, "Due Date", "Due Date: expected a date like 12/31/2026 (%m/%d/%Y), got '31/12/2026'",
    )]),
    ("bad_amount.csv", "quickbooks_invoice_list", (3, 1, 2), [
        (3, "Amount", "Amount: expected an amount like 1,234.56, got 'TBD'"),
        (4, "Amount", "Amount: missing required value"),
    ]),
    ("unknown_currency.csv", "stripe_invoices_export", (3, 1, 2), [
        (3, "Currency", "Currency: unknown currency 'usdollar', expected a 3-letter ISO currency code"),
        (4, "Currency", "Currency: unknown currency 'XYZ'"),
    ]),
    ("duplicate_invoice_id.csv", "quickbooks_invoice_list", (4, 2, 1), [(
        5, "Num", "duplicate invoice id 1042 with different content (first seen at row 2)",
    )]),
    ("empty.csv", "quickbooks_invoice_list", (1, 0, 1), [(None, None, "the file is empty")]),
    ("utf8_bom.csv", "quickbooks_invoice_list", (2, 2, 0), []),
]


@pytest.mark.parametrize(("name", "config", "counts", "expected"), MALFORMED_CASES,
                         ids=[c[0] for c in MALFORMED_CASES])
def test_malformed_files_are_quarantined_with_a_reason(conn, tmp_path, name, config, counts, expected) -> None:
    landing = tmp_path / "landing"
    path = land(landing, config, MALFORMED / name)
    result = load_export(conn, spec(config), landing)
    assert (result.rows_in_files, result.rows_loaded, result.rows_quarantined) == counts, \
        result.quarantine_samples
    assert result.reconciles
    q = quarantine(conn)
    assert len(q) == len(expected)
    for got, (row, column, reason) in zip(q, expected, strict=True):
        assert got["source"] == config and got["raw_table"] == "raw_invoices"
        assert got["source_file"] == str(path.resolve())
        assert got["source_row"] == row and got["column_name"] == column
        assert reason in got["reason"], got["reason"]
        if row is not None:
            assert got["record"] is not None and got["expected"]
    file_loads_reconcile(conn)


def test_bad_value_quarantine_row_names_header_value_and_expectation(conn, tmp_path) -> None:
    landing = tmp_path / "landing"
    land(landing, "quickbooks_invoice_list", MALFORMED / "bad_date.csv")
    load_export(conn, spec("quickbooks_invoice_list"), landing)
    (q,) = quarantine(conn)
    assert (q["column_name"], q["raw_value"], q["expected"]) == (
        "Due Date", "31/12/2026", "a date like 12/31/2026 (%m/%d/%Y)")
    assert json.loads(q["record"])["Num"] == "3002"


def test_identical_duplicate_rows_count_as_duplicates(conn, tmp_path) -> None:
    landing = tmp_path / "landing"
    land(landing, "quickbooks_invoice_list", MALFORMED / "duplicate_invoice_id.csv")
    result = load_export(conn, spec("quickbooks_invoice_list"), landing)
    assert result.rows_duplicate == 1  # row 4 repeats row 2 exactly
    assert conn.execute("SELECT count(*) FROM raw_exports.raw_invoices WHERE invoice_id = '1042'").fetchone() == (1,)


def test_truncated_xlsx_is_quarantined_as_one_row(conn, tmp_path) -> None:
    landing = tmp_path / "landing"
    folder = landing / "exports" / "quickbooks_ar_aging_detail"
    folder.mkdir(parents=True)
    good = write_aging_xlsx(tmp_path / "full.xlsx")
    data = good.read_bytes()
    (folder / "truncated.xlsx").write_bytes(data[: len(data) // 2])
    (folder / "not_excel.xlsx").write_text("this is not a workbook")
    result = load_export(conn, spec("quickbooks_ar_aging_detail"), landing)
    assert (result.rows_in_files, result.rows_loaded, result.rows_quarantined) == (2, 0, 2)
    assert result.reconciles
    for q in quarantine(conn):
        assert q["source_row"] is None
        assert "the Excel file could not be opened: it may be truncated" in q["reason"]
    file_loads_reconcile(conn)


def test_undecodable_encoding_is_explained_and_configurable(conn, tmp_path) -> None:
    landing = tmp_path / "landing"
    folder = landing / "exports" / "generic_invoices"
    folder.mkdir(parents=True)
    text = (EXPORTS / "generic_invoices.csv").read_text()
    (folder / "cp1252.csv").write_bytes(text.encode("cp1252"))
    result = load_export(conn, spec("generic_invoices"), landing)
    assert (result.rows_in_files, result.rows_quarantined) == (1, 1)
    (q,) = quarantine(conn)
    assert q["source_row"] is None
    assert "the file is not utf-8 text" in q["reason"] and "set `encoding:` in the config" in q["reason"]
    # with the encoding configured, the same file loads
    cp1252 = spec("generic_invoices").model_copy(update={"encoding": "cp1252", "source": "generic_cp1252"})
    again = load_export(conn, cp1252, landing)
    assert (again.rows_loaded, again.rows_quarantined) == (4, 0)
    assert "Müller Gartenbau GmbH" in {r["customer_name"] for r in rows(conn).values()}


# ---------------------------------------------------------------------------------------------
# re-runs


def test_loading_the_same_file_twice_loads_nothing_new(conn, tmp_path) -> None:
    landing = tmp_path / "landing"
    land(landing, "quickbooks_ar_aging_detail", EXPORTS / "qbo_ar_aging_detail.csv")
    first = load_export(conn, spec("quickbooks_ar_aging_detail"), landing)
    second = load_export(conn, spec("quickbooks_ar_aging_detail"), landing)
    assert first.rows_loaded == 5
    assert (second.files_skipped_unchanged, second.files_loaded, second.rows_loaded) == (1, 0, 0)
    assert conn.execute("SELECT count(*) FROM raw_exports.raw_invoices").fetchone() == (5,)


def test_changed_file_replaces_its_rows(conn, tmp_path) -> None:
    landing = tmp_path / "landing"
    path = land(landing, "quickbooks_invoice_list", MALFORMED / "bad_date.csv")
    load_export(conn, spec("quickbooks_invoice_list"), landing)
    fixed = path.read_text().replace("31/12/2026", "12/31/2026").replace("1200.00", "1300.00")
    path.write_text(fixed)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    result = load_export(conn, spec("quickbooks_invoice_list"), landing)
    assert (result.files_loaded, result.rows_loaded, result.rows_quarantined) == (1, 3, 0)
    got = rows(conn)
    assert len(got) == 3 and got["3001"]["amount"] == Decimal("1300")
    assert quarantine(conn) == []  # the old quarantine rows went with the old version
    assert conn.execute(f"SELECT count(*) FROM {AUDIT_SCHEMA}.file_loads").fetchone() == (1,)


def test_same_record_in_another_export_is_not_loaded_twice(conn, tmp_path) -> None:
    landing = tmp_path / "landing"
    land(landing, "quickbooks_invoice_list", EXPORTS / "qbo_invoice_list.csv", "september.csv")
    land(landing, "quickbooks_invoice_list", EXPORTS / "qbo_invoice_list.csv", "september_again.csv")
    result = load_export(conn, spec("quickbooks_invoice_list"), landing)
    assert (result.rows_in_files, result.rows_loaded, result.rows_duplicate) == (8, 4, 4)
    assert result.reconciles
    file_loads_reconcile(conn)


def test_whole_corpus_reconciles_and_the_asset_checks_pass(tmp_path) -> None:
    landing = tmp_path / "landing"
    land(landing, "quickbooks_ar_aging_detail", EXPORTS / "qbo_ar_aging_detail.csv")
    write_aging_xlsx(landing / "exports" / "quickbooks_ar_aging_detail" / "aging.xlsx")
    land(landing, "quickbooks_invoice_list", EXPORTS / "qbo_invoice_list.csv")
    land(landing, "stripe_invoices_export", EXPORTS / "stripe_invoices.csv")
    land(landing, "generic_invoices", EXPORTS / "generic_invoices.csv")
    for case in MALFORMED_CASES:
        land(landing, case[1], MALFORMED / case[0])
    specs = load_export_specs(INGEST_CONFIGS)
    result = dg.materialize(
        [build_export_asset(specs)],
        resources={
            "duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb")),
            "landing": LandingResource(landing_dir=str(landing), ingest_config_dir=str(INGEST_CONFIGS),
                                       state_dir=str(tmp_path / "state")),
        },
        raise_on_error=False,
    )
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks[RECONCILES].passed
    assert not checks[NO_QUARANTINE].passed  # the malformed files are quarantined: a warning
    assert checks[NO_QUARANTINE].severity == dg.AssetCheckSeverity.WARN
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        file_loads_reconcile(conn)
        n_files = sum(len(export_files(landing, s)) for s in specs)
        assert conn.execute(f"SELECT count(*) FROM {AUDIT_SCHEMA}.file_loads").fetchone() == (n_files,)
        sources = {r[0] for r in conn.execute("SELECT DISTINCT export_source FROM raw_exports.raw_invoices").fetchall()}
        assert sources == {s.source for s in specs}


# ---------------------------------------------------------------------------------------------
# config and CLI


def test_shipped_configs_split_by_kind() -> None:
    api = load_source_specs(INGEST_CONFIGS)
    exports = load_export_specs(INGEST_CONFIGS)
    assert {s.source for s in api} == {"quickbooks", "stripe"}
    assert {s.source for s in exports} == {"quickbooks_ar_aging_detail", "quickbooks_invoice_list",
                                           "stripe_invoices_export", "generic_invoices"}
    payments = load_payment_export_specs(INGEST_CONFIGS)
    assert {s.source for s in payments} == {"stripe_unified_payments"}
    fx_rates = load_fx_rates_specs(INGEST_CONFIGS)
    assert {s.source for s in fx_rates} == {"fx_rates"}
    assert len(load_all_specs(INGEST_CONFIGS)) == len(api) + len(exports) + len(payments) + len(fx_rates)
    aging = spec("quickbooks_ar_aging_detail")
    assert aging.files == ["*.csv", "*.xlsx"] and aging.date_format == ["%m/%d/%Y"]
    assert aging.keep_only == {"transaction_type": ["Invoice"]}
    assert "USD" in ISO_CURRENCIES and "XYZ" not in ISO_CURRENCIES


@pytest.mark.parametrize(("change", "field"), [
    (("amount: [\"Amount\"]", "amount: []"), "columns.amount"),
    (("required: [invoice_id, customer_name, invoice_date, amount]",
      "required: [invoice_id, customer_name, invoice_date, amount, paid_date]"), "paid_date"),
    (("currency: USD", "currency: DOLLARS"), "currency"),
    (("decimal_separator: \".\"", "decimal_separator: \"!\""), "decimal_separator"),
    (("  invoice_id: [\"Num\", \"No.\"]", "  invoice_number: [\"Num\", \"No.\"]"), "columns.invoice_number"),
    (("kind: invoice_export", "kind: spreadsheet"), "kind"),
])
def test_bad_export_config_names_file_and_field(tmp_path: Path, change, field) -> None:
    text = (INGEST_CONFIGS / "quickbooks_ar_aging_detail.yaml").read_text()
    assert change[0] in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(IngestConfigError) as err:
        load_export_spec(bad)
    assert str(bad) in str(err.value) and field in str(err.value), str(err.value)
    with pytest.raises(IngestConfigError):  # and the folder load reports it too
        load_source_specs(tmp_path)


def test_kind_mismatch_is_reported(tmp_path: Path) -> None:
    with pytest.raises(IngestConfigError, match="expected an api_json source config"):
        load_source_spec(INGEST_CONFIGS / "generic_invoices.yaml")
    with pytest.raises(IngestConfigError, match="expected an invoice_export config"):
        load_export_spec(INGEST_CONFIGS / "stripe.yaml")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AR_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("AR_DUCKDB_PATH", str(tmp_path / "ar.duckdb"))
    monkeypatch.setenv("AR_INGEST_CONFIG_DIR", str(INGEST_CONFIGS))
    monkeypatch.setenv("AR_STATE_DIR", str(tmp_path / "state"))
    return tmp_path


def test_cli_ingests_an_export_found_by_its_folder(workdir: Path) -> None:
    path = land(workdir / "landing", "quickbooks_invoice_list", MALFORMED / "bad_date.csv")
    result = CliRunner().invoke(main, ["ingest", str(path)])
    assert result.exit_code == 1, result.output
    assert "quickbooks_invoice_list -> raw_exports.raw_invoices" in result.output
    assert "loaded 2" in result.output and "quarantined 1" in result.output
    assert f"{path.resolve()} row 3: Due Date: expected a date like 12/31/2026" in result.output
    again = CliRunner().invoke(main, ["ingest", str(path)])
    assert "files 0 loaded, 1 unchanged" in again.output


def test_cli_ingests_an_export_elsewhere_with_config(workdir: Path) -> None:
    stray = workdir / "Downloads" / "aging.csv"
    stray.parent.mkdir()
    shutil.copyfile(EXPORTS / "qbo_ar_aging_detail.csv", stray)
    unsure = CliRunner().invoke(main, ["ingest", str(stray)])
    assert unsure.exit_code == 2 and "--config" in unsure.output
    ok = CliRunner().invoke(main, ["ingest", str(stray), "--config", "quickbooks_ar_aging_detail"])
    assert ok.exit_code == 0, ok.output
    assert "loaded 5" in ok.output and "left out by keep_only 2" in ok.output


# ---------------------------------------------------------------------------------------------
# payment exports (kind: payment_export) into raw_exports.raw_payments

PAYMENTS_FIXTURE = EXPORTS / "stripe_unified_payments.csv"
PAYMENT_COLUMNS_EXPECTED = [
    "export_source", "pays_invoices_of", "payment_id", "customer_id", "customer_name", "payment_date",
    "amount", "amount_refunded", "currency", "status", "invoice_id", "invoice_number", "method", "extra",
    "_source_file", "_source_row", "_record_hash", "_batch_id", "_loaded_at",
]


def payment_spec(name: str = "stripe_unified_payments") -> PaymentExportSpec:
    return load_payment_export_spec(INGEST_CONFIGS / f"{name}.yaml")


def land_payments(landing: Path, fixture: Path = PAYMENTS_FIXTURE, name: str | None = None) -> Path:
    folder = landing / payment_spec().landing_subdir
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or fixture.name)
    shutil.copyfile(fixture, target)
    return target


def payment_rows(conn) -> dict[str, dict]:
    cur = conn.execute("SELECT * FROM raw_exports.raw_payments ORDER BY _source_row")
    names = [d[0] for d in cur.description]
    return {r[names.index("payment_id")]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def test_unified_payments_header_is_the_real_one() -> None:
    header = PAYMENTS_FIXTURE.read_text().splitlines()[0].split(",")
    assert len(header) == 79  # formats.md §3.7 lists 76 items, "Checkout Custom Field 1..3 Key/Value" is 6
    assert header[:5] == ["id", "Created date (UTC)", "Amount", "Amount Refunded", "Currency"]
    assert header[55:57] == ["Invoice ID", "Invoice Number"]


def test_stripe_unified_payments_csv(conn, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    path = land_payments(landing)
    result = load_export(conn, payment_spec(), landing)
    # 8 data rows: Failed (keep_only) and the empty-id PaymentIntent are filtered; 3 loaded, the
    # repeat of the first row a duplicate, bad amount and bad date quarantined
    assert result.table == "raw_payments"
    assert (result.rows_in_files, result.rows_loaded, result.rows_duplicate, result.rows_quarantined) == (6, 3, 1, 2)
    assert result.rows_filtered == 2 and result.reconciles
    cols = [r[0] for r in conn.execute("DESCRIBE raw_exports.raw_payments").fetchall()]
    assert cols == PAYMENT_COLUMNS_EXPECTED
    types = dict(conn.execute("SELECT column_name, column_type FROM (DESCRIBE raw_exports.raw_payments)").fetchall())
    assert (types["payment_date"], types["amount"], types["amount_refunded"], types["extra"]) == (
        "DATE", "DECIMAL(18,4)", "DECIMAL(18,4)", "JSON")
    got = payment_rows(conn)
    assert list(got) == ["ch_3Pa1000000000000000001", "ch_3Pa1000000000000000002", "ch_3Pa1000000000000000003"]
    paid = got["ch_3Pa1000000000000000001"]
    assert paid["export_source"] == "stripe_unified_payments" and paid["pays_invoices_of"] == "stripe"
    assert paid["payment_date"] == date(2026, 3, 2)
    assert paid["amount"] == Decimal("1500.0000") and paid["amount_refunded"] == Decimal("0.0000")
    assert (paid["currency"], paid["status"], paid["method"]) == ("USD", "Paid", "card")
    assert (paid["customer_id"], paid["customer_name"]) == ("cus_Q1amybird0001", "amy@example.com")
    assert (paid["invoice_id"], paid["invoice_number"]) == ("in_1Pa1000000000000000001", "4F2B1C-0007")
    assert json.loads(paid["extra"])["Fee"] == "43.80"
    assert paid["_source_file"] == str(path.resolve()) and paid["_source_row"] == 2
    refunded = got["ch_3Pa1000000000000000002"]
    assert (refunded["status"], refunded["currency"]) == ("Refunded", "EUR")
    assert refunded["amount_refunded"] == Decimal("250.0000")
    disputed = got["ch_3Pa1000000000000000003"]
    assert disputed["invoice_id"] is None
    extra = json.loads(disputed["extra"])
    assert (extra["Disputed Amount"], extra["Dispute Status"]) == ("99.00", "needs_response")
    q = quarantine(conn)
    assert [(r["source"], r["raw_table"], r["source_row"], r["column_name"]) for r in q] == [
        ("stripe_unified_payments", "raw_payments", 7, "Amount"),
        ("stripe_unified_payments", "raw_payments", 8, "Created date (UTC)"),
    ]
    assert q[0]["reason"] == "Amount: expected an amount like 1,234.56, got '15.OO'"
    assert q[0]["raw_value"] == "15.OO" and q[0]["source_file"] == str(path.resolve())
    assert q[1]["reason"].startswith("Created date (UTC): expected a date like 2026-12-31 23:59:59")
    assert json.loads(q[1]["record"])["id"] == "ch_3Pa1000000000000000007"
    loads = conn.execute(
        f"""SELECT source, raw_table, rows_in_file, rows_loaded, rows_duplicate, rows_quarantined
            FROM {AUDIT_SCHEMA}.file_loads""").fetchall()
    assert loads == [("stripe_unified_payments", "raw_payments", 6, 3, 1, 2)]
    file_loads_reconcile(conn)
    # no invoice rows written by a payment config
    assert conn.execute("SELECT count(*) FROM raw_exports.raw_invoices").fetchone() == (0,)


def test_payment_export_reload_is_idempotent_and_changes_replace(conn, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    path = land_payments(landing)
    load_export(conn, payment_spec(), landing)
    again = load_export(conn, payment_spec(), landing)
    assert (again.files_skipped_unchanged, again.rows_loaded, again.rows_quarantined) == (1, 0, 0)
    assert conn.execute("SELECT count(*) FROM raw_exports.raw_payments").fetchone() == (3,)
    assert conn.execute(f"SELECT count(*) FROM {AUDIT_SCHEMA}.quarantine").fetchone() == (2,)
    # the same payments in another (overlapping) export are duplicates, not loaded twice
    land_payments(landing, name="march_again.csv")
    overlap = load_export(conn, payment_spec(), landing)
    assert (overlap.rows_loaded, overlap.rows_duplicate, overlap.rows_quarantined) == (0, 4, 2)
    assert conn.execute("SELECT count(*) FROM raw_exports.raw_payments").fetchone() == (3,)
    # a changed file replaces what it loaded (bad rows fixed: two more loaded, quarantine cleared)
    text = path.read_text().replace("15.OO", "15.00").replace("08/03/2026 08:20", "2026-03-08 08:20:00")
    path.write_text(text)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    changed = load_export(conn, payment_spec(), landing)
    assert (changed.files_loaded, changed.rows_loaded, changed.rows_quarantined) == (1, 5, 0)
    assert conn.execute(
        f"SELECT count(*) FROM {AUDIT_SCHEMA}.quarantine WHERE source_file = ?", [str(path.resolve())]
    ).fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM raw_exports.raw_payments").fetchone() == (5,)
    file_loads_reconcile(conn)


def test_rows_without_an_id_are_filtered_not_quarantined(conn, tmp_path: Path) -> None:
    text = (INGEST_CONFIGS / "stripe_unified_payments.yaml").read_text()
    keep_only = 'keep_only:\n  status: ["Paid", "Refunded"]\n'
    assert keep_only in text
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "p.yaml").write_text(text.replace(keep_only, ""))
    unfiltered = load_payment_export_spec(configs / "p.yaml")
    landing = tmp_path / "landing"
    land_payments(landing)
    result = load_export(conn, unfiltered, landing)
    # without keep_only the Failed charge loads; the empty-id PaymentIntent is still left out
    assert (result.rows_in_files, result.rows_loaded, result.rows_quarantined, result.rows_filtered) == (7, 4, 2, 1)
    assert "ch_3Pa1000000000000000004" in payment_rows(conn)
    # and with filter_rows_without_id: false it is quarantined as a missing id
    (configs / "p.yaml").write_text(text.replace(keep_only, "").replace("filter_rows_without_id: true",
                                                                         "filter_rows_without_id: false"))
    strict = load_payment_export_spec(configs / "p.yaml").model_copy(update={"source": "strict_payments"})
    result = load_export(conn, strict, landing)
    assert (result.rows_quarantined, result.rows_filtered) == (3, 0)
    assert any(s.endswith("row 6: id: missing required value") for s in result.quarantine_samples)


def test_keep_only_status_is_case_insensitive(conn, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    text = PAYMENTS_FIXTURE.read_text().replace(",Paid,", ",paid,").replace(",Refunded,", ",REFUNDED,")
    folder = landing / payment_spec().landing_subdir
    folder.mkdir(parents=True)
    (folder / "lower.csv").write_text(text)
    result = load_export(conn, payment_spec(), landing)
    assert (result.rows_loaded, result.rows_filtered) == (3, 2)


@pytest.mark.parametrize(("change", "field"), [
    (('  payment_id: ["id"]\n', ""), "columns: payment_id must be mapped"),
    (("\npays_invoices_of: stripe\n", "\n"), "pays_invoices_of"),
    (("\npays_invoices_of: stripe\n", "\npays_invoices_of: Stripe Invoices\n"), "pays_invoices_of"),
    (('  status: ["Paid", "Refunded"]', '  due_date: ["Paid"]'), "keep_only.due_date"),
    (('  method: ["Payment Source Type"]', '  terms: ["Payment Source Type"]'), "columns.terms"),
    (("required: [payment_id, payment_date, amount, currency]",
      "required: [payment_id, payment_date, amount, currency, paid_date]"), "required"),
    (('  currency: ["Currency"]\n', ""), "currency"),
    (("filter_rows_without_id: true", "filter_rows_without_id: sometimes"), "filter_rows_without_id"),
])
def test_bad_payment_config_names_file_and_field(tmp_path: Path, change, field) -> None:
    text = (INGEST_CONFIGS / "stripe_unified_payments.yaml").read_text()
    assert change[0] in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(IngestConfigError) as err:
        load_payment_export_spec(bad)
    assert str(bad) in str(err.value) and field in str(err.value), str(err.value)
    with pytest.raises(IngestConfigError):  # and the folder load reports it too
        load_export_specs(tmp_path)


def test_payment_and_invoice_loaders_reject_the_other_kind() -> None:
    with pytest.raises(IngestConfigError, match="expected an invoice_export config"):
        load_export_spec(INGEST_CONFIGS / "stripe_unified_payments.yaml")
    with pytest.raises(IngestConfigError, match="expected a payment_export config"):
        load_payment_export_spec(INGEST_CONFIGS / "stripe_invoices_export.yaml")


def test_payments_asset_checks_and_job_selection(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    land_payments(landing)
    specs = load_payment_export_specs(INGEST_CONFIGS)
    asset = build_export_asset(specs)
    assert asset.key == PAYMENTS_KEY == dg.AssetKey(["exports", "raw_payments"])
    assert {c.name for c in asset.check_specs} == {RECONCILES, NO_QUARANTINE}
    result = dg.materialize(
        [asset],
        resources={
            "duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb")),
            "landing": LandingResource(landing_dir=str(landing), ingest_config_dir=str(INGEST_CONFIGS),
                                       state_dir=str(tmp_path / "state")),
        },
        raise_on_error=False,
    )
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks[RECONCILES].passed
    assert not checks[NO_QUARANTINE].passed and checks[NO_QUARANTINE].severity == dg.AssetCheckSeverity.WARN
    with duckdb.connect(str(tmp_path / "w.duckdb")) as c:
        assert c.execute("SELECT count(*) FROM raw_exports.raw_payments").fetchone() == (3,)
    graph = dg.Definitions(
        assets=[asset, build_export_asset(load_export_specs(INGEST_CONFIGS))],
        resources={"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb")),
                   "landing": LandingResource(landing_dir=str(landing), ingest_config_dir=str(INGEST_CONFIGS),
                                              state_dir=str(tmp_path / "state"))},
    ).resolve_asset_graph()
    assert source_asset_selection(specs[0]).resolve(graph) == {PAYMENTS_KEY}
    assert source_asset_selection(spec("stripe_invoices_export")).resolve(graph) == {EXPORTS_KEY}
    with pytest.raises(ValueError, match="one kind"):
        build_export_asset([*specs, spec("stripe_invoices_export")])


def test_cli_ingests_a_payment_export_found_by_its_folder(workdir: Path) -> None:
    path = land_payments(workdir / "landing")
    result = CliRunner().invoke(main, ["ingest", str(path)])
    assert result.exit_code == 1, result.output  # two rows quarantined
    assert "stripe_unified_payments -> raw_exports.raw_payments" in result.output
    assert "loaded 3" in result.output and "already loaded 1" in result.output
    assert "quarantined 2" in result.output and "without an id 2" in result.output
    assert f"{path.resolve()} row 7: Amount: expected an amount" in result.output
    again = CliRunner().invoke(main, ["ingest", str(path)])
    assert "files 0 loaded, 1 unchanged" in again.output
