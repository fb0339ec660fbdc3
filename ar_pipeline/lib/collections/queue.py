"""Build the day's reminder queue: pure logic over small polars frames, no I/O, no clock.

Inputs (`QueueInputs`) are what the marts and the collections tables hold as of `as_of`; the
output is one row per customer to contact on that date (consolidating all its remindable invoices)
plus one row per customer left out and why. Everything is a function of the inputs: two runs on the
same inputs give the same queue, and log rows of the as-of date itself are ignored, so re-building
a day's queue after sending part of it gives the same queue (sending is idempotent by reminder id).

Rules (policy in `policy.py`; design notes in the README "Collections worklist"):

- An invoice *reaches* the highest level whose `days` <= its days past due (as_of - due_date).
  Remindable invoices: open, reached some level, not excluded (open dispute, card autopay).
- The customer's *current* level is the highest level already sent (log statuses sending, sent,
  called) that included one of its still-remindable invoices: paying the invoices of a sequence
  ends it, and new invoices start a new one.
- The *target* level is the one reached by the most overdue remindable invoice. When target >
  current, the next contact is the target itself if that level has `skip_levels`, else the next
  level up (one level per contact, OCA-style), never a courtesy (negative-days) level once an
  invoice is past due.
- Escalation triggers (days past due, unanswered reminders, broken promise, risk band jump) lift
  the contact to the escalation level when it was not sent yet.
- A contact waits until `min_days_since_previous_contact` of its level has passed since the last one.
- Customers on hold / do-not-contact, with a promise to pay not yet passed, with an open dispute
  (when `pause_customer_on_dispute`), or with a remindable balance under `min_balance` are skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import polars as pl

from ar_pipeline.lib.collections.policy import TONES, CollectionsPolicy

#: Log statuses that count as a contact made (a 'sending' row may have been delivered: at most once).
CONTACT_STATUSES = ("sending", "sent", "called")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

INVOICE_SCHEMA = {
    "invoice_key": pl.String, "invoice_number": pl.String, "customer_id": pl.String, "due_date": pl.Date,
    "currency": pl.String, "open_amount": pl.Float64, "home_open_amount": pl.Float64,
    "collection_method": pl.String,
}
CUSTOMER_SCHEMA = {
    "customer_id": pl.String, "customer_name": pl.String, "email": pl.String, "segment": pl.String,
    "collector": pl.String,
}
DISPUTE_SCHEMA = {"invoice_key": pl.String, "customer_id": pl.String, "opened_date": pl.Date, "is_open": pl.Boolean}
PAYMENT_SCHEMA = {"customer_id": pl.String, "payment_date": pl.Date, "amount": pl.Float64}
#: One row per payment whose source records a time of day (UTC instant); time_source names the source.
PAYMENT_TIME_SCHEMA = {"customer_id": pl.String, "paid_at": pl.Datetime("us", "UTC"), "time_source": pl.String}
HISTORY_SCHEMA = {
    "customer_id": pl.String, "paid_invoice_count": pl.Int64, "late_share": pl.Float64, "late_30_share": pl.Float64,
}
INVOICE_RISK_SCHEMA = {"invoice_key": pl.String, "p_late_30": pl.Float64}
CUSTOMER_RISK_SCHEMA = {"customer_id": pl.String, "risk_band": pl.String}
LOG_SCHEMA = {
    "reminder_id": pl.String, "as_of_date": pl.Date, "customer_id": pl.String, "level": pl.String,
    "status": pl.String, "invoice_keys": pl.String, "risk_band": pl.String,
    "scheduled_for": pl.Datetime("us", "UTC"),
}
NOTE_SCHEMA = {
    "customer_id": pl.String, "note_type": pl.String, "noted_on": pl.Date, "until": pl.Date, "amount": pl.Float64,
}

QUEUE_SCHEMA = {
    "as_of_date": pl.Date, "priority_rank": pl.Int64, "reminder_id": pl.String, "customer_id": pl.String,
    "customer_name": pl.String, "email": pl.String, "segment": pl.String, "collector": pl.String,
    "assigned_to": pl.String, "level": pl.String, "level_index": pl.Int64, "level_days": pl.Int64,
    "channel": pl.String, "template": pl.String, "tone": pl.String, "tone_reason": pl.String,
    "escalated": pl.Boolean, "escalation_reasons": pl.String, "invoice_count": pl.Int64,
    "invoice_keys": pl.String, "invoice_numbers": pl.String, "due_dates": pl.String,
    "oldest_due_date": pl.Date, "max_days_past_due": pl.Int64, "currencies": pl.String,
    "open_amount_home": pl.Float64, "p_late_30": pl.Float64, "money_at_risk": pl.Float64,
    "priority_reason": pl.String, "risk_band": pl.String, "usual_payment_weekday": pl.String,
    "recommended_send_date": pl.Date, "recommended_send_hour": pl.Int64,
    "recommended_send_at": pl.Datetime("us", "UTC"), "usual_payment_hour": pl.Int64, "timing_reason": pl.String,
    "last_contact_date": pl.Date, "invoices": pl.String,
}
SKIPPED_SCHEMA = {"as_of_date": pl.Date, "customer_id": pl.String, "reason": pl.String, "detail": pl.String}


def empty(schema: dict) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


@dataclass(frozen=True)
class QueueInputs:
    """Everything the queue depends on, as of the as-of date (frames follow the *_SCHEMA dicts)."""

    invoices: pl.DataFrame  # open invoices (open_amount > 0)
    customers: pl.DataFrame
    disputes: pl.DataFrame = field(default_factory=lambda: empty(DISPUTE_SCHEMA))
    payments: pl.DataFrame = field(default_factory=lambda: empty(PAYMENT_SCHEMA))
    payment_times: pl.DataFrame = field(default_factory=lambda: empty(PAYMENT_TIME_SCHEMA))
    history: pl.DataFrame = field(default_factory=lambda: empty(HISTORY_SCHEMA))
    invoice_risk: pl.DataFrame | None = None  # analytics.invoice_risk_scores when it exists
    customer_risk: pl.DataFrame | None = None  # analytics.customer_risk_scores when it exists
    log: pl.DataFrame = field(default_factory=lambda: empty(LOG_SCHEMA))
    notes: pl.DataFrame = field(default_factory=lambda: empty(NOTE_SCHEMA))


@dataclass(frozen=True)
class QueueResult:
    queue: pl.DataFrame
    skipped: pl.DataFrame


def reminder_id(customer_id: str, level: str, as_of: date) -> str:
    """Deterministic id of a reminder: the same customer, level and as-of date give the same id."""
    digest = hashlib.sha256(f"{customer_id}|{level}|{as_of.isoformat()}".encode()).hexdigest()
    return f"rem_{digest[:20]}"


def split_keys(value: str | None) -> list[str]:
    return [k for k in (value or "").split(",") if k]


def _money(value: float) -> str:
    return f"{Decimal(str(value)).quantize(Decimal('0.01')):,}"


# --------------------------------------------------------------------------------------------------
# per-invoice facts


def reached_level(days_past_due: int, level_days: list[int]) -> int:
    """Index of the highest level whose days <= days_past_due; -1 when none is reached yet."""
    reached = -1
    for i, days in enumerate(level_days):
        if days <= days_past_due:
            reached = i
    return reached


def _invoice_facts(inputs: QueueInputs, policy: CollectionsPolicy, as_of: date) -> pl.DataFrame:
    level_days = [lv.days for lv in policy.levels]
    ex = policy.exclusions
    open_disputes = inputs.disputes.filter(pl.col("is_open") & pl.col("invoice_key").is_not_null())
    disputed = set(open_disputes["invoice_key"].to_list()) if ex.disputed_invoices else set()
    inv = inputs.invoices.filter(pl.col("open_amount") > 0).with_columns(
        days_past_due=(pl.lit(as_of) - pl.col("due_date")).dt.total_days().cast(pl.Int64),
    )
    inv = inv.with_columns(
        reached=pl.col("days_past_due").map_elements(lambda d: reached_level(d, level_days), return_dtype=pl.Int64),
        excluded=pl.when(pl.col("invoice_key").is_in(list(disputed))).then(pl.lit("disputed"))
        .when(
            pl.lit(ex.card_autopay)
            & (pl.col("collection_method") == "charge_automatically")
            & (pl.lit(ex.card_autopay_grace_days is None)
               | (pl.col("days_past_due") < (ex.card_autopay_grace_days or 0)))
        ).then(pl.lit("card_autopay"))
        .otherwise(pl.lit(None, dtype=pl.String)),
    )
    return inv


# --------------------------------------------------------------------------------------------------
# per-customer state from the log and the notes


@dataclass
class _Contact:
    as_of_date: date
    level_index: int
    invoice_keys: list[str]
    risk_band: str | None


def _contacts(log: pl.DataFrame, policy: CollectionsPolicy, as_of: date) -> dict[str, list[_Contact]]:
    """Contacts made before the as-of date (the day's own rows are ignored: same inputs, same queue)."""
    names = {lv.name: i for i, lv in enumerate(policy.levels)}
    # a reminder's state is its latest row (the log is in the order written): 'sending' then 'sent' is
    # one contact; a 'failed' or 'skipped' reminder is none
    rows = (log.filter(pl.col("as_of_date") < as_of).group_by("reminder_id", maintain_order=True).last()
            .filter(pl.col("status").is_in(CONTACT_STATUSES)).sort("as_of_date", "reminder_id"))
    out: dict[str, list[_Contact]] = defaultdict(list)
    for r in rows.iter_rows(named=True):
        if r["level"] in names:
            out[r["customer_id"]].append(
                _Contact(r["as_of_date"], names[r["level"]], split_keys(r["invoice_keys"]), r["risk_band"])
            )
    return out


@dataclass(frozen=True)
class _Hold:
    reason: str
    detail: str


def active_hold(notes: pl.DataFrame, as_of: date) -> _Hold | None:
    """A customer's hold, do-not-contact or promise in force on the as-of date (notes of one customer)."""
    notes = notes.filter(pl.col("noted_on") <= as_of).sort("noted_on", maintain_order=True)
    holds = notes.filter(pl.col("note_type").is_in(["hold", "do_not_contact", "release"]))
    if holds.height:
        last = holds.row(-1, named=True)
        if last["note_type"] == "do_not_contact":
            return _Hold("do_not_contact", f"do not contact since {last['noted_on']}")
        if last["note_type"] == "hold" and (last["until"] is None or last["until"] >= as_of):
            until = f" until {last['until']}" if last["until"] else ""
            return _Hold("on_hold", f"on hold since {last['noted_on']}{until}")
    promises = notes.filter((pl.col("note_type") == "promise") & (pl.col("until") >= as_of))
    if promises.height:
        last = promises.row(-1, named=True)
        amount = f" ({_money(last['amount'])})" if last["amount"] is not None else ""
        return _Hold("promise_to_pay", f"promised on {last['noted_on']} to pay by {last['until']}{amount}")
    return None


def broken_promises(notes: pl.DataFrame, payments: pl.DataFrame, as_of: date, lookback_days: int) -> list[str]:
    """Promises (of one customer) whose date passed within the lookback without the promised payment:
    paid at least the promised amount (any payment when no amount was given) between the day of the
    promise and its date, inclusive."""
    broken = []
    promises = notes.filter(
        (pl.col("note_type") == "promise") & (pl.col("noted_on") <= as_of) & (pl.col("until") < as_of)
        & (pl.col("until") >= as_of - timedelta(days=lookback_days))
    )
    for p in promises.iter_rows(named=True):
        paid = payments.filter(pl.col("payment_date").is_between(p["noted_on"], p["until"]))
        total = float(paid["amount"].sum()) if paid.height else 0.0
        kept = paid.height > 0 and (p["amount"] is None or total + 0.005 >= p["amount"])
        if not kept:
            broken.append(f"promise of {p['noted_on']} to pay by {p['until']} not kept")
    return broken


# --------------------------------------------------------------------------------------------------
# tone, timing, priority


def choose_tone(base: str, history: dict | None, segment: str | None, policy: CollectionsPolicy) -> tuple[str, str]:
    rules = policy.tone
    step, why = 0, [f"level tone {base}"]
    if history and (history.get("paid_invoice_count") or 0) >= rules.min_paid_invoices:
        share = history.get("late_share")
        if share is not None and share <= rules.good_payer_max_late_share:
            step -= 1
            why.append(f"good payer (paid late {share:.0%} of {history['paid_invoice_count']} invoices)")
        elif share is not None and share >= rules.chronic_late_min_late_share:
            step += 1
            why.append(f"chronic late payer (paid late {share:.0%} of {history['paid_invoice_count']} invoices)")
    shift = rules.segment_shift.get(segment or "", 0)
    if shift:
        step += shift
        why.append(f"segment {segment} {shift:+d}")
    tone = TONES[max(0, min(len(TONES) - 1, TONES.index(base) + step))]
    return tone, "; ".join(why)


def usual_weekday(payment_dates: list[date], min_payments: int) -> int | None:
    """The weekday (0 = Monday) the customer pays on most often; ties go to the earliest weekday."""
    if len(payment_dates) < min_payments:
        return None
    counts = [0] * 7
    for d in payment_dates:
        counts[d.weekday()] += 1
    return max(range(7), key=lambda wd: (counts[wd], -wd))


TIME_SOURCE_WORDS = {
    "stripe_payment": "Stripe payment times",
    "quickbooks_entry": "QuickBooks payment entry times (MetaData.CreateTime)",
}


@dataclass(frozen=True)
class UsualHour:
    hour: int | None  # company time; None when there are too few observations
    observations: int
    sources: tuple[str, ...]


def usual_hour(times: pl.DataFrame, timezone: str, min_observations: int) -> UsualHour:
    """The hour of day (company time) a customer's timestamped payments (PAYMENT_TIME_SCHEMA rows of
    one customer) fall in most often; ties go to the earliest hour. None below `min_observations`."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(timezone)
    stamps = [t for t in times["paid_at"].to_list() if t is not None]
    sources = tuple(sorted(set(times["time_source"].drop_nulls().to_list())))
    if len(stamps) < min_observations:
        return UsualHour(None, len(stamps), sources)
    counts = [0] * 24
    for t in stamps:
        counts[(t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(zone).hour] += 1
    return UsualHour(max(range(24), key=lambda h: (counts[h], -h)), len(stamps), sources)


def send_hour_for(hour: UsualHour, policy: CollectionsPolicy) -> tuple[int, str]:
    """The hour to send at and why: the hour(s) before the customer's usual payment hour when enough
    timestamped payments exist, else the policy's send_hour."""
    timing = policy.timing
    if hour.hour is None:
        if hour.observations == 0:
            return timing.send_hour, "policy send_hour (no payment times recorded for this customer, only dates)"
        return timing.send_hour, (f"policy send_hour (only {hour.observations} timestamped payments, "
                                  f"{timing.min_hour_observations} needed)")
    send = max(0, hour.hour - timing.hours_before_usual_payment_hour)
    words = " and ".join(TIME_SOURCE_WORDS.get(s, s) for s in hour.sources)
    return send, f"usually pays around {hour.hour:02d}:00 ({hour.observations} {words})"


def local_instant(day: date, hour: int, timezone: str) -> datetime:
    """`day` at `hour`:00 in the company time zone, as a UTC instant."""
    from zoneinfo import ZoneInfo

    return datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def recommend_send(as_of: date, pay_weekday: int | None, policy: CollectionsPolicy,
                   hour: UsualHour | None = None) -> tuple[date, int, str]:
    timing = policy.timing
    if pay_weekday is None:
        target, why = None, "too few payments to know its usual payment day"
    else:
        target = (pay_weekday - timing.days_before_usual_payment_weekday) % 7
        if timing.business_days_only and target >= 5:
            target = 4  # the Friday before
        why = (f"usually pays on {WEEKDAYS[pay_weekday]}: send on {WEEKDAYS[target]}")
    day = as_of
    for _ in range(7):
        ok_weekday = target is None or day.weekday() == target
        ok_business = not timing.business_days_only or day.weekday() < 5
        if ok_weekday and ok_business:
            break
        day += timedelta(days=1)
    send_hour, hour_why = send_hour_for(hour or UsualHour(None, 0, ()), policy)
    return day, send_hour, f"{why}, {send_hour:02d}:00 {timing.timezone}: {hour_why}"


def pending_schedule(log: pl.DataFrame, customer_id: str, level: str, as_of: date,
                     last_contact: date | None) -> tuple[datetime, date] | None:
    """The earliest time a reminder of this customer and level was scheduled for by an earlier day's
    queue and never delivered (its latest log row is `queued` or `failed`; no contact since), with
    that queue's as-of date. A rebuilt queue keeps that time, so a reminder waiting for its hour is
    not pushed back a week when the next day's queue is built before it was sent."""
    if log.height == 0 or "scheduled_for" not in log.columns:
        return None
    rows = log.filter((pl.col("customer_id") == customer_id) & (pl.col("as_of_date") < as_of))
    if rows.height == 0:
        return None
    per_id = rows.group_by("reminder_id", maintain_order=True).agg(
        pl.col("status").last(), pl.col("level").last(), pl.col("as_of_date").last(),
        pl.col("scheduled_for").drop_nulls().min())
    pending = per_id.filter(
        pl.col("status").is_in(["queued", "failed"]) & (pl.col("level") == level)
        & pl.col("scheduled_for").is_not_null()
        & (pl.lit(last_contact is None) | (pl.col("as_of_date") > pl.lit(last_contact or as_of)))
    ).sort("scheduled_for", "as_of_date")
    if pending.height == 0:
        return None
    first = pending.row(0, named=True)
    return first["scheduled_for"], first["as_of_date"]


# --------------------------------------------------------------------------------------------------
# the queue


def build_queue(inputs: QueueInputs, policy: CollectionsPolicy, as_of: date) -> QueueResult:
    levels = policy.levels
    inv = _invoice_facts(inputs, policy, as_of)
    contacts = _contacts(inputs.log, policy, as_of)
    customers = {r["customer_id"]: r for r in inputs.customers.iter_rows(named=True)}
    history = {r["customer_id"]: r for r in inputs.history.iter_rows(named=True)}
    hist_paid = inputs.history["paid_invoice_count"].fill_null(0).sum() if inputs.history.height else 0
    portfolio_late_30 = (
        float((inputs.history["late_30_share"].fill_null(0) * inputs.history["paid_invoice_count"].fill_null(0)).sum()
              / hist_paid) if hist_paid else 0.0
    )
    inv_risk = ({r["invoice_key"]: r["p_late_30"] for r in inputs.invoice_risk.iter_rows(named=True)}
                if inputs.invoice_risk is not None else {})
    cust_risk = ({r["customer_id"]: r["risk_band"] for r in inputs.customer_risk.iter_rows(named=True)}
                 if inputs.customer_risk is not None else {})
    open_dispute_customers = set(inputs.disputes.filter(pl.col("is_open"))["customer_id"].drop_nulls().to_list())
    notes_by = inputs.notes.partition_by("customer_id", as_dict=True) if inputs.notes.height else {}
    pays_by = inputs.payments.partition_by("customer_id", as_dict=True) if inputs.payments.height else {}
    disputes_by = inputs.disputes.partition_by("customer_id", as_dict=True) if inputs.disputes.height else {}
    times_by = (inputs.payment_times.partition_by("customer_id", as_dict=True)
                if inputs.payment_times.height else {})
    empty_times = empty(PAYMENT_TIME_SCHEMA)
    empty_notes, empty_pays = empty(NOTE_SCHEMA), empty(PAYMENT_SCHEMA)

    rows, skipped = [], []

    def skip(customer_id: str, reason: str, detail: str) -> None:
        skipped.append({"as_of_date": as_of, "customer_id": customer_id, "reason": reason, "detail": detail})

    for (customer_id,), cinv in sorted(inv.partition_by("customer_id", as_dict=True).items()):
        reached_any = cinv.filter(pl.col("reached") >= 0)
        if reached_any.height == 0:
            continue  # nothing due or overdue enough yet: not a collections matter
        remindable = reached_any.filter(pl.col("excluded").is_null()).sort("due_date", "invoice_key")
        if remindable.height == 0:
            reasons = sorted(set(reached_any["excluded"].to_list()))
            skip(customer_id, reasons[0] if len(reasons) == 1 else "excluded_invoices",
                 f"every remindable invoice excluded ({', '.join(reasons)})")
            continue
        notes = notes_by.get((customer_id,), empty_notes)
        pays = pays_by.get((customer_id,), empty_pays).filter(pl.col("payment_date") <= as_of)
        hold = active_hold(notes, as_of)
        if hold:
            skip(customer_id, hold.reason, hold.detail)
            continue
        if policy.exclusions.pause_customer_on_dispute and customer_id in open_dispute_customers:
            skip(customer_id, "dispute_open", "customer paused while a dispute is open")
            continue
        home = remindable["home_open_amount"]
        balance = float(home.fill_null(0).sum())
        if balance < policy.exclusions.min_balance:
            skip(customer_id, "under_min_balance",
                 f"remindable balance {_money(balance)} below {_money(policy.exclusions.min_balance)}")
            continue

        keys = remindable["invoice_key"].to_list()
        key_set = set(keys)
        past = contacts.get(customer_id, [])
        sequence = [c for c in past if key_set & set(c.invoice_keys)]
        current = max((c.level_index for c in sequence), default=-1)
        target = int(remindable["reached"].max())
        max_dpd = int(remindable["days_past_due"].max())
        last_contact = max((c.as_of_date for c in past), default=None)

        level_idx = None
        if target > current:
            if levels[target].skip_levels:
                level_idx = target
            else:
                candidates = [i for i in range(current + 1, target + 1) if not (levels[i].days < 0 < max_dpd)]
                level_idx = candidates[0] if candidates else target

        # escalation triggers
        band = cust_risk.get(customer_id)
        reasons: list[str] = []
        esc = policy.escalation
        if esc is not None:
            if esc.days_past_due is not None and max_dpd >= esc.days_past_due:
                reasons.append(f"{max_dpd} days past due (>= {esc.days_past_due})")
            if esc.unanswered_reminders is not None and sequence:
                responses = [d for d in pays["payment_date"].to_list()]
                responses += [d for d in notes.filter(pl.col("noted_on") <= as_of)["noted_on"].to_list()]
                responses += [d for d in disputes_by.get((customer_id,), empty(DISPUTE_SCHEMA))["opened_date"]
                              .drop_nulls().to_list() if d <= as_of]
                last_response = max(responses, default=None)
                # courtesy reminders (before the due date) ask for nothing yet: they do not count
                unanswered = [c for c in sequence if levels[c.level_index].days > 0
                              and (last_response is None or c.as_of_date > last_response)]
                if len(unanswered) >= esc.unanswered_reminders:
                    reasons.append(f"no response after {len(unanswered)} reminders")
            if esc.broken_promise:
                reasons += broken_promises(notes, pays, as_of, esc.broken_promise_lookback_days)
            if esc.risk_band_jump is not None and band in policy.risk_bands and past:
                before = past[-1].risk_band
                if before in policy.risk_bands:
                    jump = policy.risk_bands.index(band) - policy.risk_bands.index(before)
                    if jump >= esc.risk_band_jump:
                        reasons.append(f"risk band {before} -> {band}")
        escalated = False
        if reasons and esc is not None:
            esc_idx = policy.level_index(esc.level)
            if esc_idx > current and (level_idx is None or esc_idx > level_idx):
                level_idx, escalated = esc_idx, True

        if level_idx is None:
            if current >= 0:
                skip(customer_id, "level_already_sent",
                     f"{levels[current].name} already sent; next level when an invoice reaches it")
            continue
        level = levels[level_idx]
        if last_contact is not None and (as_of - last_contact).days < level.min_days_since_previous_contact:
            next_day = last_contact + timedelta(days=level.min_days_since_previous_contact)
            skip(customer_id, "min_interval",
                 f"last contact {last_contact}; {level.name} waits until {next_day}")
            continue

        # priority = money at risk
        cust = customers.get(customer_id, {})
        hist = history.get(customer_id)
        p_values, sources = [], set()
        for r in remindable.iter_rows(named=True):
            if r["invoice_key"] in inv_risk and inv_risk[r["invoice_key"]] is not None:
                p_values.append(float(inv_risk[r["invoice_key"]]))
                sources.add("analytics.invoice_risk_scores")
            elif hist and (hist.get("paid_invoice_count") or 0) > 0 and hist.get("late_30_share") is not None:
                p_values.append(float(hist["late_30_share"]))
                sources.add(f"its historical share of paid invoices paid >30 days late "
                            f"({hist['paid_invoice_count']} paid invoices)")
            else:
                p_values.append(portfolio_late_30)
                sources.add("the portfolio's historical share paid >30 days late (no history for this customer)")
        homes = [float(h) if h is not None else 0.0 for h in remindable["home_open_amount"].to_list()]
        at_risk = sum(h * p for h, p in zip(homes, p_values, strict=True))
        p_avg = at_risk / balance if balance else 0.0
        fallback = "" if inv_risk else "; analytics.invoice_risk_scores not available"
        no_rate = remindable["home_open_amount"].null_count()
        priority_reason = (
            f"{_money(balance)} open (home currency) x P(>30 days late) {p_avg:.2f} from "
            f"{' and '.join(sorted(sources))}{fallback}"
            + (f"; {no_rate} invoice(s) without a home-currency rate count 0" if no_rate else "")
        )
        tone, tone_reason = choose_tone(level.tone, hist, cust.get("segment"), policy)
        wd = usual_weekday(pays["payment_date"].to_list(), policy.timing.min_payments)
        hour = usual_hour(
            times_by.get((customer_id,), empty_times).filter(pl.col("paid_at").dt.date() <= as_of),
            policy.timing.timezone, policy.timing.min_hour_observations)
        send_date, send_hour, timing_reason = recommend_send(as_of, wd, policy, hour)
        send_at = local_instant(send_date, send_hour, policy.timing.timezone)
        carried = pending_schedule(inputs.log, customer_id, level.name, as_of, last_contact)
        if carried is not None and carried[0] < send_at:
            send_at = carried[0]
            local = send_at.astimezone(policy.timing.zone())
            send_date, send_hour = local.date(), local.hour
            timing_reason = (f"kept from the queue of {carried[1]}: scheduled for {local:%Y-%m-%d %H:%M} "
                             f"{policy.timing.timezone} and not sent yet (then: {timing_reason})")
        invoices = [
            {"invoice_key": r["invoice_key"], "number": r["invoice_number"] or r["invoice_key"],
             "due_date": r["due_date"].isoformat(), "days_past_due": r["days_past_due"],
             "currency": r["currency"], "open_amount": _money(r["open_amount"])}
            for r in remindable.iter_rows(named=True)
        ]
        totals = (remindable.group_by("currency").agg(pl.col("open_amount").sum()).sort("currency"))
        assigned = level.assignee or (esc.assignee if escalated and esc and esc.assignee else None)
        rows.append({
            "as_of_date": as_of,
            "priority_rank": 0,
            "reminder_id": reminder_id(customer_id, level.name, as_of),
            "customer_id": customer_id,
            "customer_name": cust.get("customer_name") or customer_id,
            "email": cust.get("email"),
            "segment": cust.get("segment"),
            "collector": cust.get("collector"),
            "assigned_to": assigned or cust.get("collector"),
            "level": level.name,
            "level_index": level_idx,
            "level_days": level.days,
            "channel": level.channel,
            "template": level.template,
            "tone": tone,
            "tone_reason": tone_reason,
            "escalated": escalated,
            "escalation_reasons": "; ".join(reasons) if reasons else None,
            "invoice_count": len(keys),
            "invoice_keys": ",".join(keys),
            "invoice_numbers": ", ".join(i["number"] for i in invoices),
            "due_dates": ", ".join(i["due_date"] for i in invoices),
            "oldest_due_date": remindable["due_date"].min(),
            "max_days_past_due": max_dpd,
            "currencies": ", ".join(totals["currency"].to_list()),
            "open_amount_home": round(balance, 2),
            "p_late_30": round(p_avg, 4),
            "money_at_risk": round(at_risk, 2),
            "priority_reason": priority_reason,
            "risk_band": band,
            "usual_payment_weekday": WEEKDAYS[wd] if wd is not None else None,
            "recommended_send_date": send_date,
            "recommended_send_hour": send_hour,
            "recommended_send_at": send_at,
            "usual_payment_hour": hour.hour,
            "timing_reason": timing_reason,
            "last_contact_date": last_contact,
            "invoices": json.dumps({
                "invoices": invoices,
                "totals": [{"currency": c, "amount": _money(a)} for c, a in totals.iter_rows()],
            }, sort_keys=True),
        })

    queue = pl.DataFrame(rows, schema=QUEUE_SCHEMA) if rows else empty(QUEUE_SCHEMA)
    queue = queue.sort(["money_at_risk", "max_days_past_due", "customer_id"], descending=[True, True, False])
    queue = queue.with_columns(priority_rank=pl.int_range(1, queue.height + 1, dtype=pl.Int64))
    skipped_df = pl.DataFrame(skipped, schema=SKIPPED_SCHEMA) if skipped else empty(SKIPPED_SCHEMA)
    return QueueResult(queue=queue, skipped=skipped_df.sort("customer_id"))
