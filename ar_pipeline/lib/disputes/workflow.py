"""Dispute workflow: pure functions over polars frames (no database, no clock).

- `reason_from_note`: a QuickBooks private note -> dispute reason by configured keywords;
- `route`: reason + home amount -> routing rule, owner, team (first matching YAML rule);
- `reason_history` / `suggest_action`: won share and typical resolution time of closed disputes of
  the same reason, and the next step they suggest for an open one;
- `build_queue`, `reason_summary`, `risk_invoices`: the three analytics tables.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from .config import DisputeRoutingConfig, RoutingRule

DISPUTE_COLUMNS = {
    "dispute_id": pl.String,
    "source": pl.String,
    "origin": pl.String,  # stripe_dispute | quickbooks_credit_memo | quickbooks_invoice_note
    "invoice_key": pl.String,
    "customer_id": pl.String,
    "reason": pl.String,
    "status": pl.String,
    "is_open": pl.Boolean,
    "outcome": pl.String,
    "currency": pl.String,
    "amount": pl.Float64,
    "home_amount": pl.Float64,
    "opened_date": pl.Date,
    "evidence_due_date": pl.Date,
    "closed_date": pl.Date,
    "note": pl.String,
}
HISTORY_SCHEMA = {
    "reason": pl.String,
    "closed_count": pl.Int64,
    "won_count": pl.Int64,
    "lost_count": pl.Int64,
    "won_share": pl.Float64,
    "median_resolution_days": pl.Float64,
}


def reason_from_note(note: str | None, reason_keywords: dict[str, list[str]]) -> str | None:
    """The first reason (in YAML order) one of whose keywords occurs in the note, ignoring case."""
    if not note:
        return None
    text = note.lower()
    for reason, keywords in reason_keywords.items():
        if any(k.lower() in text for k in keywords if k.strip()):
            return reason
    return None


def route(reason: str | None, home_amount: float | None, cfg: DisputeRoutingConfig) -> RoutingRule:
    """The first routing rule matching the reason (empty list = any) and amount band
    [min_amount, max_amount); the YAML defaults when none matches."""
    amount = home_amount or 0.0
    for rule in cfg.routing:
        if rule.reasons and reason not in rule.reasons:
            continue
        if amount < rule.min_amount or (rule.max_amount is not None and amount >= rule.max_amount):
            continue
        return rule
    return RoutingRule(
        name="default",
        owner=cfg.default_owner,
        team=cfg.default_team,
        respond_within_days=cfg.default_respond_within_days,
    )


def reason_history(disputes: pl.DataFrame, cfg: DisputeRoutingConfig) -> pl.DataFrame:
    """Per reason, over closed disputes: how many, won/lost, won share and median days from opening
    to closing (closing dates known only for some; null when none is known)."""
    closed = disputes.filter(~pl.col("is_open") & pl.col("outcome").is_not_null())
    if closed.is_empty():
        return pl.DataFrame(schema=HISTORY_SCHEMA)
    won = pl.col("outcome").is_in(cfg.next_action.won_outcomes)
    days = (pl.col("closed_date") - pl.col("opened_date")).dt.total_days()
    out = closed.group_by("reason").agg(
        closed_count=pl.len().cast(pl.Int64),
        won_count=won.sum().cast(pl.Int64),
        lost_count=(~won).sum().cast(pl.Int64),
        median_resolution_days=days.median().cast(pl.Float64),
    )
    return out.with_columns(won_share=pl.col("won_count") / pl.col("closed_count")).select(list(HISTORY_SCHEMA))


def suggest_action(
    is_open: bool,
    outcome: str | None,
    reason: str | None,
    deadline: date | None,
    days_left: int | None,
    history: dict | None,
    cfg: DisputeRoutingConfig,
) -> str:
    """One sentence: what to do next, based on closed disputes of the same reason."""
    if not is_open:
        return f"Closed ({outcome or 'no outcome recorded'}); nothing to do."
    label = reason or "unspecified"
    due = ""
    if deadline is not None:
        due = (
            f" Evidence is overdue since {deadline}."
            if days_left is not None and days_left < 0
            else f" Respond by {deadline} ({days_left} days left)."
        )
    n = history["closed_count"] if history else 0
    if n < cfg.next_action.min_history:
        return f"Only {n} closed '{label}' disputes so far, too few to judge; review the case on its merits.{due}"
    won, share = history["won_count"], history["won_share"]
    timing = ""
    if history.get("median_resolution_days") is not None:
        timing = f" Such disputes typically took {history['median_resolution_days']:.0f} days to resolve."
    record = f"{won} of {n} past '{label}' disputes were won ({share:.0%})."
    if share >= cfg.next_action.contest_min_win_share:
        return f"Contest with evidence: {record}{timing}{due}"
    if share <= cfg.next_action.accept_max_win_share:
        return f"Consider accepting or offering a credit: only {record}{timing}{due}"
    return f"Contest only with strong evidence: {record}{timing}{due}"


def build_queue(
    disputes: pl.DataFrame, customers: pl.DataFrame, as_of: date, cfg: DisputeRoutingConfig
) -> pl.DataFrame:
    """Every dispute with routing, deadline, days left and suggested next action; open ones first,
    most urgent first. `customers` has customer_id, customer_name, segment."""
    d = disputes.select([pl.col(c).cast(t) for c, t in DISPUTE_COLUMNS.items()])
    hist = {r["reason"]: r for r in reason_history(d, cfg).to_dicts()}
    rows = []
    for r in d.to_dicts():
        rule = route(r["reason"], r["home_amount"], cfg)
        deadline = r["evidence_due_date"]
        if deadline is None and r["opened_date"] is not None:
            deadline = r["opened_date"] + timedelta(days=rule.respond_within_days)
        days_left = (deadline - as_of).days if (deadline is not None and r["is_open"]) else None
        h = hist.get(r["reason"])
        rows.append(
            {
                **r,
                "routing_rule": rule.name,
                "owner": rule.owner,
                "team": rule.team,
                "response_deadline": deadline,
                "days_left": days_left,
                "reason_closed_count": h["closed_count"] if h else 0,
                "reason_won_share": h["won_share"] if h else None,
                "reason_median_resolution_days": h["median_resolution_days"] if h else None,
                "next_action": suggest_action(r["is_open"], r["outcome"], r["reason"], deadline, days_left, h, cfg),
            }
        )
    schema = {
        **DISPUTE_COLUMNS,
        "routing_rule": pl.String,
        "owner": pl.String,
        "team": pl.String,
        "response_deadline": pl.Date,
        "days_left": pl.Int64,
        "reason_closed_count": pl.Int64,
        "reason_won_share": pl.Float64,
        "reason_median_resolution_days": pl.Float64,
        "next_action": pl.String,
    }
    out = pl.DataFrame(rows, schema=schema)
    out = out.join(customers.select("customer_id", "customer_name", "segment"), on="customer_id", how="left")
    return out.with_columns(as_of_date=pl.lit(as_of)).sort(
        pl.col("is_open").not_(), pl.col("days_left"), "dispute_id", nulls_last=True
    )


def reason_summary(
    disputes: pl.DataFrame, customers: pl.DataFrame, as_of: date, cfg: DisputeRoutingConfig
) -> pl.DataFrame:
    """Disputes by opening month, segment, customer and reason; `is_recurring` marks a customer
    whose disputes of that reason (all months) reach `risk.recurring_min`."""
    d = disputes.join(customers.select("customer_id", "segment"), on="customer_id", how="left")
    won = pl.col("outcome").is_in(cfg.next_action.won_outcomes)
    out = d.group_by(
        month=pl.col("opened_date").dt.truncate("1mo"), segment="segment", customer_id="customer_id", reason="reason"
    ).agg(
        dispute_count=pl.len().cast(pl.Int64),
        disputed_home_amount=pl.col("home_amount").sum(),
        open_count=pl.col("is_open").sum().cast(pl.Int64),
        won_count=(won & ~pl.col("is_open")).sum().cast(pl.Int64),
        lost_count=(~won & ~pl.col("is_open") & pl.col("outcome").is_not_null()).sum().cast(pl.Int64),
    )
    out = out.with_columns(
        customer_reason_total=pl.col("dispute_count").sum().over("customer_id", "reason").cast(pl.Int64)
    ).with_columns(is_recurring=pl.col("customer_reason_total") >= cfg.risk.recurring_min)
    return out.with_columns(as_of_date=pl.lit(as_of)).sort("month", "segment", "customer_id", "reason", nulls_last=True)


def risk_invoices(
    open_invoices: pl.DataFrame, disputes: pl.DataFrame, as_of: date, cfg: DisputeRoutingConfig
) -> pl.DataFrame:
    """Open invoices (invoice_key, invoice_number, customer_id, due_date, currency, open_amount) of
    customers with at least `risk.min_disputes` disputes opened in the last `risk.lookback_days`."""
    start = as_of - timedelta(days=cfg.risk.lookback_days)
    recent = disputes.filter(pl.col("opened_date").is_between(start, as_of) & pl.col("customer_id").is_not_null())
    per_customer = (
        recent.group_by("customer_id")
        .agg(
            customer_dispute_count=pl.len().cast(pl.Int64),
            customer_open_disputes=pl.col("is_open").sum().cast(pl.Int64),
            last_dispute_date=pl.col("opened_date").max(),
            top_reason=pl.col("reason").drop_nulls().mode().sort().first(),
        )
        .filter(pl.col("customer_dispute_count") >= cfg.risk.min_disputes)
    )
    out = open_invoices.join(per_customer, on="customer_id", how="inner")
    out = out.with_columns(
        message=pl.format(
            "Customer disputed {} time(s) in the last {} days (most often: {}; last on {}); check this invoice "
            "before sending or chasing it.",
            pl.col("customer_dispute_count"),
            pl.lit(cfg.risk.lookback_days),
            pl.col("top_reason").fill_null("unspecified"),
            pl.col("last_dispute_date"),
        ),
        as_of_date=pl.lit(as_of),
    )
    return out.sort("customer_id", "due_date", "invoice_key", nulls_last=True)
