"""Time-based backtest of the payment models against the naive baselines.

Protocol for a cut-off C (and a test end E, default the data end):
- train on what was known the day before C: invoices fully settled before C (paid_date < C) and,
  for the late classifiers only, invoices unpaid but already past due (> 30 days past due for the
  > 30 days model) before C, whose label was certain then (leaving them out would hide exactly
  the worst payers from the model); no payment dated on or after C is read;
- test on invoices issued on or after C and before E; their features still use only what was
  known at each one's issue date (features.py), so test invoices issued later in the window see
  the payments that happened after C but before their own issue date, as they would in production;
- late label of a test invoice: paid after its due date, or still unpaid and past due at the data
  end (unpaid and not yet due: unknown, left out); > 30 days late likewise; timing metrics on the
  test invoices that are paid.
Predictors side by side: the model, the customer's history (its late share before the invoice /
its rolling median days to pay, global prior when it has none), "pays on the due date" (never
late; days to pay = terms) and the majority class (training late rate). Intervals for the
baselines are their point prediction ± the 10th/90th percentile of their training residuals.
A seeded bootstrap over test invoices gives a 95% interval of the paired AUC and MAE differences
between the model and the customer-history baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from .data import History
from .features import build_features, label_frame
from .model import PaymentModel, TrainConfig, train

PREDICTORS = ("model", "customer_history", "due_date", "majority")


@dataclass(frozen=True)
class Split:
    train: pl.DataFrame
    test: pl.DataFrame


def feature_table(history: History) -> pl.DataFrame:
    """Features as of each invoice's issue date, with its paid date (null while not fully paid)."""
    feats = build_features(history.ledger, history.events, history.customers, home_currency=history.home_currency)
    return feats.join(history.ledger.select("invoice_key", "paid_date"), on="invoice_key", how="left",
                      maintain_order="left")


def training_rows(table: pl.DataFrame, cutoff: date) -> pl.DataFrame:
    """What was known the day before `cutoff`: payments dated on or after it are erased, outcomes
    are labelled as of cutoff - 1 day. Rows: invoices settled before the cut-off, plus (for the
    late / > 30 days late classifiers only) unpaid invoices already past due (resp. > 30 days past
    due) before it, whose label was therefore already certain. days_to_pay is null for those."""
    known = table.with_columns(
        pl.when(pl.col("paid_date") < cutoff).then(pl.col("paid_date")).otherwise(None).alias("paid_date"))
    labels = label_frame(known, cutoff - timedelta(days=1))
    return (known.filter(pl.col("invoice_date") < cutoff)
            .join(labels, on="invoice_key", how="inner", maintain_order="left")
            .filter(pl.col("late").is_not_null()))


def split(table: pl.DataFrame, cutoff: date, test_end: date, data_end: date) -> Split:
    """Training rows as of the cut-off (training_rows); test rows: issued in [cutoff, test_end),
    labelled with what is known at the data end."""
    test = table.filter((pl.col("invoice_date") >= cutoff) & (pl.col("invoice_date") < test_end))
    return Split(training_rows(table, cutoff),
                 test.join(label_frame(test, data_end), on="invoice_key", how="left", maintain_order="left"))


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None


def _class_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    if len(y) == 0:
        return {"auc": None, "brier": None, "accuracy": None}
    return {"auc": _auc(y, p), "brier": float(np.mean((p - y) ** 2)),
            "accuracy": float(np.mean((p >= 0.5) == (y == 1)))}


def _timing_metrics(y: np.ndarray, q: np.ndarray) -> dict[str, float | None]:
    if len(y) == 0:
        return {"mae_days": None, "coverage_80": None}
    return {"mae_days": float(np.mean(np.abs(q[:, 1] - y))),
            "coverage_80": float(np.mean((y >= q[:, 0]) & (y <= q[:, 2])))}


def _baseline_interval(point_train: np.ndarray, y_train: np.ndarray, point_test: np.ndarray) -> np.ndarray:
    lo, hi = np.quantile(y_train - point_train, [0.1, 0.9]) if len(y_train) else (0.0, 0.0)
    return np.column_stack([np.clip(point_test + lo, 0, None), point_test, point_test + hi])


