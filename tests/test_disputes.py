"""Dispute workflow: routing follows the YAML, next-action statistics on a hand-made history,
QuickBooks note keywords, recurring reasons and risk flags."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from ar_pipeline.lib.cash_application.config import AnalyticsConfigError, load_yaml_model
from ar_pipeline.lib.disputes import (
    DISPUTE_COLUMNS,
    DisputeRoutingConfig,
    build_queue,
    reason_from_note,
    reason_history,
    reason_summary,
    risk_invoices,
    route,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "ingest_configs" / "analytics"
AS_OF = date(2026, 6, 30)


def cfg() -> DisputeRoutingConfig:
    return load_yaml_model(CONFIG_DIR / "dispute_routing.yaml", DisputeRoutingConfig)


def dispute(
    i: int,
    reason: str,
    *,
    outcome: str | None = None,
    opened: date = date(2026, 1, 1),
    closed_days: int | None = None,
    amount: float = 100.0,
    customer: str = "C1",
    due: date | None = None,
) -> dict:
    return {
        "dispute_id": f"d{i}",
        "source": "stripe",
        "origin": "stripe_dispute",
        "invoice_key": f"i{i}",
        "customer_id": customer,
        "reason": reason,
        "status": outcome or "needs_response",
        "is_open": outcome is None,
        "outcome": outcome,
        "currency": "USD",
        "amount": amount,
        "home_amount": amount,
        "opened_date": opened,
        "evidence_due_date": due,
        "closed_date": None if closed_days is None else opened + timedelta(days=closed_days),
        "note": None,
    }


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=DISPUTE_COLUMNS)


CUSTOMERS = pl.DataFrame(
    {"customer_id": ["C1", "C2"], "customer_name": ["Acme", "Beta"], "segment": ["smb", "enterprise"]}
)


def test_routing_follows_the_yaml_first_match_and_amount_bands() -> None:
    c = cfg()
    by_name = {r.name: r for r in c.routing}
    assert route("fraudulent", 50_000, c) == by_name["fraud"]  # reason rule listed before the amount rule
    assert route("product_not_received", 10_000, c) == by_name["large"]  # min_amount is inclusive
    assert route("product_not_received", 9_999.99, c) == by_name["product_or_service"]
    assert route("duplicate", 10, c).owner == by_name["billing"].owner
    fallback = route("something_new", 10, c)
    assert (fallback.name, fallback.owner, fallback.team) == ("default", c.default_owner, c.default_team)


def test_routing_from_a_hand_written_yaml(tmp_path: Path) -> None:
    p = tmp_path / "dispute_routing.yaml"
    p.write_text(
        "default_owner: nobody\ndefault_team: T0\nrouting:\n"
        "  - {name: small, max_amount: 100, owner: a, team: T1}\n"
        "  - {name: fraud_big, reasons: [fraudulent], min_amount: 100, owner: b, team: T2, respond_within_days: 3}\n"
    )
    c = load_yaml_model(p, DisputeRoutingConfig)
    assert route("general", 99.99, c).owner == "a"
    assert route("general", 100, c).owner == "nobody"  # max_amount is exclusive and 'general' is not fraud
    assert route("fraudulent", 100, c).owner == "b"
    q = build_queue(frame([dispute(1, "fraudulent", amount=500, opened=date(2026, 6, 28))]), CUSTOMERS, AS_OF, c)
    row = q.row(0, named=True)
    # no evidence deadline from the source: opened + the rule's respond_within_days
    assert (row["owner"], row["team"], row["response_deadline"], row["days_left"]) == ("b", "T2", date(2026, 7, 1), 1)


def test_routing_config_errors_name_file_and_field(tmp_path: Path) -> None:
    p = tmp_path / "dispute_routing.yaml"
    p.write_text("routing:\n  - {name: x, min_amount: 100, max_amount: 50, owner: a, team: t}\n")
    with pytest.raises(AnalyticsConfigError, match=r"dispute_routing\.yaml.*routing\.0.*max_amount"):
        load_yaml_model(p, DisputeRoutingConfig)


def hand_history() -> list[dict]:
    # 'product_not_received': 6 closed, 4 won (resolution 10, 20, 30, 40 days), 2 lost (50, 60) -> 4/6, median 35
    # 'fraudulent': 5 closed, 1 won -> 1/5 = 20% -> accept; 'general': 2 closed -> too few
    rows = [dispute(i, "product_not_received", outcome="won", closed_days=10 * (i + 1)) for i in range(4)]
    rows += [
        dispute(4, "product_not_received", outcome="lost", closed_days=50),
        dispute(5, "product_not_received", outcome="lost", closed_days=60),
    ]
    rows += [dispute(10, "fraudulent", outcome="won")] + [
        dispute(10 + i, "fraudulent", outcome="lost") for i in range(1, 5)
    ]
    rows += [dispute(20, "general", outcome="won"), dispute(21, "general", outcome="lost")]
    return rows


def test_reason_history_on_a_hand_made_history() -> None:
    h = {r["reason"]: r for r in reason_history(frame(hand_history()), cfg()).to_dicts()}
    pnr = h["product_not_received"]
    assert (pnr["closed_count"], pnr["won_count"], pnr["lost_count"]) == (6, 4, 2)
    assert pnr["won_share"] == pytest.approx(4 / 6) and pnr["median_resolution_days"] == 35
    assert (h["fraudulent"]["won_share"], h["fraudulent"]["median_resolution_days"]) == (0.2, None)


def test_next_action_follows_the_history_of_the_same_reason() -> None:
    due = AS_OF + timedelta(days=5)
    rows = hand_history() + [
        dispute(30, "product_not_received", opened=date(2026, 6, 20), due=due),
        dispute(31, "fraudulent", opened=date(2026, 6, 20), due=AS_OF - timedelta(days=1)),
        dispute(32, "general", opened=date(2026, 6, 20), due=due),
    ]
    q = {r["dispute_id"]: r for r in build_queue(frame(rows), CUSTOMERS, AS_OF, cfg()).to_dicts()}
    contest = q["d30"]["next_action"]
    assert contest.startswith("Contest with evidence") and "4 of 6" in contest and "35 days" in contest
    assert "5 days left" in contest and q["d30"]["days_left"] == 5
    accept = q["d31"]["next_action"]
    assert accept.startswith("Consider accepting") and "1 of 5" in accept and "overdue" in accept
    assert q["d31"]["days_left"] == -1
    assert q["d32"]["next_action"].startswith("Only 2 closed 'general' disputes")
    assert q["d0"]["next_action"].startswith("Closed (won)") and q["d0"]["days_left"] is None
    # open disputes first, most urgent first
    order = build_queue(frame(rows), CUSTOMERS, AS_OF, cfg())["dispute_id"].to_list()
    assert order[:3] == ["d31", "d30", "d32"]


def test_quickbooks_note_keywords_map_to_reasons_in_yaml_order() -> None:
    kw = cfg().quickbooks.reason_keywords
    assert reason_from_note("Customer says they were BILLED TWICE", kw) == "duplicate"
    assert reason_from_note("Disputed: goods arrived damaged", kw) == "quality"  # quality listed before general
    assert reason_from_note("Disputed by customer", kw) == "general"
    assert reason_from_note("Credit for invoice 1042", kw) is None
    assert reason_from_note(None, kw) is None


def test_recurring_reasons_by_month_segment_customer() -> None:
    rows = [
        dispute(1, "duplicate", opened=date(2026, 1, 3)),
        dispute(2, "duplicate", opened=date(2026, 3, 9), outcome="lost"),
        dispute(3, "general", opened=date(2026, 3, 10), outcome="won"),
        dispute(4, "duplicate", opened=date(2026, 3, 11), customer="C2", amount=40.0),
    ]
    s = reason_summary(frame(rows), CUSTOMERS, AS_OF, cfg())
    c1_dup = s.filter((pl.col("customer_id") == "C1") & (pl.col("reason") == "duplicate")).sort("month")
    assert c1_dup["month"].to_list() == [date(2026, 1, 1), date(2026, 3, 1)]
    assert c1_dup["is_recurring"].to_list() == [True, True] and c1_dup["lost_count"].to_list() == [0, 1]
    other = s.filter(pl.col("customer_id") == "C2").row(0, named=True)
    assert (other["segment"], other["is_recurring"], other["disputed_home_amount"]) == ("enterprise", False, 40.0)
    assert not s.filter(pl.col("reason") == "general")["is_recurring"].item()


def test_open_invoices_of_customers_with_recent_disputes_are_flagged() -> None:
    c = cfg()
    rows = [
        dispute(1, "duplicate", opened=AS_OF - timedelta(days=30)),
        dispute(2, "general", opened=AS_OF - timedelta(days=c.risk.lookback_days + 1), customer="C2"),
    ]
    invoices = pl.DataFrame(
        {
            "invoice_key": ["a", "b", "c"],
            "invoice_number": ["A", "B", "C"],
            "customer_id": ["C1", "C1", "C2"],
            "due_date": [AS_OF] * 3,
            "currency": ["USD"] * 3,
            "open_amount": [1.0, 2.0, 3.0],
        }
    )
    out = risk_invoices(invoices, frame(rows), AS_OF, c)
    assert out["invoice_key"].to_list() == ["a", "b"]  # C2's only dispute is outside the lookback
    assert "duplicate" in out["message"][0] and out["customer_dispute_count"].to_list() == [1, 1]


def test_stripe_closed_date_prefers_stripe_records_then_load_history(tmp_path: Path) -> None:
    """marts.fct_disputes.closed_date (from the reinstatement balance transaction) wins over load
    history; a lost dispute, which Stripe leaves undated, takes the first load that saw it closed
    after one that saw it open; one first loaded already lost stays undated."""
    import duckdb

    from ar_pipeline.lib.disputes.warehouse import load_disputes

    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    conn.sql("create schema marts; create schema raw_stripe")
    conn.sql("""
        create table marts.fct_disputes as select * from (values
            ('dp_won', 'stripe', 'stripe:in_1', 'stripe:cus_1', 'fraudulent', 'won', false, 'won', 'USD', 10.0, 10.0,
             date '2026-05-01', date '2026-05-22', date '2026-06-12'),
            ('dp_lost', 'stripe', 'stripe:in_2', 'stripe:cus_1', 'general', 'lost', false, 'lost', 'USD', 10.0, 10.0,
             date '2026-05-01', date '2026-05-22', null),
            ('dp_backfill', 'stripe', 'stripe:in_3', 'stripe:cus_1', 'general', 'lost', false, 'lost', 'USD', 10.0,
             10.0, date '2026-05-01', date '2026-05-22', null)
        ) t(dispute_id, source, invoice_key, customer_id, reason, status, is_open, outcome, currency, amount,
            home_amount, opened_date, evidence_due_date, closed_date)""")
    conn.sql("""
        create table raw_stripe.raw_disputes as select * from (values
            ('dp_won', 'under_review', timestamptz '2026-05-02 06:00:00+00'),
            ('dp_won', 'won', timestamptz '2026-06-20 06:00:00+00'),
            ('dp_lost', 'under_review', timestamptz '2026-05-02 06:00:00+00'),
            ('dp_lost', 'lost', timestamptz '2026-06-15 06:00:00+00'),
            ('dp_backfill', 'lost', timestamptz '2026-06-15 06:00:00+00')
        ) t(id, status, _loaded_at)""")
    base = cfg()
    stripe_only = base.model_copy(
        update={"quickbooks": base.quickbooks.model_copy(update={"credit_memo_notes": False, "invoice_notes": False})}
    )
    got = load_disputes(conn, AS_OF, stripe_only).select("dispute_id", "closed_date").sort("dispute_id").rows()
    assert got == [("dp_backfill", None), ("dp_lost", date(2026, 6, 15)), ("dp_won", date(2026, 6, 12))]
