"""Cash forecast: hand-checked distributions, scenario arithmetic, alerts at the threshold, band
coverage, determinism and no look-ahead in the replay. Small frames only."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ar_pipeline.lib.cash_application.config import AnalyticsConfigError
from ar_pipeline.lib.forecast import backtest as fbt
from ar_pipeline.lib.forecast.calibration import (
    PastForecasts,
    calibrated_bands,
    calibration_ratios,
    conformal_band,
    error_scale,
    plotting_quantile,
    weekly_actual,
    weekly_expected,
)
from ar_pipeline.lib.forecast.model import (
    HORIZON_DAYS,
    T_MIN,
    Forecast,
    ForecastConfig,
    NewBilling,
    OpenBook,
    _weekly,
    _weight,
    build_forecast,
    conditional_probs,
    expected_home_total,
    km_hazard,
    new_billing,
    open_book,
    sim_weekly_bands,
    size_excess,
    size_slope,
    weekly_table,
)
from ar_pipeline.lib.forecast.monitor import alerts, breaches, gap_customers, replay_dates, vs_actual
from ar_pipeline.lib.forecast.scenarios import (
    CashPosition,
    Scenario,
    load_settings,
    scenario_weekly,
)

F = date(2026, 3, 4)  # a Wednesday


def ledger(rows: list[dict]) -> pl.DataFrame:
    schema = {"invoice_key": pl.String, "customer_id": pl.String, "invoice_date": pl.Date, "due_date": pl.Date,
              "paid_date": pl.Date, "currency": pl.String, "amount": pl.Float64, "amount_home": pl.Float64,
              "segment": pl.String}
    return pl.DataFrame([{"currency": "USD", "segment": "smb", "paid_date": None, **r} for r in rows],
                        schema=schema).with_columns(pl.col("amount").alias("amount_home"))


# --- hand-checked distributions -------------------------------------------------------------

def test_km_hazard_counts_by_hand() -> None:
    # 4 invoices entering at t=0, paid at t = 1, 1, 2, 3; one censored at t = 2 (at risk 0..2)
    entry = np.array([0, 0, 0, 0, 0])
    exit_ = np.array([1, 1, 2, 3, 2])
    event = np.array([True, True, True, True, False])
    events, at_risk = km_hazard(entry, exit_, event, np.zeros(5, dtype=np.int64), 1, 0, 4)
    assert events[0].tolist() == [0, 2, 1, 1, 0]
    assert at_risk[0].tolist() == [5, 5, 3, 1, 0]


def test_conditional_probs_by_hand() -> None:
    hazard = np.array([[0.0, 0.5, 0.5, 1.0, 0.0]])
    # open at step 0: pays on step 1 with 0.5, step 2 with 0.25, step 3 with 0.25
    p = conditional_probs(hazard, np.array([0]), horizon=4)
    assert p[0].tolist() == [0.5, 0.25, 0.25, 0.0]
    # still open after step 1: 0.5 on step 2, 0.5 on step 3
    assert conditional_probs(hazard, np.array([1]), horizon=3)[0].tolist() == [0.5, 0.5, 0.0]


def test_one_open_invoice_daily_expectation_by_hand() -> None:
    """Customer A's 4 settled invoices (same due date, 100 each) paid 1, 1, 2 and 3 days after due:
    hazard 1/2, 1/2, 1 on those days. Its open invoice of 1000 due on F is expected 500 on F+1,
    250 on F+2, 250 on F+3 and nothing after (weekday factors are 1: one payment weekday each)."""
    due = F - timedelta(days=30)
    hist = [{"invoice_key": f"h{i}", "customer_id": "A", "invoice_date": due, "due_date": due,
             "paid_date": due + timedelta(days=d), "amount": 100.0} for i, d in enumerate([1, 1, 2, 3])]
    opn = {"invoice_key": "open", "customer_id": "A", "invoice_date": F, "due_date": F, "amount": 1000.0}
    book = open_book(ledger([*hist, opn]), F, ForecastConfig(shrink=0.0))
    assert book.invoices["invoice_key"].to_list() == ["open"]
    daily = book.invoices["amount_home"].to_numpy()[0] * book.probs[0]
    assert daily[:4] == pytest.approx([500.0, 250.0, 250.0, 0.0])
    assert daily[4:].sum() == pytest.approx(0.0)


def test_new_billing_by_hand() -> None:
    """7 invoices of 70 issued on each of the last 7 days, every settled one paid exactly 2 days after
    issue: run-rate 70 a day, nothing collected on days 1-2, then 70 every day."""
    rows = [{"invoice_key": f"n{k}", "customer_id": "B", "invoice_date": F - timedelta(days=k),
             "due_date": F - timedelta(days=k) + timedelta(days=2),
             "paid_date": F - timedelta(days=k) + timedelta(days=2) if k >= 2 else None, "amount": 70.0}
            for k in range(7)]
    new = new_billing(ledger(rows), F, ForecastConfig(run_rate_days=7))
    assert new.currencies == ["USD"]
    assert new.amount[0][:5].tolist() == pytest.approx([0.0, 0.0, 70.0, 70.0, 70.0])
    assert new.amount[0][-1] == pytest.approx(70.0)


# --- scenarios ------------------------------------------------------------------------------

def hand_forecast() -> Forecast:
    """X owes 100, surely paid on day 3 (week 1); Y owes 200, surely paid on day 10 (week 2)."""
    inv = pl.DataFrame({"invoice_key": ["x1", "y1"], "customer_id": ["X", "Y"], "currency": ["USD", "USD"],
                        "amount": [100.0, 200.0], "amount_home": [100.0, 200.0], "segment": ["smb", "enterprise"]})
    probs = np.zeros((2, HORIZON_DAYS))
    probs[0, 2] = 1.0
    probs[1, 9] = 1.0
    book = OpenBook(invoices=inv, probs=probs, customer_index=np.array([0, 1]), customers=["X", "Y"])
    new = NewBilling(["USD"], np.zeros((1, HORIZON_DAYS)), np.zeros((1, HORIZON_DAYS)))
    return Forecast(forecast_date=F, book=book, new=new)


def scen(name: str, *shocks: dict) -> Scenario:
    return Scenario.model_validate({"name": name, "shocks": list(shocks)})


def weeks_of(frame: pl.DataFrame, name: str, col: str = "scenario_expected_home") -> list[float]:
    return frame.filter(pl.col("scenario") == name).sort("week")[col].to_list()[:4]


def test_scenario_arithmetic() -> None:
    cfg = ForecastConfig(n_sims=50)
    out = scenario_weekly(hand_forecast(), cfg, [
        scen("top1_late5", {"kind": "top_customers_late", "top_n": 1, "days": 5}),
        scen("x_no_pay", {"kind": "customer_no_pay", "customer_id": "X"}),
        scen("dso7", {"kind": "dso_worsens", "days": 7}),
        scen("ent14", {"kind": "segment_slip", "segment": "enterprise", "days": 14}),
        scen("combo", {"kind": "customer_no_pay", "customer_id": "X"}, {"kind": "dso_worsens", "days": 7},
             {"kind": "top_customers_late", "top_n": 1, "days": 70}),
    ], CashPosition(), "USD")
    assert weeks_of(out, "base") == [100.0, 200.0, 0.0, 0.0]
    assert weeks_of(out, "top1_late5") == [100.0, 0.0, 200.0, 0.0]  # Y (largest open) day 10 -> 15
    assert weeks_of(out, "top1_late5", "difference_home") == [0.0, -200.0, 200.0, 0.0]
    assert weeks_of(out, "x_no_pay") == [0.0, 200.0, 0.0, 0.0]
    assert weeks_of(out, "dso7") == [0.0, 100.0, 200.0, 0.0]
    assert weeks_of(out, "ent14") == [100.0, 0.0, 0.0, 200.0]  # Y is the enterprise customer
    combo = out.filter(pl.col("scenario") == "combo")["scenario_expected_home"].to_list()
    # X never pays; Y (top 1) slips 7 + 70 days: day 10 -> day 87, in week 13 (days 85..91)
    assert combo == [0.0] * 12 + [200.0]


def test_scenario_shift_past_horizon_leaves_forecast() -> None:
    out = scenario_weekly(hand_forecast(), ForecastConfig(n_sims=50),
                          [scen("far", {"kind": "dso_worsens", "days": 85})], CashPosition(), "USD")
    # X: day index 2 + 85 = 87 -> week 13; Y: 9 + 85 = 94 -> beyond day 91, out of the horizon
    assert out.filter(pl.col("scenario") == "far").sort("week")["scenario_expected_home"].to_list() == \
        [0.0] * 12 + [100.0]


def test_cash_position_threshold_week() -> None:
    # opening 100, outflows 150 a week: 100+100-150 = 50, 100+300-300 = 100, 100+300-450 = -50 -> week 3
    out = scenario_weekly(hand_forecast(), ForecastConfig(n_sims=50), [],
                          CashPosition(opening_balance=100, weekly_outflows=150, minimum_balance=0), "USD")
    base = out.filter(pl.col("scenario") == "base").sort("week")
    assert base["cash_position_home"].to_list()[:3] == [50.0, 100.0, -50.0]
    assert base["first_week_below_minimum"][0] == 3
    never = scenario_weekly(hand_forecast(), ForecastConfig(n_sims=50), [], CashPosition(), "USD")
    assert never["first_week_below_minimum"].null_count() == never.height


def synthetic_ledger(seed: int = 3, n_customers: int = 12, days: int = 420, end: date = F) -> pl.DataFrame:
    """A small random ledger: each customer bills every few days and pays after its own lag."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_customers):
        mean_lag = rng.uniform(20, 60)
        d = end - timedelta(days=days)
        k = 0
        while d <= end:
            lag = int(max(0, rng.normal(mean_lag, 8)))
            paid = d + timedelta(days=lag)
            rows.append({"invoice_key": f"c{c}-{k}", "customer_id": f"C{c}", "invoice_date": d,
                         "due_date": d + timedelta(days=30), "paid_date": paid if paid <= end else None,
                         "amount": float(rng.uniform(100, 1000)), "currency": "USD" if c % 3 else "EUR",
                         "segment": "enterprise" if c < 3 else "smb"})
            d += timedelta(days=int(rng.integers(3, 10)))
            k += 1
    return ledger(rows).with_columns((pl.col("amount") * pl.when(pl.col("currency") == "EUR").then(1.1)
                                      .otherwise(1.0)).alias("amount_home"))


