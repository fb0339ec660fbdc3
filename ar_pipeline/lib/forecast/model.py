"""13-week cash-inflow forecast from the AR ledger, as known at a forecast date F.

Conventions (the same in the live forecast, the backtest and expected-vs-actual):
- Days 1..91 after F make weeks 1..13 (week w = days F+7(w-1)+1 .. F+7w). Payments dated on or
  before F are known; nothing dated after F is read.
- Open invoices: each one's probability of being paid on day F+k is read off a discrete-time
  survival model of "days relative to the due date" (Kaplan-Meier hazard with left truncation at
  the issue date and censoring at F), per customer, shrunk towards the all-customer hazard with a
  pseudo-count, and conditioned on the invoice still being open at F (its current age): P(k) =
  h(t0+k) * prod_{j<k} (1 - h(t0+j)), t0 = F - due date (minus the invoice's size shift, see
  open_book). A weekday factor scales each day's cumulative hazard. Mass not paid within the 91
  days (late beyond the horizon, or never collected) is simply not in the forecast, so the
  probability of being collected at all is part of the same distribution.
- Invoices not yet issued: the mean daily billed amount over the last `run_rate_days` days per
  customer and currency, issued every day of the horizon and collected after that customer's
  distribution of days from issue to payment (the same survival estimate on the age axis, shrunk
  to all customers; `new_by_customer=False`: one all-customer distribution).
- Bands: Monte Carlo. Each open invoice's payment day is drawn by inverse CDF from a uniform made
  with a Gaussian copula whose normal is a shared per-simulation shock (a good or bad month for
  everyone), a per-customer shock and the invoice's own noise, so one customer's invoices and one
  month's invoices move together; the new-billing part gets a per-week lognormal volume shock with
  mean 1. The copula keeps each invoice's marginal distribution, so the expected values are exact
  (computed analytically) and the bands are not too narrow. Deterministic for a seed. The weekly
  tables replace them, where enough past forecasts exist, by bands calibrated per horizon week
  (calibration.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import polars as pl
from scipy.stats import norm

HORIZON_DAYS = 91
T_MIN = -180  # days relative to due date (issue dates up to 180 days before due)
T_MAX = 730  # beyond this nothing is expected to be paid any more


@dataclass(frozen=True)
class ForecastConfig:
    lookback_days: int = 730  # history (invoices issued in this window before F) for the hazards
    run_rate_days: int = 91  # recent billing window for invoices not yet issued
    shrink: float = 5.0  # pseudo-count pulling a customer's hazard to the all-customer one
    half_life_days: float = 60.0  # recency weight of history invoices (by issue date) in the hazards
    n_sims: int = 1000
    seed: int = 42
    rho_global: float = 0.15  # share of the copula variance shared by every invoice in a simulation
    rho_customer: float = 0.35  # share shared by the invoices of one customer
    new_volume_sigma: float = 0.2  # lognormal sd of the weekly new-billing volume shock
    new_by_customer: bool = True  # new billing per customer: its run-rate x its own (shrunk) issue-to-payment lag
    size_effect: bool = True  # shift each invoice's timing by its size relative to its customer's usual invoice
    conformal_window: int = 26  # past forecasts per horizon week calibrating the weekly bands (calibration.py)
    conformal_min: int = 9  # fewer complete past weeks than this: the week keeps the simulated band
    conformal_scale_window: int = 4  # ratios re-scaled by the recent error level (last k forecasts); 0 = off


LEDGER_COLUMNS = ["invoice_key", "customer_id", "invoice_date", "due_date", "paid_date", "currency",
                  "amount", "amount_home"]


@dataclass
class OpenBook:
    """The open invoices at F with their daily payment probabilities (n x 91)."""

    invoices: pl.DataFrame  # invoice_key, customer_id, currency, amount, amount_home (+ extra columns)
    probs: np.ndarray
    customer_index: np.ndarray  # per invoice, index into `customers`
    customers: list[str]


@dataclass
class NewBilling:
    """Expected collections (per day 1..91) from invoices issued after F, per currency, both in the
    currency and at home value."""

    currencies: list[str]
    amount: np.ndarray  # (n_currencies, 91)
    amount_home: np.ndarray  # (n_currencies, 91)


@dataclass
class Forecast:
    forecast_date: date
    book: OpenBook
    new: NewBilling
    sims_amount: dict[str, np.ndarray] = field(default_factory=dict)  # currency -> (n_sims, 91)
    sims_home: np.ndarray | None = None  # (n_sims, 91), all currencies at home value


def known_at(ledger: pl.DataFrame, f: date) -> pl.DataFrame:
    """The ledger as known at the end of day F: invoices issued on or before F, paid dates after F
    erased."""
    return (ledger.filter(pl.col("invoice_date") <= f)
            .with_columns(pl.when(pl.col("paid_date") <= f).then(pl.col("paid_date")).alias("paid_date")))


def km_hazard(entry: np.ndarray, exit_: np.ndarray, event: np.ndarray, group: np.ndarray, n_groups: int,
              t_min: int, t_max: int, weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Discrete-time Kaplan-Meier counts on the integer axis t_min..t_max, per group.

    An item is at risk on every t with entry <= t <= exit_ and has its event on exit_ when `event`;
    it counts `weight` (default 1). Returns (events, at_risk), each (n_groups, t_max - t_min + 1)."""
    weight = np.ones(len(entry)) if weight is None else weight
    width = t_max - t_min + 1
    e = np.clip(entry, t_min, t_max) - t_min
    x = np.clip(exit_, t_min, t_max) - t_min
    ok = x >= e
    cells = n_groups * (width + 1)
    row = np.asarray(group, dtype=np.int64)[ok] * (width + 1)
    w = np.asarray(weight, dtype=np.float64)
    # np.bincount adds the weights in item order, entries first and then exits: the very additions
    # of accumulating them cell by cell in that order (np.add.at), only faster (float64 also when
    # there is no item: bincount then returns integers)
    delta = np.asarray(np.bincount(np.concatenate([row + e[ok], row + x[ok] + 1]).astype(np.int64),
                                   weights=np.concatenate([w[ok], -w[ok]]), minlength=cells),
                       dtype=np.float64).reshape(n_groups, width + 1)
    ev = ok & event & (exit_ <= t_max)
    events = np.asarray(np.bincount((np.asarray(group, dtype=np.int64)[ev] * (width + 1) + x[ev]).astype(np.int64),
                                    weights=w[ev], minlength=cells), dtype=np.float64).reshape(n_groups, width + 1)
    return events[:, :width], np.cumsum(delta, axis=1)[:, :width]


