"""Pre-send checks on invoices: pure functions over polars frames (no database, no clock).

`candidates` are the invoices to check (stage `pending` = draft / not yet sent, `recently_sent` =
sent within the report window); `history` is every sent invoice of the same customers, which is
what "the customer's usual" terms, tax rate, currency, amount and PO habit are learned from. An
invoice is never compared with itself. Each issue is one row: rule id, severity and a sentence a
billing clerk can act on.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from datetime import date

import polars as pl

from .config import InvoiceRulesConfig

CANDIDATE_COLUMNS = {
    "invoice_key": pl.String,
    "invoice_number": pl.String,
    "source": pl.String,
    "customer_id": pl.String,
    "stage": pl.String,  # pending | recently_sent
    "invoice_date": pl.Date,
    "due_date": pl.Date,
    "currency": pl.String,
    "total_amount": pl.Float64,
    "tax_rate": pl.Float64,  # null when the source carries no tax
    "billing_email": pl.String,
    "email_checked": pl.Boolean,  # the source carries a billing email and the invoice needs one
    "po_number": pl.String,
    "po_checked": pl.Boolean,  # the source carries a PO field (exports)
    "due_date_required": pl.Boolean,  # false for invoices charged automatically
}
HISTORY_COLUMNS = {
    "invoice_key": pl.String,
    "invoice_number": pl.String,
    "customer_id": pl.String,
    "invoice_date": pl.Date,
    "due_date": pl.Date,
    "currency": pl.String,
    "total_amount": pl.Float64,
    "tax_rate": pl.Float64,
    "po_number": pl.String,
    "po_checked": pl.Boolean,
}
ISSUE_SCHEMA = {
    "invoice_key": pl.String,
    "invoice_number": pl.String,
    "source": pl.String,
    "customer_id": pl.String,
    "stage": pl.String,
    "invoice_date": pl.Date,
    "due_date": pl.Date,
    "currency": pl.String,
    "total_amount": pl.Float64,
    "rule_id": pl.String,
    "severity": pl.String,
    "message": pl.String,
}
MAD_TO_SIGMA = 1.4826


def _money(amount: float, currency: str | None) -> str:
    return f"{amount:,.2f} {currency or ''}".strip()


def _label(inv: dict) -> str:
    return f"Invoice {inv['invoice_number'] or inv['invoice_key']}"


def _blank(value: str | None) -> bool:
    return value is None or not str(value).strip()


def _terms(inv: dict) -> int | None:
    if inv["invoice_date"] is None or inv["due_date"] is None:
        return None
    return (inv["due_date"] - inv["invoice_date"]).days


def _usual(values: list, min_share: float):
    """The most common value and its count when it holds at least `min_share` of `values`."""
    if not values:
        return None
    value, count = Counter(values).most_common(1)[0]
    return (value, count) if count / len(values) >= min_share else None


def check_invoice(inv: dict, past: list[dict], others: list[dict], cfg: InvoiceRulesConfig) -> list[tuple[str, str]]:
    """Issues of one invoice as (rule_id, message). `past` = the customer's sent invoices except this
    one; `others` = every other invoice of the customer (sent or pending), for duplicates."""
    r = cfg.rules
    label = _label(inv)
    out: list[tuple[str, str]] = []

    if r.missing_due_date.enabled and inv["due_date_required"] and inv["due_date"] is None:
        out.append(("missing_due_date", f"{label} has no due date, so the customer is not told when to pay."))

    if r.billing_email.enabled and inv["email_checked"]:
        email = inv["billing_email"]
        if _blank(email):
            out.append(("missing_billing_email", f"{label} has no billing email address, so it cannot be emailed."))
        elif not re.match(r.billing_email.pattern, email.strip()):
            out.append(
                ("invalid_billing_email", f"{label} goes to '{email}', which does not look like an email address.")
            )

    rule = r.missing_po
    if rule.enabled and inv["po_checked"] and _blank(inv["po_number"]):
        judged = [p for p in past if p["po_checked"]]
        with_po = sum(not _blank(p["po_number"]) for p in judged)
        if len(judged) >= rule.min_history and with_po / len(judged) >= rule.min_po_share:
            out.append(
                (
                    "missing_po",
                    f"{label} has no PO number, but {with_po} of this customer's {len(judged)} past invoices "
                    "carried one; "
                    "ask the customer for the PO before sending.",
                )
            )

    rule = r.unusual_terms
    terms = _terms(inv)
    if rule.enabled and terms is not None:
        past_terms = [t for t in (_terms(p) for p in past) if t is not None]
        usual = _usual(past_terms, rule.min_usual_share) if len(past_terms) >= rule.min_history else None
        if usual is not None and abs(terms - usual[0]) > rule.tolerance_days:
            out.append(
                (
                    "unusual_terms",
                    f"{label} gives {terms} days to pay (due {inv['due_date']}), but {usual[1]} of this customer's "
                    f"{len(past_terms)} past invoices gave {usual[0]} days; check the terms.",
                )
            )

    rule = r.unusual_tax_rate
    if rule.enabled and inv["tax_rate"] is not None:
        rates = [p["tax_rate"] for p in past if p["tax_rate"] is not None]
        if len(rates) >= rule.min_history:
            median = statistics.median(rates)
            at_usual = sum(abs(x - median) <= rule.tolerance_points for x in rates)
            if at_usual / len(rates) >= rule.min_usual_share and abs(inv["tax_rate"] - median) > rule.tolerance_points:
                out.append(
                    (
                        "unusual_tax_rate",
                        f"{label} charges {inv['tax_rate']:.1%} tax, but this customer's past invoices were taxed at "
                        f"{median:.1%}; check the tax code.",
                    )
                )

    rule = r.unusual_currency
    if rule.enabled and inv["currency"]:
        currencies = [p["currency"] for p in past if p["currency"]]
        usual = _usual(currencies, rule.min_usual_share) if len(currencies) >= rule.min_history else None
        if usual is not None and inv["currency"] != usual[0]:
            out.append(
                (
                    "unusual_currency",
                    f"{label} is in {inv['currency']}, but {usual[1]} of this customer's {len(currencies)} "
                    "past invoices "
                    f"were in {usual[0]}; check the currency.",
                )
            )

    rule = r.amount_outlier
    if rule.enabled and inv["total_amount"] is not None:
        amounts = [
            p["total_amount"] for p in past if p["total_amount"] is not None and p["currency"] == inv["currency"]
        ]
        if len(amounts) >= rule.min_history:
            median = statistics.median(amounts)
            mad = statistics.median(abs(a - median) for a in amounts)
            spread = max(MAD_TO_SIGMA * mad, rule.min_relative_spread * abs(median), 0.01)
            z = abs(inv["total_amount"] - median) / spread
            if z > rule.max_robust_z:
                out.append(
                    (
                        "amount_outlier",
                        f"{label} is for {_money(inv['total_amount'], inv['currency'])}, far from this customer's "
                        f"usual {_money(median, inv['currency'])} "
                        f"(typical range {min(amounts):,.2f} to {max(amounts):,.2f}); "
                        "check the quantity and price.",
                    )
                )

    rule = r.suspected_duplicate
    if rule.enabled and inv["total_amount"] is not None and inv["invoice_date"] is not None:
        for o in others:
            if (
                o["currency"] == inv["currency"]
                and o["total_amount"] is not None
                and o["invoice_date"] is not None
                and abs(o["total_amount"] - inv["total_amount"]) <= rule.amount_tolerance
                and abs((o["invoice_date"] - inv["invoice_date"]).days) <= rule.window_days
            ):
                days = abs((o["invoice_date"] - inv["invoice_date"]).days)
                out.append(
                    (
                        "suspected_duplicate",
                        f"{label} may duplicate invoice {o['invoice_number'] or o['invoice_key']}: same customer, same "
                        f"amount {_money(inv['total_amount'], inv['currency'])}, dated {days} days apart.",
                    )
                )
                break
    return out


def _rows(df: pl.DataFrame, columns: dict) -> list[dict]:
    missing = set(columns) - set(df.columns)
    if missing:
        raise ValueError(f"missing columns: {sorted(missing)}")
    return df.select([pl.col(c).cast(t) for c, t in columns.items()]).to_dicts()


def find_issues(candidates: pl.DataFrame, history: pl.DataFrame, cfg: InvoiceRulesConfig) -> pl.DataFrame:
    """One row per (invoice, rule fired), ordered by severity then invoice."""
    cands = _rows(candidates, CANDIDATE_COLUMNS)
    hist = _rows(history, HISTORY_COLUMNS)
    by_customer: dict[str, list[dict]] = defaultdict(list)
    for h in hist:
        by_customer[h["customer_id"]].append(h)
    pending_by_customer: dict[str, list[dict]] = defaultdict(list)
    for c in cands:
        if c["stage"] == "pending":
            pending_by_customer[c["customer_id"]].append(c)
    severity = {
        "missing_billing_email": cfg.rules.billing_email.severity,
        "invalid_billing_email": cfg.rules.billing_email.severity,
    }
    for name in type(cfg.rules).model_fields:
        severity.setdefault(name, getattr(cfg.rules, name).severity)

    out = []
    for inv in cands:
        past = [h for h in by_customer[inv["customer_id"]] if h["invoice_key"] != inv["invoice_key"]]
        others = past + [p for p in pending_by_customer[inv["customer_id"]] if p["invoice_key"] != inv["invoice_key"]]
        for rule_id, message in check_invoice(inv, past, others, cfg):
            out.append(
                {
                    **{k: inv[k] for k in ISSUE_SCHEMA if k in inv},
                    "rule_id": rule_id,
                    "severity": severity[rule_id],
                    "message": message,
                }
            )
    order = {"error": 0, "warning": 1, "info": 2}
    df = pl.DataFrame(out, schema=ISSUE_SCHEMA)
    return df.sort(pl.col("severity").replace_strict(order, return_dtype=pl.Int8), "invoice_key", "rule_id")


def history_window(history: pl.DataFrame, as_of: date, cfg: InvoiceRulesConfig) -> pl.DataFrame:
    """Sent invoices dated within `history_days` before `as_of` (and not after it)."""
    start = date.fromordinal(as_of.toordinal() - cfg.history_days)
    return history.filter(pl.col("invoice_date").is_between(start, as_of))
