"""Score the open invoices and the customers with a trained PaymentModel, as of the data end.

Open invoices: features as of each invoice's issue date (what the model was trained on), then
conditioned on what is known at the as-of date:
- already past due → p_late = 1; more than 30 days past due → p_late_30 = 1; past due by 1–30
  days → p_late_30 = P(>30 late) / P(late) (the share of late invoices that go past 30 days);
- predicted pay dates: issue date + the model's days-to-pay quantiles, unless the invoice is
  already older than its p10; then the quantiles of the remaining days among every paid invoice
  that was still unpaid at the same age (an age-conditioned collection curve). Either way every
  predicted date is after the as-of date.
Customers: a hypothetical next invoice issued the day after the as-of date (its usual amount and
terms) is scored. Risk score = 100 × its calibrated P(paid more than 30 days after due), rounded:
the chance the next invoice becomes a collections case (P(late) alone says little: on the demo data
the median customer pays 91% of its invoices at least a day late, so 100 × P(late) put most
customers in the top band). Band: the first band of `risk_bands.yaml` (RiskBands, worst first)
whose any threshold the customer reaches, on P(> 30 days late), expected days late (predicted
median days to pay minus terms) and P(late); else the default band. The trend is today's score
minus the score of the same invoice issued 91 days earlier.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .data import History
from .features import build_features
from .model import PaymentModel, explain


class RiskBand(BaseModel):
    """A band and its thresholds: a customer reaching any one of them is in the band."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Band name (as the collections policy's risk_bands list).")
    min_p_late_30: float | None = Field(default=None, ge=0, le=1,
                                        description="P(next invoice paid > 30 days after due) at least this.")
    min_expected_days_late: float | None = Field(default=None,
                                                 description="Expected days late of the next invoice at least this.")
    min_p_late: float | None = Field(default=None, ge=0, le=1, description="P(next invoice paid late) at least this.")

    @model_validator(mode="after")
    def _has_threshold(self) -> RiskBand:
        if self.min_p_late_30 is None and self.min_expected_days_late is None and self.min_p_late is None:
            raise ValueError(f"band {self.name!r} needs at least one of min_p_late_30, "
                             "min_expected_days_late, min_p_late")
        return self


class RiskBands(BaseModel):
    """`ingest_configs/analytics/risk_bands.yaml`: customer risk bands, worst first; the first band
    whose any threshold the customer reaches wins, else `default_band`."""

    model_config = ConfigDict(extra="forbid")

    bands: list[RiskBand] = Field(min_length=1, description="Bands from the worst to the best.")
    default_band: str = Field(default="low", min_length=1, description="Band of customers reaching no threshold.")

    @model_validator(mode="after")
    def _unique(self) -> RiskBands:
        names = [b.name for b in self.bands] + [self.default_band]
        if len(set(names)) != len(names):
            raise ValueError(f"band names must be unique: {names}")
        return self

    def order(self) -> list[str]:
        """Band names from the best to the worst."""
        return [self.default_band, *[b.name for b in reversed(self.bands)]]


#: the shipped bands (same as ingest_configs/analytics/risk_bands.yaml)
DEFAULT_BANDS = RiskBands(bands=[
    RiskBand(name="very_high", min_p_late_30=0.30),
    RiskBand(name="high", min_p_late_30=0.10, min_expected_days_late=15),
    RiskBand(name="medium", min_expected_days_late=5),
], default_band="low")
BANDS_FILE = "risk_bands.yaml"


def load_bands(path: Path) -> RiskBands:
    """The bands of a risk_bands.yaml (errors name the file and the field)."""
    from ar_pipeline.lib.cash_application.config import load_yaml_model

    return load_yaml_model(path, RiskBands)


def assign_bands(p_late_30: np.ndarray, expected_days_late: np.ndarray, p_late: np.ndarray,
                 bands: RiskBands = DEFAULT_BANDS) -> list[str]:
    """Band per customer: the first (worst) band with any threshold reached, else the default."""
    out = np.full(len(p_late_30), bands.default_band, dtype=object)
    done = np.zeros(len(p_late_30), dtype=bool)
    for b in bands.bands:
        hit = np.zeros(len(p_late_30), dtype=bool)
        for value, edge in ((p_late_30, b.min_p_late_30), (expected_days_late, b.min_expected_days_late),
                            (p_late, b.min_p_late)):
            if edge is not None:
                hit |= np.asarray(value, dtype=np.float64) >= edge
        out[hit & ~done] = b.name
        done |= hit
    return out.tolist()


