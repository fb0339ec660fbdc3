"""Expected vs actual: what past forecasts said for each week against what was collected, and alerts.

Past forecasts are replayed, not read from a log: the forecast of date F is rebuilt from the
ledger as known at the end of F (model.known_at), which is what a run on that day would have
produced from the same data (restated history changes it, as it should). Actual collections use
the forecast's convention: the home value of invoices whose paid date falls in the week.
An alert is raised for a complete week whose freshest forecast (made the day before the week
starts, horizon week 1) is off by at least `deviation_pct` percent of that forecast; it names the
customers whose own forecast-vs-collected gap explains most of the total gap, in its direction.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from .backtest import actual_weekly
from .calibration import ALL, PastForecasts, calibrated_bands, calibration_ratios
from .model import Forecast, ForecastConfig, _weekly, expected_home_total, simulate

VS_ACTUAL_SCHEMA = {
    "forecast_date": pl.Date, "week": pl.Int64, "week_start": pl.Date, "week_end": pl.Date,
    "forecast_home": pl.Float64, "p10_home": pl.Float64, "p90_home": pl.Float64, "actual_home": pl.Float64,
    "deviation_home": pl.Float64, "deviation_pct": pl.Float64, "in_band": pl.Boolean,
}
ALERT_SCHEMA = {
    "week_start": pl.Date, "week_end": pl.Date, "forecast_date": pl.Date, "forecast_home": pl.Float64,
    "actual_home": pl.Float64, "deviation_home": pl.Float64, "deviation_pct": pl.Float64,
    "threshold_pct": pl.Float64, "customers": pl.String, "message": pl.String,
}


def replay_dates(as_of: date, n_forecasts: int) -> list[date]:
    """The weekly forecast dates replayed against actuals: as_of - 7j, j = n_forecasts .. 1 (oldest first)."""
    return [as_of - timedelta(days=7 * j) for j in range(n_forecasts, 0, -1)]


def vs_actual(ledger: pl.DataFrame, as_of: date, cfg: ForecastConfig, n_forecasts: int,
              past: PastForecasts | None = None) -> tuple[pl.DataFrame, dict[date, Forecast]]:
    """One row per (past forecast date, week) with a complete week (ending on or before as_of).
    p10/p90 are each past forecast's own weekly band as it was published: calibrated on the
    forecasts before its date (calibration.py), simulated (with `cfg`'s n_sims and seed) where that
    set was too short. `past` may be shared with the live forecast's calibration (same ledger frame
    and model settings): each past forecast is then built once for both. The forecasts returned
    carry no simulation (the alerts read their open books)."""
    rows, forecasts = [], {}
    dates = replay_dates(as_of, n_forecasts)
    past = past or PastForecasts(ledger, cfg, keep=set(dates))
    past.check_serves(ledger, cfg)
    for f in dates:
        fc = past.forecast(f)
        forecasts[f] = fc
        exp = expected_home_total(fc.book, fc.new).reshape(13, 7).sum(axis=1)
        ratios = calibration_ratios(past, f, cfg.conformal_window, cfg.conformal_scale_window).get(
            ALL, [np.array([])] * 13)
        q3, src = calibrated_bands({ALL: exp}, {ALL: np.full((3, 13), np.nan)}, {ALL: ratios}, cfg.conformal_min)[ALL]
        if "simulation" in src:  # a calibration set too short for some week: it keeps the simulated band
            _, sims_home = simulate(fc.book, fc.new, cfg)
            q3 = calibrated_bands({ALL: exp}, {ALL: np.quantile(_weekly(sims_home), [0.1, 0.5, 0.9], axis=0)},
                                  {ALL: ratios}, cfg.conformal_min)[ALL][0]
        q = q3[[0, 2]]
        act = actual_weekly(ledger, f, as_of)
        for w in range(13):
            if np.isnan(act[w]):
                continue
            dev = act[w] - exp[w]
            rows.append({"forecast_date": f, "week": w + 1, "week_start": f + timedelta(days=7 * w + 1),
                         "week_end": f + timedelta(days=7 * w + 7), "forecast_home": float(exp[w]),
                         "p10_home": float(q[0, w]), "p90_home": float(q[1, w]), "actual_home": float(act[w]),
                         "deviation_home": float(dev),
                         "deviation_pct": float(100 * dev / exp[w]) if exp[w] > 0 else None,
                         "in_band": bool(q[0, w] <= act[w] <= q[1, w])})
    return pl.DataFrame(rows, schema=VS_ACTUAL_SCHEMA), forecasts


def breaches(table: pl.DataFrame, threshold_pct: float) -> pl.DataFrame:
    """Rows of horizon week 1 whose |deviation| is at least threshold_pct percent of the forecast
    (a forecast of 0 with any collection counts as a breach)."""
    w1 = table.filter(pl.col("week") == 1)
    return w1.filter((pl.col("deviation_pct").abs() >= threshold_pct)
                     | (pl.col("deviation_pct").is_null() & (pl.col("actual_home") > 0)))


def gap_customers(fc: Forecast, ledger: pl.DataFrame, week: int, top: int, direction: float) -> list[tuple[str, float]]:
    """Customers with the largest collected-minus-forecast gap in `week` of forecast `fc`, in the
    sign of `direction`, largest first: [(customer_id, gap)]."""
    inv = fc.book.invoices
    if inv.height == 0:
        return []
    lo, hi = 7 * (week - 1), 7 * week
    f = fc.forecast_date
    expected = inv["amount_home"].to_numpy() * fc.book.probs[:, lo:hi].sum(axis=1)
    paid = inv.select("invoice_key", "customer_id", "amount_home").join(
        ledger.select("invoice_key", pl.col("paid_date").alias("_paid")), on="invoice_key", how="left")
    in_week = paid.select((pl.col("_paid") > f + timedelta(days=lo)) & (pl.col("_paid") <= f + timedelta(days=hi)))
    collected = np.where(in_week[:, 0].fill_null(False).to_numpy(), inv["amount_home"].to_numpy(), 0.0)
    per = (pl.DataFrame({"customer_id": inv["customer_id"], "gap": collected - expected})
           .group_by("customer_id").agg(pl.col("gap").sum()))
    per = per.filter(pl.col("gap") * np.sign(direction) > 0).with_columns(pl.col("gap").abs().alias("_abs"))
    per = per.sort(["_abs", "customer_id"], descending=[True, False]).head(top)
    return [(c, float(g)) for c, g in per.select("customer_id", "gap").iter_rows()]


def alerts(table: pl.DataFrame, forecasts: dict[date, Forecast], ledger: pl.DataFrame, threshold_pct: float,
           top: int, home_currency: str) -> pl.DataFrame:
    rows = []
    for r in breaches(table, threshold_pct).iter_rows(named=True):
        fc = forecasts.get(r["forecast_date"])
        names = gap_customers(fc, ledger, r["week"], top, r["deviation_home"]) if fc else []
        who = ", ".join(f"{c} ({g:+,.0f})" for c, g in names)
        pct = "n/a" if r["deviation_pct"] is None else f"{r['deviation_pct']:+.1f}%"
        msg = (f"Week {r['week_start']}..{r['week_end']}: collected {r['actual_home']:,.0f} {home_currency} vs "
               f"forecast {r['forecast_home']:,.0f} ({pct}, threshold {threshold_pct:g}%)"
               + (f"; largest gaps: {who}" if who else ""))
        rows.append({"week_start": r["week_start"], "week_end": r["week_end"], "forecast_date": r["forecast_date"],
                     "forecast_home": r["forecast_home"], "actual_home": r["actual_home"],
                     "deviation_home": r["deviation_home"], "deviation_pct": r["deviation_pct"],
                     "threshold_pct": float(threshold_pct), "customers": who, "message": msg})
    return pl.DataFrame(rows, schema=ALERT_SCHEMA)
