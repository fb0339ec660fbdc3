"""Payment prediction: leak-free features, the backtest protocol, determinism, and the model
beating the customer-history baseline on two differently generated histories."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ar_pipeline.lib.generator import GeneratorConfig, generate
from ar_pipeline.lib.prediction.backtest import evaluate, split, training_rows
from ar_pipeline.lib.prediction.data import History
from ar_pipeline.lib.prediction.features import ALL_FEATURES, build_features
from ar_pipeline.lib.prediction.model import TrainConfig, train
from ar_pipeline.lib.prediction.score import score_customers, score_open_invoices

D = date.fromisoformat


def _ledger(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"invoice_key": k, "customer_id": c, "source": "quickbooks", "invoice_date": D(i), "due_date": D(d),
          "paid_date": D(p) if p else None, "currency": "USD", "amount_home": a} for k, c, i, d, p, a in rows],
        schema_overrides={"paid_date": pl.Date})


TINY = _ledger([
    # key, customer, issued, due, paid, amount
    ("a1", "A", "2025-01-01", "2025-01-31", "2025-02-10", 100.0),  # 10 days late, 40 to pay
    ("a2", "A", "2025-01-15", "2025-02-14", "2025-02-14", 300.0),  # on time, 30 to pay
    ("a3", "A", "2025-02-01", "2025-03-03", "2025-03-20", 200.0),  # 17 late
    ("a4", "A", "2025-02-20", "2025-03-22", None, 1000.0),  # the invoice we look at
    ("b1", "B", "2025-01-10", "2025-01-20", "2025-01-18", 50.0),  # other customer: only the priors
])


def test_hand_checked_features() -> None:
    f = build_features(TINY, events=pl.DataFrame({"customer_id": ["A", "A"], "event_type": [
        "dispute_opened", "credit_memo_issued"], "event_date": [D("2025-02-19"), D("2025-02-20")]}))
    a4 = f.filter(pl.col("invoice_key") == "a4").row(0, named=True)
    # settled strictly before 2025-02-20: a1 (paid 02-10, +10 late) and a2 (02-14, on time)
    assert a4["hist_count"] == 2 and a4["late_share"] == 0.5
    assert a4["mean_days_late"] == 5.0 and a4["mean_days_to_pay"] == 35.0
    assert a4["last_days_late"] == 0.0  # a2 settled last
    assert a4["median20_days_late"] == 5.0
    # open at issue: a3 (issued 02-01, unpaid on 02-20); overdue: none (a3 due 03-03)
    assert a4["open_count"] == 1 and a4["open_amount"] == 200.0 and a4["overdue_count"] == 0
    assert a4["prev_invoice_count"] == 3
    assert a4["amount_rel_log"] == pytest.approx(np.log1p(1000) - np.mean(np.log1p([100, 300, 200])))
    assert a4["terms_days"] == 30 and a4["issue_dom"] == 20
    # the dispute (02-19) is before the issue date; the credit memo (02-20, same day) is not
    assert a4["disputes_before"] == 1 and a4["credit_memos_before"] == 0
    a1 = f.filter(pl.col("invoice_key") == "a1").row(0, named=True)
    assert a1["has_history"] == 0 and a1["hist_count"] == 0 and a1["open_count"] == 0
    # A's first invoice: no settlement of anyone before it, neutral prior 0.5
    assert a1["late_share"] == 0.5
    a3 = f.filter(pl.col("invoice_key") == "a3").row(0, named=True)
    # global prior at 02-01: b1 settled on time on 01-18 → prior late share 0
    assert a3["has_history"] == 0 and a3["late_share"] == 0.0 and a3["open_count"] == 2
    # a3 sees a1 overdue (due 01-31 < 02-01, unpaid)
    assert a3["overdue_count"] == 1 and a3["overdue_amount"] == 100.0


def _shuffle_after(ledger: pl.DataFrame, pivot: date, seed: int) -> pl.DataFrame:
    """Move every payment dated on/after `pivot` to another date on/after it (or erase it)."""
    rng = np.random.default_rng(seed)
    shift = pl.Series(rng.integers(0, 200, ledger.height)).cast(pl.Int64)
    erase = pl.Series(rng.random(ledger.height) < 0.2)
    return ledger.with_columns(_s=shift, _e=erase).with_columns(
        paid_date=pl.when(pl.col("paid_date") >= pivot)
        .then(pl.when(pl.col("_e")).then(None).otherwise(pl.lit(pivot) + pl.duration(days=pl.col("_s"))))
        .otherwise(pl.col("paid_date"))).drop("_s", "_e")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    return _generated(tmp_path_factory.mktemp("pred42"), seed=42, weights=None)


def _generated(folder: Path, seed: int, weights) -> dict:
    generate(GeneratorConfig(landing_dir=folder, seed=seed, customers=120, invoices=6000,
                             end_date=D("2026-06-30"), archetype_weights=weights))
    truth = pl.read_parquet(folder / "_ground_truth" / "invoices.parquet").filter(pl.col("status_at_end") != "void")
    ledger = truth.select(
        pl.concat_str("source", pl.lit(":"), "source_invoice_id").alias("invoice_key"),
        pl.concat_str("source", pl.lit(":"), "source_customer_id").alias("customer_id"),
        "source", "invoice_date", "due_date", "paid_date", "currency",
        (pl.col("total_minor").cast(pl.Float64) / 100 * pl.col("exchange_rate").cast(pl.Float64)).alias("amount_home"))
    archetypes = truth.select(pl.concat_str("source", pl.lit(":"), "source_customer_id").alias("customer_id"),
                              "archetype").unique()
    return {"ledger": ledger, "archetypes": archetypes, "end": D("2026-06-30")}


def test_no_leakage_from_later_payments(demo) -> None:
    ledger = demo["ledger"]
    pivot = D("2025-12-01")
    before = build_features(ledger).filter(pl.col("invoice_date") <= pivot).sort("invoice_key")
    changed = _shuffle_after(ledger, pivot, seed=1)
    assert not changed.equals(ledger)
    after = build_features(changed).filter(pl.col("invoice_date") <= pivot).sort("invoice_key")
    assert before.select(ALL_FEATURES).equals(after.select(ALL_FEATURES))
    # and a later payment does change a later invoice's features (the test can fail)
    later_before = build_features(ledger).filter(pl.col("invoice_date") > pivot + timedelta(days=60))
    later_after = build_features(changed).filter(pl.col("invoice_date") > pivot + timedelta(days=60))
    assert not later_before.sort("invoice_key").select(ALL_FEATURES).equals(
        later_after.sort("invoice_key").select(ALL_FEATURES))


def _table(ledger: pl.DataFrame) -> pl.DataFrame:
    return build_features(ledger).join(ledger.select("invoice_key", "paid_date"), on="invoice_key")


def test_backtest_respects_the_cutoff(demo) -> None:
    cutoff = D("2026-01-01")
    sp = split(_table(demo["ledger"]), cutoff, D("2026-07-01"), demo["end"])
    paid = sp.train.filter(pl.col("days_to_pay").is_not_null())
    assert paid.height > 1000 and paid["paid_date"].max() < cutoff
    unsettled = sp.train.filter(pl.col("days_to_pay").is_null())
    # rows without a payment before the cut-off are only there when already past due before it
    assert unsettled.height > 0 and unsettled["due_date"].max() < cutoff - timedelta(days=1)
    assert unsettled["late"].all()
    assert sp.test.height > 500 and sp.test["invoice_date"].min() >= cutoff
    # what happens on/after the cut-off cannot change the training set
    shuffled = training_rows(_table(_shuffle_after(demo["ledger"], cutoff, seed=3)), cutoff)
    cols = ["invoice_key", *ALL_FEATURES, "late", "late30", "days_to_pay"]
    assert sp.train.sort("invoice_key").select(cols).equals(shuffled.sort("invoice_key").select(cols))


@pytest.fixture(scope="module")
def demo_backtest(demo) -> dict:
    cutoff = D("2026-01-01")
    sp = split(_table(demo["ledger"]), cutoff, D("2026-07-01"), demo["end"])
    model = train(sp.train, cutoff, TrainConfig(seed=7))
    return {"split": sp, "model": model, "result": evaluate(model, sp, n_boot=200, seed=7)}


def test_scores_are_deterministic_for_a_seed(demo_backtest) -> None:
    sp, model = demo_backtest["split"], demo_backtest["model"]
    again = train(sp.train, model.data_cutoff, TrainConfig(seed=7))
    assert again.version == model.version
    assert model.predict(sp.test).equals(again.predict(sp.test))


def test_model_beats_customer_history_on_demo_data(demo_backtest) -> None:
    r = demo_backtest["result"]["predictors"]
    assert r["model"]["late_auc"] > r["customer_history"]["late_auc"]
    assert r["model"]["mae_days"] < r["customer_history"]["mae_days"]
    assert r["model"]["late_brier"] < r["majority"]["late_brier"]
    # calibrated: a better ranking must not come with worse probabilities than the late share
    assert r["model"]["late_brier"] <= r["customer_history"]["late_brier"]
    assert 0.65 <= r["model"]["coverage_80"] <= 0.95


def test_risky_archetypes_score_riskier(demo, demo_backtest) -> None:
    ledger, end = demo["ledger"], demo["end"]
    model = demo_backtest["model"]
    history = History(ledger=ledger, events=pl.DataFrame(schema={"customer_id": pl.String, "event_type": pl.String,
                                                                 "event_date": pl.Date}),
                      customers=pl.DataFrame(schema={"customer_id": pl.String, "segment": pl.String,
                                                     "region": pl.String}),
                      data_end=end, open_invoices=ledger.filter(pl.col("paid_date").is_null())
                      .with_columns(open_amount_home=pl.col("amount_home")))
    inv = score_open_invoices(model, history)
    assert inv.height == history.open_invoices.height and inv["invoice_key"].is_unique().all()
    assert inv["p_late"].is_between(0, 1).all() and inv["p_late_30"].is_between(0, 1).all()
    assert (inv["predicted_pay_date_p10"] <= inv["predicted_pay_date_p50"]).all()
    assert (inv["predicted_pay_date_p50"] <= inv["predicted_pay_date_p90"]).all()
    assert (inv["predicted_pay_date_p10"] > end).all()
    cust = score_customers(model, history, inv).join(demo["archetypes"], on="customer_id")
    mean = dict(cust.group_by("archetype").agg(pl.col("risk_score").mean()).iter_rows())
    # the generator's prompt payers still pay a few days late often; chronic late payers much more
    assert mean["chronic_late"] > mean["prompt_payer"] + 10
    assert mean["deteriorating"] > mean["prompt_payer"]


@pytest.fixture(scope="module")
def other_result(tmp_path_factory) -> dict:
    """A differently generated history: other seed, more prompt payers, fewer chronic late ones."""
    other = _generated(tmp_path_factory.mktemp("pred2024"), seed=2024, weights=(0.5, 0.1, 0.05, 0.15, 0.15, 0.05))
    cutoff = D("2026-02-01")
    sp = split(_table(other["ledger"]), cutoff, D("2026-07-01"), other["end"])
    return evaluate(train(sp.train, cutoff, TrainConfig(seed=1)), sp, n_boot=50, seed=1)["predictors"]


def test_late_auc_at_least_as_good_on_another_history(other_result) -> None:
    r = other_result
    assert r["model"]["late_auc"] >= r["customer_history"]["late_auc"]
    assert r["model"]["late_brier"] <= r["customer_history"]["late_brier"]


def test_days_to_pay_mae_at_least_as_good_on_another_history(other_result) -> None:
    r = other_result
    assert r["model"]["mae_days"] <= r["customer_history"]["mae_days"]