def remaining_quantiles(paid_days: np.ndarray, ages: np.ndarray, qs=(0.1, 0.5, 0.9)) -> np.ndarray:
    """For each age a: quantiles of (days_to_pay - a) over paid invoices with days_to_pay > a."""
    paid_days = np.sort(paid_days)
    out = np.empty((len(ages), len(qs)))
    for a in np.unique(ages):
        rest = paid_days[np.searchsorted(paid_days, a, side="right"):] - a
        out[ages == a] = np.quantile(rest, qs) if len(rest) else np.array([1.0, 30.0, 90.0])
    return np.ceil(out)


def score_open_invoices(model: PaymentModel, history: History) -> pl.DataFrame:
    as_of = history.data_end
    open_inv = history.open_invoices if history.open_invoices is not None else history.ledger.filter(
        pl.col("paid_date").is_null())
    schema = {"invoice_key": pl.String, "customer_id": pl.String, "invoice_date": pl.Date, "due_date": pl.Date,
              "open_amount_home": pl.Float64, "days_past_due": pl.Int64, "p_late": pl.Float64,
              "p_late_30": pl.Float64, "predicted_pay_date_p10": pl.Date, "predicted_pay_date_p50": pl.Date,
              "predicted_pay_date_p90": pl.Date, "drivers": pl.String, "model_version": pl.String,
              "as_of_date": pl.Date}
    if open_inv.height == 0:
        return pl.DataFrame(schema=schema)
    feats = build_features(history.ledger, history.events, history.customers,
                           targets=open_inv.with_columns(pl.col("amount_home").fill_null(0.0)),
                           home_currency=history.home_currency)
    feats = feats.join(open_inv.select("invoice_key", "open_amount_home"), on="invoice_key", how="left")
    pred = model.predict(feats)
    f = pl.concat([feats, pred], how="horizontal")
    ages = np.array([(as_of - d).days for d in f["invoice_date"].to_list()], dtype=np.float64)
    dpd = np.array([(as_of - d).days for d in f["due_date"].to_list()], dtype=np.int64)
    paid = history.ledger.filter(pl.col("paid_date").is_not_null())
    paid_days = (paid["paid_date"] - paid["invoice_date"]).dt.total_days().to_numpy().astype(np.float64)
    q_model = f.select("days_to_pay_p10", "days_to_pay_p50", "days_to_pay_p90").to_numpy()
    q_rest = ages[:, None] + remaining_quantiles(paid_days, ages)
    use_rest = (q_model[:, 0] <= ages)[:, None]
    q = np.where(use_rest, q_rest, np.maximum(np.round(q_model), ages[:, None] + 1))
    q = np.sort(q, axis=1).astype(np.int64)
    p_late = f["p_late"].to_numpy()
    p30 = f["p_late_30"].to_numpy()
    p30_cond = np.where(dpd > 30, 1.0, np.where(dpd > 0, np.clip(p30 / np.maximum(p_late, 1e-9), 0, 1), p30))
    p_late = np.where(dpd > 0, 1.0, p_late)
    issue = f["invoice_date"]
    return pl.DataFrame({
        "invoice_key": f["invoice_key"], "customer_id": f["customer_id"], "invoice_date": issue,
        "due_date": f["due_date"], "open_amount_home": f["open_amount_home"].fill_null(0.0),
        "days_past_due": dpd, "p_late": p_late, "p_late_30": p30_cond,
        "q10": q[:, 0], "q50": q[:, 1], "q90": q[:, 2], "drivers": explain(model, feats),
        "model_version": model.version, "as_of_date": as_of,
    }).with_columns(**{
        f"predicted_pay_date_p{k}": pl.col("invoice_date") + pl.duration(days=pl.col(f"q{k}")) for k in (10, 50, 90)
    }).select([pl.col(c).cast(t) for c, t in schema.items()]).sort("invoice_key")


