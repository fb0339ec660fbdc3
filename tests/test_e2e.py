"""End to end: generated exports → Dagster ingest → dbt marts, checked against the generator's truth.

Runs the real `refresh_ar` job in-process on a real (ephemeral) Dagster instance, a real DuckDB file
and a real `dbt build`. Two runs: as of the generator's end date, then as of an earlier month end
on the same files (which must add no raw rows and reproduce that month end's truth).
"""

from __future__ import annotations

from datetime import date, timedelta
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
    "raw_exports.raw_fx_rates", "raw_stripe.raw_balance_transactions", "raw_stripe.raw_payouts",
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
    mp.setenv("AR_PUBLISH_DIR", str(root / "published"))
    prepare_dbt_manifest()
    instance = dg.DagsterInstance.ephemeral()
    first = run_refresh(END_DATE, instance)
    yield {"landing": landing, "db": db, "instance": instance, "first": first, "published": root / "published"}
    mp.undo()


def test_run_succeeds_with_every_check_passing(pipeline) -> None:
    result = pipeline["first"]
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) > 20  # ingest reconciliations + dbt tests
    failed = [(e.asset_key.to_user_string(), e.check_name) for e in evaluations if not e.passed]
    # two WARN checks are business alerts, not data errors: the generator injects pre-send mistakes
    # into Stripe drafts, so invoice_issues_new must fire (and only warn); the forecast deviation
    # check may fire on any history. Every other check passes.
    warned = [e for e in evaluations if e.check_name == "invoice_issues_new"]
    assert [(e.passed, e.severity) for e in warned] == [(False, dg.AssetCheckSeverity.WARN)]
    forecast = [e for e in evaluations if e.check_name == "forecast_within_threshold"]
    assert forecast and all(e.severity == dg.AssetCheckSeverity.WARN for e in forecast)
    not_forecast = [f for f in failed if f[1] != "forecast_within_threshold"]
    assert not_forecast == [("analytics/invoice_issues", "invoice_issues_new")]
    # the Great Expectations suites on the prediction feature frame and score tables ran (and passed)
    gx = {(e.asset_key.to_user_string(), e.check_name) for e in evaluations if e.check_name.endswith("_gx")}
    assert {("analytics/payment_model", "feature_frame_gx"), ("analytics/invoice_risk_scores", "invoice_scores_gx"),
            ("analytics/customer_risk_scores", "customer_scores_gx")} <= gx
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


def test_cash_application_on_generated_bank_lines(pipeline) -> None:
    """The run's analytics.cash_application_suggestions against the generator's bank truth."""
    from ar_pipeline.lib.cash_application import evaluate

    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        out = conn.sql("SELECT * FROM analytics.cash_application_suggestions").pl()
        invoices = conn.sql("SELECT invoice_key, source, source_invoice_id FROM marts.fct_invoices").pl()
    assert set(out["as_of_date"].unique().to_list()) == {END_DATE}
    truth = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "bank_matches.parquet")
    result = evaluate(out, truth, invoices)
    assert result["bank_lines"] == truth["bank_reference"].n_unique() > 50
    assert result["precision"] >= 0.99, result["wrong"]
    assert result["recall"] >= 0.90, result["by_pattern"]
    # QuickBooks unapplied money is matched too (customer known)
    assert (out["payment_source"] == "unapplied_payment").any()
    # bank credits from Stripe are matched to their payout, never to invoices
    payout_lines = truth.filter(pl.col("pattern") == "stripe_payout")
    assert payout_lines.height > 0
    by = {r["pattern"]: r for r in result["by_pattern"]}
    assert by["stripe_payout"]["correct"] == payout_lines.height
    assert out.filter(pl.col("payout_id").is_not_null())["invoice_key"].null_count() == payout_lines.height
    # Stripe charges outside the invoice flow are unapplied money matched to the invoice they pay
    stripe_truth = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "stripe_unapplied_charges.parquet")
    s = evaluate(out, truth, invoices, stripe_truth)["by_source"]["stripe_unapplied"]
    assert s["lines"] == stripe_truth.height and s["precision"] >= 0.99 and s["recall"] >= 0.9, s
    # QuickBooks payments not yet applied: the generator says which open invoices each pays; the
    # overpaid parts of regular payments, deposits on account and payments with no clear answer (the
    # customer has two open invoices of that amount) pay no identifiable invoice: never auto-applied
    qbo_truth = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "quickbooks_unapplied_payments.parquet")
    full = evaluate(out, truth, invoices, stripe_truth, qbo_truth)
    q = full["by_source"]["quickbooks_unapplied"]
    assert q["lines"] == qbo_truth["payment_id"].n_unique() and q["payable"] >= 10, q
    assert q["precision"] >= 0.99 and q["recall"] >= 0.9, q["wrong"]
    by_q = {r["pattern"]: r for r in q["by_pattern"]}
    assert {"exact", "overpayment"} <= set(by_q)
    assert all(by_q[k]["auto_applied"] == 0 for k in ("overpayment", "on_account", "ambiguous") if k in by_q)
    o = full["overall"]
    assert o["lines"] == result["bank_lines"] + s["lines"] + q["lines"]
    assert o["precision"] >= 0.99 and o["recall"] >= 0.9, o


