"""A generic invoice export with a paid-date column is enough to run the whole pipeline.

The generator's ground-truth invoice register is written out as the kind of CSV an ERP or a
spreadsheet produces (its own column names, US dates, "1,234.56" amounts), loaded through an
`invoice_export` config, and the real `refresh_ar` job builds the marts from it alone. The aging
must equal what the export itself says, computed independently here. The generator's daily rates
file is dropped into reference/fx_rates/ as a finance team would, so the export's EUR/GBP invoices
(an export carries no exchange rate) get home amounts from it.
"""

from __future__ import annotations

import shutil
from datetime import date

import dagster as dg
import duckdb
import polars as pl
import pytest

from tests.conftest import INGEST_CONFIGS

END_DATE = date(2026, 6, 30)
EXPORT_CONFIG = """
kind: invoice_export
source: erp_export
description: Invoice register exported from an ERP (test).
landing_subdir: exports/erp_export
files: "*.csv"
date_format: "%m/%d/%Y"
decimal_separator: "."
thousands_separator: ","
header: auto
columns:
  invoice_id: ["Invoice No"]
  customer_id: ["Customer ID"]
  customer_name: ["Customer"]
  invoice_date: ["Invoice Date"]
  due_date: ["Due Date"]
  amount: ["Total"]
  currency: ["Currency"]
  paid_date: ["Paid On"]
  status: ["Status"]
required: [invoice_id, customer_id, invoice_date, amount, currency]
"""


def bucket(days: int) -> str:
    if days <= 0:
        return "current"
    return "1_30" if days <= 30 else "31_60" if days <= 60 else "61_90" if days <= 90 else "over_90"


@pytest.fixture(scope="module")
def export_run(tmp_path_factory: pytest.TempPathFactory):
    from ar_pipeline.defs.transform.project import prepare_dbt_manifest
    from ar_pipeline.lib.generator import GeneratorConfig, generate

    root = tmp_path_factory.mktemp("e2e_exports")
    generated = root / "generated"
    generate(GeneratorConfig(landing_dir=generated, seed=11, customers=40, years=1.0, invoices=1500,
                             end_date=END_DATE, progress=False))
    truth = pl.read_parquet(generated / "_ground_truth" / "invoices.parquet")
    register = truth.select(
        pl.concat_str(pl.col("source"), pl.lit("-"), pl.col("source_invoice_id")).alias("Invoice No"),
        pl.col("source_customer_id").alias("Customer ID"),
        pl.concat_str(pl.lit("Customer "), pl.col("source_customer_id")).alias("Customer"),
        pl.col("invoice_date").dt.strftime("%m/%d/%Y").alias("Invoice Date"),
        pl.col("due_date").dt.strftime("%m/%d/%Y").alias("Due Date"),
        (pl.col("total_minor") / 100).map_elements(lambda v: f"{v:,.2f}", return_dtype=pl.String).alias("Total"),
        pl.col("currency").str.to_lowercase().alias("Currency"),
        pl.col("paid_date").dt.strftime("%m/%d/%Y").fill_null("").alias("Paid On"),
        pl.when(pl.col("status_at_end") == "void").then(pl.lit("Void")).otherwise(pl.lit("")).alias("Status"),
    )
    landing = root / "landing"
    (landing / "exports" / "erp_export").mkdir(parents=True)
    register.write_csv(landing / "exports" / "erp_export" / "invoices.csv")
    configs = root / "configs"
    configs.mkdir()
    rates = landing / "reference" / "fx_rates"
    rates.mkdir(parents=True)
    shutil.copy(generated / "reference" / "fx_rates" / "daily_rates.csv", rates / "daily_rates.csv")
    for name in ("quickbooks.yaml", "stripe.yaml", "fx_rates.yaml"):
        shutil.copy(INGEST_CONFIGS / name, configs / name)
    (configs / "erp_export.yaml").write_text(EXPORT_CONFIG)

    mp = pytest.MonkeyPatch()
    mp.setenv("AR_DUCKDB_PATH", str(root / "ar.duckdb"))
    mp.setenv("AR_LANDING_DIR", str(landing))
    mp.setenv("AR_INGEST_CONFIG_DIR", str(configs))
    mp.setenv("AR_STATE_DIR", str(root / "state"))
    prepare_dbt_manifest()
    from ar_pipeline.definitions import defs

    result = defs().resolve_job_def("refresh_ar").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"ar_dbt_models": {"config": {"as_of_date": END_DATE.isoformat()}}}},
        raise_on_error=False,
    )
    yield {"result": result, "db": root / "ar.duckdb", "truth": truth}
    mp.undo()


