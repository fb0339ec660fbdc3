"""QuickBooks stand-alone unapplied payments, each with the invoice(s) it truly pays.

In real books a QuickBooks payment received with nothing applied is most often money for an open
invoice that the bookkeeper has not applied yet. Each payment here is for invoices of its customer
that are still open at ``end_date`` (dated between the latest invoice's issue date and the end);
nothing is applied, so no invoice's status or open balance changes. Patterns:

    exact          the open amount of one invoice
    short_pay      one invoice, a little short (SHORT_PAY_MAX_MINOR, at most SHORT_PAY_MAX_SHARE of it)
    two_invoices   the open amounts of two of the customer's open invoices together
    ambiguous      the open amount of an invoice whose customer has another open invoice of that same
                   amount: no clear answer from the books, so ``identifiable`` is false (auto-applying
                   it is a guess)
    on_account     a deposit / pre-payment of a random amount that pays no invoice

Drawn from its own RNG stream (``default_rng([seed, STREAM])``), so everything else the main stream
draws is unchanged. ``truth`` names each payment by its local index (``src_key``); the QuickBooks
builder turns that into the payment Id (``_ground_truth/quickbooks_unapplied_payments.parquet``).
"""

from __future__ import annotations

import numpy as np
import polars as pl

STREAM = 0x0A9B
PATTERNS = ("exact", "short_pay", "two_invoices", "ambiguous", "on_account")
WEIGHTS = np.array([0.72, 0.06, 0.10, 0.04, 0.08])
SHARE = 0.01  # of the QuickBooks invoices
MIN_PAYMENTS = 10
MAX_OPEN_SHARE = 0.3  # at most this share of the open invoices is paid this way
SHORT_PAY_MAX_MINOR = 3500
SHORT_PAY_MAX_SHARE = 0.02


def short_pay_ok(shortfall: int, open_minor: int) -> bool:
    """The short-pay rule: a payment short of its invoices' open amount by at most this."""
    return 0 < shortfall <= min(SHORT_PAY_MAX_MINOR, int(SHORT_PAY_MAX_SHARE * open_minor))


def build(
    seed: int, open_qbo: pl.DataFrame, qbo_customers: pl.DataFrame, n_qbo_invoices: int, end: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(payments: cust, day, amount, src_key; truth: src_key, pattern, identifiable, inv (null for
    none), open_minor).

    open_qbo: QuickBooks invoices open at end (inv, cust, day, currency, open_minor > 0);
    qbo_customers: QuickBooks customers with invoices (cust, c_start, c_end, med_cents)."""
    rng = np.random.default_rng([seed, STREAM])
    empty_p = pl.DataFrame(schema={"cust": pl.Int64, "day": pl.Int64, "amount": pl.Int64, "src_key": pl.Int64})
    empty_t = pl.DataFrame(
        schema={"src_key": pl.Int64, "pattern": pl.String, "identifiable": pl.Boolean, "inv": pl.Int64,
                "open_minor": pl.Int64}
    )
    if qbo_customers.height == 0:
        return empty_p, empty_t
    ov = open_qbo.sort("inv").with_columns(
        dup=pl.len().over("cust", "currency", "open_minor") > 1,
        n_open=pl.len().over("cust"),
    )
    n = max(MIN_PAYMENTS, int(round(SHARE * n_qbo_invoices)))
    n = min(n, int(MAX_OPEN_SHARE * ov.height)) if ov.height else 0
    kinds = [PATTERNS[int(k)] for k in rng.choice(len(PATTERNS), size=n, p=WEIGHTS / WEIGHTS.sum())]
    inv = ov["inv"].to_list()
    cust, day, cur, openm, dup = (ov[c].to_list() for c in ("cust", "day", "currency", "open_minor", "dup"))
    by_cust: dict[int, list[int]] = {}
    for i, c in enumerate(cust):
        by_cust.setdefault(c, []).append(i)
    used: set[int] = set()
    order = [int(i) for i in rng.permutation(len(inv))]
    queues = {flag: iter([i for i in order if dup[i] == flag]) for flag in (False, True)}
    pays: list[dict] = []
    truth: list[dict] = []

    def take(want_dup: bool) -> int | None:
        for i in queues[want_dup]:  # each invoice is looked at once over all calls
            if i not in used:
                used.add(i)
                return i
        return None

    for kind in kinds:
        key = len(pays)
        if kind == "ambiguous":
            i = take(True)
            if i is None:
                kind = "exact"
        if kind != "ambiguous" and kind != "on_account":
            i = take(False)
            if i is None:
                kind = "on_account"
        if kind == "two_invoices":
            mates = [j for j in by_cust[cust[i]] if j not in used and not dup[j] and cur[j] == cur[i]]
            if mates:
                j = mates[int(rng.integers(0, len(mates)))]
                used.add(j)
                first = max(day[i], day[j])
                d = first + int(rng.integers(0, end - first + 1))
                pays.append({"cust": cust[i], "day": d, "amount": openm[i] + openm[j], "src_key": key})
                truth += [
                    {"src_key": key, "pattern": kind, "identifiable": True, "inv": inv[x], "open_minor": openm[x]}
                    for x in (i, j)
                ]
                continue
            kind = "exact"
        if kind == "on_account":
            row = qbo_customers.row(int(rng.integers(0, qbo_customers.height)), named=True)
            lo, hi = row["c_start"], min(row["c_end"], end)
            d = lo + int(rng.integers(0, max(hi - lo, 0) + 1))
            amt = max(1000, int(round(np.exp(rng.normal(np.log(row["med_cents"] * 0.3), 0.6)) / 100)) * 100)
            pays.append({"cust": row["cust"], "day": d, "amount": amt, "src_key": key})
            truth.append({"src_key": key, "pattern": kind, "identifiable": True, "inv": None, "open_minor": None})
            continue
        amt = openm[i]
        if kind == "short_pay":
            cap = min(SHORT_PAY_MAX_MINOR, int(SHORT_PAY_MAX_SHARE * openm[i]))
            if cap < 1:
                kind = "exact"
            else:
                amt -= int(rng.integers(1, cap + 1))
        d = day[i] + int(rng.integers(0, end - day[i] + 1))
        pays.append({"cust": cust[i], "day": d, "amount": amt, "src_key": key})
        truth.append(
            {"src_key": key, "pattern": kind, "identifiable": kind != "ambiguous", "inv": inv[i],
             "open_minor": openm[i]}
        )
    p = pl.DataFrame(pays, schema=empty_p.schema) if pays else empty_p
    t = pl.DataFrame(truth, schema=empty_t.schema) if truth else empty_t
    return p, t