def test_stripe_payouts_reconcile_to_the_cent_and_equal_truth(pipeline) -> None:
    """fct_stripe_payouts: sum of charges - fees - refunds - disputes = payout amount, to the cent, and
    each payout's parts equal the generator's."""
    truth = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "stripe_payouts.parquet")
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        got = conn.sql(
            """SELECT payout_id, currency, CAST(round(amount * 100) AS BIGINT) AS amount_minor, arrival_date,
                      charge_count, CAST(round(charge_gross_amount * 100) AS BIGINT) AS charge_gross_minor,
                      CAST(round(fee_amount * 100) AS BIGINT) AS fee_minor,
                      CAST(round(refund_amount * 100) AS BIGINT) AS refund_minor,
                      CAST(round(dispute_amount * 100) AS BIGINT) AS dispute_minor, is_reconciled
               FROM marts.fct_stripe_payouts ORDER BY payout_id"""
        ).pl()
    assert got.height == truth.height > 20 and got["is_reconciled"].all()
    assert ((got["charge_gross_minor"] - got["fee_minor"] - got["refund_minor"] - got["dispute_minor"])
            == got["amount_minor"]).all()
    cols = ["payout_id", "currency", "amount_minor", "arrival_date", "charge_count", "charge_gross_minor",
            "fee_minor", "refund_minor", "dispute_minor"]
    want = truth.select(cols).sort("payout_id").with_columns(pl.col("charge_count").cast(pl.Int64))
    assert got.select(cols).with_columns(pl.col("charge_count").cast(pl.Int64)).equals(want)

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


def test_event_history_rebuilds_truth_balances_at_every_month_end(pipeline) -> None:
    """Summing fct_ar_events up to a date gives each invoice's open balance on that date, as the
    generator knows it (positive balances; every other invoice sums to zero)."""
    truth = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "open_balances.parquet")
    dates = sorted(set(truth["as_of_date"].to_list()))
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        run_as_of = conn.execute("SELECT max(as_of_date) FROM marts.fct_ar_events").fetchall()[0][0]
        dates = [d for d in dates if d <= run_as_of]
        balances = conn.sql(
            f"""SELECT d.as_of_date, e.source, split_part(e.invoice_key, ':', 2) AS source_invoice_id,
                       CAST(round(sum(e.invoice_balance_effect) * 100) AS BIGINT) AS open_minor
                FROM marts.fct_ar_events e
                JOIN (SELECT unnest([{", ".join(f"DATE '{d}'" for d in dates)}]) AS as_of_date) d
                  ON e.event_date <= d.as_of_date
                WHERE e.invoice_key IS NOT NULL
                GROUP BY ALL"""
        ).pl()
        types = {r[0] for r in conn.execute("SELECT DISTINCT event_type FROM marts.fct_ar_events").fetchall()}
    assert len(dates) >= 10
    assert {"invoice_issued", "payment", "credit_applied", "write_off", "invoice_voided",
            "unapplied_cash_received", "credit_memo_issued", "refund", "dispute_opened"} <= types
    assert balances.filter(pl.col("open_minor") < 0).height == 0
    got = balances.filter(pl.col("open_minor") > 0).sort("as_of_date", "source", "source_invoice_id")
    want = truth.filter(pl.col("as_of_date").is_in(dates)).select(
        "as_of_date", "source", "source_invoice_id", pl.col("open_amount_minor").alias("open_minor")
    ).sort("as_of_date", "source", "source_invoice_id")
    assert got.to_dicts() == want.to_dicts()



