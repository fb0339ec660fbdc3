"""Replay of the weekly cash forecast over the loaded history, against baselines.

For each forecast date F (weekly from --from to --to) the forecast is rebuilt from the ledger as
known at the end of F (model.known_at: invoices issued on or before F, paid dates after F erased;
hazards, run-rate and lag distribution from that alone). Actual collections of week w are the home
value of the invoices whose paid date falls in (F + 7(w-1), F + 7w] — the same invoice-level
convention as the forecast (an invoice's amount counts when it is fully paid). Only weeks that end
on or before the data end are scored.

Predictors:
- model: the forecast of model.py (expected value; bands from its simulation);
- due_date: every open invoice pays on its due date (already overdue: on day 1); invoices not yet
  issued at the same run-rate pay on issue date + the median terms;
- aging_curve: the historical collection curve by aging bucket: for the 26 weekly snapshots
  F - 7j (j = 13..38) whose 13 following weeks are all known at F, the share of the amount open in
  each bucket (not due, 1-30, 31-60, 61-90, 91-180, > 180 days past due) collected in week 1..13;
  invoices not yet issued as in the model (same run-rate and lag distribution);
- last_4_weeks: the mean weekly collections of the 4 weeks before F, for every week.
Metrics per horizon week h (and h = 0 for all weeks pooled): WAPE = sum |forecast - actual| /
sum actual, bias = sum (forecast - actual) / sum actual, and for the model the share of actual
weeks inside its p10..p90 band (coverage_80) and inside p50 ± nothing (just reported as p50 WAPE).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import polars as pl

from .calibration import ALL, PastForecasts, calibrated_bands, calibration_ratios
from .model import HORIZON_DAYS, ForecastConfig, _weekly, expected_home_total, known_at, new_billing, simulate

BUCKETS = [(-10**6, 0, "not_due"), (1, 30, "1_30"), (31, 60, "31_60"), (61, 90, "61_90"), (91, 180, "91_180"),
           (181, 10**6, "over_180")]
PREDICTORS = ("model", "due_date", "aging_curve", "last_4_weeks")


def _bucket_expr(dpd: pl.Expr) -> pl.Expr:
    expr = pl.lit(None, dtype=pl.String)
    for lo, hi, name in reversed(BUCKETS):
        expr = pl.when((dpd >= lo) & (dpd <= hi)).then(pl.lit(name)).otherwise(expr)
    return expr


def actual_weekly(ledger: pl.DataFrame, f: date, data_end: date) -> np.ndarray:
    """Collected home value per week 1..13 after F (NaN for weeks not complete by the data end)."""
    paid = ledger.filter((pl.col("paid_date") > f) & (pl.col("paid_date") <= f + timedelta(days=HORIZON_DAYS)))
    week = paid.select(((pl.col("paid_date") - pl.lit(f)).dt.total_days() - 1) // 7 + 1)[:, 0].to_numpy()
    out = np.bincount(week.astype(np.int64) - 1, weights=paid["amount_home"].to_numpy(), minlength=13)[:13]
    complete = np.array([f + timedelta(days=7 * w) <= data_end for w in range(1, 14)])
    return np.where(complete, out, np.nan)


def due_date_baseline(ledger: pl.DataFrame, f: date, run_rate_days: int) -> np.ndarray:
    k = known_at(ledger, f)
    opn = k.filter(pl.col("paid_date").is_null())
    day = opn.select((pl.col("due_date") - pl.lit(f)).dt.total_days().clip(1, None))[:, 0].to_numpy()
    m = day <= HORIZON_DAYS
    daily = np.bincount(day[m].astype(np.int64) - 1, weights=opn["amount_home"].to_numpy()[m], minlength=HORIZON_DAYS)
    terms = k.select((pl.col("due_date") - pl.col("invoice_date")).dt.total_days())[:, 0]
    median_terms = int(terms.median() or 30)
    rate = k.filter(pl.col("invoice_date") > f - timedelta(days=run_rate_days))["amount_home"].sum() / run_rate_days
    days = np.arange(1, HORIZON_DAYS + 1)
    daily = daily + np.where(days > median_terms, rate, 0.0)
    return daily.reshape(13, 7).sum(axis=1)


def aging_curves(ledger: pl.DataFrame, f: date, n_snapshots: int = 26) -> pl.DataFrame:
    """Share of each bucket's open amount collected in week 1..13 after a snapshot, over the
    snapshots F - 7j, j = 13 .. 12 + n_snapshots (outcomes read as known at F)."""
    k = known_at(ledger, f)
    frames = []
    for j in range(13, 13 + n_snapshots):
        s = f - timedelta(days=7 * j)
        opn = k.filter((pl.col("invoice_date") <= s) & (pl.col("paid_date").is_null() | (pl.col("paid_date") > s)))
        frames.append(opn.select(
            _bucket_expr((pl.lit(s) - pl.col("due_date")).dt.total_days()).alias("bucket"),
            pl.col("amount_home"),
            (((pl.col("paid_date") - pl.lit(s)).dt.total_days() - 1) // 7 + 1).alias("week")))
    if not frames:
        return pl.DataFrame(schema={"bucket": pl.String, "week": pl.Int64, "share": pl.Float64})
    allf = pl.concat(frames)
    totals = allf.group_by("bucket").agg(pl.col("amount_home").sum().alias("total"))
    paid = (allf.filter(pl.col("week").is_not_null() & (pl.col("week") <= 13))
            .group_by("bucket", "week").agg(pl.col("amount_home").sum().alias("paid")))
    return (paid.join(totals, on="bucket").select("bucket", pl.col("week").cast(pl.Int64),
                                                  (pl.col("paid") / pl.col("total")).alias("share")))


def aging_curve_baseline(ledger: pl.DataFrame, f: date, cfg: ForecastConfig) -> np.ndarray:
    curves = aging_curves(ledger, f)
    opn = known_at(ledger, f).filter(pl.col("paid_date").is_null()).select(
        _bucket_expr((pl.lit(f) - pl.col("due_date")).dt.total_days()).alias("bucket"), "amount_home")
    per_bucket = opn.group_by("bucket").agg(pl.col("amount_home").sum())
    exp = (per_bucket.join(curves, on="bucket").group_by("week")
           .agg((pl.col("amount_home") * pl.col("share")).sum().alias("v")))
    out = np.zeros(13)
    for w, v in exp.iter_rows():
        out[int(w) - 1] = v
    new = new_billing(ledger, f, cfg)
    return out + new.amount_home.sum(axis=0).reshape(13, 7).sum(axis=1)


def last_weeks_baseline(ledger: pl.DataFrame, f: date) -> np.ndarray:
    paid = ledger.filter((pl.col("paid_date") > f - timedelta(days=28)) & (pl.col("paid_date") <= f))
    return np.full(13, paid["amount_home"].sum() / 4.0)


def model_weekly(ledger: pl.DataFrame, f: date, cfg: ForecastConfig, past: PastForecasts | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(expected, p10, p90) of home-value collections per week 1..13 forecast at F; the band is
    calibrated per horizon week on the forecasts before F whose week was complete at F
    (calibration.py), the simulated one where that set is too short."""
    past = past or PastForecasts(ledger, cfg)
    past.check_serves(ledger, cfg)
    fc = past.forecast(f, keep=False)  # built once: the later dates' calibration reads its expected values
    tot = expected_home_total(fc.book, fc.new).reshape(13, 7).sum(axis=1)
    ratios = calibration_ratios(past, f, cfg.conformal_window, cfg.conformal_scale_window).get(ALL, [np.array([])] * 13)
    q, src = calibrated_bands({ALL: tot}, {ALL: np.full((3, 13), np.nan)}, {ALL: ratios}, cfg.conformal_min)[ALL]
    if "simulation" in src:  # a calibration set too short for some week: it keeps the simulated band
        _, sims_home = simulate(fc.book, fc.new, cfg)
        q = calibrated_bands({ALL: tot}, {ALL: np.quantile(_weekly(sims_home), [0.1, 0.5, 0.9], axis=0)},
                             {ALL: ratios}, cfg.conformal_min)[ALL][0]
    return tot, q[0], q[2]


