"""Collections worklist: scenarios over simulated days (issue 6).

Each scenario keeps a tiny AR world (open invoices, payments, disputes, notes) in polars frames and
a real DuckDB log, and for every simulated day builds the queue as of that day and sends everything
in it through `send_queue` into an outbox (a stand-in for the mail server, which
test_collections_send.py covers with a real SMTP server). The expected days and levels are worked
out by hand from the policy below, not from the code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import duckdb
import polars as pl
import pytest

from ar_pipeline.lib.collections.policy import CollectionsPolicy
from ar_pipeline.lib.collections.queue import (
    CUSTOMER_RISK_SCHEMA,
    CUSTOMER_SCHEMA,
    DISPUTE_SCHEMA,
    HISTORY_SCHEMA,
    INVOICE_SCHEMA,
    NOTE_SCHEMA,
    PAYMENT_SCHEMA,
    QueueInputs,
    build_queue,
)
from ar_pipeline.lib.collections.render import render_queue
from ar_pipeline.lib.collections.send import Outgoing, Transports, send_queue
from ar_pipeline.lib.collections.store import read_log, read_notes
from tests.conftest import INGEST_CONFIGS

D0 = date(2026, 3, 2)  # a Monday: the due date of the first invoice

#: Hand-checkable policy: courtesy -3, due +1, firm +7, final +21 (skip), call +30 (skip).
POLICY = {
    "kind": "collections_policy",
    "levels": [
        {"name": "courtesy", "days": -3, "channel": "email", "template": "courtesy", "tone": "friendly"},
        {"name": "due_notice", "days": 1, "channel": "email", "template": "due_notice",
         "min_days_since_previous_contact": 3},
        {"name": "firm_reminder", "days": 7, "channel": "email", "template": "firm_reminder",
         "min_days_since_previous_contact": 5},
        {"name": "final_notice", "days": 21, "channel": "email", "template": "final_notice", "tone": "firm",
         "min_days_since_previous_contact": 7, "skip_levels": True},
        {"name": "escalate_call", "days": 30, "channel": "call_task", "template": "escalate_call", "tone": "firm",
         "min_days_since_previous_contact": 5, "skip_levels": True, "assignee": "Maria (AR manager)"},
    ],
    "exclusions": {"min_balance": 10},
    "escalation": {"level": "escalate_call", "assignee": "Maria (AR manager)", "unanswered_reminders": None,
                   "broken_promise": True, "risk_band_jump": 2},
}


def policy(**changes) -> CollectionsPolicy:
    data = {**POLICY, **changes}
    return CollectionsPolicy.model_validate(data)


class Outbox:
    """The other side of the wire: records what was delivered."""

    name = "outbox"

    def __init__(self) -> None:
        self.messages: list[Outgoing] = []

    def deliver(self, message: Outgoing) -> str:
        self.messages.append(message)
        return "delivered to test outbox"


@dataclass
class World:
    policy: CollectionsPolicy
    invoices: list[dict] = field(default_factory=list)
    payments: list[dict] = field(default_factory=list)
    disputes: list[dict] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    customer_risk: list[dict] | None = None
    customers: list[dict] = field(default_factory=lambda: [
        {"customer_id": "c1", "customer_name": "Acme Ltd", "email": "ap@acme.test", "segment": "smb",
         "collector": "Ann"}])
    conn: duckdb.DuckDBPyConnection = field(default_factory=duckdb.connect)
    outbox: Outbox = field(default_factory=Outbox)
    sent: list[tuple[date, str, str]] = field(default_factory=list)  # (day, customer, level)

    def invoice(self, key: str, due: date, amount: float, customer: str = "c1", paid_on: date | None = None,
                collection_method: str | None = None) -> None:
        self.invoices.append({"invoice_key": key, "invoice_number": key.upper(), "customer_id": customer,
                              "due_date": due, "currency": "USD", "amount": amount, "paid_on": paid_on,
                              "collection_method": collection_method})
        if paid_on:
            self.payments.append({"customer_id": customer, "payment_date": paid_on, "amount": amount})

    def inputs(self, day: date) -> QueueInputs:
        open_invoices = [
            {**{k: v for k, v in i.items() if k in INVOICE_SCHEMA}, "open_amount": i["amount"],
             "home_open_amount": i["amount"]}
            for i in self.invoices if i["paid_on"] is None or i["paid_on"] > day
        ]
        disputes = [{"invoice_key": d["invoice_key"], "customer_id": d["customer_id"], "opened_date": d["opened"],
                     "is_open": d["closed"] is None or d["closed"] > day}
                    for d in self.disputes if d["opened"] <= day]
        return QueueInputs(
            invoices=pl.DataFrame(open_invoices, schema=INVOICE_SCHEMA),
            customers=pl.DataFrame(self.customers, schema=CUSTOMER_SCHEMA),
            disputes=pl.DataFrame(disputes, schema=DISPUTE_SCHEMA),
            payments=pl.DataFrame([p for p in self.payments if p["payment_date"] <= day], schema=PAYMENT_SCHEMA),
            history=pl.DataFrame(self.history, schema=HISTORY_SCHEMA),
            customer_risk=(pl.DataFrame(self.customer_risk, schema=CUSTOMER_RISK_SCHEMA)
                           if self.customer_risk is not None else None),
            log=read_log(self.conn),
            notes=pl.DataFrame(self.notes, schema=NOTE_SCHEMA) if self.notes else read_notes(self.conn),
        )

    def run_day(self, day: date) -> pl.DataFrame:
        result = build_queue(self.inputs(day), self.policy, day)
        queue = render_queue(result.queue, INGEST_CONFIGS / "reminder_templates")
        clock = iter(datetime(day.year, day.month, day.day, 9, tzinfo=UTC) + timedelta(seconds=s)
                     for s in range(10_000))
        report = send_queue(self.conn, queue, Transports(email=self.outbox, webhook=self.outbox), dry_run=False,
                            clock=lambda: next(clock))
        levels = dict(zip(queue["reminder_id"], queue["customer_id"] + "|" + queue["level"], strict=True))
        self.sent += [(day, *levels[rid].split("|")) for rid in report.delivered]
        self.last_skipped = result.skipped
        return queue

    def run(self, start: date, end: date) -> dict[date, pl.DataFrame]:
        out, day = {}, start
        while day <= end:
            out[day] = self.run_day(day)
            day += timedelta(days=1)
        return out


def d(offset: int) -> date:
    return D0 + timedelta(days=offset)


def test_a_customer_moves_through_the_levels() -> None:
    world = World(policy())
    world.invoice("inv1", D0, 500)
    world.run(d(-10), d(45))
    assert world.sent == [(d(-3), "c1", "courtesy"), (d(1), "c1", "due_notice"), (d(7), "c1", "firm_reminder"),
                          (d(21), "c1", "final_notice"), (d(30), "c1", "escalate_call")]
    # one message per contact, to the customer's address; the call task is assigned to the manager
    assert [m.channel for m in world.outbox.messages] == ["email"] * 4 + ["call_task"]
    assert world.outbox.messages[0].recipient == "ap@acme.test"
    assert "INV1" in world.outbox.messages[1].body and "USD 500.00" in world.outbox.messages[1].body
    assert world.outbox.messages[-1].payload["assigned_to"] == "Maria (AR manager)"
    log = read_log(world.conn)
    assert log.filter(pl.col("status") == "sent").height == 5
    assert set(log["status"].to_list()) == {"queued", "sending", "sent"}


def test_min_interval_delays_the_next_level_and_invoices_are_consolidated() -> None:
    levels = [dict(lv) for lv in POLICY["levels"]]
    levels[1]["min_days_since_previous_contact"] = 5  # due notice: 5 days after the courtesy reminder
    world = World(policy(levels=levels))
    world.invoice("inv0", d(0), 100)
    world.invoice("inv1", d(4), 100)
    world.run(d(-5), d(8))
    # courtesy d-3 (inv0); due notice reached d1 but waits to d2; firm d7 (5 days after d2)
    assert world.sent == [(d(-3), "c1", "courtesy"), (d(2), "c1", "due_notice"), (d(7), "c1", "firm_reminder")]
    waiting = build_queue(world.inputs(d(1)), world.policy, d(1)).skipped
    assert waiting["reason"].to_list() == ["min_interval"] and str(d(2)) in waiting["detail"][0]
    # d2: inv1 (due d4) has reached courtesy: one message with both invoices
    body = world.outbox.messages[1].body
    assert "INV0" in body and "INV1" in body and "USD 200.00" in body
    assert len(world.outbox.messages) == 3


def test_a_payment_stops_the_sequence_and_new_invoices_start_again() -> None:
    world = World(policy())
    world.invoice("inv1", D0, 500, paid_on=d(10))
    world.invoice("inv2", d(20), 300)
    world.run(d(-10), d(24))
    assert world.sent == [(d(-3), "c1", "courtesy"), (d(1), "c1", "due_notice"), (d(7), "c1", "firm_reminder"),
                          # inv2 starts its own sequence after inv1 was paid: courtesy, then due notice
                          (d(17), "c1", "courtesy"), (d(21), "c1", "due_notice")]


def test_a_dispute_pauses_reminders_until_it_closes() -> None:
    world = World(policy())
    world.invoice("inv1", D0, 500)
    world.disputes.append({"invoice_key": "inv1", "customer_id": "c1", "opened": d(4), "closed": d(26)})
    queues = world.run(d(-5), d(30))
    assert world.sent == [(d(-3), "c1", "courtesy"), (d(1), "c1", "due_notice"),
                          # closed on d(26): 26 days late, final_notice (skip_levels) comes directly, queued
                          # on Saturday d(26) and sent on the next business day, Monday d(28) at 09:00
                          (d(28), "c1", "final_notice")]
    assert all(queues[d(k)].height == 0 for k in range(4, 26))
    paused = build_queue(world.inputs(d(10)), world.policy, d(10)).skipped
    assert paused.select("customer_id", "reason").to_dicts() == [{"customer_id": "c1", "reason": "disputed"}]


def test_a_promise_kept_ends_the_reminders() -> None:
    world = World(policy())
    world.invoice("inv1", D0, 500, paid_on=d(14))
    world.notes.append({"customer_id": "c1", "note_type": "promise", "noted_on": d(8), "until": d(15),
                        "amount": 500.0})
    world.run(d(-5), d(40))
    assert world.sent == [(d(-3), "c1", "courtesy"), (d(1), "c1", "due_notice"), (d(7), "c1", "firm_reminder")]


def test_a_broken_promise_escalates_the_day_after_its_date() -> None:
    world = World(policy())
    world.invoice("inv1", D0, 500)
    world.payments.append({"customer_id": "c1", "payment_date": d(12), "amount": 50.0})  # 50 of 500 promised
    world.notes.append({"customer_id": "c1", "note_type": "promise", "noted_on": d(8), "until": d(15),
                        "amount": 500.0})
    queues = world.run(d(-5), d(17))
    assert world.sent == [(d(-3), "c1", "courtesy"), (d(1), "c1", "due_notice"), (d(7), "c1", "firm_reminder"),
                          (d(16), "c1", "escalate_call")]
    row = queues[d(16)].row(0, named=True)
    assert row["escalated"] and "not kept" in row["escalation_reasons"]
    assert row["assigned_to"] == "Maria (AR manager)" and row["channel"] == "call_task"


def test_hold_and_do_not_contact_until_released() -> None:
    world = World(policy())
    world.invoice("inv1", D0, 500)
    world.notes += [
        {"customer_id": "c1", "note_type": "hold", "noted_on": d(0), "until": d(9)},
        {"customer_id": "c1", "note_type": "do_not_contact", "noted_on": d(15), "until": None},
        {"customer_id": "c1", "note_type": "release", "noted_on": d(33), "until": None},
    ]
    world.notes = [{**n, "amount": None} for n in world.notes]
    world.run(d(-5), d(36))
    # hold d0..d9: due notice waits to d10 (firm level reached then? no: firm needs one step at a time)
    assert world.sent == [(d(-3), "c1", "courtesy"), (d(10), "c1", "due_notice"),
                          # do-not-contact from d15 to the release on d33: 33 days late, call level (skip);
                          # d33 is a Saturday: sent on Monday d35
                          (d(35), "c1", "escalate_call")]


def test_two_runs_on_the_same_day_give_the_same_queue() -> None:
    world = World(policy())
    world.customers.append({"customer_id": "c2", "customer_name": "Beta", "email": "b@beta.test",
                            "segment": "enterprise", "collector": "Bob"})
    world.invoice("inv1", d(-10), 500)
    world.invoice("inv2", d(-25), 900, customer="c2")
    world.history = [{"customer_id": "c2", "paid_invoice_count": 10, "late_share": 0.6, "late_30_share": 0.5}]
    first = build_queue(world.inputs(D0), world.policy, D0).queue
    world.run_day(D0)  # sends both and logs them
    second = build_queue(world.inputs(D0), world.policy, D0).queue
    assert first.height == 2 and first.equals(second)
    # and re-sending the same day delivers nothing more
    before = len(world.outbox.messages)
    world.run_day(D0)
    assert len(world.outbox.messages) == before
    # the next day the log counts: nobody is due again
    assert build_queue(world.inputs(d(1)), world.policy, d(1)).queue.height == 0


def test_priority_is_money_at_risk_with_the_reason() -> None:
    world = World(policy())
    world.customers.append({"customer_id": "c2", "customer_name": "Beta", "email": "b@beta.test",
                            "segment": "smb", "collector": "Bob"})
    world.invoice("inv1", d(-10), 1000)  # c1: 1000 x 0.1 = 100
    world.invoice("inv2", d(-10), 400, customer="c2")  # c2: 400 x 0.5 = 200
    world.history = [{"customer_id": "c1", "paid_invoice_count": 10, "late_share": 0.2, "late_30_share": 0.1},
                     {"customer_id": "c2", "paid_invoice_count": 4, "late_share": 0.75, "late_30_share": 0.5}]
    queue = build_queue(world.inputs(D0), world.policy, D0).queue
    assert queue["customer_id"].to_list() == ["c2", "c1"] and queue["priority_rank"].to_list() == [1, 2]
    assert queue["money_at_risk"].to_list() == [200.0, 100.0]
    assert "historical share" in queue["priority_reason"][0] and "not available" in queue["priority_reason"][0]
    # with invoice risk scores, those win
    inputs = world.inputs(D0)
    scored = QueueInputs(**{**inputs.__dict__, "invoice_risk": pl.DataFrame(
        {"invoice_key": ["inv1", "inv2"], "p_late_30": [0.9, 0.1]})})
    queue = build_queue(scored, world.policy, D0).queue
    assert queue["customer_id"].to_list() == ["c1", "c2"] and queue["money_at_risk"].to_list() == [900.0, 40.0]
    assert "analytics.invoice_risk_scores" in queue["priority_reason"][0]
    assert "not available" not in queue["priority_reason"][0]


def test_risk_band_jump_escalates() -> None:
    world = World(policy())
    world.invoice("inv1", D0, 500)
    world.customer_risk = [{"customer_id": "c1", "risk_band": "low"}]
    world.run(d(-5), d(8))
    world.customer_risk = [{"customer_id": "c1", "risk_band": "high"}]  # low -> high: two bands
    queues = world.run(d(9), d(14))
    # firm on d7 + 5 days minimum interval = d12, a Saturday: queued then, sent on Monday d14
    assert world.sent[-1] == (d(14), "c1", "escalate_call")
    row = queues[d(12)].row(0, named=True)
    assert row["escalated"] and "risk band low -> high" in row["escalation_reasons"]


def test_no_response_after_two_reminders_escalates() -> None:
    world = World(policy(escalation={**POLICY["escalation"], "unanswered_reminders": 2}))
    world.invoice("inv1", D0, 500)
    world.run(d(-5), d(14))
    # courtesy (pre-due) does not count; due notice d1 and firm d7 unanswered -> call at d12 (interval 5),
    # a Saturday: sent on Monday d14
    assert world.sent == [(d(-3), "c1", "courtesy"), (d(1), "c1", "due_notice"), (d(7), "c1", "firm_reminder"),
                          (d(14), "c1", "escalate_call")]


def test_a_payment_counts_as_a_response() -> None:
    world = World(policy(escalation={**POLICY["escalation"], "unanswered_reminders": 2}))
    world.invoice("inv1", D0, 500)
    world.payments.append({"customer_id": "c1", "payment_date": d(8), "amount": 20.0})  # partial
    world.run(d(-5), d(14))
    assert world.sent == [(d(-3), "c1", "courtesy"), (d(1), "c1", "due_notice"), (d(7), "c1", "firm_reminder")]


def test_very_late_invoices_skip_levels_only_where_allowed() -> None:
    world = World(policy())
    world.customers.append({"customer_id": "c2", "customer_name": "Beta", "email": "b@beta.test",
                            "segment": "smb", "collector": "Bob"})
    world.invoice("inv1", d(-12), 500)  # 12 days late, never reminded: firm has no skip -> due notice first
    world.invoice("inv2", d(-25), 500, customer="c2")  # 25 days late: final notice directly (skip_levels)
    queue = build_queue(world.inputs(D0), world.policy, D0).queue
    assert dict(zip(queue["customer_id"], queue["level"], strict=True)) == {"c1": "due_notice", "c2": "final_notice"}


def test_exclusions_card_autopay_and_small_balances() -> None:
    world = World(policy(exclusions={"min_balance": 50, "card_autopay": True, "card_autopay_grace_days": 14}))
    world.customers += [{"customer_id": c, "customer_name": c, "email": f"{c}@x.test", "segment": "smb",
                         "collector": "Ann"} for c in ("c2", "c3")]
    world.invoice("inv1", d(-10), 500, collection_method="charge_automatically")  # Stripe retries still running
    world.invoice("inv2", d(-20), 500, customer="c2", collection_method="charge_automatically")  # past the grace
    world.invoice("inv3", d(-10), 49.99, customer="c3")
    result = build_queue(world.inputs(D0), world.policy, D0)
    assert result.queue["customer_id"].to_list() == ["c2"]
    assert dict(zip(result.skipped["customer_id"], result.skipped["reason"], strict=True)) == {
        "c1": "card_autopay", "c3": "under_min_balance"}


def test_tone_follows_history_and_segment() -> None:
    world = World(policy(tone={"segment_shift": {"enterprise": -1}}))
    world.customers = [
        {"customer_id": c, "customer_name": c, "email": f"{c}@x.test", "segment": s, "collector": "Ann"}
        for c, s in (("good", "smb"), ("late", "smb"), ("new", "smb"), ("big_late", "enterprise"))]
    for c in ("good", "late", "new", "big_late"):
        world.invoice(f"i_{c}", d(-8), 500, customer=c)
    world.history = [
        {"customer_id": "good", "paid_invoice_count": 20, "late_share": 0.05, "late_30_share": 0.0},
        {"customer_id": "late", "paid_invoice_count": 20, "late_share": 0.8, "late_30_share": 0.4},
        {"customer_id": "new", "paid_invoice_count": 1, "late_share": 1.0, "late_30_share": 1.0},
        {"customer_id": "big_late", "paid_invoice_count": 20, "late_share": 0.8, "late_30_share": 0.4},
    ]
    queue = build_queue(world.inputs(D0), world.policy, D0).queue  # due_notice: base tone neutral
    tones = dict(zip(queue["customer_id"], queue["tone"], strict=True))
    assert tones == {"good": "friendly", "late": "firm", "new": "neutral", "big_late": "neutral"}
    rendered = render_queue(queue, INGEST_CONFIGS / "reminder_templates")
    body = dict(zip(rendered["customer_id"], rendered["body"], strict=True))
    assert "We may have missed your payment" in body["good"] and "Please pay now" in body["late"]


def test_send_day_comes_from_the_usual_payment_weekday() -> None:
    world = World(policy())
    world.invoice("inv1", d(-10), 500)
    thursdays = [date(2026, 1, 1) + timedelta(weeks=k) for k in range(5)]  # 2026-01-01 is a Thursday
    world.payments += [{"customer_id": "c1", "payment_date": t, "amount": 10.0} for t in thursdays]
    world.payments.append({"customer_id": "c1", "payment_date": date(2026, 1, 5), "amount": 10.0})  # a Monday
    row = build_queue(world.inputs(D0), world.policy, D0).queue.row(0, named=True)
    # pays on Thursdays: send the day before, Wednesday; D0 is Monday 2026-03-02 -> Wednesday 03-04
    assert row["usual_payment_weekday"] == "Thursday"
    assert row["recommended_send_date"] == date(2026, 3, 4) and row["recommended_send_hour"] == 9


@pytest.mark.parametrize("changes, field", [
    ({"levels": [{"name": "a", "days": 5, "channel": "email", "template": "courtesy"},
                 {"name": "b", "days": 1, "channel": "email", "template": "courtesy"}]}, "levels"),
    ({"escalation": {"level": "nope"}}, "escalation.level"),
    ({"levels": [{"name": "a", "days": 1, "channel": "fax", "template": "courtesy"}]}, "levels.0.channel"),
])
def test_policy_errors_name_the_file_and_field(tmp_path, changes, field) -> None:
    import yaml

    from ar_pipeline.lib.collections.policy import PolicyError, load_policy

    path = tmp_path / "collections_policy.yaml"
    path.write_text(yaml.safe_dump({**POLICY, **changes, "templates_dir": str(INGEST_CONFIGS / "reminder_templates")},
                                   default_flow_style=False))
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_policy_missing_template_is_reported(tmp_path) -> None:
    import yaml

    from ar_pipeline.lib.collections.policy import PolicyError, load_policy

    path = tmp_path / "p.yaml"
    levels = [{"name": "a", "days": 1, "channel": "email", "template": "missing_one"}]
    path.write_text(yaml.safe_dump({"kind": "collections_policy", "levels": levels}))
    with pytest.raises(PolicyError, match=r"levels\.0\.template: .*missing_one\.subject\.j2 does not exist"):
        load_policy(path)


def test_repo_policy_loads_and_ingest_loaders_skip_it() -> None:
    from ar_pipeline.lib.collections.policy import find_policy, load_policy
    from ar_pipeline.lib.ingest_config import load_all_specs

    path = find_policy(INGEST_CONFIGS)
    assert path is not None and path.name == "collections_policy.yaml"
    assert load_policy(path).levels[0].days < 0
    assert "collections_policy" not in {getattr(s, "kind", None) for s in load_all_specs(INGEST_CONFIGS)}
