"""13-week cash-inflow forecast, scenarios and expected-vs-actual (schema `analytics`).

- `cash_forecast_daily` / `cash_forecast_weekly`: expected collections and p10/p50/p90 bands for
  the 91 days / 13 weeks after the marts' as-of date, per currency and currency 'ALL' (every
  currency at home value) — `ar_pipeline.lib.forecast.model`.
- `cash_forecast_scenarios`: each scenario of `<config>/analytics/forecast_scenarios.yaml` next to
  the base, with the difference and the first week the cash position falls below the minimum.
- `cash_forecast_vs_actual` and `forecast_alerts`: replayed past forecasts against collections, and
  the weeks off by at least the configured percentage (WARN check `forecast_within_threshold`).
All five come from one step, `cash_forecast`: the live weekly bands are calibrated on the last weekly
forecasts replayed with the data known at their dates, and each replayed forecast of the
expected-vs-actual table is calibrated on those before it, so both read one set of past forecasts,
each built once (`calibration.PastForecasts`; two separate steps used to build most of them twice).
They hang off the marts and the invoice risk scores, so every run of `refresh_ar` and every file
sensor run (both select everything downstream of the raw tables) rebuilds them.
"""

import os

import dagster as dg
from dagster_duckdb import DuckDBResource

from ar_pipeline.defs.analytics.assets import INVOICE_KEY
from ar_pipeline.defs.analytics.column_schemas import with_column_schemas
from ar_pipeline.defs.analytics.hygiene import analytics_config_dir, write_table
from ar_pipeline.defs.resources import LandingResource

DAILY_KEY = dg.AssetKey(["analytics", "cash_forecast_daily"])
WEEKLY_KEY = dg.AssetKey(["analytics", "cash_forecast_weekly"])
SCENARIOS_KEY = dg.AssetKey(["analytics", "cash_forecast_scenarios"])
VS_ACTUAL_KEY = dg.AssetKey(["analytics", "cash_forecast_vs_actual"])
ALERTS_KEY = dg.AssetKey(["analytics", "forecast_alerts"])
FORECAST_KEYS = [DAILY_KEY, WEEKLY_KEY, SCENARIOS_KEY, VS_ACTUAL_KEY, ALERTS_KEY]
MARTS = [dg.AssetKey(["marts", m]) for m in ("fct_invoices", "dim_customers")]
COMMON = {"group_name": "analytics", "owners": ["team:finance-analytics"]}


def _home() -> str:
    return os.environ.get("AR_HOME_CURRENCY", "USD")


def _ledger(duckdb: DuckDBResource):
    from ar_pipeline.lib.forecast.data import load_ledger

    with duckdb.get_connection() as conn:
        return load_ledger(conn, home_currency=_home())