def shrunk_hazard(events: np.ndarray, at_risk: np.ndarray, shrink: float) -> tuple[np.ndarray, np.ndarray]:
    """(per-group hazard shrunk to the pooled one, pooled hazard)."""
    pe, pr = events.sum(axis=0), at_risk.sum(axis=0)
    pooled = np.divide(pe, pr, out=np.zeros_like(pe), where=pr > 0)
    num, den = events + shrink * pooled, at_risk + shrink
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0), pooled


def conditional_probs(hazard: np.ndarray, start: np.ndarray, horizon: int = HORIZON_DAYS,
                      day_factor: np.ndarray | None = None) -> np.ndarray:
    """P(event on step start+k | no event up to and including start), k = 1..horizon, per row.
    `hazard` is (n, width) with one row per item; `start` are indices into its axis (may be < 0:
    steps before the axis have hazard 0; steps past its end have hazard 0). `day_factor` (length
    horizon) multiplies the cumulative hazard -log(1 - h) of step k for every row: the weekday
    effect."""
    n, width = hazard.shape
    idx = start[:, None] + np.arange(1, horizon + 1)[None, :]
    inside = (idx >= 0) & (idx < width)
    h = np.where(inside, hazard[np.arange(n)[:, None], np.clip(idx, 0, width - 1)], 0.0)
    if day_factor is not None:
        # the factor multiplies the day's cumulative hazard -log(1 - h), not h: factors averaging 1
        # over a week then keep the week's survival, so a high-hazard stretch (the due date) does
        # not gain mass on the busy weekdays (multiplying h did: week 1 was biased high)
        h = 1.0 - np.power(np.clip(1.0 - h, 0.0, 1.0), day_factor[None, :])
    survive_before = np.cumprod(np.hstack([np.ones((n, 1)), 1.0 - h[:, :-1]]), axis=1)
    return h * survive_before