def _next_invoices(ledger: pl.DataFrame, issue: date) -> pl.DataFrame:
    """Per customer, a hypothetical invoice issued on `issue` with its usual amount, last terms,
    currency and source (from its invoices issued before `issue`)."""
    prev = ledger.filter(pl.col("invoice_date") < issue).sort("customer_id", "invoice_date", "invoice_key")
    return prev.group_by("customer_id", maintain_order=True).agg(
        pl.col("source").last(), pl.col("currency").last(),
        pl.col("amount_home").median(),
        (pl.col("due_date") - pl.col("invoice_date")).dt.total_days().last().alias("terms"),
    ).select(
        pl.concat_str(pl.lit("next:"), "customer_id").alias("invoice_key"), "customer_id", "source",
        pl.lit(issue).alias("invoice_date"),
        (pl.lit(issue) + pl.duration(days=pl.col("terms"))).alias("due_date"), "currency", "amount_home",
    )


def score_customers(model: PaymentModel, history: History, invoice_scores: pl.DataFrame,
                    bands: RiskBands = DEFAULT_BANDS) -> pl.DataFrame:
    as_of = history.data_end
    schema = {"customer_id": pl.String, "risk_score": pl.Int64, "risk_band": pl.String,
              "p_late_next_invoice": pl.Float64, "p_late_30_next_invoice": pl.Float64,
              "expected_days_late": pl.Float64,
              "open_invoice_count": pl.Int64, "open_amount_home": pl.Float64, "overdue_amount_home": pl.Float64,
              "risk_score_91_days_ago": pl.Int64, "trend_vs_last_quarter": pl.Int64, "drivers": pl.String,
              "model_version": pl.String, "as_of_date": pl.Date}
    nxt = _next_invoices(history.ledger, as_of + timedelta(days=1))
    if nxt.height == 0:
        return pl.DataFrame(schema=schema)
    kw = {"events": history.events, "customers": history.customers, "home_currency": history.home_currency}
    feats = build_features(history.ledger, targets=nxt, **kw).sort("customer_id")
    pred = model.predict(feats)
    earlier_issue = as_of + timedelta(days=1) - timedelta(days=91)
    earlier = nxt.with_columns(invoice_date=pl.lit(earlier_issue),
                               due_date=pl.lit(earlier_issue) + (pl.col("due_date") - pl.col("invoice_date")))
    earlier_feats = build_features(history.ledger, targets=earlier, **kw).sort("customer_id")
    earlier_p = model.predict(earlier_feats)["p_late_30"].to_numpy()
    score = np.round(pred["p_late_30"].to_numpy() * 100).astype(np.int64)
    score_then = np.round(earlier_p * 100).astype(np.int64)
    days_late = (pred["days_to_pay_p50"] - feats["terms_days"]).to_numpy()
    exposure = invoice_scores.group_by("customer_id").agg(
        pl.len().cast(pl.Int64).alias("open_invoice_count"),
        pl.col("open_amount_home").sum(),
        pl.col("open_amount_home").filter(pl.col("days_past_due") > 0).sum().alias("overdue_amount_home"),
    )
    out = pl.DataFrame({
        "customer_id": feats["customer_id"], "risk_score": score,
        "risk_band": assign_bands(pred["p_late_30"].to_numpy(), days_late, pred["p_late"].to_numpy(), bands),
        "p_late_next_invoice": pred["p_late"], "p_late_30_next_invoice": pred["p_late_30"],
        "expected_days_late": days_late,
        "risk_score_91_days_ago": score_then, "trend_vs_last_quarter": score - score_then,
        "drivers": explain(model, feats, target="late30"), "model_version": model.version, "as_of_date": as_of,
    }).join(exposure, on="customer_id", how="left").with_columns(
        pl.col("open_invoice_count").fill_null(0), pl.col("open_amount_home").fill_null(0.0),
        pl.col("overdue_amount_home").fill_null(0.0))
    return out.select([pl.col(c).cast(t) for c, t in schema.items()]).sort("customer_id")


def training_table_at(history: History) -> tuple[pl.DataFrame, date]:
    """Training rows for the production model: everything known at the data end."""
    from .backtest import feature_table, training_rows

    cutoff = history.data_end + timedelta(days=1)
    return training_rows(feature_table(history), cutoff), cutoff
