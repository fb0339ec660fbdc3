"""Pre-send invoice checks: each rule fires on a crafted case and stays quiet on its near miss."""

from __future__ import annotations

import json
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


# ----------------------------------------------------------------------------- PO and tax in every source
QB_PO = '[{{"DefinitionId": "1", "Name": "PO Number", "Type": "StringType", "StringValue": "4500-{}"}}]'
QB_NO_PO = '[{"DefinitionId": "1", "Name": "PO Number", "Type": "StringType"}]'
# crafted payload fields per source: (PO present, PO absent, PO present under another configured name)
SOURCE_FIELDS = {
    "quickbooks": (
        lambda i: {"qb_custom_fields": QB_PO.format(i)},
        {"qb_custom_fields": QB_NO_PO},
        {"qb_custom_fields": '[{"Name": "P.O. Number", "Type": "StringType", "StringValue": "77"}]'},
    ),
    "stripe": (
        lambda i: {"st_custom_fields": f'[{{"name": "PO", "value": "4500-{i}"}}]', "st_metadata": "{}"},
        {"st_custom_fields": None, "st_metadata": '{"region": "emea"}'},
        {"st_custom_fields": "[]", "st_metadata": '{"po_number": "4500-9"}'},
    ),
    "generic_invoices": (
        lambda i: {"ex_po_number": f"PO-{i}"},
        {"ex_po_number": "  "},
        {"ex_po_number": "PO-9"},
    ),
}


def raw_row(source: str, key: str, d: date, fields: dict) -> dict:
    from ar_pipeline.lib.invoice_checks.fields import RAW_FIELD_COLUMNS

    base = {c: None for c in RAW_FIELD_COLUMNS} | {"source": "exports" if source == "generic_invoices" else source,
                                                    "is_export": source == "generic_invoices"}
    return base | {"invoice_key": key, "invoice_number": key.upper(), "customer_id": "C1", "invoice_date": d,
                   "due_date": d + timedelta(days=30), "currency": "USD"} | fields


def run_source(source: str, cand_fields: dict) -> set[str]:
    """Six past invoices with a PO and 5% tax, then a candidate with the crafted fields, all read
    through fields.with_po_and_tax as the warehouse does."""
    from ar_pipeline.lib.invoice_checks.fields import with_po_and_tax

    with_po = SOURCE_FIELDS[source][0]
    hist = [raw_row(source, f"h{i}", D0 + timedelta(days=30 * i), with_po(i) | export_tax(source, 1050.0, 50.0))
            for i in range(6)]
    cand = raw_row(source, "new", date(2026, 9, 1), cand_fields)
    h = with_po_and_tax(pl.DataFrame(hist), cfg())
    c = with_po_and_tax(pl.DataFrame([cand]), cfg()).with_columns(
        stage=pl.lit("pending"), billing_email=pl.lit("ap@c.com"), email_checked=pl.lit(True),
        due_date_required=pl.lit(True))
    return rules(find_issues(c.select(list(CANDIDATE_COLUMNS)).cast(CANDIDATE_COLUMNS),
                             h.select(list(HISTORY_COLUMNS)).cast(HISTORY_COLUMNS), cfg()))


def export_tax(source: str, total: float, tax: float) -> dict:
    """Tax as each source carries it; exports keep the tax column (locale text) in `extra`."""
    if source == "quickbooks":
        return {"total_amount": total, "qb_total_tax": tax}
    if source == "stripe":
        return {"total_amount": total, "st_total_excluding_tax": total - tax}
    text = f"{tax:.2f}".replace(".", ",")
    return {"total_amount": total, "ex_extra": json.dumps({"Tax": text})}


@pytest.mark.parametrize("source", ["quickbooks", "stripe", "generic_invoices"])
def test_po_and_tax_rules_fire_in_every_source_that_carries_them(source: str) -> None:
    _with, without, other_name = SOURCE_FIELDS[source]
    ok_tax = export_tax(source, 1050.0, 50.0)
    assert run_source(source, _with(9) | ok_tax) == set()
    # PO: missing fires; given under another configured name (or field) does not
    assert "missing_po" in run_source(source, without | ok_tax)
    assert "missing_po" not in run_source(source, other_name | ok_tax)
    # tax: 8% against a usual 5% fires; 5.5% is within the tolerance
    assert "unusual_tax_rate" in run_source(source, _with(9) | export_tax(source, 1080.0, 80.0))
    assert "unusual_tax_rate" not in run_source(source, _with(9) | export_tax(source, 1055.0, 55.0))


def test_po_is_not_judged_where_the_config_names_no_field() -> None:
    from ar_pipeline.lib.invoice_checks.fields import parse_amount_text, po_number

    c = cfg()
    c.rules.missing_po.stripe_custom_fields = []
    c.rules.missing_po.stripe_metadata_keys = []
    row = raw_row("stripe", "x", D0, {"st_custom_fields": '[{"name": "PO", "value": "1"}]'})
    assert po_number(row, c) == (None, False)
    assert po_number(row, cfg()) == ("1", True)
    assert [parse_amount_text(x) for x in ("1.234,50", "1,234.50", "15,00", "$ 12.5", "n/a")] == [
        1234.5, 1234.5, 15.0, 12.5, None]
