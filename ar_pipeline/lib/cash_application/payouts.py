"""Bank-statement credits that are Stripe payouts.

A payout is Stripe sending the (net) balance of many charges to the bank: it pays no invoice itself
(each invoice was settled by its own charge), so such a line is matched to the payout, never to
invoices. A line is taken for a payout when its reference or payer text contains one of
`payout_markers` (default "STRIPE", as a word, any case). It matches a payout of the same currency
whose amount equals the line's to the cent and whose arrival date is at most `payout_days_before`
days after / `payout_days_after` days before the booking date. The explanation says what the payout
covers, from marts.fct_stripe_payouts: charges, fees, refunds and disputes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import polars as pl

from .config import CashApplicationConfig

PAYOUT_COLUMNS = {
    "payout_id": pl.String,
    "currency": pl.String,
    "amount": pl.Float64,
    "arrival_date": pl.Date,
    "charge_count": pl.Int64,
    "charge_gross_amount": pl.Float64,
    "fee_amount": pl.Float64,
    "refund_amount": pl.Float64,
    "dispute_amount": pl.Float64,
    "is_reconciled": pl.Boolean,
}
CENT = 0.005


@dataclass(frozen=True)
class PayoutMatch:
    pattern: str
    confidence: float
    explanation: str
    payout_id: str | None


def _fmt(x: float) -> str:
    return f"{x:,.2f}"


def is_payout_line(reference: str | None, payer_name: str | None, cfg: CashApplicationConfig) -> bool:
    """True when the reference or the payer names one of the payout markers (whole word, any case)."""
    text = f"{reference or ''} {payer_name or ''}"
    return any(re.search(rf"(?<![A-Za-z0-9]){re.escape(m)}(?![A-Za-z0-9])", text, re.I) for m in cfg.payout_markers)


def describe(p: dict) -> str:
    """'Stripe payout po_… covering N charges (fees X): gross − fees − refunds − disputes = amount'."""
    cur = p["currency"]
    txt = (
        f"Stripe payout {p['payout_id']} covering {p['charge_count']} charges (fees {_fmt(p['fee_amount'])} {cur}): "
        f"gross {_fmt(p['charge_gross_amount'])} - fees {_fmt(p['fee_amount'])} - refunds {_fmt(p['refund_amount'])}"
        f" - disputes {_fmt(p['dispute_amount'])} = {_fmt(p['amount'])} {cur}, arriving {p['arrival_date']}."
    )
    if not p["is_reconciled"]:
        txt += " The synced transactions do not add up to the payout (manual payout or transactions not synced)."
    return txt


def match_payout_lines(
    lines: list[dict], payouts: pl.DataFrame, cfg: CashApplicationConfig
) -> dict[str, PayoutMatch]:
    """payment_key -> match for each payout line (dicts with PAYMENT_COLUMNS keys). A payout two lines
    fit equally is auto-applied to neither."""
    pays = payouts.select(list(PAYOUT_COLUMNS)).cast(PAYOUT_COLUMNS).to_dicts() if payouts.height else []
    by_line: dict[str, list[dict]] = {}
    for ln in lines:
        d: date = ln["payment_date"]
        cur = (ln["currency"] or cfg.home_currency).upper()
        by_line[ln["payment_key"]] = [
            p
            for p in pays
            if p["currency"] == cur
            and abs(p["amount"] - float(ln["amount"] or 0.0)) <= CENT
            and -cfg.payout_days_after <= (p["arrival_date"] - d).days <= cfg.payout_days_before
        ]
    claims: dict[str, int] = {}
    for cands in by_line.values():
        if len(cands) == 1:
            claims[cands[0]["payout_id"]] = claims.get(cands[0]["payout_id"], 0) + 1
    out: dict[str, PayoutMatch] = {}
    for ln in lines:
        key, cands = ln["payment_key"], by_line[ln["payment_key"]]
        amt = f"{_fmt(float(ln['amount'] or 0.0))} {(ln['currency'] or cfg.home_currency).upper()}"
        if not cands:
            out[key] = PayoutMatch(
                "stripe_payout_unmatched",
                0.2,
                f"Looks like a Stripe payout but no synced payout of {amt} arrives around {ln['payment_date']}; "
                "check the Stripe payouts (manual payout, or not synced yet). Not applied to invoices: "
                "a payout settles charges, not invoices.",
                None,
            )
        elif len(cands) > 1:
            ids = ", ".join(p["payout_id"] for p in cands)
            out[key] = PayoutMatch(
                "stripe_payout_ambiguous",
                0.5,
                f"Stripe payouts {ids} are all for {amt} around {ln['payment_date']}; pick one.",
                cands[0]["payout_id"],
            )
        else:
            p = cands[0]
            if claims.get(p["payout_id"], 0) > 1:
                out[key] = PayoutMatch(
                    "stripe_payout_conflict",
                    0.6,
                    describe(p) + " Another bank line fits this payout too; review both.",
                    p["payout_id"],
                )
            else:
                out[key] = PayoutMatch(
                    "stripe_payout",
                    0.99 if p["is_reconciled"] else 0.85,
                    describe(p) + " Post it to the Stripe clearing account; the invoices were settled by the charges.",
                    p["payout_id"],
                )
    return out