def test_invoice_issues_find_the_injected_draft_mistakes(pipeline) -> None:
    """Pre-send checks on the generated drafts: every injected mistake is raised with its rule, and
    nothing else is raised on those drafts (the clean ones included): precision and recall 100%."""
    truth = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "invoice_hygiene.parquet").with_columns(
        invoice_key=pl.concat_str([pl.lit("stripe:"), pl.col("invoice_id")]))
    assert truth.height >= 8 and truth["case"].n_unique() == 8
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        issues = conn.sql("SELECT invoice_key, rule_id, stage, is_new, as_of_date FROM analytics.invoice_issues").pl()
    assert set(issues["as_of_date"]) == {END_DATE} and issues["is_new"].all()
    got = issues.filter(pl.col("invoice_key").is_in(truth["invoice_key"].implode()))
    assert set(got["stage"]) == {"pending"}
    want = truth.filter(pl.col("case") != "clean")
    got_pairs = set(zip(got["invoice_key"], got["rule_id"], strict=True))
    want_pairs = set(zip(want["invoice_key"], want["case"], strict=True))
    assert got_pairs == want_pairs


def test_dispute_queue_covers_every_dispute(pipeline) -> None:
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        n = conn.sql("SELECT count(*) FROM marts.fct_disputes").fetchall()[0][0]
        queue = conn.sql("SELECT * FROM analytics.dispute_queue WHERE origin = 'stripe_dispute'").pl()
        risky = conn.sql("SELECT DISTINCT customer_id FROM analytics.dispute_risk_invoices").pl()
    assert n > 0 and queue.height == n and queue["owner"].null_count() == 0
    assert queue.filter(pl.col("is_open"))["days_left"].null_count() == 0
    assert set(risky["customer_id"]) <= set(queue["customer_id"])

    # won disputes are dated by Stripe's reinstatement balance transaction, and feed the typical
    # resolution time (the demo history is loaded in one go, so load history dates nothing)
    closes = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "stripe_dispute_closes.parquet").select(
        pl.col("dp_id").alias("dispute_id"), (pl.col("close_ts") // 86400).cast(pl.Int32).cast(pl.Date).alias("want"))
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        won = conn.sql(
            "SELECT dispute_id, closed_date, closed_date_source FROM marts.fct_disputes WHERE status = 'won'"
        ).pl()
    assert won.height > 0 and (won["closed_date_source"] == "reinstatement_balance_transaction").all()
    assert won.join(closes, on="dispute_id").select((pl.col("closed_date") == pl.col("want")).all()).item()
    q_won = queue.filter(pl.col("outcome") == "won").join(won, on="dispute_id", suffix="_mart")
    assert q_won.height == won.height and (q_won["closed_date"] == q_won["closed_date_mart"]).all()
    assert q_won["reason_median_resolution_days"].drop_nulls().len() > 0


def test_unapplied_cash_matches_the_source_documents(pipeline) -> None:
    """Every QuickBooks payment with UnappliedAmt and every credit memo with RemainingCredit in the
    generated files is listed with that amount (the run is as of the files' end date)."""
    landing = pipeline["landing"]
    with duckdb.connect() as conn:
        def source_amounts(entity: str, field: str) -> dict[str, int]:
            rows = conn.sql(
                f"""SELECT r.Id AS id, CAST(round(CAST(r.{field} AS DECIMAL(18, 2)) * 100) AS BIGINT) AS minor
                    FROM (SELECT unnest(QueryResponse.{entity}) AS r
                          FROM read_json_auto('{landing}/quickbooks/{entity.lower()}/*.json')) WHERE r.{field} > 0"""
            ).fetchall()
            return dict(rows)

        unapplied = source_amounts("Payment", "UnappliedAmt")
        remaining = source_amounts("CreditMemo", "RemainingCredit")
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        rows = conn.execute(
            """SELECT credit_type, source_document_id, CAST(round(unapplied_amount * 100) AS BIGINT)
               FROM marts.fct_unapplied_cash WHERE source = 'quickbooks'"""
        ).fetchall()
    assert unapplied and remaining
    assert {r[1]: r[2] for r in rows if r[0] == "unapplied_payment"} == unapplied
    assert {r[1]: r[2] for r in rows if r[0] == "credit_memo"} == remaining



def test_summary_lists_every_bucket_in_age_order_and_adds_up(pipeline) -> None:
    from ar_pipeline.lib.summary import ar_summary

    summary = ar_summary(pipeline["db"])
    truth = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "open_balances.parquet").filter(
        pl.col("as_of_date") == END_DATE)
    assert list(summary.buckets) == ["current", "1_30", "31_60", "61_90", "over_90"]
    assert sum(summary.buckets.values()) == summary.total_open
    assert round(summary.total_open * 100) == truth["home_open_amount_minor"].sum()
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        daily_dso = conn.execute(
            "SELECT dso FROM marts.ar_kpis_daily WHERE dimension = 'all' AND snapshot_date = ?", [END_DATE]
        ).fetchall()[0][0]
    assert summary.dso_window_days == 90 and summary.dso_days == round(daily_dso, 1)


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


def test_segments_and_regions_use_one_vocabulary_across_sources(pipeline) -> None:
    """QuickBooks sends customer-type ids and countries, Stripe names: the seed translates them, so each
    customer's segment and region in dim_customers are the generator's true ones, whatever its source."""
    truth = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "customers.parquet").select(
        pl.concat_str("source", pl.lit(":"), "source_customer_id").alias("customer_id"), "segment", "region")
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        dim = conn.sql("SELECT customer_id, segment, region FROM marts.dim_customers").pl()
    joined = truth.join(dim, on="customer_id", how="inner", suffix="_mart")
    assert joined.height == truth.height
    assert joined.filter(pl.col("segment") != pl.col("segment_mart")).is_empty()
    assert joined.filter(pl.col("region") != pl.col("region_mart")).is_empty()


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


