"""`ar-pipeline backtest` end to end on a small generated history loaded as marts tables: the JSON and
analytics.model_backtest_metrics contents, and that nothing on or after the cut-off is trained on."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from ar_pipeline.cli import main
from ar_pipeline.lib.generator import GeneratorConfig, generate

END = date(2026, 6, 30)
CUTOFF = date(2026, 2, 1)
STEP = 60


def _ledger(landing: Path) -> pl.DataFrame:
    truth = pl.read_parquet(landing / "_ground_truth" / "invoices.parquet").filter(pl.col("status_at_end") != "void")
    return truth.select(
        pl.concat_str("source", pl.lit(":"), "source_invoice_id").alias("invoice_key"),
        pl.concat_str("source", pl.lit(":"), "source_customer_id").alias("customer_id"),
        "source", "invoice_date", "due_date", "paid_date", "currency",
        (pl.col("total_minor").cast(pl.Float64) / 100 * pl.col("exchange_rate").cast(pl.Float64))
        .alias("home_total_amount"))


def _write_marts(db: Path, ledger: pl.DataFrame) -> None:
    """The three marts the prediction code reads, with just the columns it selects."""
    inv = ledger.with_columns(
        status=pl.when(pl.col("paid_date").is_null()).then(pl.lit("open")).otherwise(pl.lit("paid")),
        home_open_amount=pl.when(pl.col("paid_date").is_null()).then(pl.col("home_total_amount")).otherwise(0.0),
        as_of_date=pl.lit(END))
    with duckdb.connect(str(db)) as conn:
        conn.execute("create schema if not exists marts")
        conn.register("_inv", inv.to_arrow())
        conn.execute("create or replace table marts.fct_invoices as select * from _inv")
        conn.execute("create or replace table marts.fct_ar_events (customer_id varchar, event_type varchar, "
                     "event_date date)")
        conn.execute("create or replace table marts.dim_customers as select distinct customer_id, "
                     "'smb' as segment, 'us' as region from _inv")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("backtest_cli")
    generate(GeneratorConfig(landing_dir=root / "landing", seed=11, customers=60, invoices=2500, end_date=END,
                             progress=False))
    ledger = _ledger(root / "landing")
    db = root / "ar.duckdb"
    _write_marts(db, ledger)
    return {"root": root, "db": db, "ledger": ledger}


def _run(root: Path, db: Path, args: list[str]):
    return CliRunner().invoke(main, ["backtest", *args], env={"AR_DUCKDB_PATH": str(db), "COLUMNS": "200",
                                                             "AR_STATE_DIR": str(root / "state")})


def _expected_train_rows(ledger: pl.DataFrame, cutoff: date) -> int:
    """Counted here from the protocol's words: issued before the cut-off and either paid before it or
    unpaid (as far as anyone knew then) and past due before the day before it."""
    known_paid = pl.col("paid_date").is_not_null() & (pl.col("paid_date") < cutoff)
    past_due = (pl.lit(cutoff - timedelta(days=1)) - pl.col("due_date")).dt.total_days() > 0
    return ledger.filter((pl.col("invoice_date") < cutoff) & (known_paid | past_due)).height


def test_backtest_command_writes_json_and_metrics_table(loaded) -> None:
    out_json = loaded["root"] / "bt.json"
    res = _run(loaded["root"], loaded["db"], ["--cutoff", CUTOFF.isoformat(), "--rolling", "2",
                                              "--step-days", str(STEP), "--json", str(out_json), "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert "Backtest pm-" in res.output and "customer_history" in res.output
    results = json.loads(out_json.read_text())
    first_cut = CUTOFF - timedelta(days=STEP)
    assert [r["cutoff"] for r in results] == [first_cut.isoformat(), CUTOFF.isoformat()]
    # expanding windows: each tests up to the day before the next cut-off, the last to the data end
    assert results[0]["test_end"] == (CUTOFF - timedelta(days=1)).isoformat()
    assert results[1]["test_end"] == END.isoformat() and results[1]["data_end"] == END.isoformat()
    ledger = loaded["ledger"]
    for r, (start, end) in zip(results, [(first_cut, CUTOFF), (CUTOFF, END + timedelta(days=1))], strict=True):
        cut = date.fromisoformat(r["cutoff"])
        assert r["n_train"] == _expected_train_rows(ledger, cut)
        assert r["n_test"] == ledger.filter(pl.col("invoice_date").is_between(start, end, closed="left")).height
        preds = r["predictors"]
        assert set(preds) == {"model", "customer_history", "due_date", "majority"}
        assert 0.5 < preds["model"]["late_auc"] <= 1 and 0 <= preds["model"]["late_brier"] <= 1
        assert preds["due_date"]["late_auc"] == 0.5 and preds["model"]["mae_days"] > 0
        assert 0 <= preds["model"]["coverage_80"] <= 1
        d = r["vs_customer_history"]["late_auc_diff"]
        assert d["ci_low"] <= d["value"] <= d["ci_high"]
    with duckdb.connect(str(loaded["db"]), read_only=True) as conn:
        table = conn.sql("select * from analytics.model_backtest_metrics").pl()
    assert sorted(table["cutoff"].unique().to_list()) == [first_cut, CUTOFF]
    assert set(table["predictor"]) == {"model", "customer_history", "due_date", "majority",
                                       "model_minus_customer_history"}
    for r in results:  # the table holds the same numbers as the JSON
        row = table.filter((pl.col("model_version") == r["model_version"]) & (pl.col("predictor") == "model")
                           & (pl.col("metric") == "late_auc"))
        assert row.height == 1 and row["value"][0] == pytest.approx(r["predictors"]["model"]["late_auc"])


def test_backtest_command_ignores_payments_on_or_after_the_cutoff(loaded) -> None:
    """Move every payment dated on/after the cut-off (a week later, or erase it): the model trained
    for that cut-off must be the same (same validation metrics on its training rows, same version)."""
    first = _run(loaded["root"], loaded["db"], ["--cutoff", CUTOFF.isoformat(), "--json",
                                               str(loaded["root"] / "a.json"), "--seed", "5"])
    assert first.exit_code == 0, first.output
    ledger = loaded["ledger"]
    late = pl.col("paid_date") >= CUTOFF
    erase = (pl.col("home_total_amount") > 1000) | (pl.col("paid_date") + pl.duration(days=7) > END)
    changed = ledger.with_columns(paid_date=pl.when(late & erase).then(None)
                                  .when(late).then(pl.col("paid_date") + pl.duration(days=7))
                                  .otherwise(pl.col("paid_date")))
    assert not changed.equals(ledger)
    db2 = loaded["root"] / "changed.duckdb"
    _write_marts(db2, changed)
    second = _run(loaded["root"], db2, ["--cutoff", CUTOFF.isoformat(), "--json", str(loaded["root"] / "b.json"),
                                        "--seed", "5"])
    assert second.exit_code == 0, second.output
    a = json.loads((loaded["root"] / "a.json").read_text())[0]
    b = json.loads((loaded["root"] / "b.json").read_text())[0]
    assert a["n_train"] == b["n_train"] and a["model_version"] == b["model_version"]
    assert a["validation"] == b["validation"]
    # while the test metrics, which do read those payments, changed (so the test can fail)
    assert a["predictors"]["model"]["mae_days"] != b["predictors"]["model"]["mae_days"]
