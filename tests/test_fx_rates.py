"""Exchange-rate files (kind: fx_rates, ingest_configs/fx_rates.yaml) into raw_exports.raw_fx_rates.

The files are written here by hand, the way a finance team saves a bank / ECB download: a header
`date,currency,quote_currency,rate` and one row per day and currency.
"""

from __future__ import annotations

import os
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from click.testing import CliRunner
from dagster_duckdb import DuckDBResource

from ar_pipeline.cli import main
from ar_pipeline.defs.automation.jobs import source_asset_selection
from ar_pipeline.defs.ingest.assets import FX_RATES_KEY, NO_QUARANTINE, RECONCILES, build_export_asset
from ar_pipeline.defs.resources import LandingResource
from ar_pipeline.lib.ingest import AUDIT_SCHEMA
from ar_pipeline.lib.ingest_config import (
    FxRatesSpec,
    IngestConfigError,
    load_all_specs,
    load_export_spec,
    load_fx_rates_spec,
    load_fx_rates_specs,
)
from ar_pipeline.lib.ingest_exports import load_export
from tests.conftest import INGEST_CONFIGS

GOOD = """date,currency,quote_currency,rate
2026-03-09,EUR,USD,1.0812
2026-03-09,gbp,,1.2734
2026-03-09,VND,USD,0.0000393
2026-03-10,EUR,USD,1.08123456789
2026-03-10,EUR,USD,1.08123456789
2026-03-11,EUR,USD,1.0900
"""

# row numbers are file lines (the header is line 1)
BAD = """date,currency,quote_currency,rate
2026-03-09,EUR,USD,1.0812
2026-03-10,EUR,USD,0
2026-03-11,EUR,USD,-1.08
2026-03-12,EUR,USD,1.O8
2026-03-32,EUR,USD,1.0812
2026-03-13,EURO,USD,1.0812
2026-03-13,GBP,XXX,1.2734
2026-03-13,GBP,,
2026-03-09,EUR,USD,1.0950
2026-03-13,GBP,USD,1.2734
"""


def fx_spec() -> FxRatesSpec:
    return load_fx_rates_spec(INGEST_CONFIGS / "fx_rates.yaml")


def land_rates(landing: Path, text: str, name: str = "rates.csv") -> Path:
    folder = landing / fx_spec().landing_subdir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture
