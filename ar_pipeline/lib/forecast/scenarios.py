"""Forecast settings and what-if scenarios (`ingest_configs/analytics/forecast_scenarios.yaml`).

A scenario is a list of shocks applied to the same simulation as the base forecast (same seed,
same draws): each open invoice's payment day (drawn and expected) moves later by the sum of the
slips that hit it, an invoice of a customer that "does not pay" drops out, and "DSO worsens" also
delays the collections of invoices not yet issued. With no shock the scenario is the base forecast
exactly. Shocks:
- top_customers_late: the `top_n` customers by open amount (home value) pay `days` days late;
- customer_no_pay: `customer_id` pays nothing in the horizon;
- segment_slip: every invoice of customers in `segment` (dim_customers.segment) slips `days` days;
- dso_worsens: every invoice, open or not yet issued, is collected `days` days later.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from ar_pipeline.lib.cash_application.config import load_yaml_model

from .calibration import conformal_band
from .model import (
    HORIZON_DAYS,
    Forecast,
    ForecastConfig,
    NewBilling,
    OpenBook,
    draw_pay_days,
    expected_home_total,
    simulate,
    volume_shocks,
)

CONFIG_FILE = "forecast_scenarios.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TopCustomersLate(_Strict):
    kind: Literal["top_customers_late"]
    top_n: int = Field(ge=1)
    days: int = Field(ge=0, le=HORIZON_DAYS)


class CustomerNoPay(_Strict):
    kind: Literal["customer_no_pay"]
    customer_id: str = Field(min_length=1)


class SegmentSlip(_Strict):
    kind: Literal["segment_slip"]
    segment: str = Field(min_length=1)
    days: int = Field(ge=0, le=HORIZON_DAYS)


class DsoWorsens(_Strict):
    kind: Literal["dso_worsens"]
    days: int = Field(ge=0, le=HORIZON_DAYS)


Shock = Annotated[TopCustomersLate | CustomerNoPay | SegmentSlip | DsoWorsens, Field(discriminator="kind")]


class Scenario(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")
    description: str = ""
    shocks: list[Shock] = Field(default_factory=list)


class CashPosition(_Strict):
    """Cash position in the home currency: opening balance + cumulative forecast collections -
    weekly outflows x weeks; the first week it is below `minimum_balance` is reported."""

    opening_balance: float = 0.0
    weekly_outflows: float = Field(default=0.0, ge=0)
    minimum_balance: float = 0.0


class ModelSettings(_Strict):
    seed: int = 42
    n_sims: int = Field(default=1000, ge=50, le=20000)
    lookback_days: int = Field(default=730, ge=56)
    run_rate_days: int = Field(default=91, ge=7)
    shrink: float = Field(default=5.0, ge=0)
    half_life_days: float = Field(default=60.0, gt=0)
    rho_global: float = Field(default=0.15, ge=0, le=1)
    rho_customer: float = Field(default=0.35, ge=0, le=1)
    new_volume_sigma: float = Field(default=0.2, ge=0)
    size_effect: bool = True
    new_by_customer: bool = True
    conformal_window: int = Field(default=26, ge=1, le=104)
    conformal_min: int = Field(default=9, ge=1)
    conformal_scale_window: int = Field(default=4, ge=0, le=52)

    def config(self) -> ForecastConfig:
        return ForecastConfig(**self.model_dump())


class Alerts(_Strict):
    deviation_pct: float = Field(default=25.0, gt=0)  # |actual - forecast| / forecast, in percent
    past_forecasts: int = Field(default=13, ge=1, le=52)  # weekly forecast dates replayed for vs-actual
    top_customers: int = Field(default=3, ge=1, le=20)


class ForecastSettings(_Strict):
    model: ModelSettings = Field(default_factory=ModelSettings)
    cash_position: CashPosition = Field(default_factory=CashPosition)
    alerts: Alerts = Field(default_factory=Alerts)
    scenarios: list[Scenario] = Field(default_factory=list)


def load_settings(config_dir: Path) -> ForecastSettings:
    """`<config_dir>/forecast_scenarios.yaml` (defaults when absent); errors name the file and field."""
    path = Path(config_dir) / CONFIG_FILE
    settings = load_yaml_model(path, ForecastSettings) if path.exists() else ForecastSettings()
    names = [s.name for s in settings.scenarios]
    dupes = sorted({n for n in names if names.count(n) > 1} | ({"base"} & set(names)))
    if dupes:
        from ar_pipeline.lib.cash_application.config import AnalyticsConfigError

        raise AnalyticsConfigError(f"{path}: invalid config: scenarios.name: duplicate or reserved name(s) {dupes}")
    return settings


def invoice_shifts(book: OpenBook, scenario: Scenario) -> tuple[np.ndarray, np.ndarray, int]:
    """(slip days per open invoice, no-pay flag per open invoice, slip of invoices not yet issued)."""
    inv = book.invoices
    shift = np.zeros(inv.height, dtype=np.int64)
    drop = np.zeros(inv.height, dtype=bool)
    new_shift = 0
    cust = inv["customer_id"].to_numpy() if inv.height else np.array([], dtype=object)
    for s in scenario.shocks:
        if isinstance(s, TopCustomersLate):
            top = (inv.group_by("customer_id").agg(pl.col("amount_home").sum())
                   .sort(["amount_home", "customer_id"], descending=[True, False]).head(s.top_n)["customer_id"])
            shift += np.where(np.isin(cust, top.to_numpy()), s.days, 0)
        elif isinstance(s, CustomerNoPay):
            drop |= cust == s.customer_id
        elif isinstance(s, SegmentSlip):
            seg = inv["segment"].to_numpy() if "segment" in inv.columns else np.full(inv.height, None)
            shift += np.where(seg == s.segment, s.days, 0)
        elif isinstance(s, DsoWorsens):
            shift += s.days
            new_shift += s.days
    return shift, drop, new_shift


def shift_rows(probs: np.ndarray, shift: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """Each row's daily probabilities moved `shift` days later (mass pushed past day 91 leaves the
    horizon); dropped rows are zero."""
    out = np.zeros_like(probs)
    n = probs.shape[1]
    for i in range(probs.shape[0]):
        s = int(shift[i])
        if not drop[i] and s < n:
            out[i, s:] = probs[i, : n - s]
    return out


def _shift_new(new: NewBilling, days: int) -> NewBilling:
    def mv(a: np.ndarray) -> np.ndarray:
        out = np.zeros_like(a)
        out[:, days:] = a[:, : a.shape[1] - days]
        return out

    return new if days == 0 else NewBilling(new.currencies, mv(new.amount), mv(new.amount_home))


def scenario_weekly(fc: Forecast, cfg: ForecastConfig, scenarios: list[Scenario],
                    position: CashPosition, home_currency: str,
                    ratios: list[np.ndarray] | None = None) -> pl.DataFrame:
    """Weekly home-value collections of the base and each scenario (expected, p10, p90), the
    difference to the base, cumulative cash, cash position and the first week below the minimum.
    With `ratios` (the 'ALL' calibration ratios per horizon week, calibration.calibration_ratios),
    a week whose calibration set is long enough gets the conformal band around the scenario's
    expected value (as the base weekly table does); otherwise the simulated one."""
    rng = np.random.default_rng(cfg.seed)
    pay_days = draw_pay_days(fc.book, cfg, rng)
    shocks = volume_shocks(cfg, rng)
    base = _one(fc, cfg, Scenario(name="base", description="base forecast"), pay_days, shocks)
    frames = []
    for sc in [Scenario(name="base", description="base forecast"), *scenarios]:
        exp, p10, p90 = base if sc.name == "base" else _one(fc, cfg, sc, pay_days, shocks)
        if ratios is not None:
            p10, p90 = p10.copy(), p90.copy()
            for h in range(13):
                band = conformal_band(ratios[h], float(exp[h]), min_n=cfg.conformal_min)
                if band is not None:
                    p10[h], p90[h] = band[0], band[2]
        cum = np.cumsum(exp)
        weeks = np.arange(1, 14)
        cash = position.opening_balance + cum - position.weekly_outflows * weeks
        below = np.where(cash < position.minimum_balance)[0]
        frames.append(pl.DataFrame({
            "forecast_date": [fc.forecast_date] * 13, "scenario": sc.name,
            "description": sc.description or sc.name, "week": weeks,
            "week_start": [fc.forecast_date + timedelta(days=int(7 * (w - 1) + 1)) for w in weeks],
            "week_end": [fc.forecast_date + timedelta(days=int(7 * w)) for w in weeks],
            "base_expected_home": base[0], "scenario_expected_home": exp,
            "difference_home": exp - base[0], "scenario_p10_home": p10, "scenario_p90_home": p90,
            "base_cumulative_home": np.cumsum(base[0]), "scenario_cumulative_home": cum,
            "cash_position_home": cash,
            "first_week_below_minimum": [int(below[0]) + 1 if len(below) else None] * 13,
        }, schema_overrides={"first_week_below_minimum": pl.Int64}))
    return pl.concat(frames).with_columns(pl.lit(home_currency).alias("home_currency"))


def _one(fc: Forecast, cfg: ForecastConfig, sc: Scenario, pay_days: np.ndarray, shocks: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    shift, drop, new_shift = invoice_shifts(fc.book, sc)
    probs = shift_rows(fc.book.probs, shift, drop)
    new = _shift_new(fc.new, new_shift)
    daily = expected_home_total(replace(fc.book, probs=probs), new)
    d = pay_days.copy()
    moved = np.where(d >= 0, d + shift[None, :], -1)
    moved[(moved >= HORIZON_DAYS) | np.broadcast_to(drop[None, :], moved.shape)] = -1
    _, sims_home = simulate(fc.book, new, cfg, pay_days=moved, shocks=shocks)
    weekly = sims_home.reshape(sims_home.shape[0], 13, 7).sum(axis=2)
    q = np.quantile(weekly, [0.1, 0.9], axis=0)
    return daily.reshape(13, 7).sum(axis=1), q[0], q[1]