def test_unshifted_scenario_reproduces_base_exactly() -> None:
    led = synthetic_ledger()
    cfg = ForecastConfig(n_sims=200, seed=5)
    fc = build_forecast(led, F, cfg)
    weekly = weekly_table(fc, "USD").filter(pl.col("currency") == "ALL").sort("week")
    out = scenario_weekly(fc, cfg, [scen("nothing"), scen("zero", {"kind": "dso_worsens", "days": 0})],
                          CashPosition(), "USD")
    for name in ("base", "nothing", "zero"):
        part = out.filter(pl.col("scenario") == name).sort("week")
        assert part["scenario_expected_home"].to_list() == weekly["expected_home"].to_list()
        assert part["scenario_p10_home"].to_list() == weekly["p10_amount"].to_list()
        assert part["scenario_p90_home"].to_list() == weekly["p90_amount"].to_list()
        assert part["difference_home"].to_list() == [0.0] * 13


def test_forecast_is_deterministic_for_a_seed_and_bands_are_ordered() -> None:
    led = synthetic_ledger()
    a = weekly_table(build_forecast(led, F, ForecastConfig(n_sims=200, seed=1)), "USD")
    b = weekly_table(build_forecast(led, F, ForecastConfig(n_sims=200, seed=1)), "USD")
    c = weekly_table(build_forecast(led, F, ForecastConfig(n_sims=200, seed=2)), "USD")
    assert a.equals(b)
    assert not a["p10_amount"].equals(c["p10_amount"])
    assert (a["p10_amount"] <= a["p50_amount"]).all() and (a["p50_amount"] <= a["p90_amount"]).all()
    # per-currency home values add up to the 'ALL' rows
    per_cur = a.filter(pl.col("currency") != "ALL").group_by("week").agg(pl.col("expected_home").sum()).sort("week")
    assert per_cur["expected_home"].to_list() == pytest.approx(
        a.filter(pl.col("currency") == "ALL").sort("week")["expected_home"].to_list())


