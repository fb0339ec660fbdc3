"""The Great Expectations suites behind the blocking prediction checks: real frames pass, and each
broken rule is reported by name."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from ar_pipeline.lib.prediction.features import build_features
from ar_pipeline.lib.prediction.quality import (
    customer_scores_suite,
    feature_suite,
    invoice_scores_suite,
    validate,
)

D = date.fromisoformat

SCORES = pl.DataFrame({
    "invoice_key": ["a", "b", "c"], "customer_id": ["A", "B", "B"],
    "p_late": [0.2, 1.0, 0.5], "p_late_30": [0.1, 0.5, 0.5],
    "predicted_pay_date_p10": [D("2026-07-01"), D("2026-07-02"), D("2026-07-03")],
    "predicted_pay_date_p50": [D("2026-07-05"), D("2026-07-02"), D("2026-07-10")],
    "predicted_pay_date_p90": [D("2026-07-09"), D("2026-07-20"), D("2026-08-01")],
    "drivers": ["x", "y", "z"],
})


def _failed(outcome) -> set[tuple[str, str | None]]:
    return {(f["expectation"], f["kwargs"].get("column") or f["kwargs"].get("column_A")) for f in outcome.failed}


def test_valid_invoice_scores_pass() -> None:
    out = validate(SCORES, "invoice_risk_scores", invoice_scores_suite(["c", "a", "b"]))
    assert out.success and out.failed == [] and out.evaluated >= 10


@pytest.mark.parametrize(("change", "open_keys", "expected"), [
    ({"p_late": [0.2, 1.2, 0.5]}, ["a", "b", "c"], ("expect_column_values_to_be_between", "p_late")),
    ({"p_late_30": [0.3, 0.5, 0.5]}, ["a", "b", "c"], ("expect_column_pair_values_a_to_be_greater_than_b", "p_late")),
    ({"predicted_pay_date_p50": [D("2026-06-01"), D("2026-07-02"), D("2026-07-10")]}, ["a", "b", "c"],
     ("expect_column_pair_values_a_to_be_greater_than_b", "predicted_pay_date_p50")),
    ({"predicted_pay_date_p90": [D("2026-07-09"), D("2026-07-01"), D("2026-08-01")]}, ["a", "b", "c"],
     ("expect_column_pair_values_a_to_be_greater_than_b", "predicted_pay_date_p90")),
    ({"invoice_key": ["a", "a", "c"]}, ["a", "b", "c"], ("expect_column_values_to_be_unique", "invoice_key")),
    ({"invoice_key": ["a", None, "c"]}, ["a", "b", "c"], ("expect_column_values_to_not_be_null", "invoice_key")),
    ({}, ["a", "b", "c", "d"], ("expect_table_row_count_to_equal", None)),  # an open invoice not scored
    ({}, ["a", "b", "d"], ("expect_column_distinct_values_to_equal_set", "invoice_key")),  # scored a closed one
])
def test_broken_invoice_scores_fail(change, open_keys, expected) -> None:
    frame = SCORES.with_columns([pl.Series(k, v, dtype=SCORES[k].dtype) for k, v in change.items()])
    out = validate(frame, "invoice_risk_scores", invoice_scores_suite(open_keys))
    assert not out.success and expected in _failed(out)


def test_customer_scores_suite() -> None:
    good = pl.DataFrame({"customer_id": ["A", "B"], "risk_score": [5, 100], "p_late_next_invoice": [0.05, 1.0],
                         "p_late_30_next_invoice": [0.05, 0.99], "risk_band": ["low", "very_high"]})
    assert validate(good, "customer_risk_scores", customer_scores_suite()).success
    bad = good.with_columns(customer_id=pl.lit("A"), risk_score=pl.Series([5, 101]))
    assert _failed(validate(bad, "customer_risk_scores", customer_scores_suite())) == {
        ("expect_column_values_to_be_unique", "customer_id"), ("expect_column_values_to_be_between", "risk_score")}
    # P(> 30 days late) can't exceed P(late), and every customer has a band
    bad30 = good.with_columns(p_late_30_next_invoice=pl.Series([0.06, 0.99]), risk_band=pl.Series(["low", None]))
    assert _failed(validate(bad30, "customer_risk_scores", customer_scores_suite())) == {
        ("expect_column_pair_values_a_to_be_greater_than_b", "p_late_next_invoice"),
        ("expect_column_values_to_not_be_null", "risk_band")}


def test_feature_frame_suite() -> None:
    ledger = pl.DataFrame({
        "invoice_key": ["a1", "a2", "b1"], "customer_id": ["A", "A", "B"], "source": "quickbooks",
        "invoice_date": [D("2025-01-01"), D("2025-02-01"), D("2025-01-10")],
        "due_date": [D("2025-01-31"), D("2025-03-03"), D("2025-01-20")],
        "paid_date": [D("2025-01-20"), None, D("2025-01-25")], "currency": "USD", "amount_home": [1.0, 2.0, 3.0]})
    feats = build_features(ledger)
    assert validate(feats, "feature_frame", feature_suite()).success
    broken = feats.with_columns(late_share=pl.lit(1.5), invoice_key=pl.lit("a1"))
    assert _failed(validate(broken, "feature_frame", feature_suite())) >= {
        ("expect_column_values_to_be_between", "late_share"), ("expect_column_values_to_be_unique", "invoice_key")}
