"""Weekly p10/p50/p90 bands calibrated per horizon week from the errors of past forecasts
(split-conformal on the ratio actual / expected), with the simulation as the fallback.

For a forecast made at F and horizon week h, the calibration set is the last `window` weekly
forecast dates F' = F - 7j (j >= h) whose week h ended on or before F — so its outcome was known at
F and nothing after F is read. Each past forecast is rebuilt from the ledger as known at F'
(model.known_at), exactly as the live forecast and the backtest do. For each of them the ratio
r = collected / expected of week h (per currency in that currency, and 'ALL' at home value). With n
ratios sorted r(1) <= ... <= r(n), the 80% band of week h is expected(F, h) × [Q(0.1), Q(0.9)] and
p50 = expected × Q(0.5), where Q(p) is the (n + 1) plotting-position quantile: position p·(n + 1)
among the sorted ratios, interpolated linearly between neighbours (numpy's method="weibull"); so
with n = 26, Q(0.1) lies 70% of the way from r(2) to r(3). (The conservative conformal ranks
floor/ceil of the same positions cover at least 80% in expectation, about 85% at n = 26; the
interpolated ones aim at 80% — chosen on the tuning history, see the README.) When fewer than
`min_n` ratios exist (a short history) or a position falls outside 1..n, the week keeps the
simulated band.

Scale-adaptive (`conformal_scale_window` k, default 4; 0 = off): before the quantiles, each ratio of
forecast F' is re-scaled to the error level at F, r' = r ** (s(F) / s(F')), where s(X) is the median
|log r| over all 13 horizon weeks of the last k forecasts per week complete at X (known at X). A
history whose early forecasts erred more than its recent ones then does not carry its early width
forward (demo: 89.4% -> 81.3% coverage; k chosen on the tuning history, see the README).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import numpy as np
import polars as pl

from .model import HORIZON_DAYS, Forecast, ForecastConfig, build_forecast, expected_daily

ALL = "ALL"


def plotting_quantile(sorted_r: np.ndarray, p: float) -> float | None:
    """Quantile p of sorted values at position p·(n + 1) (1-based), linear between neighbours; None
    when the position falls outside 1..n (too few values for that quantile)."""
    n = len(sorted_r)
    pos = p * (n + 1)
    if n == 0 or pos < 1 - 1e-9 or pos > n + 1e-9:
        return None
    k = min(max(math.floor(pos + 1e-9), 1), n)  # 1-based rank at or below the position
    frac = min(max(pos - k, 0.0), 1.0)
    return float(sorted_r[k - 1] + (frac * (sorted_r[k] - sorted_r[k - 1]) if k < n else 0.0))


def conformal_band(ratios: np.ndarray, expected: float, level: float = 0.8, min_n: int = 9
                   ) -> tuple[float, float, float] | None:
    """(p10, p50, p90) = expected × (Q(0.1), Q(0.5), Q(0.9)) of the finite ratios (plotting-position
    quantiles), or None when there are fewer than `min_n` of them or too few for the band's ends."""
    r = np.sort(ratios[np.isfinite(ratios)])
    if len(r) < min_n:
        return None
    alpha = (1.0 - level) / 2.0
    lo, mid, hi = (plotting_quantile(r, p) for p in (alpha, 0.5, 1.0 - alpha))
    if lo is None or mid is None or hi is None:
        return None
    return float(expected * lo), float(expected * mid), float(expected * hi)


def weekly_expected(fc: Forecast) -> dict[str, np.ndarray]:
    """Expected collections per week 1..13 per series: each currency in its own amount, 'ALL' at
    home value."""
    exp = expected_daily(fc.book, fc.new)
    out = {c: exp.filter(pl.col("currency") == c).sort("day")["expected_amount"].to_numpy().reshape(13, 7).sum(axis=1)
           for c in sorted(set(exp["currency"].to_list()))}
    home = exp.group_by("day").agg(pl.col("expected_home").sum()).sort("day")["expected_home"].to_numpy()
    out[ALL] = home.reshape(13, 7).sum(axis=1) if len(home) else np.zeros(13)
    return out