def test_settings_yaml_errors_name_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "forecast_scenarios.yaml").write_text(
        "scenarios:\n  - name: bad\n    shocks:\n      - {kind: dso_worsens, days: -3}\n")
    with pytest.raises(AnalyticsConfigError) as err:
        load_settings(tmp_path)
    assert "forecast_scenarios.yaml" in str(err.value) and "scenarios.0.shocks.0.dso_worsens.days" in str(err.value)
    (tmp_path / "forecast_scenarios.yaml").write_text("scenarios:\n  - {name: a}\n  - {name: a}\n")
    with pytest.raises(AnalyticsConfigError, match="scenarios.name"):
        load_settings(tmp_path)
    (tmp_path / "forecast_scenarios.yaml").write_text("alerts: {deviation_pct: 10, oops: 1}\n")
    with pytest.raises(AnalyticsConfigError, match="alerts.oops"):
        load_settings(tmp_path)


def test_shipped_settings_load() -> None:
    shipped = Path(__file__).resolve().parent.parent / "ingest_configs" / "analytics"
    settings = load_settings(shipped)
    assert settings.scenarios and settings.alerts.deviation_pct > 0


# --- alerts ---------------------------------------------------------------------------------

def vs_table(actuals: list[float], forecast: float = 100.0) -> pl.DataFrame:
    rows = []
    for i, a in enumerate(actuals):
        f = F + timedelta(days=7 * i)
        rows.append({"forecast_date": f, "week": 1, "week_start": f + timedelta(days=1),
                     "week_end": f + timedelta(days=7), "forecast_home": forecast, "p10_home": 0.0, "p90_home": 0.0,
                     "actual_home": a, "deviation_home": a - forecast,
                     "deviation_pct": 100 * (a - forecast) / forecast, "in_band": False})
    return pl.DataFrame(rows)


def test_alerts_fire_at_the_threshold_and_not_below() -> None:
    table = vs_table([125.0, 124.0, 75.0, 76.0, 100.0])
    hit = breaches(table, 25.0)
    assert hit["actual_home"].to_list() == [125.0, 75.0]
    assert breaches(table, 25.1).height == 0
    out = alerts(table, {}, pl.DataFrame(), 25.0, 3, "USD")
    assert out.height == 2
    assert out["message"][0].startswith(f"Week {F + timedelta(days=1)}") and "+25.0%" in out["message"][0]


