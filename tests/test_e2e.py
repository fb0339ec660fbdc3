"""End to end: generated exports → Dagster ingest → dbt marts, checked against the generator's truth.

Runs the real `refresh_ar` job in-process on a real (ephemeral) Dagster instance, a real DuckDB file
and a real `dbt build`. Two runs: as of the generator's end date, then as of an earlier month end
on the same files (which must add no raw rows and reproduce that month end's truth).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

END_DATE = date(2026, 6, 30)
PAST_MONTH_END = date(2026, 3, 31)
RAW_TABLES = [
    "raw_quickbooks.raw_invoices", "raw_quickbooks.raw_payments", "raw_quickbooks.raw_credit_memos",
    "raw_quickbooks.raw_customers", "raw_stripe.raw_invoices", "raw_stripe.raw_invoice_payments",
    "raw_stripe.raw_credit_notes", "raw_stripe.raw_customers", "raw_stripe.raw_charges",
    "raw_exports.raw_fx_rates",
]


def run_refresh(as_of: date, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    from ar_pipeline.definitions import defs

    job = defs().resolve_job_def("refresh_ar")
    return job.execute_in_process(
        instance=instance,
        run_config={"ops": {"ar_dbt_models": {"config": {"as_of_date": as_of.isoformat()}}}},
        raise_on_error=False,
    )


def raw_counts(db: Path) -> dict[str, int]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in RAW_TABLES}


def aging_by_bucket(db: Path) -> pl.DataFrame:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.sql(
            """SELECT as_of_date, aging_bucket, currency,
                      CAST(round(sum(open_amount) * 100) AS BIGINT) AS open_minor,
                      CAST(round(sum(home_open_amount) * 100) AS BIGINT) AS home_minor,
                      count(*) AS invoices
               FROM marts.fct_ar_aging GROUP BY ALL ORDER BY ALL"""
        ).pl()


def truth_by_bucket(landing: Path, as_of: date) -> pl.DataFrame:
    truth = pl.read_parquet(landing / "_ground_truth" / "open_balances.parquet")
    return (
        truth.filter(pl.col("as_of_date") == as_of)
        .group_by("as_of_date", "aging_bucket", "currency")
        .agg(open_minor=pl.col("open_amount_minor").sum(), home_minor=pl.col("home_open_amount_minor").sum(),
             invoices=pl.len())
        .sort("as_of_date", "aging_bucket", "currency")
    )


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory):
    from ar_pipeline.defs.transform.project import prepare_dbt_manifest
    from ar_pipeline.lib.generator import GeneratorConfig, generate

    root = tmp_path_factory.mktemp("e2e")
    landing = root / "landing"
    db = root / "ar.duckdb"
    generate(GeneratorConfig(landing_dir=landing, seed=7, customers=60, years=1.5, invoices=3000,
                             end_date=END_DATE, progress=False))
    mp = pytest.MonkeyPatch()
    mp.setenv("AR_DUCKDB_PATH", str(db))
    mp.setenv("AR_LANDING_DIR", str(landing))
    prepare_dbt_manifest()
    instance = dg.DagsterInstance.ephemeral()
    first = run_refresh(END_DATE, instance)
    yield {"landing": landing, "db": db, "instance": instance, "first": first}
    mp.undo()


def test_run_succeeds_with_every_check_passing(pipeline) -> None:
    result = pipeline["first"]
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) > 20  # ingest reconciliations + dbt tests
    failed = [(e.asset_key.to_user_string(), e.check_name) for e in evaluations if not e.passed]
    assert failed == []
    materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()
                    for m in [m.event_specific_data.materialization]}
    assert {"quickbooks/raw_invoices", "stripe/raw_invoices", "marts/fct_ar_aging", "marts/fct_invoices",
            "marts/fct_payments", "marts/dim_customers"} <= materialized


def test_aging_equals_ground_truth_to_the_cent(pipeline) -> None:
    got = aging_by_bucket(pipeline["db"])
    want = truth_by_bucket(pipeline["landing"], END_DATE)
    assert got.height > 0 and want["invoices"].sum() > 100
    assert got.select(want.columns).to_dicts() == want.to_dicts()


def test_every_open_invoice_matches_truth(pipeline) -> None:
    truth = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "open_balances.parquet").filter(
        pl.col("as_of_date") == END_DATE)
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        got = conn.sql(
            "SELECT source, source_invoice_id, CAST(round(open_amount * 100) AS BIGINT) AS open_minor, "
            "days_past_due FROM marts.fct_ar_aging"
        ).pl()
    want = truth.select("source", "source_invoice_id", pl.col("open_amount_minor").alias("open_minor"),
                        "days_past_due")
    assert got.sort("source", "source_invoice_id").to_dicts() == want.sort(
        "source", "source_invoice_id").cast({"days_past_due": pl.Int64}).to_dicts()


def test_marts_shape_for_finance(pipeline) -> None:
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        statuses = {r[0] for r in conn.execute("SELECT DISTINCT status FROM marts.fct_invoices").fetchall()}
        currencies = {r[0] for r in conn.execute("SELECT DISTINCT currency FROM marts.fct_invoices").fetchall()}
        paid_without_date = conn.execute(
            "SELECT count(*) FROM marts.fct_invoices WHERE status = 'paid' AND paid_date IS NULL").fetchone()[0]
        future = conn.execute(
            "SELECT count(*) FROM marts.fct_invoices WHERE invoice_date > as_of_date").fetchone()[0]
        sources = {r[0] for r in conn.execute("SELECT DISTINCT source FROM marts.fct_invoices").fetchall()}
    assert statuses <= {"open", "paid", "void", "uncollectible"} and {"open", "paid"} <= statuses
    assert currencies and all(c == c.upper() and len(c) == 3 for c in currencies)
    assert sources == {"quickbooks", "stripe"}
    assert paid_without_date == 0 and future == 0


def test_rerun_as_of_past_month_end_adds_nothing_and_matches_truth(pipeline) -> None:
    before = raw_counts(pipeline["db"])
    second = run_refresh(PAST_MONTH_END, pipeline["instance"])
    assert second.success
    assert raw_counts(pipeline["db"]) == before
    got = aging_by_bucket(pipeline["db"])
    want = truth_by_bucket(pipeline["landing"], PAST_MONTH_END)
    assert got.select(want.columns).to_dicts() == want.to_dicts()
    assert set(got["as_of_date"].to_list()) == {PAST_MONTH_END}


def test_snapshots_equal_truth_at_every_month_end(pipeline) -> None:
    truth = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "open_balances.parquet")
    want = (
        truth.group_by("as_of_date", "aging_bucket", "currency")
        .agg(open_minor=pl.col("open_amount_minor").sum(), home_minor=pl.col("home_open_amount_minor").sum(),
             invoices=pl.len())
        .sort("as_of_date", "aging_bucket", "currency")
    )
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        got = conn.sql(
            """SELECT snapshot_date AS as_of_date, aging_bucket, currency,
                      CAST(round(sum(open_amount) * 100) AS BIGINT) AS open_minor,
                      CAST(round(sum(home_open_amount) * 100) AS BIGINT) AS home_minor,
                      count(*) AS invoices
               FROM marts.fct_ar_aging_snapshots GROUP BY ALL ORDER BY ALL"""
        ).pl()
    dates = set(want["as_of_date"].to_list())
    assert len(dates) >= 12  # every month end of the history, plus the end date
    got = got.filter(pl.col("as_of_date").is_in(list(dates)))
    assert set(got["as_of_date"].to_list()) == dates
    assert got.select(want.columns).to_dicts() == want.to_dicts()


def test_aging_command_rebuilds_a_past_date_from_history(pipeline, tmp_path) -> None:
    from click.testing import CliRunner

    from ar_pipeline.cli import main

    truth = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "open_balances.parquet")
    month_end = sorted(set(truth["as_of_date"].to_list()))[-4]
    with duckdb.connect(str(pipeline["db"])) as conn:  # forget the stored snapshot for that date
        conn.execute("DELETE FROM marts.fct_ar_aging_snapshots WHERE snapshot_date = ?", [month_end])
    out = tmp_path / "aging.csv"
    result = CliRunner().invoke(main, ["aging", "--as-of", month_end.isoformat(), "--by", "invoice",
                                       "--csv", str(out)])
    assert result.exit_code == 0, result.output
    got = pl.read_csv(out, schema_overrides={"source_invoice_id": pl.String}).select(
        "source", "source_invoice_id", (pl.col("open_amount") * 100).round().cast(pl.Int64).alias("open_minor"),
        "aging_bucket")
    want = truth.filter(pl.col("as_of_date") == month_end).select(
        "source", "source_invoice_id", pl.col("open_amount_minor").alias("open_minor"), "aging_bucket")
    assert got.sort("source", "source_invoice_id").to_dicts() == want.sort("source", "source_invoice_id").to_dicts()
    by_customer = CliRunner().invoke(main, ["aging", "--as-of", month_end.isoformat()])
    assert by_customer.exit_code == 0 and "over_90" in by_customer.output


def test_monthly_kpis_tie_to_truth_and_their_definitions(pipeline) -> None:
    truth = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "open_balances.parquet")
    ar_truth = truth.group_by("as_of_date").agg(pl.col("home_open_amount_minor").sum().alias("ar_minor"))
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        kpis = conn.sql(
            """SELECT month_end, CAST(round(ar_end * 100) AS BIGINT) AS ar_minor, credit_sales, days_in_month,
                      dso, best_possible_dso, average_days_delinquent, percent_current, cei, countback_dso
               FROM marts.ar_kpis_monthly WHERE dimension = 'all' ORDER BY month_end"""
        ).pl()
        by_segment = conn.sql(
            """SELECT month_end, sum(ar_end) AS ar FROM marts.ar_kpis_monthly WHERE dimension = 'segment'
               GROUP BY 1 ORDER BY 1"""
        ).pl()
    joined = kpis.join(ar_truth, left_on="month_end", right_on="as_of_date", how="inner", suffix="_truth")
    assert joined.height >= 12
    assert (joined["ar_minor"] == joined["ar_minor_truth"]).all()
    last = kpis.filter(pl.col("credit_sales") > 0).row(-1, named=True)
    assert abs(float(last["dso"]) - last["ar_minor"] / 100 / float(last["credit_sales"]) * last["days_in_month"]) < 1e-3
    assert abs(float(last["average_days_delinquent"]) - (float(last["dso"]) - float(last["best_possible_dso"]))) < 1e-3
    assert last["cei"] is not None and last["countback_dso"] is not None and 0 <= float(last["percent_current"]) <= 100
    # segments partition the whole
    merged = kpis.join(by_segment, on="month_end")
    assert all(abs(a / 100 - float(b)) < 0.01 for a, b in zip(merged["ar_minor"], merged["ar"], strict=True))


def test_disputes_and_weekly_collections(pipeline) -> None:
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        disputes = conn.sql("SELECT * FROM marts.fct_disputes").pl()
        as_of = conn.execute("SELECT max(as_of_date) FROM marts.fct_invoices").fetchall()[0][0]
        raw_disputes = conn.execute(  # the marts may have been rebuilt as of an earlier date
            "SELECT count(DISTINCT id) FROM raw_stripe.raw_disputes "
            "WHERE CAST(to_timestamp(created) AT TIME ZONE 'UTC' AS DATE) <= ?", [as_of]).fetchall()[0][0]
        weekly_total = conn.execute(
            "SELECT sum(collections) FROM marts.ar_collections_weekly WHERE dimension = 'all'").fetchall()[0][0]
        by_region = conn.execute(
            "SELECT sum(collections) FROM marts.ar_collections_weekly WHERE dimension = 'region'").fetchall()[0][0]
        paid = conn.execute(
            "SELECT sum(home_amount) FROM marts.fct_payments WHERE application_type = 'payment'").fetchall()[0][0]
    assert raw_disputes > 0 and disputes.height == raw_disputes
    assert disputes["customer_id"].null_count() == 0 and disputes["invoice_key"].null_count() == 0
    assert set(disputes.filter(pl.col("is_open"))["outcome"].to_list()) <= {None}
    assert (disputes["age_days"] >= 0).all()
    assert weekly_total == paid == by_region  # every payment counted once, in one region


def test_customer_payment_stats_separate_the_archetypes(pipeline) -> None:
    customers = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "customers.parquet").select(
        pl.concat_str(pl.col("source"), pl.lit(":"), pl.col("source_customer_id")).alias("customer_id"),
        "archetype")
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        stats = conn.sql(
            "SELECT customer_id, paid_invoice_count, CAST(average_days_past_due AS DOUBLE) AS adpd, "
            "CAST(weighted_average_days_past_due AS DOUBLE) AS weighted_adpd, "
            "CAST(average_days_to_pay AS DOUBLE) AS adtp FROM marts.ar_customer_payment_stats"
        ).pl().join(customers, on="customer_id")
    per = stats.filter(pl.col("paid_invoice_count") > 0).group_by("archetype").agg(pl.col("adpd").median())
    medians = dict(zip(per["archetype"], per["adpd"], strict=True))
    assert medians["chronic_late"] > medians["prompt_payer"] + 15
    assert (stats.filter(pl.col("paid_invoice_count") > 0)["adtp"] >= 0).all()


def test_foreign_currency_invoices_get_their_rate_from_source_or_rates_file(pipeline) -> None:
    """QuickBooks documents keep their own ExchangeRate; Stripe EUR/GBP invoices (no rate in
    Stripe) take the generated rates file's latest rate on or before the invoice date: the same
    rate the generator's truth converts with, dated the Friday before for weekend invoices."""
    truth = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "invoices.parquet").select(
        "source", "source_invoice_id", pl.col("exchange_rate").alias("truth_rate"))
    rates_file = pipeline["landing"] / "reference" / "fx_rates" / "daily_rates.csv"
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        loaded = conn.execute("SELECT count(*) FROM raw_exports.raw_fx_rates").fetchall()[0][0]
        invoices = conn.sql(
            """SELECT source, source_invoice_id, currency, invoice_date, exchange_rate_date,
                      exchange_rate_source, CAST(exchange_rate AS VARCHAR) AS rate,
                      home_total_amount, total_amount
               FROM marts.fct_invoices"""
        ).pl()
        by_source = dict(conn.execute(
            "SELECT exchange_rate_source, count(*) FROM marts.fct_payments GROUP BY 1").fetchall())
        no_rate = conn.execute(
            "SELECT count(*) FROM marts.fct_ar_aging WHERE exchange_rate IS NULL OR home_open_amount IS NULL"
        ).fetchall()[0][0]
    assert loaded == len(rates_file.read_text().splitlines()) - 1
    got = invoices.join(truth, on=["source", "source_invoice_id"], how="inner")
    assert got.height == invoices.height
    kinds = got.group_by("source", pl.col("currency") == "USD").agg(pl.col("exchange_rate_source").unique())
    assert {(r["source"], r["currency"], tuple(r["exchange_rate_source"])) for r in kinds.iter_rows(named=True)} == {
        ("quickbooks", True, ("home_currency",)), ("quickbooks", False, ("source",)),
        ("stripe", True, ("home_currency",)), ("stripe", False, ("fx_rates",)),
    }
    table = got.filter(pl.col("exchange_rate_source") == "fx_rates")
    assert table.height > 10 and set(table["currency"]) == {"EUR", "GBP"}
    # the table's rate is the truth's rate for the invoice date (10 decimals vs the file's 6)
    assert (table["rate"] == table["truth_rate"] + "0000").all()
    lag = (table["invoice_date"] - table["exchange_rate_date"]).dt.total_days()
    assert lag.min() == 0 and lag.max() <= 2
    source_rated = got.filter(pl.col("exchange_rate_source") != "fx_rates")
    assert (source_rated["exchange_rate_date"] == source_rated["invoice_date"]).all()
    # home amounts are round(amount x rate, 2) for every invoice; payments carry their rate source too
    assert got["home_total_amount"].null_count() == 0
    assert by_source.get("fx_rates", 0) > 0 and by_source.get(None, 0) == 0 and no_rate == 0