def _amount_weight(frame: pl.DataFrame) -> np.ndarray:
    """Home amount relative to the mean, so hazards are shares of money (a big invoice that pays late
    weighs more than a small one that pays early) and the shrinkage pseudo-count is in "average
    invoices"."""
    a = np.abs(frame["amount_home"].to_numpy().astype(np.float64))
    m = a.mean() if len(a) and a.mean() > 0 else 1.0
    return a / m


def _weight(frame: pl.DataFrame, f: date, cfg: ForecastConfig) -> np.ndarray:
    """Amount weight times a recency weight halving every `half_life_days` of issue-date age at F
    (customers whose behaviour drifts are read mostly from their recent invoices), the recency
    part scaled to mean 1 over the frame so the shrinkage pseudo-count stays "average invoices"
    whatever the half-life (unscaled, a short half-life left a customer only a few effective
    invoices and pulled it hard to the all-customer curve: card-on-file customers' same-day
    collections were under-forecast)."""
    age = frame.select((pl.lit(f) - pl.col("invoice_date")).dt.total_days())[:, 0].to_numpy().astype(np.float64)
    recency = 0.5 ** (age / cfg.half_life_days)
    m = recency.mean() if len(recency) else 1.0
    return _amount_weight(frame) * recency / (m if m > 0 else 1.0)