@dg.multi_asset(
    specs=[
        dg.AssetSpec(DAILY_KEY, deps=[*MARTS, INVOICE_KEY], kinds={"polars", "duckdb"}, **COMMON,
                     description="Expected cash collections per day for the 91 days after the as-of date, per "
                     "currency and 'ALL' (home value), with p10/p50/p90 bands."),
        dg.AssetSpec(WEEKLY_KEY, deps=[*MARTS, INVOICE_KEY], kinds={"polars", "duckdb"}, **COMMON,
                     description="Expected cash collections per week 1..13 after the as-of date, per currency "
                     "and 'ALL' (home value), with p10/p50/p90 bands of the simulated weekly sums."),
        dg.AssetSpec(SCENARIOS_KEY, deps=[*MARTS, INVOICE_KEY], kinds={"polars", "duckdb"}, **COMMON,
                     description="Weekly home-value collections of each configured scenario next to the base, "
                     "the difference, cumulative cash and the first week below the minimum cash position."),
        dg.AssetSpec(VS_ACTUAL_KEY, deps=MARTS, kinds={"polars", "duckdb"}, **COMMON,
                     description="What each of the last weekly forecasts (replayed with the data known on its "
                     "date) said for each complete week vs what was collected."),
        dg.AssetSpec(ALERTS_KEY, deps=[*MARTS, VS_ACTUAL_KEY], kinds={"polars", "duckdb"}, **COMMON,
                     description="Weeks whose collections deviate from the week-ahead forecast by at least the "
                     "configured percentage, with the customers explaining most of the gap (column message)."),
    ],
    pool="duckdb",
)
def cash_forecast(context: dg.AssetExecutionContext, duckdb: DuckDBResource, landing: LandingResource):
    """The live forecast and the expected-vs-actual monitoring in one step: both replay the same past
    forecasts (the live bands calibrate on the last weekly forecasts; each replayed forecast of
    cash_forecast_vs_actual calibrates on those before it), so one PastForecasts builds each past
    date once for both."""
    from dataclasses import replace

    from ar_pipeline.lib.forecast.calibration import (
        ALL,
        PastForecasts,
        calibrated_bands,
        calibration_ratios,
        weekly_expected,
    )
    from ar_pipeline.lib.forecast.model import build_forecast, daily_table, sim_weekly_bands, weekly_table
    from ar_pipeline.lib.forecast.monitor import alerts, replay_dates, vs_actual
    from ar_pipeline.lib.forecast.scenarios import load_settings, scenario_weekly

    settings = load_settings(analytics_config_dir(landing))
    cfg = settings.model.config()
    ledger = _ledger(duckdb)
    n_past = settings.alerts.past_forecasts
    # expected vs actual first: its replayed dates' open books are kept for the alerts (every other
    # past date keeps its weekly sums only), then dropped before the live forecast's simulations
    past = PastForecasts(ledger.invoices, cfg, keep=set(replay_dates(ledger.data_end, n_past)))
    # monitoring simulates at most 300 draws, where a replayed week falls back to the simulated band
    table, forecasts = vs_actual(ledger.invoices, ledger.data_end, replace(cfg, n_sims=min(cfg.n_sims, 300)), n_past,
                                 past)
    out = alerts(table, forecasts, ledger.invoices, settings.alerts.deviation_pct, settings.alerts.top_customers,
                 ledger.home_currency)
    del forecasts
    past.release()
    fc = build_forecast(ledger.invoices, ledger.data_end, cfg, open_amounts=ledger.open_amounts())
    ratios = calibration_ratios(past, ledger.data_end, cfg.conformal_window, cfg.conformal_scale_window)
    bands = calibrated_bands(weekly_expected(fc), sim_weekly_bands(fc), ratios, cfg.conformal_min)
    daily, weekly = daily_table(fc, ledger.home_currency), weekly_table(fc, ledger.home_currency, bands)
    scen = scenario_weekly(fc, cfg, settings.scenarios, settings.cash_position, ledger.home_currency,
                           ratios.get(ALL))
    with duckdb.get_connection() as conn:
        write_table(conn, "cash_forecast_daily", daily)
        write_table(conn, "cash_forecast_weekly", weekly)
        write_table(conn, "cash_forecast_scenarios", scen)
        write_table(conn, "cash_forecast_vs_actual", table)
        write_table(conn, "forecast_alerts", out)
    total = weekly.filter(weekly["currency"] == "ALL")["expected_home"].sum()
    context.log.info(f"Forecast as of {ledger.data_end}: {total:,.0f} {ledger.home_currency} over 13 weeks; "
                     f"{len(past.built)} past forecasts replayed, each once, for both the expected-vs-actual table "
                     f"and the live bands; {out.height} forecast "
                     f"alert(s) over {table['week_start'].n_unique()} complete week(s)")
    meta = {"as_of_date": str(ledger.data_end), "seed": cfg.seed, "n_sims": cfg.n_sims,
            "conformal_weeks": int((weekly["band_source"] == "conformal").sum())}
    yield dg.MaterializeResult(asset_key=DAILY_KEY, metadata={**meta, "dagster/row_count": daily.height})
    yield dg.MaterializeResult(asset_key=WEEKLY_KEY, metadata={
        **meta, "dagster/row_count": weekly.height, "expected_13_weeks_home": float(total),
        "open_invoices": fc.book.invoices.height})
    yield dg.MaterializeResult(asset_key=SCENARIOS_KEY, metadata={
        **meta, "dagster/row_count": scen.height, "scenarios": len(settings.scenarios)})
    yield dg.MaterializeResult(asset_key=VS_ACTUAL_KEY, metadata={
        "dagster/row_count": table.height, "as_of_date": str(ledger.data_end),
        "past_forecasts_built": len(past.built), "past_forecast_dates": len(set(past.built))})
    yield dg.MaterializeResult(asset_key=ALERTS_KEY, metadata={"dagster/row_count": out.height,
                                                               "threshold_pct": settings.alerts.deviation_pct})


@dg.asset_check(asset=ALERTS_KEY, name="forecast_within_threshold", blocking=False,
                description="WARN when the latest complete week's collections deviate from its week-ahead forecast "
                "by at least alerts.deviation_pct percent (forecast_scenarios.yaml).")
def forecast_within_threshold(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as conn:
        latest = conn.sql("select max(week_start) from analytics.cash_forecast_vs_actual").fetchall()[0][0]
        rows = conn.sql("select message from analytics.forecast_alerts where week_start = ?",
                        params=[latest]).fetchall() if latest else []
        total = conn.sql("select count(*) from analytics.forecast_alerts").fetchall()[0][0]
    return dg.AssetCheckResult(
        passed=not rows, severity=dg.AssetCheckSeverity.WARN,
        metadata={"latest_week_start": str(latest), "latest_week_alerts": len(rows), "alerts_in_window": int(total),
                  "message": rows[0][0] if rows else ""})


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=with_column_schemas([cash_forecast]),
                          asset_checks=[forecast_within_threshold])
