"""Pre-send invoice checks: each rule fires on a crafted case and stays quiet on its near miss."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from ar_pipeline.lib.cash_application.config import AnalyticsConfigError, load_yaml_model
from ar_pipeline.lib.invoice_checks import CANDIDATE_COLUMNS, HISTORY_COLUMNS, InvoiceRulesConfig, find_issues

CONFIG_DIR = Path(__file__).resolve().parents[1] / "ingest_configs" / "analytics"
D0 = date(2026, 1, 5)


def cfg() -> InvoiceRulesConfig:
    return load_yaml_model(CONFIG_DIR / "invoice_rules.yaml", InvoiceRulesConfig)


def past(n: int = 6, **over) -> list[dict]:
    """`n` sent invoices of customer C1, one a month: 30-day terms, USD, ~1,000, 5% tax, with a PO."""
    rows = []
    for i in range(n):
        d = D0 + timedelta(days=30 * i)
        row = {
            "invoice_key": f"h{i}",
            "invoice_number": f"H-{i}",
            "customer_id": "C1",
            "invoice_date": d,
            "due_date": d + timedelta(days=30),
            "currency": "USD",
            "total_amount": 1000.0 + 20 * (i % 3 - 1),
            "tax_rate": 0.05,
            "po_number": f"PO-{i}",
            "po_checked": True,
        }
        rows.append({**row, **{k: (v(i) if callable(v) else v) for k, v in over.items()}})
    return rows


def draft(**over) -> dict:
    d = date(2026, 9, 1)
    row = {
        "invoice_key": "new",
        "invoice_number": "N-1",
        "source": "quickbooks",
        "customer_id": "C1",
        "stage": "pending",
        "invoice_date": d,
        "due_date": d + timedelta(days=30),
        "currency": "USD",
        "total_amount": 1010.0,
        "tax_rate": 0.05,
        "billing_email": "ap@customer.com",
        "email_checked": True,
        "po_number": "PO-9",
        "po_checked": True,
        "due_date_required": True,
    }
    return {**row, **over}


def run(candidate: dict, history: list[dict], config: InvoiceRulesConfig | None = None) -> pl.DataFrame:
    return find_issues(
        pl.DataFrame([candidate], schema=CANDIDATE_COLUMNS),
        pl.DataFrame(history, schema=HISTORY_COLUMNS),
        config or cfg(),
    )


def rules(out: pl.DataFrame) -> set[str]:
    return set(out["rule_id"])


def test_a_clean_invoice_raises_nothing() -> None:
    assert run(draft(), past()).is_empty()


@pytest.mark.parametrize(
    ("rule", "fires", "near_miss"),
    [
        ("missing_due_date", {"due_date": None}, {"due_date": None, "due_date_required": False}),
        ("missing_billing_email", {"billing_email": None}, {"billing_email": None, "email_checked": False}),
        ("missing_billing_email", {"billing_email": "  "}, {"billing_email": "a@b.co"}),
        ("invalid_billing_email", {"billing_email": "ap@customer"}, {"billing_email": "ap@customer.com"}),
        ("missing_po", {"po_number": None}, {"po_number": None, "po_checked": False}),
        ("unusual_terms", {"due_date": date(2026, 9, 16)}, {"due_date": date(2026, 10, 3)}),
        ("unusual_tax_rate", {"tax_rate": 0.08}, {"tax_rate": 0.055}),
        ("unusual_currency", {"currency": "EUR", "total_amount": 1010.0}, {"currency": "USD"}),
        ("amount_outlier", {"total_amount": 10_000.0}, {"total_amount": 1_500.0}),
        (
            "suspected_duplicate",
            {"invoice_date": date(2026, 5, 6), "due_date": date(2026, 6, 5), "total_amount": 1000.0},
            {"invoice_date": date(2026, 5, 20), "due_date": date(2026, 6, 19), "total_amount": 1000.0},
        ),
    ],
)
def test_each_rule_fires_on_its_case_and_not_on_the_near_miss(rule: str, fires: dict, near_miss: dict) -> None:
    hit = run(draft(**fires), past())
    assert rule in rules(hit)
    row = hit.filter(pl.col("rule_id") == rule).row(0, named=True)
    assert row["severity"] in {"error", "warning"} and "N-1" in row["message"]
    assert rule not in rules(run(draft(**near_miss), past()))


def test_duplicate_message_names_the_other_invoice_and_the_gap() -> None:
    # past invoice H-4 is dated D0 + 120 days = 2026-05-05; the draft repeats its amount 3 days later
    hist = past()
    target = hist[4]
    out = run(draft(invoice_date=target["invoice_date"] + timedelta(days=3), total_amount=target["total_amount"]), hist)
    msg = out.filter(pl.col("rule_id") == "suspected_duplicate")["message"].item()
    assert "H-4" in msg and "3 days apart" in msg


def test_history_rules_wait_for_enough_history() -> None:
    # two past invoices are below every min_history in the shipped YAML
    out = run(
        draft(currency="EUR", tax_rate=0.2, total_amount=99_999.0, po_number=None, due_date=date(2026, 9, 2)), past(2)
    )
    assert (
        rules(out) & {"unusual_currency", "unusual_tax_rate", "amount_outlier", "missing_po", "unusual_terms"} == set()
    )


def test_mixed_history_has_no_usual_terms_or_currency() -> None:
    mixed = past(
        6,
        due_date=lambda i: D0 + timedelta(days=30 * i + (30 if i % 2 else 60)),
        currency=lambda i: "USD" if i % 2 else "EUR",
    )
    out = run(draft(due_date=date(2026, 9, 16)), mixed)
    assert "unusual_terms" not in rules(out) and "unusual_currency" not in rules(out)


def test_po_rule_respects_the_share_threshold() -> None:
    hist = past(6, po_number=lambda i: None if i == 0 else f"PO-{i}")  # 5 of 6 carried a PO
    assert "missing_po" not in rules(run(draft(po_number=None), hist))
    lenient = cfg().model_copy(deep=True)
    lenient.rules.missing_po.min_po_share = 0.8
    assert "missing_po" in rules(run(draft(po_number=None), hist, lenient))


def test_amount_outlier_uses_a_spread_floor_for_single_price_customers() -> None:
    flat = past(6, total_amount=1000.0)  # MAD = 0: the 10% floor makes 1,500 (z = 5) pass and 1,700 (z = 7) fire
    assert "amount_outlier" not in rules(run(draft(total_amount=1500.0, invoice_date=date(2026, 9, 20)), flat))
    assert "amount_outlier" in rules(run(draft(total_amount=1700.0, invoice_date=date(2026, 9, 20)), flat))


def test_an_invoice_is_never_compared_with_itself() -> None:
    hist = past()
    sent = {
        **{k: v for k, v in hist[-1].items() if k in CANDIDATE_COLUMNS},
        "source": "quickbooks",
        "stage": "recently_sent",
        "billing_email": "a@b.co",
        "email_checked": True,
        "due_date_required": True,
    }
    assert run(sent, hist).is_empty()


def test_disabled_rule_and_configured_severity() -> None:
    c = cfg().model_copy(deep=True)
    c.rules.unusual_currency.severity = "info"
    assert (
        run(draft(currency="EUR"), past(), c).filter(pl.col("rule_id") == "unusual_currency")["severity"].item()
        == "info"
    )
    c.rules.unusual_currency.enabled = False
    assert "unusual_currency" not in rules(run(draft(currency="EUR"), past(), c))


def test_config_errors_name_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "invoice_rules.yaml"
    bad.write_text("rules:\n  amount_outlier:\n    max_robust_z: -1\n")
    with pytest.raises(AnalyticsConfigError, match=r"invoice_rules\.yaml.*rules\.amount_outlier\.max_robust_z"):
        load_yaml_model(bad, InvoiceRulesConfig)
    bad.write_text("rules:\n  no_such_rule: {}\n")
    with pytest.raises(AnalyticsConfigError, match=r"rules\.no_such_rule"):
        load_yaml_model(bad, InvoiceRulesConfig)


def test_issues_seen_in_the_previous_run_are_not_new() -> None:
    from ar_pipeline.defs.analytics.hygiene import mark_new

    out = run(draft(currency="EUR", billing_email=None), past())
    assert rules(out) == {"unusual_currency", "missing_billing_email"}
    marked = mark_new(out, {("new", "unusual_currency"), ("other", "missing_billing_email")})
    assert dict(zip(marked["rule_id"], marked["is_new"], strict=True)) == {
        "unusual_currency": False,
        "missing_billing_email": True,
    }
    assert mark_new(out, set())["is_new"].all()