def test_alert_names_the_customers_behind_the_gap() -> None:
    fc = hand_forecast()  # X expected 100 in week 1; Y expected in week 2
    led = pl.DataFrame({"invoice_key": ["x1", "y1"], "paid_date": [None, F + timedelta(days=5)]},
                       schema={"invoice_key": pl.String, "paid_date": pl.Date})
    # week 1: X did not pay (-100), Y paid early (+200): net gap +100, explained by Y
    assert gap_customers(fc, led, 1, 3, +100.0) == [("Y", 200.0)]
    assert gap_customers(fc, led, 1, 3, -100.0) == [("X", -100.0)]


# --- backtest metrics -----------------------------------------------------------------------

def test_band_coverage_wape_and_bias_by_hand() -> None:
    actual = np.array([10.0, 20.0, 30.0, 40.0])
    low = np.array([10.0, 21.0, 0.0, 41.0])  # bounds count as inside
    high = np.array([12.0, 25.0, 30.0, 50.0])
    assert fbt.coverage(actual, low, high) == 0.5
    forecast = np.array([12.0, 18.0, 30.0, 50.0])
    assert fbt.wape(forecast, actual) == pytest.approx((2 + 2 + 0 + 10) / 100)
    assert fbt.bias(forecast, actual) == pytest.approx((2 - 2 + 0 + 10) / 100)
    detail = pl.DataFrame({"forecast_date": [F] * 4, "week": [1, 1, 2, 2], "predictor": ["model"] * 4,
                           "forecast": forecast, "actual": actual, "p10": low, "p90": high})
    m = fbt.metrics(detail)
    cov = m.filter((pl.col("predictor") == "model") & (pl.col("metric") == "coverage_80"))
    assert dict(zip(cov["horizon_week"], cov["value"], strict=True))[0] == 0.5
    assert dict(zip(cov["horizon_week"], cov["value"], strict=True))[1] == 0.5  # week 1: 10 in, 20 out


def test_replay_reads_nothing_after_the_forecast_date() -> None:
    """Changing what happened after F (later payments, later invoices) leaves the forecast at F unchanged."""
    led = synthetic_ledger()
    cfg = ForecastConfig(n_sims=100)
    f = F - timedelta(days=60)
    changed = led.with_columns(
        pl.when(pl.col("paid_date") > f).then(pl.col("paid_date") + timedelta(days=9)).otherwise(pl.col("paid_date"))
        .alias("paid_date"),
        pl.when(pl.col("invoice_date") > f).then(pl.col("amount_home") * 3).otherwise(pl.col("amount_home"))
        .alias("amount_home"))
    a, b = fbt.model_weekly(led, f, cfg), fbt.model_weekly(changed, f, cfg)
    # equal up to float summation order (parallel aggregation may add the same terms in another order);
    # anything read after F would move these by whole amounts, not in the 12th digit
    for x, y in zip(a, b, strict=True):
        assert x.tolist() == pytest.approx(y.tolist(), rel=1e-12, abs=1e-9)
    assert fbt.aging_curve_baseline(led, f, cfg).tolist() == pytest.approx(
        fbt.aging_curve_baseline(changed, f, cfg).tolist(), rel=1e-12, abs=1e-9)
    assert fbt.due_date_baseline(led, f, 56).tolist() == pytest.approx(
        fbt.due_date_baseline(changed, f, 56).tolist(), rel=1e-12, abs=1e-9)


def test_backtest_runs_and_scores_only_complete_weeks() -> None:
    led = synthetic_ledger()
    start, end = F - timedelta(days=140), F - timedelta(days=84)
    detail, metrics = fbt.run(led, F, start, end, replace(ForecastConfig(), n_sims=100))
    assert set(detail["predictor"]) == set(fbt.PREDICTORS)
    scored = detail.filter(pl.col("actual").is_not_null())
    assert scored.select((pl.col("forecast_date") + pl.duration(days=pl.col("week") * 7)) <= F)[:, 0].all()
    # the last date (F - 84) has weeks 1..12 complete, week 13 (ending F + 7) not
    last = detail.filter((pl.col("forecast_date") == end) & (pl.col("predictor") == "model"))
    assert last.filter(pl.col("actual").is_null())["week"].to_list() == [13]
    w = metrics.filter((pl.col("metric") == "wape") & (pl.col("horizon_week") == 0))
    assert w["value"].is_not_null().all()
    with pytest.raises(ValueError, match="after the data end"):
        fbt.run(led, F, start, F + timedelta(days=1))


def test_open_book_uses_open_amounts_when_given() -> None:
    led = synthetic_ledger()
    book = open_book(led, F, ForecastConfig())
    key = book.invoices["invoice_key"][0]
    part = pl.DataFrame({"invoice_key": [key], "amount": [1.0], "amount_home": [1.5]})
    book2 = open_book(led, F, ForecastConfig(), open_amounts=part)
    assert book2.invoices["invoice_key"].to_list() == [key]
    assert book2.invoices["amount_home"].to_list() == [1.5]
    assert book2.probs[0].tolist() == book.probs[0].tolist()
    assert T_MIN < 0