def test_customer_links_are_exactly_the_generated_ones(pipeline) -> None:
    truth = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "customers.parquet")
    want = {(f"{r['source']}:{r['source_customer_id']}", r["linked_customer_id"])
            for r in truth.filter(pl.col("linked_customer_id").is_not_null()).to_dicts()}
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        links = conn.sql("SELECT customer_id, linked_customer_id, matched_on, customer_group_id "
                         "FROM marts.dim_customer_links").pl()
        customers = conn.sql("SELECT customer_id, customer_group_id, customer_name, customer_group_name "
                             "FROM marts.dim_customers").pl()
    assert len(want) >= 2  # the generator links a few customers by default
    assert set(zip(links["customer_id"], links["linked_customer_id"], strict=True)) == want  # no false links
    assert set(links["matched_on"].to_list()) == {"email"}
    group = dict(zip(customers["customer_id"], customers["customer_group_id"], strict=True))
    assert all(group[a] == group[b] == min(a, b) for a, b in want)
    linked = {a for a, _ in want}
    unlinked = customers.filter(~pl.col("customer_id").is_in(list(linked)))
    assert (unlinked["customer_group_id"] == unlinked["customer_id"]).all()
    assert (unlinked["customer_group_name"] == unlinked["customer_name"]).all()


def test_collector_grouping_partitions_every_kpi_mart(pipeline) -> None:
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        totals = {
            table: conn.execute(
                f"SELECT sum(CASE WHEN dimension = 'all' THEN {col} END), "
                f"sum(CASE WHEN dimension = 'collector' THEN {col} END) FROM marts.{table}").fetchall()[0]
            for table, col in [("ar_kpis_monthly", "ar_end"), ("ar_collections_weekly", "collections"),
                               ("ar_kpis_daily", "open_ar")]
        }
        collectors = conn.sql("SELECT DISTINCT collector, collector_assigned_by FROM marts.dim_customers").pl()
    assert all(everyone == by_collector and everyone > 0 for everyone, by_collector in totals.values())
    assert collectors.height >= 2 and set(collectors["collector_assigned_by"]) <= {"region", "default"}


