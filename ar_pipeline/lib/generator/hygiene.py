"""Stripe draft invoices with injected pre-send mistakes, and the truth of what was injected.

Built after everything else from its own RNG stream (``default_rng([seed, HYGIENE_STREAM])``), so
every other generated file is byte-identical with or without it. Drafts are not AR (the marts leave
them out), so no other truth changes. Each draft goes to a different Stripe customer billed by
invoice (``send_invoice``) with a steady history (at least ``MIN_HISTORY`` invoices in the two
years before the end date, one currency, at least 90% on one payment term) and no other draft, and
carries exactly one mistake, or none (``clean``):

    clean                  the customer's usual terms, currency and median amount, a valid email
    missing_due_date       no due date
    missing_billing_email  no customer_email
    invalid_billing_email  an email without '@'
    unusual_terms          due 20 days later than the customer's usual terms
    unusual_currency       another currency than the customer's
    amount_outlier         the median plus 25 times the spread (MAD, at least 10% of the median)
    suspected_duplicate    the amount of one of the customer's invoices (30+ days old), 2 days later

Writes ``<landing>/stripe/invoices/page_hygiene.json`` (one Stripe list page) and
``_ground_truth/invoice_hygiene.parquet``: one row per draft (id, customer, case = the rule id the
pre-send checks should raise, or ``clean``).
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from .simulate import EPOCH, Sim

HYGIENE_STREAM = 0x4859
HYGIENE_FILE = "page_hygiene.json"
CASES = [
    "clean",
    "missing_due_date",
    "missing_billing_email",
    "invalid_billing_email",
    "unusual_terms",
    "unusual_currency",
    "amount_outlier",
    "suspected_duplicate",
]
MIN_HISTORY = 6
HISTORY_DAYS = 730
TRUTH_SCHEMA = {"invoice_id": pl.String, "source_customer_id": pl.String, "case": pl.String}


def _eligible(invoices: pl.DataFrame, end, excluded: set[str]) -> list[dict]:
    """Per eligible customer: usual terms, currency, amounts (major units) and its invoices."""
    start = end - timedelta(days=HISTORY_DAYS)
    h = invoices.filter(
        (pl.col("source") == "stripe")
        & (pl.col("status_at_end") != "void")
        & pl.col("invoice_date").is_between(start, end)
    ).sort("source_customer_id", "invoice_date", "source_invoice_id")
    out = []
    for (cus,), g in h.group_by(["source_customer_id"], maintain_order=True):
        if cus in excluded or g.height < MIN_HISTORY or g["currency"].n_unique() != 1:
            continue
        terms = [(d - i).days for i, d in zip(g["invoice_date"], g["due_date"], strict=True)]
        usual, count = Counter(terms).most_common(1)[0]
        if usual <= 0 or count / len(terms) < 0.9:
            continue
        amounts = [m / 100 for m in g["total_minor"].to_list()]
        out.append(
            {
                "cus": cus,
                "terms": usual,
                "currency": g["currency"][0],
                "amounts": amounts,
                "dates": g["invoice_date"].to_list(),
            }
        )
    return out


def build(
    sim: Sim, truth_tables: dict[str, pl.DataFrame], stripe_customers: pl.DataFrame, seed: int
) -> tuple[list[dict], pl.DataFrame]:
    """(Stripe draft invoice objects, truth)."""
    rng = np.random.default_rng([seed, HYGIENE_STREAM])
    end = EPOCH + timedelta(days=sim.end_day)
    with_drafts = set(sim.drafts.join(stripe_customers, on="cust", how="inner")["cus_id"].to_list())
    customers = _eligible(truth_tables["invoices"], end, with_drafts)
    order = rng.permutation(len(customers))
    records, truth = [], []
    for n, idx in enumerate(order):
        c = customers[int(idx)]
        case = CASES[n % len(CASES)]
        median = statistics.median(c["amounts"])
        mad = statistics.median(abs(a - median) for a in c["amounts"])
        spread = max(1.4826 * mad, 0.1 * median)
        created = end
        currency, email, due_days = c["currency"], f"billing{n}@example.com", c["terms"]
        amount = round(median, 2)
        if case == "suspected_duplicate":
            old = [(d, a) for d, a in zip(c["dates"], c["amounts"], strict=True) if d <= end - timedelta(days=30)]
            if not old:
                continue
            d, amount = old[int(rng.integers(len(old)))]
            created = d + timedelta(days=2)
        elif case == "amount_outlier":
            amount = round(median + 25 * spread, 2)
        elif case == "unusual_terms":
            due_days = c["terms"] + 20
        elif case == "unusual_currency":
            currency = [x for x in ("USD", "EUR", "GBP") if x != c["currency"]][int(rng.integers(2))]
        elif case == "missing_billing_email":
            email = None
        elif case == "invalid_billing_email":
            email = f"billing{n}.example.com"
        if case not in ("suspected_duplicate",):
            # a clean amount must not repeat one of the customer's invoices of the last week
            recent = {a for d, a in zip(c["dates"], c["amounts"], strict=True) if (end - d).days <= 8}
            while any(abs(amount - a) < 0.01 for a in recent):
                amount = round(amount + 0.37, 2)
        minor = int(round(amount * 100))
        ts = int(datetime.combine(created, time(9, 0), tzinfo=UTC).timestamp())
        due = None if case == "missing_due_date" else ts + due_days * 86400
        inv_id = f"in_hyg{seed:04d}{n:06d}"
        records.append(
            {
                "id": inv_id,
                "object": "invoice",
                "number": None,
                "customer": c["cus"],
                "status": "draft",
                "collection_method": "send_invoice",
                "currency": currency.lower(),
                "subtotal": minor,
                "total": minor,
                "amount_due": minor,
                "amount_paid": 0,
                "amount_remaining": minor,
                "created": ts,
                "effective_at": None,
                "due_date": due,
                "customer_email": email,
                "customer_name": None,
                "status_transitions": {
                    "finalized_at": None,
                    "paid_at": None,
                    "voided_at": None,
                    "marked_uncollectible_at": None,
                },
                "lines": {
                    "object": "list",
                    "data": [
                        {
                            "id": f"il_hyg{seed:04d}{n:06d}",
                            "object": "line_item",
                            "amount": minor,
                            "currency": currency.lower(),
                            "description": "Services",
                        }
                    ],
                },
                "metadata": {},
            }
        )
        truth.append({"invoice_id": inv_id, "source_customer_id": c["cus"], "case": case})
    return records, pl.DataFrame(truth, schema=TRUTH_SCHEMA)


def write(records: list[dict], truth_df: pl.DataFrame, stripe_dir: Path, truth_dir: Path) -> int:
    folder = stripe_dir / "invoices"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / HYGIENE_FILE
    page = {"object": "list", "url": "/v1/invoices", "has_more": False, "data": records}
    path.write_text(json.dumps(page, separators=(",", ":")))
    tp = truth_dir / "invoice_hygiene.parquet"
    truth_df.write_parquet(tp, compression="zstd", statistics=False)
    return path.stat().st_size + tp.stat().st_size