def test_forecast_backtest_cli_writes_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import duckdb
    from click.testing import CliRunner

    from ar_pipeline.cli import main

    led = synthetic_ledger()
    db = tmp_path / "ar.duckdb"
    with duckdb.connect(str(db)) as conn:
        conn.execute("create schema marts")
        inv = led.with_columns(
            pl.col("amount").alias("total_amount"), pl.col("amount_home").alias("home_total_amount"),
            pl.when(pl.col("paid_date").is_null()).then(pl.col("amount")).otherwise(0.0).alias("open_amount"),
            pl.when(pl.col("paid_date").is_null()).then(pl.col("amount_home")).otherwise(0.0).alias("home_open_amount"),
            pl.when(pl.col("paid_date").is_null()).then(pl.lit("open")).otherwise(pl.lit("paid")).alias("status"),
            pl.lit(F).alias("as_of_date")).drop("amount", "amount_home", "segment")
        conn.register("_inv", inv.to_arrow())
        conn.execute("create table marts.fct_invoices as select * from _inv")
        conn.execute("create table marts.dim_customers as select distinct customer_id, 'smb' as segment from _inv")
    monkeypatch.setenv("AR_DUCKDB_PATH", str(db))
    monkeypatch.setenv("AR_INGEST_CONFIG_DIR", str(tmp_path / "no_configs"))
    start, end = F - timedelta(days=140), F - timedelta(days=91)
    result = CliRunner().invoke(main, ["forecast-backtest", "--from", str(start), "--to", str(end), "--sims", "50"])
    assert result.exit_code == 0, result.output
    assert "aging_curve" in result.output and "wape" in result.output
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.sql("select predictor, count(*) from analytics.forecast_backtest_metrics group by 1").fetchall()
    assert {r[0] for r in rows} == set(fbt.PREDICTORS)
    bad = CliRunner().invoke(main, ["forecast-backtest", "--from", "2026-99-01", "--to", str(end)])
    assert bad.exit_code != 0 and "--from" in bad.output
    late = CliRunner().invoke(main, ["forecast-backtest", "--from", str(start), "--to", str(F + timedelta(days=1))])
    assert late.exit_code != 0 and "after the data end" in late.output


# --- weekday factor, size shift, per-horizon conformal bands ---------------------------------