def replay(ledger: pl.DataFrame, data_end: date, start: date, end: date, cfg: ForecastConfig) -> pl.DataFrame:
    """One row per (forecast date, week, predictor): forecast, actual (null if the week is not
    complete), and the model's p10/p90."""
    rows = []
    f = start
    past = PastForecasts(ledger, cfg)
    while f <= end:
        actual = actual_weekly(ledger, f, data_end)
        exp, p10, p90 = model_weekly(ledger, f, cfg, past)
        preds = {"model": exp, "due_date": due_date_baseline(ledger, f, cfg.run_rate_days),
                 "aging_curve": aging_curve_baseline(ledger, f, cfg), "last_4_weeks": last_weeks_baseline(ledger, f)}
        for name, v in preds.items():
            for w in range(13):
                rows.append({"forecast_date": f, "week": w + 1, "predictor": name, "forecast": float(v[w]),
                             "actual": None if np.isnan(actual[w]) else float(actual[w]),
                             "p10": float(p10[w]) if name == "model" else None,
                             "p90": float(p90[w]) if name == "model" else None})
        f += timedelta(days=7)
    schema = {"forecast_date": pl.Date, "week": pl.Int64, "predictor": pl.String, "forecast": pl.Float64,
              "actual": pl.Float64, "p10": pl.Float64, "p90": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def coverage(actual: np.ndarray, low: np.ndarray, high: np.ndarray) -> float | None:
    """Share of actual values inside [low, high] (bounds included)."""
    return float(np.mean((actual >= low) & (actual <= high))) if len(actual) else None


def wape(forecast: np.ndarray, actual: np.ndarray) -> float | None:
    s = float(np.sum(actual))
    return float(np.sum(np.abs(forecast - actual)) / s) if s > 0 else None


def bias(forecast: np.ndarray, actual: np.ndarray) -> float | None:
    s = float(np.sum(actual))
    return float(np.sum(forecast - actual) / s) if s > 0 else None


def metrics(detail: pl.DataFrame) -> pl.DataFrame:
    """Long table: predictor, horizon_week (0 = all weeks), metric, value, n_weeks."""
    scored = detail.filter(pl.col("actual").is_not_null())
    rows = []
    for name in PREDICTORS:
        d = scored.filter(pl.col("predictor") == name)
        for h in range(0, 14):
            dh = d if h == 0 else d.filter(pl.col("week") == h)
            fa, ac = dh["forecast"].to_numpy(), dh["actual"].to_numpy()
            vals = {"wape": wape(fa, ac), "bias": bias(fa, ac)}
            if name == "model":
                vals["coverage_80"] = coverage(ac, dh["p10"].to_numpy(), dh["p90"].to_numpy())
            for m, v in vals.items():
                rows.append({"predictor": name, "horizon_week": h, "metric": m, "value": v, "n_weeks": dh.height})
    return pl.DataFrame(rows, schema={"predictor": pl.String, "horizon_week": pl.Int64, "metric": pl.String,
                                      "value": pl.Float64, "n_weeks": pl.Int64})


def run(ledger: pl.DataFrame, data_end: date, start: date, end: date, cfg: ForecastConfig | None = None
        ) -> tuple[pl.DataFrame, pl.DataFrame]:
    cfg = cfg or replace(ForecastConfig(), n_sims=200)
    if start > end:
        raise ValueError(f"--from {start} is after --to {end}")
    if end > data_end:
        raise ValueError(f"--to {end} is after the data end {data_end}")
    detail = replay(ledger, data_end, start, end, cfg)
    return detail, metrics(detail)


METRICS_DDL = """
create schema if not exists analytics;
create table if not exists analytics.forecast_backtest_metrics (
  backtest_from date, backtest_to date, data_end date, seed bigint, predictor varchar, horizon_week bigint,
  metric varchar, value double, n_weeks bigint
);
"""


def write_metrics(conn, frame: pl.DataFrame, start: date, end: date, data_end: date, seed: int) -> int:
    """Replace the rows of the same (from, to, data end, seed) in analytics.forecast_backtest_metrics."""
    conn.execute(METRICS_DDL)
    out = frame.select(pl.lit(start).alias("backtest_from"), pl.lit(end).alias("backtest_to"),
                       pl.lit(data_end).alias("data_end"), pl.lit(seed).cast(pl.Int64).alias("seed"), pl.all())
    conn.register("_fc_bt", out.to_arrow())
    conn.execute("""delete from analytics.forecast_backtest_metrics m using (select distinct backtest_from,
                    backtest_to, data_end, seed from _fc_bt) n where m.backtest_from = n.backtest_from and
                    m.backtest_to = n.backtest_to and m.data_end = n.data_end and m.seed = n.seed""")
    conn.execute("insert into analytics.forecast_backtest_metrics select * from _fc_bt")
    conn.unregister("_fc_bt")
    return out.height