def _paid_weekly(ledger: pl.DataFrame, f: date, currencies: list[str]) -> dict[str, np.ndarray]:
    """Collected per week 1..13 after F per series (`currencies`, in their amount, and 'ALL' at home
    value; invoice-level: an invoice's amount on its paid date), every paid date of the 13 weeks."""
    paid = ledger.filter((pl.col("paid_date") > f) & (pl.col("paid_date") <= f + timedelta(days=HORIZON_DAYS)))
    week = paid.select(((pl.col("paid_date") - pl.lit(f)).dt.total_days() - 1) // 7 + 1)[:, 0].to_numpy()
    week = week.astype(np.int64) - 1
    out = {}
    cur = paid["currency"].to_numpy()
    for c in currencies:
        m = cur == c
        out[c] = np.bincount(week[m], weights=paid["amount"].to_numpy()[m], minlength=13)[:13]
    out[ALL] = np.bincount(week, weights=paid["amount_home"].to_numpy(), minlength=13)[:13]
    return out


def _currencies(ledger: pl.DataFrame) -> list[str]:
    return sorted(set(ledger["currency"].to_list()))


def _mask_incomplete(weekly: dict[str, np.ndarray], f: date, known_until: date) -> dict[str, np.ndarray]:
    complete = np.array([f + timedelta(days=7 * w) <= known_until for w in range(1, 14)])
    return {c: np.where(complete, v, np.nan) for c, v in weekly.items()}


def weekly_actual(ledger: pl.DataFrame, f: date, known_until: date) -> dict[str, np.ndarray]:
    """Collected per week 1..13 after F per series (invoice-level: an invoice's amount on its paid
    date), NaN for weeks ending after `known_until`. A week complete by `known_until` only holds paid
    dates up to its end, so its sum does not depend on `known_until` (PastForecasts.actual reads the
    ledger once per F)."""
    return _mask_incomplete(_paid_weekly(ledger, f, _currencies(ledger)), f, known_until)


def model_config(cfg: ForecastConfig) -> ForecastConfig:
    """`cfg` with the settings that do not change a forecast's open book, new billing and expected
    values (simulation, band calibration) at their defaults."""
    d = ForecastConfig()
    return replace(cfg, n_sims=d.n_sims, seed=d.seed, rho_global=d.rho_global, rho_customer=d.rho_customer,
                   new_volume_sigma=d.new_volume_sigma, conformal_window=d.conformal_window,
                   conformal_min=d.conformal_min, conformal_scale_window=d.conformal_scale_window)


@dataclass
class PastForecasts:
    """Past forecast dates, each rebuilt at most once from the ledger as known then (no simulation),
    memoised with its weekly expected and collected amounts. The live forecast's band calibration,
    the expected-vs-actual replay (each of whose past forecasts is calibrated on the forecasts before
    it) and the backtest ask for the same dates many times; one instance serves all of them.
    `built` lists the dates built, in order. The built forecast itself (open book, new billing) is
    kept for the dates in `keep` (the expected-vs-actual replay reads them; keeping every date would
    hold every past open book in memory), only its weekly expected for the others."""

    ledger: pl.DataFrame
    cfg: ForecastConfig
    keep: set[date] = field(default_factory=set)
    built: list[date] = field(default_factory=list)
    _cache: dict[date, dict[str, np.ndarray]] = field(default_factory=dict)
    _forecasts: dict[date, Forecast] = field(default_factory=dict)
    _paid: dict[date, dict[str, np.ndarray]] = field(default_factory=dict)
    _scales: dict[tuple[date, int], dict[str, float | None]] = field(default_factory=dict)
    _ledger_currencies: list[str] | None = None

    def _build(self, f: date) -> Forecast:
        fc = build_forecast(self.ledger, f, self.cfg, simulate_bands=False)
        self.built.append(f)
        self._cache[f] = weekly_expected(fc)
        if f in self.keep:
            self._forecasts[f] = fc
        return fc

    def expected(self, f: date) -> dict[str, np.ndarray]:
        """Expected collections per week 1..13 of the forecast at F, per series (weekly_expected)."""
        if f not in self._cache:
            self._build(f)
        return self._cache[f]

    def forecast(self, f: date, keep: bool = True) -> Forecast:
        """The forecast at F without simulation; with `keep`, F joins `keep` (a date built earlier
        without being kept is rebuilt)."""
        if keep:
            self.keep.add(f)
        return self._forecasts[f] if f in self._forecasts else self._build(f)

    def release(self) -> None:
        """Drop the kept forecasts (their open books are the bulk of the memory); the weekly sums stay."""
        self.keep.clear()
        self._forecasts.clear()

    def actual(self, f: date, known_until: date) -> dict[str, np.ndarray]:
        """weekly_actual(ledger, F, known_until), the ledger read once per F."""
        if f not in self._paid:
            if self._ledger_currencies is None:
                self._ledger_currencies = _currencies(self.ledger)
            self._paid[f] = _paid_weekly(self.ledger, f, self._ledger_currencies)
        return _mask_incomplete(self._paid[f], f, known_until)

    def check_serves(self, ledger: pl.DataFrame, cfg: ForecastConfig) -> None:
        """Raise unless this instance replays this very ledger frame with the model settings of `cfg`."""
        if ledger is not self.ledger:
            raise ValueError("these past forecasts replay another ledger frame")
        if model_config(cfg) != model_config(self.cfg):
            raise ValueError(f"these past forecasts use other model settings: {self.cfg} vs {cfg}")


def _raw_pairs(past: PastForecasts, f: date, window: int) -> dict[str, list[list[tuple[int, float]]]]:
    """Per series and horizon week h (index h - 1): (j, ratio collected / expected) of the last
    `window` weekly forecasts F - 7j before F whose week h was complete at F (weeks with expected
    <= 0 are skipped), most recent first."""
    out: dict[str, list[list[tuple[int, float]]]] = {}
    for j in range(1, window + 13):
        fp = f - timedelta(days=7 * j)
        exp = past.expected(fp)
        act = past.actual(fp, f)
        for c, e in exp.items():
            a = act.get(c)
            if a is None:
                continue
            per_h = out.setdefault(c, [[] for _ in range(13)])
            for h in range(13):
                if j >= h + 1 and len(per_h[h]) < window and np.isfinite(a[h]) and e[h] > 0:
                    per_h[h].append((j, float(a[h] / e[h])))
    return out


def error_scale(ratios_per_h: list[np.ndarray]) -> float | None:
    """Median |log r| over the ratios of every horizon week; None when there is none, or the median
    is not a finite positive number (e.g. mostly weeks with nothing collected)."""
    r = np.concatenate([np.asarray(v, dtype=np.float64) for v in ratios_per_h]) if ratios_per_h else np.array([])
    r = r[np.isfinite(r)]
    if len(r) == 0:
        return None
    with np.errstate(divide="ignore"):
        s = float(np.median(np.abs(np.log(r))))
    return s if math.isfinite(s) and s > 0 else None


def recent_scales(past: PastForecasts, f: date, scale_window: int) -> dict[str, float | None]:
    """Per series, the error scale known at F: error_scale of the ratios of the last `scale_window`
    forecasts per horizon week whose week was complete at F (memoised on `past`)."""
    key = (f, scale_window)
    if key not in past._scales:
        past._scales[key] = {c: error_scale([np.array([r for _, r in v]) for v in per_h])
                             for c, per_h in _raw_pairs(past, f, scale_window).items()}
    return past._scales[key]


def calibration_ratios(past: PastForecasts, f: date, window: int, scale_window: int = 0
                       ) -> dict[str, list[np.ndarray]]:
    """Per series and horizon week h (index h - 1): the ratios collected / expected of the last
    `window` weekly forecasts F' before F whose week h was complete at F (weeks with expected <= 0 are
    skipped). With `scale_window` k > 0 each ratio is re-scaled to the current error level:
    r' = r ** (s(F) / s(F')), i.e. log r' = s(F) · log r / s(F'), where s(X) = recent_scales(X, k) is
    the median |log r| of the last k forecasts per horizon week complete at X (known at X). Ratios
    whose s(F') is undefined are dropped; when s(F) is undefined the series keeps its raw ratios."""
    pairs = _raw_pairs(past, f, window)
    s_now = recent_scales(past, f, scale_window) if scale_window > 0 else {}
    out: dict[str, list[np.ndarray]] = {}
    for c, per_h in pairs.items():
        s_c = s_now.get(c)
        if s_c is None:
            out[c] = [np.array([r for _, r in v]) for v in per_h]
            continue
        adj = []
        for v in per_h:
            vals = []
            for j, r in v:
                s_then = recent_scales(past, f - timedelta(days=7 * j), scale_window).get(c)
                if s_then is not None:
                    vals.append(float(np.power(r, s_c / s_then)))
            adj.append(np.array(vals))
        out[c] = adj
    return out


def calibrated_bands(expected: dict[str, np.ndarray], sim_bands: dict[str, np.ndarray],
                     ratios: dict[str, list[np.ndarray]], min_n: int, level: float = 0.8
                     ) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Per series: ((3, 13) p10/p50/p90, per-week source 'conformal' or 'simulation'). `sim_bands`
    holds the simulated (3, 13) quantiles per series, used where the calibration set is short."""
    out = {}
    for c, e in expected.items():
        q = np.array(sim_bands[c], dtype=np.float64, copy=True)
        src = ["simulation"] * 13
        for h in range(13):
            r = ratios.get(c, [np.array([])] * 13)[h]
            band = conformal_band(r, float(e[h]), level, min_n)
            if band is not None:
                q[:, h] = band
                src[h] = "conformal"
        out[c] = (q, src)
    return out
