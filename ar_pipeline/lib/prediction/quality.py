"""Great Expectations suites for the prediction frames (blocking asset checks in defs/analytics).

Suites are plain data (expectation class name + arguments) so this module imports nothing heavy;
`validate` imports GX (~3 s) only when a check runs, with an ephemeral context, progress bars
off and analytics off (GX_ANALYTICS_ENABLED=False is set before the import).

- feature frame (the training rows of `analytics/payment_model`): no null / duplicate invoice
  keys, no null customer or issue date, shares in [0, 1], counts and terms >= 0, has_history 0/1;
- `analytics.invoice_risk_scores`: no null / duplicate invoice keys, probabilities in [0, 1] and
  P(> 30 days late) <= P(late), p10 <= p50 <= p90 (not null), and exactly the open invoices of the
  marts (as many rows as open invoices, and the same set of keys);
- `analytics.customer_risk_scores`: no null / duplicate customer ids, score in 0..100, P(late of
  the next invoice) in [0, 1].
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import polars as pl

Expectation = tuple[str, dict[str, Any]]


def _key(column: str) -> list[Expectation]:
    return [("ExpectColumnValuesToNotBeNull", {"column": column}),
            ("ExpectColumnValuesToBeUnique", {"column": column})]


def _between(column: str, low: float | None, high: float | None) -> list[Expectation]:
    return [("ExpectColumnValuesToNotBeNull", {"column": column}),
            ("ExpectColumnValuesToBeBetween", {"column": column, "min_value": low, "max_value": high})]


def _not_greater(a: str, b: str) -> Expectation:
    """a <= b on every row (nulls fail)."""
    return ("ExpectColumnPairValuesAToBeGreaterThanB",
            {"column_A": b, "column_B": a, "or_equal": True, "ignore_row_if": "neither"})


def feature_suite() -> list[Expectation]:
    out = [*_key("invoice_key"), ("ExpectColumnValuesToNotBeNull", {"column": "customer_id"}),
           ("ExpectColumnValuesToNotBeNull", {"column": "invoice_date"}),
           ("ExpectColumnValuesToBeInSet", {"column": "has_history", "value_set": [0, 1]})]
    for c in ("late_share", "late30_share", "recent_late_share"):
        out += _between(c, 0, 1)
    for c in ("open_count", "overdue_count", "disputes_before", "credit_memos_before", "write_offs_before",
              "reminders_before", "terms_days"):
        out += _between(c, 0, None)
    return out


def invoice_scores_suite(open_invoice_keys: list[str]) -> list[Expectation]:
    out = [*_key("invoice_key"), ("ExpectColumnValuesToNotBeNull", {"column": "customer_id"}),
           *_between("p_late", 0, 1), *_between("p_late_30", 0, 1), _not_greater("p_late_30", "p_late")]
    for c in ("predicted_pay_date_p10", "predicted_pay_date_p50", "predicted_pay_date_p90"):
        out.append(("ExpectColumnValuesToNotBeNull", {"column": c}))
    out += [_not_greater("predicted_pay_date_p10", "predicted_pay_date_p50"),
            _not_greater("predicted_pay_date_p50", "predicted_pay_date_p90"),
            # one row per open invoice and every open invoice scored
            ("ExpectTableRowCountToEqual", {"value": len(open_invoice_keys)}),
            ("ExpectColumnDistinctValuesToEqualSet",
             {"column": "invoice_key", "value_set": sorted(open_invoice_keys)})]
    return out


def customer_scores_suite() -> list[Expectation]:
    return [*_key("customer_id"), *_between("risk_score", 0, 100), *_between("p_late_next_invoice", 0, 1),
            *_between("p_late_30_next_invoice", 0, 1), _not_greater("p_late_30_next_invoice", "p_late_next_invoice"),
            ("ExpectColumnValuesToNotBeNull", {"column": "risk_band"})]


@dataclass(frozen=True)
class Outcome:
    success: bool
    evaluated: int
    failed: list[dict[str, Any]]


def validate(frame: pl.DataFrame, name: str, suite: list[Expectation]) -> Outcome:
    """Run a suite on a polars frame with GX 1.x (pandas batch, ephemeral context)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    used = [c for _, kw in suite for k, c in kw.items() if k in ("column", "column_A", "column_B")]
    # only the checked columns go to pandas (the drivers text etc. would just cost memory)
    df = frame.select([c for c in dict.fromkeys(used) if c in frame.columns] or frame.columns).to_pandas()
    batch = (ctx.data_sources.add_pandas(f"ar_{name}").add_dataframe_asset(name)
             .add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": df}))
    expectations = [getattr(gxe, kind)(**kwargs) for kind, kwargs in suite]
    result = batch.validate(gx.ExpectationSuite(name=name, expectations=expectations))
    failed = []
    for r in result.results:
        if not r.success:
            cfg = r.expectation_config
            detail = {k: v for k, v in (r.result or {}).items()
                      if k in ("unexpected_count", "unexpected_percent", "observed_value", "partial_unexpected_list")}
            failed.append({"expectation": cfg.type, "kwargs": {k: v for k, v in cfg.kwargs.items()
                                                               if k not in ("batch_id", "value_set")},
                           **{k: (v[:5] if isinstance(v, list) else v) for k, v in detail.items()
                              if v is not None}})
    return Outcome(success=bool(result.success), evaluated=len(result.results), failed=failed)
