"""Payment prediction: leak-free features, the backtest protocol, determinism, and the model
beating the customer-history baseline on two differently generated histories."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ar_pipeline.lib.generator import GeneratorConfig, generate
from ar_pipeline.lib.prediction.backtest import evaluate, run_backtest, run_rolling, split, training_rows
from ar_pipeline.lib.prediction.data import History
from ar_pipeline.lib.prediction.features import ALL_FEATURES, TIMING_FEATURES, build_features, label_frame
from ar_pipeline.lib.prediction.model import (
    TrainConfig,
    choose_on_folds,
    conformal_widening,
    outcome_known,
    timing_folds,
    train,
)
from ar_pipeline.lib.prediction.score import (
    DEFAULT_BANDS,
    RiskBand,
    RiskBands,
    assign_bands,
    load_bands,
    score_customers,
    score_open_invoices,
)

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
    f = build_features(TINY, events=pl.DataFrame({"customer_id": ["A", "A", "A", "A", "B"], "event_type": [
        "dispute_opened", "credit_memo_issued", "reminder_sent", "reminder_sent", "reminder_sent"],
        "event_date": [D("2025-02-19"), D("2025-02-20"), D("2025-02-03"), D("2025-02-20"), D("2025-01-05")]}))
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
    # reminders to A: 02-03 counts, 02-20 (same day) does not; B's reminder is B's
    assert a4["reminders_before"] == 1
    a1 = f.filter(pl.col("invoice_key") == "a1").row(0, named=True)
    assert a1["has_history"] == 0 and a1["hist_count"] == 0 and a1["open_count"] == 0
    # A's first invoice: no settlement of anyone before it, neutral prior 0.5
    assert a1["late_share"] == 0.5
    a3 = f.filter(pl.col("invoice_key") == "a3").row(0, named=True)
    # global prior at 02-01: b1 settled on time on 01-18 → prior late share 0
    assert a3["has_history"] == 0 and a3["late_share"] == 0.0 and a3["open_count"] == 2
    # a3 sees a1 overdue (due 01-31 < 02-01, unpaid)
    assert a3["overdue_count"] == 1 and a3["overdue_amount"] == 100.0


def test_hand_checked_trend_slope() -> None:
    # customer C pays 0, 2 and 4 days late on payments dated 01-31, 03-05 and 04-04: getting later
    trend = _ledger([
        ("c1", "C", "2025-01-01", "2025-01-31", "2025-01-31", 100.0),
        ("c2", "C", "2025-02-01", "2025-03-03", "2025-03-05", 100.0),
        ("c3", "C", "2025-03-01", "2025-03-31", "2025-04-04", 100.0),
        ("c4", "C", "2025-04-20", "2025-05-20", None, 100.0),
    ])
    f = build_features(trend).sort("invoice_key")
    c4 = f.row(3, named=True)
    # x = payment date in months of 30 days; least squares by numpy, independently of the polars sums
    x = np.array([(D(p) - D("2000-01-01")).days / 30 for p in ("2025-01-31", "2025-03-05", "2025-04-04")])
    slope = np.polyfit(x, [0.0, 2.0, 4.0], 1)[0]
    assert 1.5 < slope < 2.5 and c4["slope_days_late"] == pytest.approx(slope)
    # carried from the payments' mean date to c4's likely payment: due + median days late (2)
    likely = ((D("2025-05-22") - D("2000-01-01")).days) / 30
    assert c4["trend_projection_days"] == pytest.approx(slope * (likely - x.mean()))
    # fewer than three settled invoices: no slope
    assert f.row(2, named=True)["slope_days_late"] == 0.0 and f.row(2, named=True)["trend_projection_days"] == 0.0


def test_history_reads_sent_reminders_once_collections_has_a_log(tmp_path: Path) -> None:
    import duckdb

    from ar_pipeline.lib.collections.store import DDL
    from ar_pipeline.lib.prediction.data import load_events

    conn = duckdb.connect(str(tmp_path / "ar.duckdb"))
    conn.execute("""create schema marts;
        create table marts.fct_ar_events (customer_id varchar, event_type varchar, event_date date);
        insert into marts.fct_ar_events values ('A', 'dispute_opened', '2026-02-01'), ('A', 'payment', '2026-02-02')""")
    before = load_events(conn)  # no reminder log yet: the marts' events only
    assert before.rows() == [("A", "dispute_opened", D("2026-02-01"))]
    conn.execute(DDL)
    log = """insert into analytics.reminder_log (reminder_id, as_of_date, customer_id, level, channel, status,
             status_at) values (?, '2026-03-01', ?, 'friendly', 'email', ?, ?)"""
    for rid, cust, status, at in [("r1", "A", "queued", "2026-03-01 09:00:00+00"),
                                  ("r1", "A", "sent", "2026-03-01 23:30:00-05"),  # 04:30 UTC on 03-02
                                  ("r2", "B", "failed", "2026-03-01 10:00:00+00"),
                                  ("r3", "B", "called", "2026-03-03 10:00:00+00")]:
        conn.execute(log, [rid, cust, status, at])
    events = load_events(conn).sort("event_date")
    assert events.rows() == [("A", "dispute_opened", D("2026-02-01")), ("A", "reminder_sent", D("2026-03-02")),
                             ("B", "reminder_sent", D("2026-03-03"))]


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
    assert before.select(TIMING_FEATURES).equals(after.select(TIMING_FEATURES))
    # and a later payment does change a later invoice's features (the test can fail)
    later_before = build_features(ledger).filter(pl.col("invoice_date") > pivot + timedelta(days=60))
    later_after = build_features(changed).filter(pl.col("invoice_date") > pivot + timedelta(days=60))
    assert not later_before.sort("invoice_key").select(ALL_FEATURES).equals(
        later_after.sort("invoice_key").select(ALL_FEATURES))


def _table(ledger: pl.DataFrame) -> pl.DataFrame:
    return build_features(ledger).join(ledger.select("invoice_key", "paid_date"), on="invoice_key",
                                       maintain_order="left")


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


# ---------------------------------------------------------------------- protocol, interval, bands
def _history(ledger: pl.DataFrame, end: date) -> History:
    return History(ledger=ledger, events=pl.DataFrame(schema={"customer_id": pl.String, "event_type": pl.String,
                                                              "event_date": pl.Date}),
                   customers=pl.DataFrame(schema={"customer_id": pl.String, "segment": pl.String,
                                                  "region": pl.String}),
                   data_end=end, open_invoices=ledger.filter(pl.col("paid_date").is_null())
                   .with_columns(open_amount_home=pl.col("amount_home")))


def test_test_outcomes_never_change_the_chosen_model(demo) -> None:
    """Every choice (classifier family, days-to-pay family, tree size, blend, interval widening) is
    made inside the training period: rewriting every payment on/after the cut-off (the test
    period's outcomes) leaves the model and its validation record identical, while the test
    metrics do change (so the comparison can fail)."""
    cutoff, end = D("2026-01-01"), demo["end"]
    a = run_backtest(_history(demo["ledger"], end), cutoff, cfg=TrainConfig(seed=3), n_boot=20)
    changed = _shuffle_after(demo["ledger"], cutoff, seed=11)
    b = run_backtest(_history(changed, end), cutoff, cfg=TrainConfig(seed=3), n_boot=20)
    assert a["model_version"] == b["model_version"]
    assert a["validation"] == b["validation"] and a["timing_kind"] == b["timing_kind"]
    assert a["classifier_kind"] == b["classifier_kind"]
    assert a["validation"]["days_to_pay_choice"] in a["validation"]["days_to_pay_val_mae"]
    assert a["predictors"]["model"]["mae_days"] != b["predictors"]["model"]["mae_days"]


def test_outcome_known_keeps_only_settled_outcomes() -> None:
    rows = pl.DataFrame({
        "due_date": [D("2025-11-01"), D("2025-12-20"), D("2025-12-31"), D("2026-01-05"), D("2025-10-02")],
        "late": [True, False, True, False, True], "late30": [True, None, None, None, True],
        "days_to_pay": [40.0, 10.0, None, 3.0, 50.0]})
    cutoff = D("2026-01-01")  # last known day 2025-12-31
    # due before the last known day (the 12-31 one is not yet late on 12-31; 01-05 was paid early)
    assert outcome_known(rows, "late", cutoff, 90).tolist() == [True, True, False, False, True]
    # due more than 30 days before 12-31 (before 12-01)
    assert outcome_known(rows, "late30", cutoff, 90).tolist() == [True, False, False, False, True]
    # paid and due on or before cutoff - 90 days = 2025-10-03
    assert outcome_known(rows, "days_to_pay", cutoff, 90).tolist() == [False, False, False, False, True]
    # with 30 settle days (due on or before 12-02) the November one counts too
    assert outcome_known(rows, "days_to_pay", cutoff, 30).tolist() == [True, False, False, False, True]


def test_conformal_widening_by_hand() -> None:
    # 19 rows, every interval [10, 30], payments on days 2..20; level 0.8 → 10% per side,
    # rank ceil(20 × 0.9) = 18th smallest score on each side
    y = np.arange(2, 21, dtype=float)
    q = np.tile([10.0, 20.0, 30.0], (19, 1))
    lower, upper = conformal_widening(q, y)
    # lower scores 10 - y = 8 .. -10: 18th smallest is 7 (p10 → 3: only y = 2 below it)
    # upper scores y - 30 = -28 .. -10: 18th smallest is -11 (p90 → 19: only y = 20 above it)
    assert (lower, upper) == (7.0, -11.0)
    # a skewed case: one side needs widening, the other none
    y2 = np.array([12.0] * 18 + [60.0])
    lo2, hi2 = conformal_widening(np.tile([10.0, 20.0, 30.0], (19, 1)), y2)
    assert lo2 == -2.0 and hi2 == -18.0  # 18th smallest of 10 - y2 = -2; of y2 - 30: -18
    assert conformal_widening(q[:0], y[:0]) == (0.0, 0.0)


def test_timing_folds_are_backtests_inside_the_training_period() -> None:
    # 20 rows issued on days 1..20 in shuffled order, due 2 days and paid 3 days after issue, except
    # day 5's, paid on day 30; 3 validation blocks of 20% = 4 rows: days 9-12, 13-16, 17-20
    days = [7, 3, 19, 1, 12, 15, 5, 20, 9, 2, 14, 11, 18, 4, 16, 6, 10, 13, 8, 17]
    day0 = D("2025-01-01") - timedelta(days=1)
    frame = pl.DataFrame({"invoice_key": [f"k{d:02d}" for d in days],
                          "invoice_date": [day0 + timedelta(days=d) for d in days],
                          "due_date": [day0 + timedelta(days=d + 2) for d in days],
                          "paid_date": [day0 + timedelta(days=30 if d == 5 else d + 3) for d in days]})
    day = np.array(days)

    def as_days(folds):
        return [(sorted(day[f].tolist()), sorted(day[v].tolist())) for f, v in folds]

    cfg = TrainConfig(val_fraction=0.2, timing_folds=3, min_rows=1, settle_days=5, min_fold_fit_ratio=0.0)
    # fold cut-off c = the block's first issue day; fit rows: issued before it, due <= c - 5, paid < c
    assert as_days(timing_folds(frame, cfg)) == [
        ([1, 2], [9, 10, 11, 12]),                      # c 9: due <= 4 → issued <= 2
        ([1, 2, 3, 4, 6], [13, 14, 15, 16]),           # c 13: due <= 8 → issued <= 6; day 5 paid on 30
        ([1, 2, 3, 4, 6, 7, 8, 9, 10], [17, 18, 19, 20]),  # c 17: due <= 12 → issued <= 10
    ]
    # a fold with fewer than min_rows fit rows is dropped
    three = TrainConfig(val_fraction=0.2, timing_folds=3, min_rows=3, settle_days=5, min_fold_fit_ratio=0.0)
    assert [v for _, v in as_days(timing_folds(frame, three))] == [[13, 14, 15, 16], [17, 18, 19, 20]]
    # a fold fitted on fewer rows than min_fold_fit_ratio x its block (4 rows) is dropped too
    as_big = TrainConfig(val_fraction=0.2, timing_folds=3, min_rows=1, settle_days=5, min_fold_fit_ratio=1.0)
    assert [v for _, v in as_days(timing_folds(frame, as_big))] == [[13, 14, 15, 16], [17, 18, 19, 20]]
    twice = TrainConfig(val_fraction=0.2, timing_folds=3, min_rows=1, settle_days=5, min_fold_fit_ratio=2.0)
    assert [v for _, v in as_days(timing_folds(frame, twice))] == [[17, 18, 19, 20]]
    # none left: the single latest-issued slice, fitted on every earlier row
    fifty = TrainConfig(val_fraction=0.2, timing_folds=3, min_rows=50, settle_days=5)
    assert as_days(timing_folds(frame, fifty)) == [(list(range(1, 17)), [17, 18, 19, 20])]


def test_choose_on_folds_needs_a_win_on_every_fold() -> None:
    maes = {
        "customer_median": [5.0, 6.0, 5.0],   # mean 5.33
        "history_residual": [5.0, 6.0, 4.9],  # mean 5.30: never worse → eligible
        "trees_a": [4.0, 6.5, 4.0],           # mean 4.83, but worse than the median on fold 2
        "trees_b": [4.8, 5.9, 4.8],           # mean 5.17: the best of the eligible ones
    }
    assert choose_on_folds(maes) == "trees_b"
    # drop trees_b: history_residual (5.30) beats the median (5.33)
    assert choose_on_folds({k: v for k, v in maes.items() if k != "trees_b"}) == "history_residual"
    # nothing eligible beats it: the median ships; equal means go to the simpler (earlier) one
    assert choose_on_folds({"customer_median": [5.0, 5.0], "trees": [1.0, 5.5]}) == "customer_median"
    assert choose_on_folds({"customer_median": [5.0, 5.0], "trees": [5.0, 5.0]}) == "customer_median"


def test_rolling_coverage_near_80_percent(demo) -> None:
    """The calibrated 80% band covers roughly 80% of later payments at each rolling cut-off."""
    results = run_rolling(_history(demo["ledger"], demo["end"]), D("2026-03-01"), 3, 60,
                          TrainConfig(seed=5), n_boot=10)
    for r in results:
        assert 0.70 <= r["predictors"]["model"]["coverage_80"] <= 0.90, (r["cutoff"], r["predictors"]["model"])
        assert r["validation"]["days_to_pay_val_coverage_80"] == pytest.approx(0.8, abs=0.03)


def test_assign_bands_first_reached_band_wins() -> None:
    bands = RiskBands(bands=[RiskBand(name="very_high", min_p_late_30=0.3),
                             RiskBand(name="high", min_p_late_30=0.1, min_expected_days_late=15),
                             RiskBand(name="medium", min_expected_days_late=5, min_p_late=0.9)], default_band="low")
    p30 = np.array([0.5, 0.2, 0.01, 0.01, 0.01, 0.01])
    days = np.array([0.0, 0.0, 20.0, 6.0, 1.0, 1.0])
    p_late = np.array([0.1, 0.1, 0.1, 0.1, 0.95, 0.2])
    assert assign_bands(p30, days, p_late, bands) == ["very_high", "high", "high", "medium", "medium", "low"]
    assert bands.order() == ["low", "medium", "high", "very_high"]


def test_shipped_band_config_and_its_errors(tmp_path: Path) -> None:
    shipped = Path(__file__).parents[1] / "ingest_configs" / "analytics" / "risk_bands.yaml"
    assert load_bands(shipped) == DEFAULT_BANDS
    policy = Path(__file__).parents[1] / "ingest_configs" / "collections_policy.yaml"
    assert f"risk_bands: [{', '.join(DEFAULT_BANDS.order())}]" in policy.read_text()
    bad = tmp_path / "risk_bands.yaml"
    bad.write_text("bands:\n  - name: high\n    min_p_late_30: 1.5\n")
    with pytest.raises(ValueError, match=r"risk_bands\.yaml.*min_p_late_30"):
        load_bands(bad)
    bad.write_text("bands:\n  - name: high\n")
    with pytest.raises(ValueError, match="needs at least one"):
        load_bands(bad)


def test_bands_order_customers_by_realised_lateness(demo) -> None:
    """Backtest-like: train and score the customers with what was known before a cut-off, then
    look at what their invoices issued after it actually did. Worse bands must show more
    invoices paid > 30 days late and more days late, band by band."""
    cutoff, end = D("2026-01-01"), demo["end"]
    ledger = demo["ledger"]
    known = ledger.filter(pl.col("invoice_date") < cutoff).with_columns(
        paid_date=pl.when(pl.col("paid_date") < cutoff).then(pl.col("paid_date")))
    before = _history(known, cutoff - timedelta(days=1))
    model = train(training_rows(_table(known), cutoff), cutoff, TrainConfig(seed=2))
    cust = score_customers(model, before, score_open_invoices(model, before))
    later = ledger.filter(pl.col("invoice_date") >= cutoff)
    later = later.join(label_frame(later, end), on="invoice_key").filter(pl.col("late30").is_not_null())
    later = later.with_columns(days_late=pl.coalesce("days_late", (pl.lit(end) - pl.col("due_date")).dt.total_days()))
    realised = (later.join(cust.select("customer_id", "risk_band"), on="customer_id")
                .group_by("risk_band").agg(pl.len(), pl.col("late30").mean(), pl.col("days_late").mean()))
    by_band = {r["risk_band"]: r for r in realised.iter_rows(named=True)}
    present = [b for b in DEFAULT_BANDS.order() if b in by_band and by_band[b]["len"] >= 30]
    assert len(present) >= 3, by_band
    for worse, better in zip(present[1:], present[:-1], strict=True):
        assert by_band[worse]["late30"] >= by_band[better]["late30"], by_band
        assert by_band[worse]["days_late"] > by_band[better]["days_late"], by_band
    assert by_band[present[-1]]["late30"] > by_band[present[0]]["late30"] + 0.2


def test_same_rows_in_another_order_give_the_same_model(demo) -> None:
    # the marts do not keep a row order between pipeline runs: a re-run must give the same model
    ledger = demo["ledger"].filter(pl.col("invoice_date") < D("2026-03-01"))
    shuffled = ledger.sample(fraction=1.0, shuffle=True, seed=3)
    assert not shuffled["invoice_key"].equals(ledger["invoice_key"])
    cutoff, end = D("2026-01-01"), D("2026-03-01")
    a = split(_table(ledger), cutoff, end, end)
    b = split(_table(shuffled), cutoff, end, end)
    assert a.train.equals(b.train) and a.test.equals(b.test)
    ma, mb = train(a.train, cutoff, TrainConfig(seed=7)), train(b.train, cutoff, TrainConfig(seed=7))
    assert ma.predict(a.test).equals(mb.predict(a.test))
