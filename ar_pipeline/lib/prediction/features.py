"""Leak-free invoice features for payment prediction, in pure polars.

Every feature of an invoice is computed *as of its issue date* from events dated strictly before
that date: the customer's invoices settled before it (paid date < issue date), the invoices it had
issued before it, due dates that had passed before it, and dated customer events (disputes, credit
memos, write-offs) before it. Nothing dated on or after the issue date is read, so moving, adding
or removing a later payment cannot change a feature (tests/test_prediction.py checks it).

How: sort + cumulative sums per customer, one row per (customer, date) keeping the running totals
after that date, then `join_asof(..., strategy="backward", allow_exact_matches=False)` from each
target invoice's issue date. O(n log n); the whole frame stays columnar (1M invoices: see bench/).

Inputs (plain polars frames so any history can be used, not only the marts):
- ledger: invoice_key, customer_id, source, invoice_date, due_date, paid_date (null = not fully
  paid), currency, amount_home (float, home currency). Void invoices must be left out.
- events (optional): customer_id, event_type, event_date.
- customers (optional): customer_id, segment, region.
An invoice counts as *open* from its issue date until its paid date (never closed when unpaid or
written off) and as *overdue* from due_date + 1 until its paid date. Open/overdue amounts are the
invoices' total amounts (partial payments are not netted).
"""

from __future__ import annotations

from datetime import date

import polars as pl

#: settled invoices in the "recent" window (late count, mean days late / to pay).
RECENT_WINDOW = 10
#: settled invoices in the rolling median.
MEDIAN_WINDOW = 20

LEDGER_COLUMNS = ["invoice_key", "customer_id", "source", "invoice_date", "due_date", "paid_date",
                  "currency", "amount_home"]
TARGET_COLUMNS = ["invoice_key", "customer_id", "source", "invoice_date", "due_date", "currency",
                  "amount_home"]

CATEGORICAL_FEATURES = ["currency", "source", "segment", "region"]
HISTORY_FEATURES = [
    "has_history", "hist_count_log", "late_share", "late30_share", "mean_days_late", "mean_days_to_pay",
    "last_days_late", "recent_late_share", "recent_mean_days_late", "recent_mean_days_to_pay",
    "median20_days_late", "median20_days_to_pay", "trend_days_late", "season_excess_days_late",
]
EXPOSURE_FEATURES = ["open_count", "open_amount_log", "overdue_count", "overdue_amount_log",
                     "prev_invoice_count_log"]
INVOICE_FEATURES = ["amount_log", "amount_rel_log", "terms_days", "is_home_currency", "issue_dow",
                    "issue_dom", "disputes_before", "credit_memos_before", "write_offs_before", "reminders_before"]
NUMERIC_FEATURES = HISTORY_FEATURES + EXPOSURE_FEATURES + INVOICE_FEATURES
ALL_FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES
#: used by the days-to-pay model only (after ALL_FEATURES in its design matrix): the least-squares
#: slope of days late over the last MEDIAN_WINDOW settled invoices, in days per month, and that
#: slope carried from those payments to this invoice's likely payment date. On the tuning histories
#: they lowered days-to-pay MAE but not the late classifiers' AUC (README "Risk scores and the backtest").
TIMING_EXTRA_FEATURES = ["slope_days_late", "trend_projection_days"]
TIMING_FEATURES = ALL_FEATURES + TIMING_EXTRA_FEATURES

CREDIT_EVENTS = ("credit_memo_issued", "credit_note")
#: a reminder sent (or a collections call made) to the customer, from analytics.reminder_log
REMINDER_EVENT = "reminder_sent"