def _days(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    return (a - b).dt.total_days().cast(pl.Int64)


def size_excess(frame: pl.DataFrame, reference: pl.DataFrame) -> np.ndarray:
    """Per invoice of `frame`: max(log(amount_home / its customer's median amount_home in
    `reference`), 0) — how much bigger than the customer's usual invoice it is (0 for a customer
    absent from `reference`)."""
    med = reference.group_by("customer_id").agg(pl.col("amount_home").abs().median().alias("_med"))
    x = frame.select("customer_id", pl.col("amount_home").abs().alias("_a")).join(
        med, on="customer_id", how="left", maintain_order="left")
    a, m = x["_a"].to_numpy().astype(np.float64), x["_med"].fill_null(0.0).to_numpy().astype(np.float64)
    return np.where((a > 0) & (m > 0), np.maximum(np.log(np.where(a > 0, a, 1.0) / np.where(m > 0, m, 1.0)), 0.0), 0.0)


def size_slope(lateness: np.ndarray, excess: np.ndarray, group: np.ndarray, n_groups: int,
               max_days: float = 30.0) -> float:
    """Days of extra lateness per unit of size excess, within customers: least squares of lateness
    on excess after removing each customer's mean of both (customer fixed effects), from settled
    invoices; 0 without spread in the excess; clipped to ±max_days."""
    if len(lateness) == 0:
        return 0.0
    cnt = np.bincount(group, minlength=n_groups).astype(np.float64)
    ml = np.bincount(group, weights=lateness, minlength=n_groups) / np.maximum(cnt, 1.0)
    mx = np.bincount(group, weights=excess, minlength=n_groups) / np.maximum(cnt, 1.0)
    dl, dx = lateness - ml[group], excess - mx[group]
    sxx = float(np.sum(dx * dx))
    return float(np.clip(np.sum(dx * dl) / sxx, -max_days, max_days)) if sxx > 1e-9 else 0.0


def open_book(ledger: pl.DataFrame, f: date, cfg: ForecastConfig, open_amounts: pl.DataFrame | None = None) -> OpenBook:
    """Open invoices at F and their daily payment probabilities for days F+1..F+91.

    `ledger` must hold LEDGER_COLUMNS (amount = invoice total in its currency). `open_amounts`
    (invoice_key, amount, amount_home), when given, replaces the totals of the open invoices by
    what is still open (partial payments known in the marts at the data end).

    With `cfg.size_effect`, each invoice's clock is shifted by round(slope × size excess) days
    (size_excess, size_slope: an invoice bigger than its customer's usual one tends to pay later);
    the hazards are estimated on the shifted axis (a "usual-size" invoice) and read for an open
    invoice at its shifted age, so a big invoice just past due is treated as not yet at its usual
    payment point."""
    k = known_at(ledger, f).filter(pl.col("invoice_date") > f - timedelta(days=cfg.lookback_days))
    customers = sorted(set(k["customer_id"].to_list()))
    cidx = {c: i for i, c in enumerate(customers)}
    hist = k.with_columns(
        pl.Series("_w", _weight(k, f, cfg)),
        _days(pl.col("invoice_date"), pl.col("due_date")).alias("entry"),
        pl.when(pl.col("paid_date").is_not_null()).then(_days(pl.col("paid_date"), pl.col("due_date")))
        .otherwise(_days(pl.lit(f), pl.col("due_date"))).alias("exit"),
        pl.col("paid_date").is_not_null().alias("event"),
    )
    group = np.array([cidx[c] for c in hist["customer_id"].to_list()], dtype=np.int64)
    slope = 0.0
    if cfg.size_effect and hist.height:
        x_hist = size_excess(hist, hist)
        ev = hist["event"].to_numpy()
        slope = size_slope(hist["exit"].to_numpy()[ev].astype(np.float64), x_hist[ev], group[ev],
                           max(len(customers), 1))
        shift = np.round(slope * x_hist).astype(np.int64)
        hist = hist.with_columns(pl.col("entry") - pl.Series(shift), pl.col("exit") - pl.Series(shift),
                                 (pl.col("due_date") + pl.duration(days=pl.Series(shift))).alias("due_date"))
    events, at_risk = km_hazard(hist["entry"].to_numpy(), hist["exit"].to_numpy(), hist["event"].to_numpy(),
                                group, max(len(customers), 1), T_MIN, T_MAX, hist["_w"].to_numpy())
    hazard, _ = shrunk_hazard(events, at_risk, cfg.shrink)
    hazard_hist = hazard
    opn = known_at(ledger, f).filter(pl.col("paid_date").is_null())
    if open_amounts is not None:
        opn = (opn.drop("amount", "amount_home").join(open_amounts, on="invoice_key", how="inner")
               .filter(pl.col("amount_home") > 0))
    opn = opn.sort("invoice_key")
    for c in opn["customer_id"].unique().to_list():
        if c not in cidx:  # issued before the lookback window and still open: pooled hazard
            cidx[c] = len(customers)
            customers.append(c)
            hazard = np.vstack([hazard, (events.sum(axis=0) / np.maximum(at_risk.sum(axis=0), 1e-9))[None, :]])
    ci = np.array([cidx[c] for c in opn["customer_id"].to_list()], dtype=np.int64)
    t0 = opn.select(_days(pl.lit(f), pl.col("due_date")))[:, 0].to_numpy() - T_MIN
    if slope != 0.0 and opn.height:
        # size relative to the customer's usual invoice (the totals, as in the history)
        ref = known_at(ledger, f).filter(pl.col("invoice_date") > f - timedelta(days=cfg.lookback_days))
        tot = known_at(ledger, f).filter(pl.col("invoice_key").is_in(opn["invoice_key"].implode()))
        x_open = dict(zip(tot["invoice_key"].to_list(), size_excess(tot, ref).tolist(), strict=True))
        x = np.array([x_open.get(k_, 0.0) for k_ in opn["invoice_key"].to_list()])
        t0 = t0 - np.round(slope * x).astype(np.int64)
    wd = weekday_factors(hist, group, hazard_hist)
    day_factor = wd[[(f + timedelta(days=k)).weekday() for k in range(1, HORIZON_DAYS + 1)]]
    probs = conditional_probs(hazard[ci], t0, day_factor=day_factor) if opn.height else np.zeros((0, HORIZON_DAYS))
    return OpenBook(invoices=opn, probs=probs, customer_index=ci, customers=customers)


def weekday_factors(hist: pl.DataFrame, group: np.ndarray, hazard: np.ndarray) -> np.ndarray:
    """Multiplier of the daily hazard per calendar weekday (Mon=0): observed payments on that weekday
    over the payments the weekday-blind hazard expects on it, summed over every (invoice, day) at
    risk in the history (`group`: each history invoice's row in `hazard`). Collections cluster on
    some weekdays (none on weekends in many ledgers); without this, the days after a weekend
    forecast date get the weekend's share too."""
    if hist.height == 0:
        return np.ones(7)
    w = hist["_w"].to_numpy()
    due_wd = hist.select(pl.col("due_date").dt.weekday() - 1)[:, 0].to_numpy().astype(np.int64)  # Mon=0
    n_groups = hazard.shape[0]
    width = T_MAX - T_MIN + 1
    entry, exit_, event = hist["entry"].to_numpy(), hist["exit"].to_numpy(), hist["event"].to_numpy()
    per_due_wd_t = np.zeros((7, width))  # expected payments per (due weekday, t), summed over groups
    for d in range(7):  # one due weekday at a time: (groups, t) arrays rather than 7 times as large
        m = due_wd == d
        _, at_risk = km_hazard(entry[m], exit_[m], event[m], group[m], n_groups, T_MIN, T_MAX, w[m])
        per_due_wd_t[d] = (at_risk * hazard).sum(axis=0)
    t = np.arange(width) + T_MIN
    cal_wd = (np.arange(7)[:, None] + t[None, :]) % 7
    expected = np.bincount(cal_wd.ravel(), weights=per_due_wd_t.ravel(), minlength=7)
    ex, en = hist["exit"].to_numpy(), hist["entry"].to_numpy()
    ev = hist["event"].to_numpy() & (ex <= T_MAX) & (ex >= en)
    observed = np.bincount((due_wd[ev] + hist["exit"].to_numpy()[ev]) % 7, weights=w[ev], minlength=7)
    return np.divide(observed, expected, out=np.ones(7), where=expected > 0)


def lag_pmf(ledger: pl.DataFrame, f: date, cfg: ForecastConfig) -> np.ndarray:
    """P(paid at age a days after issue), a = 0..90, all customers, from invoices known at F."""
    k = known_at(ledger, f).filter(pl.col("invoice_date") > f - timedelta(days=cfg.lookback_days))
    exit_ = k.select(pl.when(pl.col("paid_date").is_not_null()).then(_days(pl.col("paid_date"), pl.col("invoice_date")))
                     .otherwise(_days(pl.lit(f), pl.col("invoice_date"))))[:, 0].to_numpy()
    events, at_risk = km_hazard(np.zeros(k.height, dtype=np.int64), exit_, k["paid_date"].is_not_null().to_numpy(),
                                np.zeros(k.height, dtype=np.int64), 1, 0, HORIZON_DAYS - 1, _weight(k, f, cfg))
    h = np.divide(events[0], at_risk[0], out=np.zeros(HORIZON_DAYS), where=at_risk[0] > 0)
    return h * np.cumprod(np.concatenate([[1.0], 1.0 - h[:-1]]))


def customer_lag_pmfs(ledger: pl.DataFrame, f: date, cfg: ForecastConfig) -> tuple[list[str], np.ndarray]:
    """Per customer (sorted ids), P(paid at age a days after issue), a = 0..90, from invoices known
    at F: a Kaplan-Meier hazard on the age axis per customer, shrunk towards all customers with
    `cfg.shrink` (the same weights as the open-invoice hazards). Rows (n_customers, 91)."""
    k = known_at(ledger, f).filter(pl.col("invoice_date") > f - timedelta(days=cfg.lookback_days))
    customers = sorted(set(k["customer_id"].to_list()))
    cidx = {c: i for i, c in enumerate(customers)}
    exit_ = k.select(pl.when(pl.col("paid_date").is_not_null()).then(_days(pl.col("paid_date"), pl.col("invoice_date")))
                     .otherwise(_days(pl.lit(f), pl.col("invoice_date"))))[:, 0].to_numpy()
    group = np.array([cidx[c] for c in k["customer_id"].to_list()], dtype=np.int64)
    events, at_risk = km_hazard(np.zeros(k.height, dtype=np.int64), exit_, k["paid_date"].is_not_null().to_numpy(),
                                group, max(len(customers), 1), 0, HORIZON_DAYS - 1, _weight(k, f, cfg))
    h, _ = shrunk_hazard(events, at_risk, cfg.shrink)
    return customers, h * np.cumprod(np.hstack([np.ones((h.shape[0], 1)), 1.0 - h[:, :-1]]), axis=1)


def new_billing(ledger: pl.DataFrame, f: date, cfg: ForecastConfig, pmf: np.ndarray | None = None) -> NewBilling:
    """Run-rate of invoices issued in (F - run_rate_days, F], issued every day F+1..F+91 and paid
    after the lag distribution: expected collections per day, per currency. With
    `cfg.new_by_customer` (and no `pmf` given) each customer's run-rate is paid after its own lag
    distribution (customer_lag_pmfs), so a shift of recent billing towards slow payers shows."""
    since = f - timedelta(days=cfg.run_rate_days)
    recent = ledger.filter((pl.col("invoice_date") <= f) & (pl.col("invoice_date") > since))
    if cfg.new_by_customer and pmf is None:
        customers, pmfs = customer_lag_pmfs(ledger, f, cfg)
        cidx = {c: i for i, c in enumerate(customers)}
        rates = (recent.group_by("currency", "customer_id").agg(pl.col("amount").sum(), pl.col("amount_home").sum())
                 .sort("currency", "customer_id"))
        currencies = sorted(set(rates["currency"].to_list()))
        amt, home = np.zeros((len(currencies), HORIZON_DAYS)), np.zeros((len(currencies), HORIZON_DAYS))
        kernels = np.cumsum(pmfs, axis=1)
        for cur, cust, a, ah in rates.iter_rows():
            kernel = kernels[cidx[cust]]  # recent billing is known at F, so the customer is too
            j = currencies.index(cur)
            amt[j] += a / cfg.run_rate_days * kernel
            home[j] += ah / cfg.run_rate_days * kernel
        return NewBilling(currencies=currencies, amount=amt, amount_home=home)
    pmf = lag_pmf(ledger, f, cfg) if pmf is None else pmf
    rates = recent.group_by("currency").agg(pl.col("amount").sum(), pl.col("amount_home").sum()).sort("currency")
    # issued on day s (1..91), paid on day s + a: expected on day d = rate * sum_{s<=d} pmf[d - s]
    kernel = np.cumsum(pmf)  # day d (1-based) receives rate * sum_{a=0}^{d-1} pmf[a]
    amt = np.outer(rates["amount"].to_numpy() / cfg.run_rate_days, kernel)
    home = np.outer(rates["amount_home"].to_numpy() / cfg.run_rate_days, kernel)
    return NewBilling(currencies=rates["currency"].to_list(), amount=amt, amount_home=home)


def expected_daily(book: OpenBook, new: NewBilling, include_new: bool = True) -> pl.DataFrame:
    """Expected collections per (currency, day 1..91): open invoices + new billing, in the currency
    and at home value."""
    rows = []
    currencies = sorted(set(book.invoices["currency"].to_list()) | set(new.currencies))
    cur = book.invoices["currency"].to_numpy() if book.invoices.height else np.array([])
    amt = book.invoices["amount"].to_numpy() if book.invoices.height else np.array([])
    home = book.invoices["amount_home"].to_numpy() if book.invoices.height else np.array([])
    for c in currencies:
        m = cur == c
        a = (amt[m][:, None] * book.probs[m]).sum(axis=0) if m.any() else np.zeros(HORIZON_DAYS)
        h = (home[m][:, None] * book.probs[m]).sum(axis=0) if m.any() else np.zeros(HORIZON_DAYS)
        if include_new and c in new.currencies:
            j = new.currencies.index(c)
            a, h = a + new.amount[j], h + new.amount_home[j]
        rows.append(pl.DataFrame({"currency": c, "day": np.arange(1, HORIZON_DAYS + 1), "expected_amount": a,
                                  "expected_home": h}))
    schema = {"currency": pl.String, "day": pl.Int64, "expected_amount": pl.Float64, "expected_home": pl.Float64}
    return pl.concat(rows) if rows else pl.DataFrame(schema=schema)


def expected_home_total(book: OpenBook, new: NewBilling) -> np.ndarray:
    """Expected home-value collections per day 1..91, all currencies (the 'ALL' rows)."""
    home = book.invoices["amount_home"].to_numpy() if book.invoices.height else np.zeros(0)
    return (home[:, None] * book.probs).sum(axis=0) + new.amount_home.sum(axis=0)


def draw_pay_days(book: OpenBook, cfg: ForecastConfig, rng: np.random.Generator) -> np.ndarray:
    """(n_sims, n_invoices) simulated payment day index 0..90, or -1 when not paid in the horizon."""
    n = book.invoices.height
    z_g = rng.standard_normal((cfg.n_sims, 1))
    z_c = rng.standard_normal((cfg.n_sims, max(len(book.customers), 1)))
    z_i = rng.standard_normal((cfg.n_sims, n))
    rest = max(1.0 - cfg.rho_global - cfg.rho_customer, 0.0)
    z = np.sqrt(cfg.rho_global) * z_g + np.sqrt(cfg.rho_customer) * z_c[:, book.customer_index] + np.sqrt(rest) * z_i
    u = norm.cdf(z)
    cdf = np.cumsum(book.probs, axis=1)
    out = np.empty((cfg.n_sims, n), dtype=np.int64)
    for i in range(n):
        out[:, i] = np.searchsorted(cdf[i], u[:, i], side="left")
    out[out >= HORIZON_DAYS] = -1
    return out


def volume_shocks(cfg: ForecastConfig, rng: np.random.Generator) -> np.ndarray:
    """(n_sims, 91) multiplicative new-billing shocks, constant within a week, mean 1."""
    s = cfg.new_volume_sigma
    weekly = np.exp(s * rng.standard_normal((cfg.n_sims, 13)) - s * s / 2)
    return np.repeat(weekly, 7, axis=1)


def simulate(book: OpenBook, new: NewBilling, cfg: ForecastConfig, pay_days: np.ndarray | None = None,
             shocks: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Simulated daily collections: per currency (n_sims, 91) and all currencies at home value."""
    rng = np.random.default_rng(cfg.seed)
    pay_days = draw_pay_days(book, cfg, rng) if pay_days is None else pay_days
    shocks = volume_shocks(cfg, rng) if shocks is None else shocks
    currencies = sorted(set(book.invoices["currency"].to_list()) | set(new.currencies))
    cur = book.invoices["currency"].to_numpy() if book.invoices.height else np.array([])
    amt = book.invoices["amount"].to_numpy() if book.invoices.height else np.array([])
    home_amt = book.invoices["amount_home"].to_numpy() if book.invoices.height else np.array([])
    sims, idx = {}, np.arange(cfg.n_sims)[:, None]
    home = np.zeros((cfg.n_sims, HORIZON_DAYS))
    for c in currencies:
        a = np.zeros((cfg.n_sims, HORIZON_DAYS))
        m = np.where(cur == c)[0]
        if len(m):
            d = pay_days[:, m]
            paid = d >= 0
            rows = np.broadcast_to(idx, d.shape)[paid]
            np.add.at(a, (rows, d[paid]), np.broadcast_to(amt[m], d.shape)[paid])
            np.add.at(home, (rows, d[paid]), np.broadcast_to(home_amt[m], d.shape)[paid])
        if c in new.currencies:
            j = new.currencies.index(c)
            a += shocks * new.amount[j][None, :]
            home += shocks * new.amount_home[j][None, :]
        sims[c] = a
    return sims, home


def week_of_day(day: np.ndarray) -> np.ndarray:
    return (day - 1) // 7 + 1


def _weekly(sims: np.ndarray) -> np.ndarray:
    return sims.reshape(sims.shape[0], 13, 7).sum(axis=2)


def build_forecast(ledger: pl.DataFrame, f: date, cfg: ForecastConfig,
                   open_amounts: pl.DataFrame | None = None, simulate_bands: bool = True) -> Forecast:
    book = open_book(ledger, f, cfg, open_amounts)
    new = new_billing(ledger, f, cfg)
    fc = Forecast(forecast_date=f, book=book, new=new)
    if simulate_bands:
        fc.sims_amount, fc.sims_home = simulate(book, new, cfg)
    return fc


def daily_table(fc: Forecast, home_currency: str) -> pl.DataFrame:
    """One row per (currency, date) plus currency 'ALL' (every currency at home value)."""
    exp = expected_daily(fc.book, fc.new)
    rows = []
    for c in sorted(set(exp["currency"].to_list())):
        e = exp.filter(pl.col("currency") == c).sort("day")
        q = _quantiles(fc.sims_amount.get(c))
        rows.append(_frame(fc.forecast_date, c, e["expected_amount"].to_numpy(), q, e["expected_home"].to_numpy()))
    tot = expected_home_total(fc.book, fc.new)
    q = _quantiles(fc.sims_home)
    rows.append(_frame(fc.forecast_date, "ALL", tot, q, tot))
    out = pl.concat(rows)
    return out.with_columns(pl.lit(home_currency).alias("home_currency"))


def _quantiles(sims: np.ndarray | None) -> np.ndarray:
    return np.quantile(sims, [0.1, 0.5, 0.9], axis=0) if sims is not None else np.full((3, HORIZON_DAYS), np.nan)


def _frame(f: date, currency: str, expected: np.ndarray, q: np.ndarray, expected_home: np.ndarray) -> pl.DataFrame:
    days = np.arange(1, HORIZON_DAYS + 1)
    return pl.DataFrame({
        "forecast_date": [f] * HORIZON_DAYS,
        "currency": [currency] * HORIZON_DAYS,
        "day": days,
        "collection_date": [f + timedelta(days=int(d)) for d in days],
        "week": week_of_day(days),
        "expected_amount": expected, "p10_amount": q[0], "p50_amount": q[1], "p90_amount": q[2],
        "expected_home": expected_home,
    })


def sim_weekly_bands(fc: Forecast) -> dict[str, np.ndarray]:
    """(3, 13) p10/p50/p90 of the simulated weekly sums per currency (in it) and 'ALL' (home)."""
    out = {c: np.quantile(_weekly(s), [0.1, 0.5, 0.9], axis=0) for c, s in fc.sims_amount.items()}
    if fc.sims_home is not None:
        out["ALL"] = np.quantile(_weekly(fc.sims_home), [0.1, 0.5, 0.9], axis=0)
    return out


def weekly_table(fc: Forecast, home_currency: str,
                 bands: dict[str, tuple[np.ndarray, list[str]]] | None = None) -> pl.DataFrame:
    """One row per (currency, week 1..13) plus currency 'ALL'; bands are quantiles of the simulated
    weekly sums (not sums of daily quantiles), or, per series and week where `bands` (from
    calibration.calibrated_bands) has them, the calibrated ones; `band_source` says which."""
    exp = expected_daily(fc.book, fc.new)
    rows = []

    def one(c: str, e: np.ndarray, eh: np.ndarray, sims: np.ndarray | None) -> pl.DataFrame:
        we, weh = e.reshape(13, 7).sum(axis=1), eh.reshape(13, 7).sum(axis=1)
        q = np.quantile(_weekly(sims), [0.1, 0.5, 0.9], axis=0) if sims is not None else np.full((3, 13), np.nan)
        src = ["simulation"] * 13
        if bands is not None and c in bands:
            q, src = bands[c]
        weeks = np.arange(1, 14)
        return pl.DataFrame({
            "forecast_date": [fc.forecast_date] * 13, "currency": [c] * 13, "week": weeks,
            "week_start": [fc.forecast_date + timedelta(days=int(7 * (w - 1) + 1)) for w in weeks],
            "week_end": [fc.forecast_date + timedelta(days=int(7 * w)) for w in weeks],
            "expected_amount": we, "p10_amount": q[0], "p50_amount": q[1], "p90_amount": q[2],
            "expected_home": weh, "band_source": src,
        })

    for c in sorted(set(exp["currency"].to_list())):
        e = exp.filter(pl.col("currency") == c).sort("day")
        rows.append(one(c, e["expected_amount"].to_numpy(), e["expected_home"].to_numpy(), fc.sims_amount.get(c)))
    tot = expected_home_total(fc.book, fc.new)
    rows.append(one("ALL", tot, tot, fc.sims_home))
    return pl.concat(rows).with_columns(pl.lit(home_currency).alias("home_currency"))