def _bootstrap(y: np.ndarray, a: np.ndarray, b: np.ndarray, stat: str, n_boot: int, seed: int) -> dict[str, Any]:
    """Paired bootstrap of stat(a) - stat(b) over rows; 95% percentile interval."""
    if len(y) == 0 or (stat == "auc" and len(np.unique(y)) < 2):
        return {"value": None, "ci_low": None, "ci_high": None}

    def f(idx: np.ndarray) -> float | None:
        if stat == "auc":
            yy = y[idx]
            if len(np.unique(yy)) < 2:
                return None
            return roc_auc_score(yy, a[idx]) - roc_auc_score(yy, b[idx])
        return float(np.mean(np.abs(a[idx] - y[idx])) - np.mean(np.abs(b[idx] - y[idx])))

    rng = np.random.default_rng(seed)
    draws = [f(rng.integers(0, len(y), len(y))) for _ in range(n_boot)]
    draws = np.array([d for d in draws if d is not None])
    return {"value": f(np.arange(len(y))), "ci_low": float(np.quantile(draws, 0.025)),
            "ci_high": float(np.quantile(draws, 0.975))}


def evaluate(model: PaymentModel, sp: Split, n_boot: int = 500, seed: int = 42) -> dict[str, Any]:
    """Metrics of the model and the baselines on a split's test rows."""
    test = sp.test
    pred = model.predict(test) if test.height else pl.DataFrame(
        schema={c: pl.Float64 for c in ["p_late", "p_late_30", "days_to_pay_p10", "days_to_pay_p50",
                                        "days_to_pay_p90"]})
    t = pl.concat([test, pred], how="horizontal")
    train_rate = float(sp.train["late"].cast(pl.Float64).mean() or 0.0)
    train_rate30 = float(sp.train["late30"].cast(pl.Float64).mean() or 0.0)
    probs = {
        "late": {"model": "p_late", "customer_history": "late_share"},
        "late30": {"model": "p_late_30", "customer_history": "late30_share"},
    }
    out: dict[str, Any] = {"predictors": {p: {} for p in PREDICTORS}, "counts": {}, "vs_customer_history": {}}
    for target, cols in probs.items():
        k = t.filter(pl.col(target).is_not_null())
        y = k[target].cast(pl.Int8).to_numpy()
        out["counts"][target] = len(y)
        out["counts"][f"{target}_rate"] = float(y.mean()) if len(y) else None
        cands = {
            "model": k[cols["model"]].to_numpy(),
            "customer_history": k[cols["customer_history"]].to_numpy(),
            "due_date": np.zeros(len(y)),
            "majority": np.full(len(y), train_rate if target == "late" else train_rate30),
        }
        for name, p in cands.items():
            out["predictors"][name].update({f"{target}_{m}": v for m, v in _class_metrics(y, p).items()})
        out["vs_customer_history"][f"{target}_auc_diff"] = _bootstrap(
            y, cands["model"], cands["customer_history"], "auc", n_boot, seed)

    paid = t.filter(pl.col("days_to_pay").is_not_null())
    y = paid["days_to_pay"].to_numpy().astype(np.float64)
    tr = sp.train.filter(pl.col("days_to_pay").is_not_null())
    y_tr = tr["days_to_pay"].to_numpy().astype(np.float64)
    out["counts"]["paid"] = len(y)
    intervals = {
        "model": paid.select("days_to_pay_p10", "days_to_pay_p50", "days_to_pay_p90").to_numpy(),
        "customer_history": _baseline_interval(tr["median20_days_to_pay"].to_numpy(), y_tr,
                                               paid["median20_days_to_pay"].to_numpy()),
        "due_date": _baseline_interval(tr["terms_days"].to_numpy(), y_tr, paid["terms_days"].to_numpy()),
        "majority": _baseline_interval(np.full(len(y_tr), np.median(y_tr) if len(y_tr) else 0.0), y_tr,
                                       np.full(len(y), np.median(y_tr) if len(y_tr) else 0.0)),
    }
    for name, q in intervals.items():
        out["predictors"][name].update(_timing_metrics(y, q))
    out["vs_customer_history"]["mae_days_diff"] = _bootstrap(
        y, intervals["model"][:, 1], intervals["customer_history"][:, 1], "mae", n_boot, seed)
    return out