def conn(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as c:
        yield c


def rates(conn) -> list[tuple]:
    return conn.execute(
        "SELECT rate_date, currency, quote_currency, rate FROM raw_exports.raw_fx_rates "
        "ORDER BY rate_date, currency").fetchall()


def quarantined(conn) -> list[dict]:
    cur = conn.execute(f"SELECT * FROM {AUDIT_SCHEMA}.quarantine ORDER BY source_file, source_row")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_shipped_config_is_the_one_fx_rates_config() -> None:
    specs = load_fx_rates_specs(INGEST_CONFIGS)
    assert [s.source for s in specs] == ["fx_rates"]
    spec = specs[0]
    assert spec.landing_subdir == "reference/fx_rates" and spec.TABLE == "raw_fx_rates"
    assert spec.key_fields() == ("rate_date", "currency", "quote_currency")
    assert {"rate_date", "currency", "rate"} <= set(spec.required)
    assert "fx_rates" in {s.source for s in load_all_specs(INGEST_CONFIGS)}


def test_good_rates_file_loads_exactly(conn, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    path = land_rates(landing, GOOD)
    result = load_export(conn, fx_spec(), landing)
    assert result.table == "raw_fx_rates" and result.reconciles
    # 6 rows: 5 loaded, the repeated 03-10 EUR row a duplicate, none quarantined
    assert (result.rows_in_files, result.rows_loaded, result.rows_duplicate, result.rows_quarantined) == (6, 5, 1, 0)
    types = dict(conn.execute(
        "SELECT column_name, column_type FROM (DESCRIBE raw_exports.raw_fx_rates)").fetchall())
    assert (types["rate_date"], types["currency"], types["quote_currency"], types["rate"]) == (
        "DATE", "VARCHAR", "VARCHAR", "DECIMAL(18,10)")
    assert rates(conn) == [
        (date(2026, 3, 9), "EUR", "USD", Decimal("1.0812000000")),
        (date(2026, 3, 9), "GBP", None, Decimal("1.2734000000")),  # blank quote = home currency
        (date(2026, 3, 9), "VND", "USD", Decimal("0.0000393000")),  # small rates keep their digits
        (date(2026, 3, 10), "EUR", "USD", Decimal("1.0812345679")),  # 10 decimals, never cents
        (date(2026, 3, 11), "EUR", "USD", Decimal("1.0900000000")),
    ]
    lineage = conn.execute(
        "SELECT DISTINCT export_source, _source_file FROM raw_exports.raw_fx_rates").fetchall()
    assert lineage == [("fx_rates", str(path.resolve()))]
    # nothing lands in the invoice or payment tables
    assert conn.execute("SELECT count(*) FROM raw_exports.raw_invoices").fetchall()[0][0] == 0


def test_bad_rows_are_quarantined_with_file_row_column_and_expected(conn, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    path = land_rates(landing, BAD)
    result = load_export(conn, fx_spec(), landing)
    assert result.reconciles
    assert (result.rows_in_files, result.rows_loaded, result.rows_quarantined) == (10, 2, 8)
    assert rates(conn) == [
        (date(2026, 3, 9), "EUR", "USD", Decimal("1.0812000000")),
        (date(2026, 3, 13), "GBP", "USD", Decimal("1.2734000000")),
    ]
    got = [(q["source"], q["raw_table"], q["source_file"], q["source_row"], q["column_name"], q["raw_value"])
           for q in quarantined(conn)]
    file = str(path.resolve())
    assert got == [
        ("fx_rates", "raw_fx_rates", file, 3, "rate", "0"),
        ("fx_rates", "raw_fx_rates", file, 4, "rate", "-1.08"),
        ("fx_rates", "raw_fx_rates", file, 5, "rate", "1.O8"),
        ("fx_rates", "raw_fx_rates", file, 6, "date", "2026-03-32"),
        ("fx_rates", "raw_fx_rates", file, 7, "currency", "EURO"),
        ("fx_rates", "raw_fx_rates", file, 8, "quote_currency", "XXX"),
        ("fx_rates", "raw_fx_rates", file, 9, "rate", None),
        ("fx_rates", "raw_fx_rates", file, 10, "date", "2026-03-09 / EUR / USD"),
    ]
    expected = {q["source_row"]: q["expected"] for q in quarantined(conn)}
    assert expected[3] == expected[4] == expected[5] == "an exchange rate > 0 like 1.0812"
    assert expected[6].startswith("a date like 2026-12-31 (%Y-%m-%d)")
    assert expected[7] == expected[8] == "a 3-letter ISO currency code like USD"
    assert expected[9] == "an exchange rate > 0 like 1.0812 (required)"
    assert expected[10] == "one row per exchange rate rate_date + currency + quote_currency"
    reasons = {q["source_row"]: q["reason"] for q in quarantined(conn)}
    assert reasons[3] == "rate: expected an exchange rate > 0 like 1.0812, got '0'"
    assert "first seen at row 2" in reasons[10]


def test_rerun_adds_nothing_overlap_is_duplicate_and_a_changed_file_replaces(conn, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    path = land_rates(landing, GOOD)
    load_export(conn, fx_spec(), landing)
    before = rates(conn)
    again = load_export(conn, fx_spec(), landing)
    assert (again.files_skipped_unchanged, again.rows_loaded, again.rows_quarantined) == (1, 0, 0)
    assert rates(conn) == before
    # the same rates in a second download are duplicates, not new rows
    shutil.copyfile(path, path.with_name("rates_again.csv"))
    overlap = load_export(conn, fx_spec(), landing)
    assert (overlap.rows_loaded, overlap.rows_duplicate) == (0, 6)
    assert rates(conn) == before
    # a corrected file replaces what it loaded: the 03-11 EUR rate changes, nothing is added twice
    path.write_text(GOOD.replace("2026-03-11,EUR,USD,1.0900", "2026-03-11,EUR,USD,1.0911"))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    changed = load_export(conn, fx_spec(), landing)
    assert (changed.files_loaded, changed.rows_loaded) == (1, 5)
    eur_11 = conn.execute(
        "SELECT rate FROM raw_exports.raw_fx_rates WHERE rate_date = '2026-03-11' ORDER BY rate").fetchall()
    # rates_again.csv's rows were duplicates of rates.csv (never inserted), so the table now holds
    # the corrected rates only, once
    assert eur_11 == [(Decimal("1.0911000000"),)]
    assert conn.execute("SELECT count(*) FROM raw_exports.raw_fx_rates").fetchall()[0][0] == 5


def test_fx_asset_runs_with_blocking_reconciliation_and_its_own_job(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    land_rates(landing, BAD)
    specs = load_fx_rates_specs(INGEST_CONFIGS)
    asset = build_export_asset(specs)
    assert asset.key == FX_RATES_KEY == dg.AssetKey(["exports", "raw_fx_rates"])
    checks = {c.name: c for c in asset.check_specs}
    assert set(checks) == {RECONCILES, NO_QUARANTINE} and checks[RECONCILES].blocking
    resources = {
        "duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb")),
        "landing": LandingResource(landing_dir=str(landing), ingest_config_dir=str(INGEST_CONFIGS),
                                   state_dir=str(tmp_path / "state")),
    }
    result = dg.materialize([asset], resources=resources, raise_on_error=False)
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations[RECONCILES].passed
    assert not evaluations[NO_QUARANTINE].passed
    assert evaluations[NO_QUARANTINE].severity == dg.AssetCheckSeverity.WARN
    with duckdb.connect(str(tmp_path / "w.duckdb")) as c:
        assert c.execute("SELECT count(*) FROM raw_exports.raw_fx_rates").fetchall()[0][0] == 2
    graph = dg.Definitions(assets=[asset], resources=resources).resolve_asset_graph()
    assert source_asset_selection(specs[0]).resolve(graph) == {FX_RATES_KEY}
    with pytest.raises(ValueError, match="one kind"):
        build_export_asset([*specs, load_export_spec(INGEST_CONFIGS / "stripe_invoices_export.yaml")])


def test_definitions_have_the_fx_asset_sensor_and_job(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AR_LANDING_DIR", str(tmp_path / "landing"))
    from ar_pipeline.defs.automation.jobs import defs as automation_defs
    from ar_pipeline.defs.ingest.assets import defs as ingest_defs

    keys = {k for a in ingest_defs().assets for k in a.keys}
    assert FX_RATES_KEY in keys
    automation = automation_defs()
    assert "ingest_fx_rates" in {j.name for j in automation.jobs}
    sensor = next(s for s in automation.sensors if s.name == "fx_rates_files_sensor")
    assert sensor.job_name == "ingest_fx_rates"


@pytest.mark.parametrize(("change", "field"), [
    (("required: [rate_date, currency, rate]", "required: [currency, rate]"), "required"),
    (('  rate: ["rate", "Rate", "OBS_VALUE", "exchange_rate"]\n', ""), "columns: rate must be mapped"),
    (('  currency: ["currency"', '  amount: ["currency"'), "columns.amount"),
    (("kind: fx_rates", "kind: fx_rate"), "kind"),
])
def test_bad_fx_config_names_file_and_field(tmp_path: Path, change, field) -> None:
    text = (INGEST_CONFIGS / "fx_rates.yaml").read_text()
    assert change[0] in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(IngestConfigError) as err:
        load_fx_rates_spec(bad)
    assert str(bad) in str(err.value) and field in str(err.value), str(err.value)


def test_cli_ingests_a_rates_file_found_by_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AR_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("AR_DUCKDB_PATH", str(tmp_path / "ar.duckdb"))
    monkeypatch.setenv("AR_INGEST_CONFIG_DIR", str(INGEST_CONFIGS))
    monkeypatch.setenv("AR_STATE_DIR", str(tmp_path / "state"))
    path = land_rates(tmp_path / "landing", GOOD)
    result = CliRunner().invoke(main, ["ingest", str(path)])
    assert result.exit_code == 0, result.output
    assert "fx_rates -> raw_exports.raw_fx_rates" in result.output and "loaded 5" in result.output