def test_daily_kpis_tie_to_aging_and_a_rolling_dso_from_truth(pipeline) -> None:
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        as_of = conn.execute("SELECT max(as_of_date) FROM marts.fct_ar_aging").fetchall()[0][0]
        aging_home = conn.execute("SELECT sum(home_open_amount) FROM marts.fct_ar_aging").fetchall()[0][0]
        daily = conn.sql("SELECT * FROM marts.ar_kpis_daily WHERE dimension = 'all' ORDER BY snapshot_date").pl()
    assert daily.height == 90 and daily["snapshot_date"][-1] == as_of  # var snapshot_daily_days
    last = daily.row(-1, named=True)
    window = int(last["window_days"])
    assert window == 90 and last["open_ar"] == aging_home
    # recompute from the generator's truth: AR at the as-of date, credit sales of the 90 days to it
    truth = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "open_balances.parquet")
    ar_minor = truth.filter(pl.col("as_of_date") == as_of)["home_open_amount_minor"].sum()
    current_minor = truth.filter((pl.col("as_of_date") == as_of) & (pl.col("days_past_due") <= 0))[
        "home_open_amount_minor"].sum()
    invoices = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "invoices.parquet")
    start = as_of - timedelta(days=window - 1)
    rate_micro = pl.col("exchange_rate").str.replace(".", "", literal=True).cast(pl.Int64)
    invoiced = invoices.filter((pl.col("status_at_end") != "void") & pl.col("invoice_date").is_between(start, as_of)
                               ).select(((pl.col("total_minor") * rate_micro + 500_000) // 1_000_000).sum()).item()
    credited = invoices.filter(pl.col("credit_applied_date").is_between(start, as_of))["credit_home_minor"].sum()
    sales_minor = invoiced - credited
    assert credited > 0 and sales_minor > 0
    assert round(float(last["credit_sales"]) * 100) == sales_minor
    assert abs(float(last["dso"]) - ar_minor / sales_minor * window) < 1e-4
    assert abs(float(last["best_possible_dso"]) - current_minor / sales_minor * window) < 1e-4
    assert abs(float(last["average_days_delinquent"]) - (float(last["dso"]) - float(last["best_possible_dso"]))) < 1e-5
    assert abs(float(last["percent_current"]) - current_minor / ar_minor * 100) < 1e-4


def _published_snapshot(published: Path) -> dict[str, int]:
    with duckdb.connect(str(published / "ar.duckdb"), read_only=True) as conn:
        return dict(conn.execute("SELECT table_name, row_count FROM published.publish_info").fetchall())


def test_published_copy_matches_the_marts(pipeline) -> None:
    published = pipeline["published"]
    counts = _published_snapshot(published)
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        marts = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'").fetchall()]
        live = {f"marts.{t}": conn.execute(f"SELECT count(*) FROM marts.{t}").fetchall()[0][0] for t in marts}
    assert {k: v for k, v in counts.items() if k.startswith("marts.")} == live
    for name, rows in counts.items():
        schema, table = name.split(".")
        parquet = pl.scan_parquet(published / "parquet" / schema / f"{table}.parquet")
        assert parquet.select(pl.len()).collect().item() == rows


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


def test_collections_queue_is_built_from_the_marts(pipeline) -> None:
    """refresh_ar also builds analytics.reminder_queue (repo policy) as of the marts' date: one row per
    customer, only open invoices that reached a level, no open-disputed or in-grace autopay invoice,
    ordered by money at risk; and fct_invoices.collection_method is Stripe's own value."""
    from ar_pipeline.lib.collections.policy import find_policy, load_policy
    from tests.conftest import INGEST_CONFIGS

    policy = load_policy(find_policy(INGEST_CONFIGS))
    first_level_days = policy.levels[0].days
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        as_of = conn.execute("SELECT max(as_of_date) FROM marts.fct_invoices").fetchall()[0][0]
        queue = conn.sql("SELECT * FROM analytics.reminder_queue ORDER BY priority_rank").pl()
        skipped = conn.sql("SELECT * FROM analytics.reminder_queue_skipped").pl()
        invoices = conn.sql(
            "SELECT invoice_key, status, due_date, collection_method, customer_id FROM marts.fct_invoices").pl()
        open_disputed = {r[0] for r in conn.execute(
            "SELECT invoice_key FROM marts.fct_disputes WHERE is_open").fetchall()}
        raw_methods = set(conn.execute(
            "SELECT DISTINCT id, collection_method FROM raw_stripe.raw_invoices").fetchall())
        has_risk = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'analytics' "
                                "AND table_name = 'invoice_risk_scores'").fetchall()[0][0] > 0
    stripe = invoices.filter(pl.col("invoice_key").str.starts_with("stripe:"))
    got_methods = {(k.removeprefix("stripe:"), m) for k, m in zip(stripe["invoice_key"], stripe["collection_method"],
                                                                  strict=True)}
    assert got_methods <= raw_methods and "charge_automatically" in {m for _, m in got_methods}
    assert invoices.filter(~pl.col("invoice_key").str.starts_with("stripe:"))["collection_method"].null_count() == \
        invoices.filter(~pl.col("invoice_key").str.starts_with("stripe:")).height

    assert queue.height > 0 and set(queue["as_of_date"].to_list()) == {as_of}
    assert queue["customer_id"].n_unique() == queue.height
    assert queue["money_at_risk"].to_list() == sorted(queue["money_at_risk"].to_list(), reverse=True)
    by_key = {r["invoice_key"]: r for r in invoices.iter_rows(named=True)}
    grace = policy.exclusions.card_autopay_grace_days
    for row in queue.iter_rows(named=True):
        for key in row["invoice_keys"].split(","):
            inv = by_key[key]
            days = (as_of - inv["due_date"]).days
            assert inv["status"] == "open" and inv["customer_id"] == row["customer_id"]
            assert days >= first_level_days and key not in open_disputed
            assert inv["collection_method"] != "charge_automatically" or (grace is not None and days >= grace)
        assert row["subject"] and row["invoice_numbers"].split(", ")[0] in row["body"]
    if not has_risk:
        assert queue["priority_reason"].str.contains("invoice_risk_scores not available").all()
    assert set(skipped["reason"].to_list()) <= {
        "disputed", "card_autopay", "excluded_invoices", "under_min_balance", "on_hold", "do_not_contact",
        "promise_to_pay", "dispute_open", "min_interval", "level_already_sent"}


def test_a_failed_run_leaves_the_published_copy_intact(pipeline) -> None:
    """Last in the module: it breaks the warehouse on purpose (raw rows go missing), so the blocking
    reconciliation check stops the run before anything downstream, publishing included."""
    published = pipeline["published"]
    before_bytes = (published / "ar.duckdb").read_bytes()
    reader = duckdb.connect(str(published / "ar.duckdb"), read_only=True)  # a BI tool holding it open
    with duckdb.connect(str(pipeline["db"])) as conn:
        conn.execute("DELETE FROM raw_quickbooks.raw_invoices WHERE _source_row % 2 = 0")
    failed = run_refresh(END_DATE, pipeline["instance"])
    assert not failed.success
    assert (published / "ar.duckdb").read_bytes() == before_bytes
    assert reader.execute("SELECT count(*) FROM marts.fct_invoices").fetchall()[0][0] > 0
    reader.close()



def test_cash_forecast_is_built_and_its_actuals_tie_to_truth(pipeline) -> None:
    """refresh_ar builds the forecast from the marts' as-of date; the collections it is compared with
    are the generated invoices' true paid dates (home value of invoices fully paid in the week)."""
    with duckdb.connect(str(pipeline["db"]), read_only=True) as conn:
        as_of = conn.execute("SELECT max(as_of_date) FROM marts.fct_invoices").fetchall()[0][0]
        weekly = conn.sql("SELECT * FROM analytics.cash_forecast_weekly").pl()
        scenarios = conn.sql("SELECT * FROM analytics.cash_forecast_scenarios").pl()
        vs = conn.sql("SELECT * FROM analytics.cash_forecast_vs_actual WHERE week = 1").pl()
        invoices = conn.sql("""SELECT source, source_invoice_id, CAST(home_total_amount AS DOUBLE) AS home
                               FROM marts.fct_invoices WHERE status <> 'void'""").pl()
        alerts_cols = [r[0] for r in conn.execute("DESCRIBE analytics.forecast_alerts").fetchall()]
    assert "message" in alerts_cols
    # the live bands' calibration and the expected-vs-actual replay share their past forecasts: one
    # step, each past date built once
    meta = {m.asset_key.to_user_string(): m.metadata for ev in pipeline["first"].get_asset_materialization_events()
            for m in [ev.event_specific_data.materialization]}["analytics/cash_forecast_vs_actual"]
    assert meta["past_forecasts_built"].value == meta["past_forecast_dates"].value > 0
    assert weekly["forecast_date"].unique().to_list() == [as_of]
    assert weekly.filter(pl.col("week") == 1)["week_start"].unique().to_list() == [as_of + timedelta(days=1)]
    assert weekly.group_by("currency").len()["len"].unique().to_list() == [13]
    total = weekly.filter(pl.col("currency") == "ALL").sort("week")["expected_home"]
    per_cur = (weekly.filter(pl.col("currency") != "ALL").group_by("week").agg(pl.col("expected_home").sum())
               .sort("week")["expected_home"])
    assert total.to_list() == pytest.approx(per_cur.to_list())
    assert (weekly["p10_amount"] <= weekly["p90_amount"]).all() and (total > 0).all()
    assert scenarios.filter(pl.col("scenario") == "base")["difference_home"].abs().max() == 0.0
    truth = pl.read_parquet(pipeline["landing"] / "_ground_truth" / "invoices.parquet").select(
        "source", "source_invoice_id", "paid_date")
    paid = invoices.join(truth, on=["source", "source_invoice_id"], how="inner")
    assert vs.height > 0
    for row in vs.iter_rows(named=True):
        expected = paid.filter(pl.col("paid_date").is_between(row["week_start"], row["week_end"]))["home"].sum()
        assert row["actual_home"] == pytest.approx(expected, abs=0.01)


def test_every_analytics_table_column_is_documented_and_every_documented_column_exists(pipeline, tmp_path) -> None:
    """The data dictionary of schema `analytics` (dbt_project/models/analytics/_analytics__sources.yml)
    against the tables a real run builds. The tables written by commands rather than the run (the
    backtests' metrics, the reminder log and notes) are created on a copy of the warehouse by the code
    that creates them. A failure lists what to add to (or remove from) the YAML."""
    import shutil

    from ar_pipeline.lib.collections.store import ensure_tables
    from ar_pipeline.lib.data_dictionary import ANALYTICS_SOURCES, analytics_tables
    from ar_pipeline.lib.forecast.backtest import METRICS_DDL as FORECAST_BACKTEST_DDL
    from ar_pipeline.lib.prediction.backtest import METRICS_DDL as MODEL_BACKTEST_DDL

    copy = tmp_path / "ar.duckdb"
    shutil.copy(pipeline["db"], copy)
    with duckdb.connect(str(copy)) as conn:
        conn.execute(MODEL_BACKTEST_DDL)
        conn.execute(FORECAST_BACKTEST_DDL)
        ensure_tables(conn)
        rows = conn.execute("""SELECT table_name, column_name, lower(data_type) FROM information_schema.columns
                               WHERE table_schema = 'analytics' ORDER BY table_name, ordinal_position""").fetchall()
    actual = {(t, c): ty for t, c, ty in rows}
    documented = {(t.name, c.name): c.data_type for t in analytics_tables() for c in t.columns}
    assert {t for t, _ in actual} == {t.name for t in analytics_tables()}, f"tables differ from {ANALYTICS_SOURCES}"
    undocumented = sorted(f"{t}.{c} ({ty})" for (t, c), ty in actual.items() if (t, c) not in documented)
    missing = sorted(f"{t}.{c}" for (t, c) in documented if (t, c) not in actual)
    wrong_type = sorted(f"{t}.{c}: documented {documented[t, c]}, built {ty}" for (t, c), ty in actual.items()
                        if (t, c) in documented and documented[t, c] != ty)
    assert (undocumented, missing, wrong_type) == ([], [], []), (
        f"document these in {ANALYTICS_SOURCES}: {undocumented}; remove these (not built): {missing}; "
        f"fix these types: {wrong_type}")
    # and each table's columns are declared in the order they are built
    for table in analytics_tables():
        assert [c.name for c in table.columns] == [c for t, c, _ in rows if t == table.name], table.name