def _days(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    return (a - b).dt.total_days()


def _last_per_date(frame: pl.DataFrame, by: list[str], at: str) -> pl.DataFrame:
    """The last row (running totals after the whole day) per `by` + date, sorted by date."""
    return frame.unique(subset=[*by, at], keep="last", maintain_order=True).sort(at)


def _asof(left: pl.DataFrame, right: pl.DataFrame, at: str, by: str | None = "customer_id") -> pl.DataFrame:
    """Join each left row to the right's running totals strictly before its invoice_date."""
    return left.join_asof(right, left_on="invoice_date", right_on=at, by=by, strategy="backward",
                          allow_exact_matches=False, check_sortedness=False).drop(at)


def _running(frame: pl.DataFrame, at: str, sums: dict[str, pl.Expr], by: str | None) -> pl.DataFrame:
    """Cumulative sums of `sums` ordered by (`by`, `at`, invoice_key when present), one row per
    (`by`, `at`). The total order makes float sums over the same earlier rows bit-identical
    whatever happens later."""
    keys = [by] if by else []
    tie = ["invoice_key"] if "invoice_key" in frame.columns else []
    frame = frame.select(*keys, at, *tie, **sums).sort([*keys, at, *tie])
    over = (lambda e: e.over(by)) if by else (lambda e: e)
    out = frame.select(*keys, at, *[over(pl.col(name).cum_sum()).alias(name) for name in sums])
    return _last_per_date(out, keys, at)


def settlement_history(ledger: pl.DataFrame) -> pl.DataFrame:
    """Per customer and settlement date, the running history of its settled invoices."""
    g = "customer_id"
    s = (
        ledger.filter(pl.col("paid_date").is_not_null())
        .select(g, pl.col("paid_date").alias("_settled"), "invoice_key",
                _days(pl.col("paid_date"), pl.col("due_date")).cast(pl.Float64).alias("dl"),
                _days(pl.col("paid_date"), pl.col("invoice_date")).cast(pl.Float64).alias("dtp"),
                # paid date in months since 2000 (small numbers keep the windowed sums exact enough);
                # by paid date, not issue date: among invoices settled so far the recently issued
                # ones are only the quickly paid ones, so a slope over issue dates always points down
                (_days(pl.col("paid_date"), pl.lit(date(2000, 1, 1))).cast(pl.Float64) / 30.0).alias("mx"))
        .sort(g, "_settled", "invoice_key")
        .with_columns(late=(pl.col("dl") > 0).cast(pl.Float64), late30=(pl.col("dl") > 30).cast(pl.Float64),
                      mxx=pl.col("mx") * pl.col("mx"), mxy=pl.col("mx") * pl.col("dl"))
    )

    def cum(name: str) -> pl.Expr:
        return pl.col(name).cum_sum().over(g)

    def window(name: str, size: int = RECENT_WINDOW) -> pl.Expr:
        c = pl.col(name).cum_sum()
        return (c - c.shift(size).fill_null(0.0)).over(g)

    s = s.with_columns(
        h_n=pl.int_range(1, pl.len() + 1).over(g).cast(pl.Float64),
        c_late=cum("late"), c_late30=cum("late30"), c_dl=cum("dl"), c_dtp=cum("dtp"),
        w_late=window("late"), w_dl=window("dl"), w_dtp=window("dtp"),
        med_dl=pl.col("dl").rolling_median(MEDIAN_WINDOW, min_samples=1).over(g),
        med_dtp=pl.col("dtp").rolling_median(MEDIAN_WINDOW, min_samples=1).over(g),
        last_dl=pl.col("dl"),
        # least-squares slope of days late over payment date, last MEDIAN_WINDOW settled invoices
        s_x=window("mx", MEDIAN_WINDOW), s_y=window("dl", MEDIAN_WINDOW),
        s_xx=window("mxx", MEDIAN_WINDOW), s_xy=window("mxy", MEDIAN_WINDOW),
    ).with_columns(w_n=pl.min_horizontal(pl.col("h_n"), pl.lit(float(RECENT_WINDOW))),
                   s_n=pl.min_horizontal(pl.col("h_n"), pl.lit(float(MEDIAN_WINDOW))))
    den = pl.col("s_n") * pl.col("s_xx") - pl.col("s_x") ** 2
    s = s.with_columns(
        slope_dl=pl.when((pl.col("s_n") >= 3) & (den > 1e-6 * pl.col("s_n") ** 2))
        .then((pl.col("s_n") * pl.col("s_xy") - pl.col("s_x") * pl.col("s_y")) / den).otherwise(0.0),
        mean_mx=pl.col("s_x") / pl.col("s_n"),
    )
    keep = [g, "_settled", "h_n", "c_late", "c_late30", "c_dl", "c_dtp", "w_late", "w_dl", "w_dtp", "w_n",
            "med_dl", "med_dtp", "last_dl", "slope_dl", "mean_mx"]
    return _last_per_date(s.select(keep), [g], "_settled")


def global_history(ledger: pl.DataFrame) -> pl.DataFrame:
    """Running totals over every customer's settled invoices (the priors), per settlement date."""
    s = ledger.filter(pl.col("paid_date").is_not_null()).select(
        "invoice_key", pl.col("paid_date").alias("_gsettled"),
        g_n=pl.lit(1.0),
        g_late=(pl.col("paid_date") > pl.col("due_date")).cast(pl.Float64),
        g_late30=(_days(pl.col("paid_date"), pl.col("due_date")) > 30).cast(pl.Float64),
        g_dl=_days(pl.col("paid_date"), pl.col("due_date")).cast(pl.Float64),
        g_dtp=_days(pl.col("paid_date"), pl.col("invoice_date")).cast(pl.Float64),
    )
    return _running(s, "_gsettled", {c: pl.col(c) for c in ["g_n", "g_late", "g_late30", "g_dl", "g_dtp"]},
                    by=None)


def build_features(
    ledger: pl.DataFrame,
    events: pl.DataFrame | None = None,
    customers: pl.DataFrame | None = None,
    targets: pl.DataFrame | None = None,
    home_currency: str = "USD",
) -> pl.DataFrame:
    """One row per target invoice (default: every ledger invoice) with identifying columns
    (invoice_key, customer_id, invoice_date, due_date) and ALL_FEATURES, each as of the target's
    issue date from `ledger`/`events` dated strictly before it. Targets need TARGET_COLUMNS; they
    may be invoices that are not in the ledger (e.g. a hypothetical next invoice per customer)."""
    ledger = ledger.select(LEDGER_COLUMNS).with_columns(pl.col("amount_home").cast(pl.Float64))
    t = (ledger if targets is None else targets).select(TARGET_COLUMNS)
    t = t.with_columns(pl.col("amount_home").cast(pl.Float64)).sort("invoice_date")
    g = "customer_id"

    # settled history, per customer and global
    t = _asof(t, settlement_history(ledger), "_settled")
    t = _asof(t, global_history(ledger), "_gsettled", by=None)

    # exposure: issued / paid / due-passed / (due-passed and paid) running totals
    amt = pl.col("amount_home")
    one = pl.lit(1.0)
    issued = _running(ledger.select(g, "invoice_key", pl.col("invoice_date").alias("_iss"), amt),
                      "_iss", {"i_n": one, "i_amt": amt, "i_log": amt.clip(0.0).log1p()}, by=g)
    paid = ledger.filter(pl.col("paid_date").is_not_null())
    paid_run = _running(paid.select(g, "invoice_key", pl.col("paid_date").alias("_paid"), amt),
                        "_paid", {"p_n": one, "p_amt": amt}, by=g)
    # overdue from due_date + 1: due_date < issue date (strict asof on due_date)
    due_run = _running(ledger.select(g, "invoice_key", pl.col("due_date").alias("_due"), amt),
                       "_due", {"d_n": one, "d_amt": amt}, by=g)
    # no longer overdue once paid: counted when both the due date and the paid date are past
    pd_run = _running(paid.select(g, "invoice_key", pl.max_horizontal("due_date", "paid_date").alias("_pd"), amt),
                      "_pd", {"pd_n": one, "pd_amt": amt}, by=g)
    for frame, at in ((issued, "_iss"), (paid_run, "_paid"), (due_run, "_due"), (pd_run, "_pd")):
        t = _asof(t, frame, at)

    # seasonality: the customer's invoices settled before the issue date that were due in the same
    # calendar month as this invoice's due date (year-end, summer holidays)
    def month_key(frame: pl.DataFrame) -> pl.Expr:
        return pl.concat_str(pl.col(g), pl.lit("|"), pl.col("due_date").dt.month().cast(pl.String)).alias("_sk")

    season = _running(paid.select(month_key(paid), "invoice_key", pl.col("paid_date").alias("_sp"),
                                  _days(pl.col("paid_date"), pl.col("due_date")).cast(pl.Float64).alias("_sdl")),
                      "_sp", {"s_n": one, "s_dl": pl.col("_sdl")}, by="_sk")
    t = _asof(t.with_columns(month_key(t)), season, "_sp", by="_sk").drop("_sk")

    # dated customer events
    if events is not None and events.height:
        ev = events.select(g, "event_type", pl.col("event_date").alias("_ev")).with_columns(
            e_disp=(pl.col("event_type") == "dispute_opened").cast(pl.Float64),
            e_cred=pl.col("event_type").is_in(list(CREDIT_EVENTS)).cast(pl.Float64),
            e_wo=(pl.col("event_type") == "write_off").cast(pl.Float64),
            e_rem=(pl.col("event_type") == REMINDER_EVENT).cast(pl.Float64),
        ).filter(pl.col("e_disp") + pl.col("e_cred") + pl.col("e_wo") + pl.col("e_rem") > 0)
        t = _asof(t, _running(ev, "_ev", {c: pl.col(c) for c in ["e_disp", "e_cred", "e_wo", "e_rem"]}, by=g), "_ev")
    else:
        t = t.with_columns(e_disp=pl.lit(None, pl.Float64), e_cred=pl.lit(None, pl.Float64),
                           e_wo=pl.lit(None, pl.Float64), e_rem=pl.lit(None, pl.Float64))

    if customers is not None and customers.height:
        t = t.join(customers.select(g, "segment", "region").unique(subset=[g], keep="first"), on=g, how="left")
    else:
        t = t.with_columns(segment=pl.lit(None, pl.String), region=pl.lit(None, pl.String))

    z = lambda name: pl.col(name).fill_null(0.0)  # noqa: E731
    terms = _days(pl.col("due_date"), pl.col("invoice_date")).cast(pl.Float64)
    # priors: every customer's settled invoices before the issue date; before any, neutral values
    prior_late = (z("g_late") / pl.col("g_n")).fill_null(0.5)
    prior_late30 = (z("g_late30") / pl.col("g_n")).fill_null(0.1)
    prior_dl = (z("g_dl") / pl.col("g_n")).fill_null(0.0)
    prior_dtp = (z("g_dtp") / pl.col("g_n")).fill_null(terms)
    n = z("h_n")
    has = n > 0
    mean_dl = pl.when(has).then(pl.col("c_dl") / n).otherwise(prior_dl)
    recent_dl = pl.when(has).then(pl.col("w_dl") / pl.col("w_n")).otherwise(prior_dl)
    open_amt = (z("i_amt") - z("p_amt")).clip(0.0)
    overdue_amt = (z("d_amt") - z("pd_amt")).clip(0.0)
    out = t.with_columns(
        has_history=has.cast(pl.Float64),
        hist_count=n,
        hist_count_log=n.log1p(),
        late_share=pl.when(has).then(pl.col("c_late") / n).otherwise(prior_late),
        late30_share=pl.when(has).then(pl.col("c_late30") / n).otherwise(prior_late30),
        mean_days_late=mean_dl,
        mean_days_to_pay=pl.when(has).then(pl.col("c_dtp") / n).otherwise(prior_dtp),
        last_days_late=pl.when(has).then(pl.col("last_dl")).otherwise(prior_dl),
        recent_count=z("w_n"),
        recent_late_count=z("w_late"),
        recent_late_share=pl.when(has).then(pl.col("w_late") / pl.col("w_n")).otherwise(prior_late),
        recent_mean_days_late=recent_dl,
        recent_mean_days_to_pay=pl.when(has).then(pl.col("w_dtp") / pl.col("w_n")).otherwise(prior_dtp),
        median20_days_late=pl.when(has).then(pl.col("med_dl")).otherwise(prior_dl),
        median20_days_to_pay=pl.when(has).then(pl.col("med_dtp")).otherwise(prior_dtp),
        trend_days_late=pl.when(has).then(recent_dl - mean_dl).otherwise(0.0),
        slope_days_late=pl.when(has).then(pl.col("slope_dl")).otherwise(0.0).clip(-30.0, 30.0),
        trend_projection_days=pl.when(has).then(
            pl.col("slope_dl").clip(-30.0, 30.0)
            * ((_days(pl.col("due_date"), pl.lit(date(2000, 1, 1))).cast(pl.Float64) + pl.col("med_dl")) / 30.0
               - pl.col("mean_mx"))
        ).otherwise(0.0).clip(-60.0, 60.0),
        season_excess_days_late=pl.when(z("s_n") > 0).then(pl.col("s_dl") / pl.col("s_n") - mean_dl).otherwise(0.0),
        open_count=z("i_n") - z("p_n"),
        open_amount=open_amt,
        open_amount_log=open_amt.log1p(),
        overdue_count=z("d_n") - z("pd_n"),
        overdue_amount=overdue_amt,
        overdue_amount_log=overdue_amt.log1p(),
        prev_invoice_count=z("i_n"),
        prev_invoice_count_log=z("i_n").log1p(),
        amount_log=pl.col("amount_home").clip(0.0).log1p(),
        amount_rel_log=pl.when(z("i_n") > 0)
        .then(pl.col("amount_home").clip(0.0).log1p() - pl.col("i_log") / pl.col("i_n"))
        .otherwise(0.0),
        terms_days=terms,
        is_home_currency=(pl.col("currency") == home_currency).cast(pl.Float64),
        issue_dow=pl.col("invoice_date").dt.weekday().cast(pl.Float64),
        issue_dom=pl.col("invoice_date").dt.day().cast(pl.Float64),
        disputes_before=z("e_disp"),
        credit_memos_before=z("e_cred"),
        write_offs_before=z("e_wo"),
        reminders_before=z("e_rem"),
        prior_late_share=prior_late,
        prior_days_to_pay=prior_dtp,
    )
    extra = ["hist_count", "recent_count", "recent_late_count", "open_amount", "overdue_amount",
             "prev_invoice_count", "prior_late_share", "prior_days_to_pay", "amount_home"]
    # a total order, so that the same invoices in any input order give the same frame (and model)
    return (out.select("invoice_key", "customer_id", "invoice_date", "due_date", *TIMING_FEATURES, *extra)
            .sort("invoice_date", "invoice_key"))


def label_frame(ledger: pl.DataFrame, data_end: date) -> pl.DataFrame:
    """Outcomes per invoice as known at `data_end`: days_to_pay / days_late for paid invoices;
    `late` = paid after due, or unpaid and past due at data_end (null while unpaid and not yet
    due); `late30` likewise for more than 30 days after due."""
    end = pl.lit(data_end)
    paid = pl.col("paid_date").is_not_null()
    dl = _days(pl.col("paid_date"), pl.col("due_date"))
    unpaid_late = _days(end, pl.col("due_date"))
    return ledger.select(
        "invoice_key",
        days_to_pay=_days(pl.col("paid_date"), pl.col("invoice_date")).cast(pl.Float64),
        days_late=dl.cast(pl.Float64),
        late=pl.when(paid).then(dl > 0).when(unpaid_late > 0).then(True).otherwise(None),
        late30=pl.when(paid).then(dl > 30).when(unpaid_late > 30).then(True).otherwise(None),
    )