def test_pipeline_runs_on_an_invoice_export_alone(export_run) -> None:
    result = export_run["result"]
    assert result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    # business alerts only warn: pre-send findings (first run: all new) and forecast deviations
    alerts = {"invoice_issues_new", "forecast_within_threshold"}
    assert [e for e in failed if not (e.check_name in alerts and e.severity == dg.AssetCheckSeverity.WARN)] == []


def test_aging_from_export_matches_the_export(export_run) -> None:
    truth = export_run["truth"].filter(pl.col("status_at_end") != "void")
    still_open = truth.filter(pl.col("paid_date").is_null() | (pl.col("paid_date") > END_DATE))
    want = (
        still_open.with_columns(
            (pl.lit(END_DATE) - pl.col("due_date")).dt.total_days().alias("days"),
        )
        .with_columns(pl.col("days").map_elements(bucket, return_dtype=pl.String).alias("aging_bucket"))
        .group_by("aging_bucket").agg(pl.col("total_minor").sum().alias("open_minor"), pl.len().alias("n"))
        .sort("aging_bucket")
    )
    with duckdb.connect(str(export_run["db"]), read_only=True) as conn:
        got = conn.sql(
            """SELECT aging_bucket, CAST(round(sum(open_amount) * 100) AS BIGINT) AS open_minor, count(*) AS n
               FROM marts.fct_ar_aging WHERE source = 'erp_export' GROUP BY 1 ORDER BY 1"""
        ).pl()
        paid = conn.execute(
            "SELECT count(*) FROM marts.fct_invoices WHERE source = 'erp_export' AND status = 'paid'"
        ).fetchone()[0]
    assert got.to_dicts() == want.cast({"n": pl.Int64}).to_dicts()
    assert paid == truth.filter(pl.col("paid_date") <= END_DATE).height


def test_export_invoices_in_foreign_currency_get_home_amounts_from_the_rates_file(export_run) -> None:
    truth = export_run["truth"].filter(pl.col("status_at_end") != "void").select(
        pl.concat_str(pl.col("source"), pl.lit("-"), pl.col("source_invoice_id")).alias("source_invoice_id"),
        "currency", "total_minor", "exchange_rate")
    with duckdb.connect(str(export_run["db"]), read_only=True) as conn:
        got = conn.sql(
            """SELECT source_invoice_id, exchange_rate_source, CAST(exchange_rate AS VARCHAR) AS rate,
                      CAST(round(home_total_amount * 100) AS BIGINT) AS home_minor
               FROM marts.fct_invoices WHERE source = 'erp_export'"""
        ).pl().join(truth, on="source_invoice_id", how="inner")
    foreign = got.filter(pl.col("currency") != "USD")
    assert foreign.height > 10
    assert set(foreign["exchange_rate_source"]) == {"fx_rates"}
    assert set(got.filter(pl.col("currency") == "USD")["exchange_rate_source"]) == {"home_currency"}
    # same rate as the generator used on the invoice date, and home = round(total x rate, 2) half up
    assert (foreign["rate"] == foreign["exchange_rate"] + "0000").all()
    rate_micros = foreign["exchange_rate"].str.replace(".", "", literal=True).cast(pl.Int64)
    want = (foreign["total_minor"] * rate_micros + 500_000) // 1_000_000
    assert foreign["home_minor"].to_list() == want.to_list()