def test_weekday_factor_scales_cumulative_hazard_and_keeps_weekly_survival() -> None:
    """A constant daily hazard of 0.5 with weekday factors averaging 1 over a week (2 on the busy
    day, 0 on the next, 1 otherwise): the busy day's hazard is 1 - 0.5^2 = 0.75 (not min(2 × 0.5,
    1) = 1), the idle day's 0, and the chance of paying within the 7 days stays 1 - 0.5^7 exactly
    (multiplying h put all the mass on the busy day: week-1 bias)."""
    hazard = np.full((1, 20), 0.5)
    factors = np.array([2.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    p = conditional_probs(hazard, np.array([0]), horizon=7, day_factor=factors)[0]
    assert p[:2].tolist() == pytest.approx([0.75, 0.0])
    assert p[2] == pytest.approx(0.25 * 0.5)
    assert p.sum() == pytest.approx(1 - 0.5 ** 7)
    assert conditional_probs(hazard, np.array([0]), horizon=7, day_factor=np.ones(7))[0].tolist() == pytest.approx(
        conditional_probs(hazard, np.array([0]), horizon=7)[0].tolist())


def test_remaining_time_of_an_invoice_already_overdue_by_hand() -> None:
    """Customer A's settled invoices paid 7, 7, 14 and 28 days after due (hazard 1/2 at +7, 1/2 at
    +14, 1 at +28; every due date a Wednesday, so one payment weekday and weekday factors 1). An
    invoice already 7 days overdue (still open after +7) has left the +7 mass behind: it pays 7 days
    after F (+14) with 1/2 and 21 days after F (+28) with 1/2. A new one due on F pays on F+7 with
    2/5 (the 7-days-overdue open invoice was at risk on +7 and did not pay: 2 of 5), then 3/5 × 1/2
    on F+14 and the rest on F+28. No recency weighting (huge half-life), no shrinkage."""
    due = F - timedelta(days=63)
    hist = [{"invoice_key": f"h{i}", "customer_id": "A", "invoice_date": due - timedelta(days=30), "due_date": due,
             "paid_date": due + timedelta(days=d), "amount": 100.0} for i, d in enumerate([7, 7, 14, 28])]
    late = {"invoice_key": "o_late", "customer_id": "A", "invoice_date": F - timedelta(days=37),
            "due_date": F - timedelta(days=7), "amount": 100.0}
    now = {"invoice_key": "o_now", "customer_id": "A", "invoice_date": F - timedelta(days=30), "due_date": F,
           "amount": 100.0}
    book = open_book(ledger([*hist, late, now]), F, ForecastConfig(shrink=0.0, half_life_days=1e12))
    p = dict(zip(book.invoices["invoice_key"].to_list(), book.probs, strict=True))
    assert np.nonzero(p["o_late"])[0].tolist() == [6, 20]  # days F+7, F+21 (index = day - 1)
    assert p["o_late"][[6, 20]].tolist() == pytest.approx([0.5, 0.5])
    assert np.nonzero(p["o_now"])[0].tolist() == [6, 13, 27]
    assert p["o_now"][[6, 13, 27]].tolist() == pytest.approx([0.4, 0.3, 0.3])


def test_size_excess_and_within_customer_slope_by_hand() -> None:
    frame = pl.DataFrame({"customer_id": ["A", "A", "A", "B"], "amount_home": [100.0, 100.0, 400.0, 50.0]})
    ref = pl.DataFrame({"customer_id": ["A", "A", "A"], "amount_home": [100.0, 100.0, 400.0]})
    assert size_excess(frame, ref).tolist() == pytest.approx([0.0, 0.0, np.log(4.0), 0.0])  # B: no history
    # A: 0 and 6 days late at excess 0 and 1; B: 10 and 16: 6 days per unit within customers
    # (a pooled fit would mix B's lateness into the slope)
    slope = size_slope(np.array([0.0, 6.0, 10.0, 16.0]), np.array([0.0, 1.0, 0.0, 1.0]),
                       np.array([0, 0, 1, 1]), 2)
    assert slope == pytest.approx(6.0)
    assert size_slope(np.array([1.0, 2.0]), np.array([0.5, 0.5]), np.array([0, 0]), 1) == 0.0


def test_conformal_band_interpolated_quantiles_on_a_tiny_series() -> None:
    # n = 9 ratios 0.1 .. 0.9: positions 0.1 × 10 = 1, 0.5 × 10 = 5, 0.9 × 10 = 9 -> r(1), r(5), r(9)
    r = np.arange(1, 10) / 10
    assert conformal_band(r, 1000.0) == pytest.approx((100.0, 500.0, 900.0))
    # n = 14 ratios 10, 20, .., 140 (shuffled): positions 1.5, 7.5, 13.5 -> halfway between neighbours
    r14 = np.array([70, 10, 140, 30, 120, 50, 20, 90, 60, 110, 40, 130, 80, 100], dtype=np.float64)
    assert conformal_band(r14, 2.0) == pytest.approx((30.0, 150.0, 270.0))
    # n = 26 ratios 1 .. 26 (the default window): positions 2.7, 13.5, 24.3
    r26 = np.arange(1, 27, dtype=np.float64)
    assert conformal_band(r26, 1.0) == pytest.approx((2.7, 13.5, 24.3))
    assert plotting_quantile(r26, 0.1) == pytest.approx(2.7)
    # the same rule as numpy's (n + 1) plotting position ("weibull") on irregular values
    rng = np.random.default_rng(3)
    x = np.sort(rng.lognormal(0.0, 0.3, 23))
    assert conformal_band(x, 1.0) == pytest.approx(tuple(np.quantile(x, [0.1, 0.5, 0.9], method="weibull")))
    # too few (8 < 9: position 0.9 × 9 = 8.1 is past the largest), not finite, or below min_n: no band
    assert plotting_quantile(r[:8], 0.9) is None and plotting_quantile(r[:8], 0.1) is None
    assert conformal_band(r[:8], 1000.0, min_n=1) is None
    assert conformal_band(r[:8], 1000.0) is None
    assert conformal_band(np.array([np.nan] * 20), 1000.0) is None
    assert conformal_band(r, 1000.0, min_n=20) is None


def test_calibrated_bands_fall_back_to_the_simulation_per_week() -> None:
    sim = np.array([[1.0] * 13, [2.0] * 13, [3.0] * 13])
    ratios = [np.arange(1, 10) / 10] + [np.array([0.5, 1.5])] * 12  # only week 1 has 9 ratios
    q, src = calibrated_bands({"ALL": np.full(13, 10.0)}, {"ALL": sim}, {"ALL": ratios}, min_n=9)["ALL"]
    assert src == ["conformal"] + ["simulation"] * 12
    assert q[:, 0].tolist() == pytest.approx([1.0, 5.0, 9.0])
    assert q[:, 1:].tolist() == sim[:, 1:].tolist()


def test_calibration_uses_only_weeks_complete_at_the_forecast_date() -> None:
    """The ratios at F come from forecasts F - 7j whose week h ended by F (j >= h), at most
    `window` per week, and do not move when what happened after F changes."""
    led = synthetic_ledger()
    cfg = ForecastConfig(n_sims=50)
    f = F - timedelta(days=60)
    r = calibration_ratios(PastForecasts(led, cfg), f, window=5)["ALL"]
    assert [len(x) for x in r] == [5] * 13
    changed = led.with_columns(pl.when(pl.col("paid_date") > f).then(pl.col("paid_date") + timedelta(days=9))
                               .otherwise(pl.col("paid_date")).alias("paid_date"))
    r2 = calibration_ratios(PastForecasts(changed, cfg), f, window=5)["ALL"]
    for a, b in zip(r, r2, strict=True):
        assert a.tolist() == pytest.approx(b.tolist(), rel=1e-12)
    # week 13 of the latest usable forecast (F - 91) ended exactly on F
    past = PastForecasts(led, cfg)
    fp = f - timedelta(days=91)
    act = weekly_actual(led, fp, f)["ALL"]
    assert np.isfinite(act[12]) and r[12][0] == pytest.approx(act[12] / past.expected(fp)["ALL"][12])
    assert np.isnan(weekly_actual(led, fp + timedelta(days=7), f)["ALL"][12])


def test_error_scale_is_the_median_absolute_log_ratio_on_a_tiny_series() -> None:
    e = math.e
    # |log r| over both weeks: 1, 1, 2, 0, 0.5 -> median 1
    assert error_scale([np.array([e, 1 / e]), np.array([e**2, 1.0, e**-0.5])]) == pytest.approx(1.0)
    # a zero ratio (nothing collected) counts as |log r| = inf: 0.5, 2, inf -> median 2
    assert error_scale([np.array([0.0, e**2, e**-0.5])]) == pytest.approx(2.0)
    assert error_scale([np.array([]), np.array([np.nan])]) is None
    assert error_scale([np.array([1.0, 1.0, 2.0])]) is None  # median 0: no scale


def test_scale_adaptive_ratios_rescale_log_errors_by_the_recent_level() -> None:
    """With scale_window k, each ratio r of forecast F - 7j becomes r ** (s(F) / s(F - 7j)), s(X) the
    median |log r| of the unscaled ratios of the last k forecasts per week complete at X; still
    nothing after F is read."""
    led = synthetic_ledger()
    cfg = ForecastConfig(n_sims=50)
    f = F - timedelta(days=60)
    past = PastForecasts(led, cfg)
    raw = calibration_ratios(past, f, window=5)["ALL"]

    def s(x: date) -> float:
        v = np.concatenate(calibration_ratios(PastForecasts(led, cfg), x, window=2)["ALL"])
        return float(np.median(np.abs(np.log(v))))

    adj = calibration_ratios(past, f, window=5, scale_window=2)["ALL"]
    for h in (0, 6, 12):  # week h + 1: the ratios come from F - 7j, j = h + 1 .. h + 5 (all complete)
        want = [raw[h][i] ** (s(f) / s(f - timedelta(days=7 * (h + 1 + i)))) for i in range(5)]
        assert adj[h].tolist() == pytest.approx(want, rel=1e-9)
    changed = led.with_columns(pl.when(pl.col("paid_date") > f).then(pl.col("paid_date") + timedelta(days=9))
                               .otherwise(pl.col("paid_date")).alias("paid_date"))
    adj2 = calibration_ratios(PastForecasts(changed, cfg), f, window=5, scale_window=2)["ALL"]
    for a, b in zip(adj, adj2, strict=True):
        assert a.tolist() == pytest.approx(b.tolist(), rel=1e-12)


def test_weekly_table_uses_calibrated_bands_and_says_so() -> None:
    fc = build_forecast(synthetic_ledger(), F, ForecastConfig(n_sims=100))
    exp = weekly_expected(fc)
    ratios = {c: [np.linspace(0.8, 1.2, 19)] * 13 for c in exp}
    bands = calibrated_bands(exp, sim_weekly_bands(fc), ratios, min_n=9)
    w = weekly_table(fc, "USD", bands).filter(pl.col("currency") == "ALL").sort("week")
    assert set(w["band_source"].to_list()) == {"conformal"}
    lo = np.sort(np.linspace(0.8, 1.2, 19))[1]
    assert w["p10_amount"].to_list() == pytest.approx((w["expected_home"] * lo).to_list())


def test_new_billing_per_customer_uses_each_customers_lag() -> None:
    """A bills 10 a day and pays 1 day after issue, B bills 30 a day and pays 3 days after issue
    (the unpaid ones censored; A also has 3 older weeks of history): per customer, nothing on day
    1, A's 10 from day 2, B's 30 on top from day 4. The pooled lag is dominated by A's long history
    and pays too much of B's billing on days 2-3."""
    rows = []
    for cust, amount, lag, n_days in (("A", 10.0, 1, 28), ("B", 30.0, 3, 7)):
        for k in range(n_days):
            issued = F - timedelta(days=k)
            rows.append({"invoice_key": f"{cust}{k}", "customer_id": cust, "invoice_date": issued,
                         "due_date": issued + timedelta(days=lag),
                         "paid_date": issued + timedelta(days=lag) if k >= lag else None, "amount": amount})
    cfg = ForecastConfig(run_rate_days=7, shrink=0.0, half_life_days=1e12)
    new = new_billing(ledger(rows), F, cfg)
    assert new.amount[0][:6].tolist() == pytest.approx([0.0, 10.0, 10.0, 40.0, 40.0, 40.0])
    pooled = new_billing(ledger(rows), F, replace(cfg, new_by_customer=False))
    assert pooled.amount[0][1] > 10.0 + 1.0


def test_recency_weights_average_one_whatever_the_half_life() -> None:
    """Two equal invoices issued on F and 60 days earlier: with a 60-day half-life the recency
    weights 1 and 1/2 are scaled to mean 1 (4/3 and 2/3), so the shrinkage pseudo-count is still
    measured in average invoices."""
    frame = ledger([{"invoice_key": "a", "customer_id": "A", "invoice_date": F, "due_date": F, "amount": 10.0},
                    {"invoice_key": "b", "customer_id": "A", "invoice_date": F - timedelta(days=60), "due_date": F,
                     "amount": 10.0}])
    assert _weight(frame, F, ForecastConfig(half_life_days=60.0)).tolist() == pytest.approx([4 / 3, 2 / 3])
    assert _weight(frame, F, ForecastConfig(half_life_days=1e12)).tolist() == pytest.approx([1.0, 1.0])


# --- one replay for the live bands, expected-vs-actual and the backtest ----------------------

def test_one_replay_serves_the_live_bands_and_the_expected_vs_actual() -> None:
    """The cash_forecast step shares one PastForecasts between the live forecast's band calibration
    and the expected-vs-actual replay: every past date is built once, only the union of what each
    consumer builds on its own, and each result equals the one computed alone."""
    led = synthetic_ledger()
    cfg = ForecastConfig(n_sims=200, conformal_window=6, conformal_min=3, conformal_scale_window=2)
    mcfg = replace(cfg, n_sims=100)  # the monitoring simulates fewer draws: same past forecasts
    n = 4
    alone_live = PastForecasts(led, cfg)
    want_ratios = calibration_ratios(alone_live, F, cfg.conformal_window, cfg.conformal_scale_window)
    alone_vs = PastForecasts(led, mcfg)
    want_table, want_fcs = vs_actual(led, F, mcfg, n, alone_vs)
    want_alerts = alerts(want_table, want_fcs, led, 5.0, 3, "USD")

    # in the asset's order: the replay (its dates' forecasts kept for the alerts), then the live bands
    shared = PastForecasts(led, cfg, keep=set(replay_dates(F, n)))
    table, fcs = vs_actual(led, F, mcfg, n, shared)
    got_alerts = alerts(table, fcs, led, 5.0, 3, "USD")
    shared.release()
    n_replay = len(shared.built)
    ratios = calibration_ratios(shared, F, cfg.conformal_window, cfg.conformal_scale_window)

    assert len(shared.built) == n_replay  # the live bands built nothing: the replay had every date
    assert len(shared.built) == len(set(shared.built))  # no past forecast built twice
    assert set(shared.built) == set(alone_live.built) | set(alone_vs.built)
    assert len(shared.built) < len(alone_live.built) + len(alone_vs.built)
    # alone, the replay also builds each of its own dates once (simulating from that build when needed)
    assert len(alone_vs.built) == len(set(alone_vs.built)) and set(replay_dates(F, n)) <= set(alone_vs.built)
    assert {c: [r.tolist() for r in v] for c, v in ratios.items()} == \
        {c: [r.tolist() for r in v] for c, v in want_ratios.items()}
    assert table.equals(want_table) and table.height > 0
    assert got_alerts.equals(want_alerts) and got_alerts.height > 0
    # the replayed forecasts equal a full build from scratch (open book, expected values)
    for f, fc in fcs.items():
        full = build_forecast(led, f, mcfg)
        assert np.array_equal(fc.book.probs, full.book.probs) and fc.book.invoices.equals(full.book.invoices)
        assert table.filter(pl.col("forecast_date") == f).sort("week")["forecast_home"].to_list() == \
            expected_home_total(full.book, full.new).reshape(13, 7).sum(axis=1)[:table.filter(
                pl.col("forecast_date") == f).height].tolist()
    with pytest.raises(ValueError, match="other model settings"):
        vs_actual(led, F, replace(cfg, lookback_days=365), n, shared)


def test_replayed_weeks_without_enough_history_keep_the_simulated_band() -> None:
    """The expected-vs-actual replay and the backtest simulate only when a week lacks a calibrated
    band; then the band is the simulated one of a full build with the same draws."""
    led = synthetic_ledger()
    cfg = ForecastConfig(n_sims=150, seed=9, conformal_min=10**6)  # never enough: every week simulated
    table, _ = vs_actual(led, F, cfg, 3)
    for f in replay_dates(F, 3):
        q = np.quantile(_weekly(build_forecast(led, f, cfg).sims_home), [0.1, 0.9], axis=0)
        rows = table.filter(pl.col("forecast_date") == f).sort("week")
        assert rows["p10_home"].to_list() == q[0, :rows.height].tolist()
        assert rows["p90_home"].to_list() == q[1, :rows.height].tolist()
        _, p10, p90 = fbt.model_weekly(led, f, cfg)
        assert p10.tolist() == q[0].tolist() and p90.tolist() == q[1].tolist()


def test_past_actuals_read_once_equal_the_direct_read() -> None:
    led = synthetic_ledger()
    past = PastForecasts(led, ForecastConfig())
    for fp in (F - timedelta(days=200), F - timedelta(days=91), F - timedelta(days=30)):
        for known in (fp + timedelta(days=6), fp + timedelta(days=50), F):
            want, got = weekly_actual(led, fp, known), past.actual(fp, known)
            assert want.keys() == got.keys()
            for c in want:
                assert np.array_equal(want[c], got[c], equal_nan=True)