def run_backtest(history: History, cutoff: date, test_end: date | None = None,
                 cfg: TrainConfig | None = None, n_boot: int = 500,
                 table: pl.DataFrame | None = None) -> dict[str, Any]:
    """Train before `cutoff`, test on invoices issued in [cutoff, test_end or data end)."""
    cfg = cfg or TrainConfig()
    test_end = test_end or (history.data_end + timedelta(days=1))
    if cutoff > history.data_end:
        raise ValueError(f"cut-off {cutoff} is after the data end {history.data_end}")
    table = feature_table(history) if table is None else table
    sp = split(table, cutoff, test_end, history.data_end)
    model = train(sp.train, cutoff, cfg)
    result = evaluate(model, sp, n_boot=n_boot, seed=cfg.seed)
    return {
        "model_version": model.version, "cutoff": cutoff.isoformat(), "test_start": cutoff.isoformat(),
        "test_end": (test_end - timedelta(days=1)).isoformat(), "data_end": history.data_end.isoformat(),
        "seed": cfg.seed, "n_train": sp.train.height, "n_test": sp.test.height,
        "classifier_kind": model.classifier_kind, "timing_kind": model.timing_kind,
        "validation": model.validation, **result,
    }


def rolling_cutoffs(cutoff: date, n: int, step_days: int) -> list[date]:
    """n expanding-window cut-offs ending at `cutoff`, `step_days` apart."""
    return [cutoff - timedelta(days=step_days * k) for k in range(n - 1, -1, -1)]


def run_rolling(history: History, cutoff: date, n: int, step_days: int = 60,
                cfg: TrainConfig | None = None, n_boot: int = 500,
                table: pl.DataFrame | None = None) -> list[dict[str, Any]]:
    """One backtest per cut-off; each tests up to the next cut-off (the last one to the data end)."""
    table = feature_table(history) if table is None else table
    cuts = rolling_cutoffs(cutoff, n, step_days)
    ends: list[date | None] = [*cuts[1:], None]
    return [run_backtest(history, c, e, cfg, n_boot, table=table) for c, e in zip(cuts, ends, strict=True)]


def metrics_frame(results: list[dict[str, Any]]) -> pl.DataFrame:
    """Long table, one row per (model version, cut-off, predictor, metric)."""
    rows = []
    for r in results:
        base = {"model_version": r["model_version"], "cutoff": date.fromisoformat(r["cutoff"]),
                "test_end": date.fromisoformat(r["test_end"]), "n_train": r["n_train"], "n_test": r["n_test"]}
        for predictor, metrics in r["predictors"].items():
            for metric, value in metrics.items():
                rows.append({**base, "predictor": predictor, "metric": metric, "value": value,
                             "ci_low": None, "ci_high": None})
        for metric, d in r["vs_customer_history"].items():
            rows.append({**base, "predictor": "model_minus_customer_history", "metric": metric,
                         "value": d["value"], "ci_low": d["ci_low"], "ci_high": d["ci_high"]})
    schema = {"model_version": pl.String, "cutoff": pl.Date, "test_end": pl.Date, "n_train": pl.Int64,
              "n_test": pl.Int64, "predictor": pl.String, "metric": pl.String, "value": pl.Float64,
              "ci_low": pl.Float64, "ci_high": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


METRICS_DDL = """
create schema if not exists analytics;
create table if not exists analytics.model_backtest_metrics (
  model_version varchar, cutoff date, test_end date, n_train bigint, n_test bigint,
  predictor varchar, metric varchar, value double, ci_low double, ci_high double
);
"""


def write_metrics(conn, frame: pl.DataFrame) -> int:
    """Replace the rows of the same (model version, cut-off, test end) in analytics.model_backtest_metrics."""
    conn.execute(METRICS_DDL)
    conn.register("_bt_metrics", frame.to_arrow())
    conn.execute("""delete from analytics.model_backtest_metrics m using
                    (select distinct model_version, cutoff, test_end from _bt_metrics) n
                    where m.model_version = n.model_version and m.cutoff = n.cutoff and m.test_end = n.test_end""")
    conn.execute("insert into analytics.model_backtest_metrics select * from _bt_metrics")
    conn.unregister("_bt_metrics")
    return frame.height
