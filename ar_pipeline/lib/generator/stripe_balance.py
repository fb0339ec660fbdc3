"""Stripe money movement for the generator: charges not tied to an invoice, balance transactions
(fees, refunds, dispute withdrawals and reinstatements) and automatic payouts.

Drawn from its own RNG stream (``default_rng([seed, BALANCE_STREAM])``) after everything else in
``stripe.build``, so the invoice, charge and refund pages it does not touch stay as they were.

Rules (the warehouse relies on the payout rule; see stg_stripe__balance_transactions):

- Every charge has a ``charge`` balance transaction in the charge currency (one Stripe balance
  per currency, each paid out to a bank account in that currency: no conversion). Fee: cards
  2.9% + 0.30, US bank debits 0.8% capped at 5.00. ``available_on`` = 00:00 UTC two days later.
- Refunds: ``refund`` transaction of minus the amount, no fee, available the same day.
- Disputes: ``adjustment`` (reporting category ``dispute``) of minus the amount with a 15.00 fee
  when opened; a won dispute gets a second ``adjustment`` (``dispute_reversal``) giving the amount
  back (the fee is kept) when it closes. Both are embedded in the dispute's ``balance_transactions``.
- Automatic weekly payouts per currency: the payout created on payout day P (02:00 UTC) pays every
  transaction of that currency with ``available_on`` after the previous payout and up to P, i.e.
  each transaction belongs to the earliest payout created at or after its ``available_on``; a week
  whose net is not positive rolls into the next payout. ``arrival_date`` = 00:00 UTC of P + 2.
- Unapplied charges: a few customers pay an open invoice by a charge outside the invoice flow
  (``charge.invoice`` null, no InvoicePayment): the invoice stays open in Stripe. Some such
  charges pay nothing invoiced (``noise``).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .jsonfmt import L, frag, obj, q, s, stripe_ids

BALANCE_STREAM = 0x57B1
DAY = 86400
AVAILABLE_AFTER_DAYS = 2
PAYOUT_WEEKDAY = 3  # payout days are days with day % 7 == 3 (days since 1970-01-01, a Sunday)
ARRIVAL_AFTER_DAYS = 2
DISPUTE_FEE = 1500
UNAPPLIED_SHARE = 0.08
UNAPPLIED_MAX = 300
UNAPPLIED_NOISE = 0.1


def charge_fee(amount: pl.Expr, bank: pl.Expr) -> pl.Expr:
    """Stripe's standard pricing in minor units: US bank debit 0.8% capped at 5.00, cards 2.9% + 0.30."""
    return (
        pl.when(bank)
        .then(pl.min_horizontal((amount * 0.008).round(0), L(500)))
        .otherwise((amount * 0.029).round(0) + 30)
        .cast(pl.Int64)
    )


def unapplied_charges(
    rng: np.random.Generator, iv: pl.DataFrame, in_map: pl.DataFrame, end: int, salt: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(charge rows with the columns the charge record needs, truth: charge -> invoice it pays)."""
    open_iv = iv.filter(
        (pl.col("status") == "open") & (pl.col("amount_remaining") > 0) & ~pl.col("auto")
    ).sort("inv")
    n = min(UNAPPLIED_MAX, max(3, int(round(UNAPPLIED_SHARE * open_iv.height)))) if open_iv.height else 0
    pick = open_iv[np.sort(rng.choice(open_iv.height, size=n, replace=False)).tolist()] if n else open_iv
    pick = pick.join(in_map, on="inv", how="left", maintain_order="left")
    noise = rng.random(n) < UNAPPLIED_NOISE
    day = np.maximum(end - rng.integers(0, 7, n), pick["day"].to_numpy())
    amount = np.where(noise, rng.integers(1000, 50_000, n), pick["amount_remaining"].to_numpy())
    idx = np.arange(n)
    ch = pick.select(
        "cus_id", "name", "email", "country", "city", "postal", "cur",
        number=pl.when(pl.Series(noise)).then(L("one-off purchase")).otherwise(pl.col("number")),
    ).with_columns(
        amount=pl.Series(amount.astype(np.int64)),
        refunded_amt=L(0, dtype=pl.Int64),
        paid_ts=pl.Series(day * DAY + rng.integers(12 * 3600, 19 * 3600, n)),
        ch_id=pl.Series(stripe_ids("ch_", idx, salt + 20), dtype=pl.String),
        pi_id=pl.Series(stripe_ids("pi_", idx, salt + 21), dtype=pl.String),
        txn_id=pl.Series(stripe_ids("txn_", idx, salt + 22), dtype=pl.String),
        pm_id=pl.Series(stripe_ids("pm_", idx, salt + 23), dtype=pl.String),
        bank=pl.Series(rng.random(n) < 0.5),
        last4=pl.Series(rng.integers(1000, 9999, n)).cast(pl.String),
        exp_m=pl.Series(rng.integers(1, 13, n)),
        exp_y=pl.Series(day // 365 + 1970 + rng.integers(1, 5, n)),
        disputed=L(False),
    )
    truth = pl.DataFrame(
        {"charge_id": ch["ch_id"], "noise": pl.Series(noise, dtype=pl.Boolean), "in_id": pick["in_id"],
         "number": pick["number"]}
    ).select(
        "charge_id",
        pattern=pl.when(pl.col("noise")).then(L("noise")).otherwise(L("exact")),
        source=L("stripe"),
        source_invoice_id=pl.when(~pl.col("noise")).then(pl.col("in_id")),
        invoice_number=pl.when(~pl.col("noise")).then(pl.col("number")),
    )
    return ch, truth


def _payout_day(avail_day: np.ndarray) -> np.ndarray:
    return avail_day + (PAYOUT_WEEKDAY - avail_day) % 7


def balance_transactions(
    rng: np.random.Generator, charges: pl.DataFrame, rf: pl.DataFrame, dp: pl.DataFrame, end: int, salt: int
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(balance transactions incl. payouts', payouts, dispute closes: dp_id -> close_ts).

    charges: ch_id, txn_id, amount, bank, paid_ts, cur, number; rf: re_id, txn_id, amount,
    created_ts, cur; dp: dp_id, amount, created_ts, cur, status."""
    cols = ["txn_id", "type", "category", "source", "amount", "fee", "created", "available_on", "cur", "desc"]
    ch = charges.select(
        "txn_id",
        type=L("charge"),
        category=L("charge"),
        source="ch_id",
        amount="amount",
        fee=charge_fee(pl.col("amount"), pl.col("bank")),
        created="paid_ts",
        available_on=(pl.col("paid_ts") // DAY + AVAILABLE_AFTER_DAYS) * DAY,
        cur="cur",
        desc=pl.concat_str([L("Payment for Invoice "), pl.col("number")]),
    )
    re = rf.select(
        "txn_id",
        type=L("refund"),
        category=L("refund"),
        source="re_id",
        amount=-pl.col("amount"),
        fee=L(0, dtype=pl.Int64),
        created="created_ts",
        available_on=pl.col("created_ts") // DAY * DAY,
        cur="cur",
        desc=L("REFUND FOR CHARGE"),
    )
    nd = dp.height
    close_ts = dp["created_ts"].to_numpy() + rng.integers(21, 61, nd) * DAY + rng.integers(0, 6 * 3600, nd)
    closed = dp["status"].is_in(["won", "lost"]).to_numpy()
    close_ts = np.where(closed, np.minimum(close_ts, (end + 1) * DAY - 1), 0)
    dpc = dp.with_columns(close_ts=pl.Series(close_ts))
    wd = dpc.select(
        txn_id=pl.Series(stripe_ids("txn_", np.arange(nd), salt + 24), dtype=pl.String),
        type=L("adjustment"),
        category=L("dispute"),
        source="dp_id",
        amount=-pl.col("amount"),
        fee=L(DISPUTE_FEE, dtype=pl.Int64),
        created="created_ts",
        available_on=pl.col("created_ts") // DAY * DAY,
        cur="cur",
        desc=L("Chargeback withdrawal for dispute"),
    )
    won = dpc.filter(pl.col("status") == "won")
    rs = won.select(
        txn_id=pl.Series(stripe_ids("txn_", np.arange(won.height), salt + 25), dtype=pl.String),
        type=L("adjustment"),
        category=L("dispute_reversal"),
        source="dp_id",
        amount="amount",
        fee=L(0, dtype=pl.Int64),
        created="close_ts",
        available_on=pl.col("close_ts") // DAY * DAY,
        cur="cur",
        desc=L("Chargeback reversal for dispute"),
    )
    bt = pl.concat([ch, re, wd, rs], how="vertical_relaxed").select(cols)
    bt = bt.with_columns(net=pl.col("amount") - pl.col("fee"))
    bt = bt.with_columns(pday=pl.Series(_payout_day(bt["available_on"].to_numpy() // DAY)))

    # weekly payouts per currency; a week with a non-positive net rolls into the next one
    weekly = bt.group_by("cur", "pday").agg(pl.col("net").sum()).sort("cur", "pday")
    assign: dict[tuple[str, int], int] = {}
    payouts = []
    for cur in weekly["cur"].unique().sort().to_list():
        pending: list[int] = []
        carry = 0
        for r in weekly.filter(pl.col("cur") == cur).iter_rows(named=True):
            if r["pday"] > end:
                break
            pending.append(r["pday"])
            carry += r["net"]
            if carry > 0:
                for d in pending:
                    assign[(cur, d)] = r["pday"]
                payouts.append({"cur": cur, "day": r["pday"], "amount": carry})
                pending, carry = [], 0
    po = pl.DataFrame(payouts, schema={"cur": pl.String, "day": pl.Int64, "amount": pl.Int64}).sort("day", "cur")
    npo = po.height
    po = po.with_columns(
        po_id=pl.Series(stripe_ids("po_", np.arange(npo), salt + 26), dtype=pl.String),
        txn_id=pl.Series(stripe_ids("txn_", np.arange(npo), salt + 27), dtype=pl.String),
        created=pl.col("day") * DAY + 7200,
        arrival=(pl.col("day") + ARRIVAL_AFTER_DAYS) * DAY,
    ).with_columns(status=pl.when(pl.col("arrival") <= end * DAY).then(L("paid")).otherwise(L("in_transit")))
    amap = pl.DataFrame(
        {"cur": [k[0] for k in assign], "pday": [k[1] for k in assign], "po_day": list(assign.values())},
        schema={"cur": pl.String, "pday": pl.Int64, "po_day": pl.Int64},
    )
    po_keys = po.select("cur", pl.col("day").alias("po_day"), pl.col("po_id").alias("payout"))
    bt = bt.join(amap, on=["cur", "pday"], how="left").join(po_keys, on=["cur", "po_day"], how="left")
    pbt = po.select(
        "txn_id",
        type=L("payout"),
        category=L("payout"),
        source="po_id",
        amount=-pl.col("amount"),
        fee=L(0, dtype=pl.Int64),
        created="created",
        available_on="created",
        cur="cur",
        desc=L("STRIPE PAYOUT"),
        net=-pl.col("amount"),
        payout=L(None, dtype=pl.String),
    )
    bt = pl.concat([bt.select(*cols, "net", "payout"), pbt], how="vertical_relaxed").with_columns(
        status=pl.when(pl.col("available_on") <= end * DAY).then(L("available")).otherwise(L("pending"))
    )
    return bt, po, dpc.select("dp_id", "close_ts")


BALANCE_TRANSACTION_EXPR = obj(
    [
        ("id", q(pl.col("txn_id"))),
        ("object", '"balance_transaction"'),
        ("amount", s(pl.col("amount"))),
        ("available_on", s(pl.col("available_on"))),
        ("balance_type", '"payments"'),
        ("created", s(pl.col("created"))),
        ("currency", q(pl.col("cur"))),
        ("description", q(pl.col("desc"))),
        ("exchange_rate", "null"),
        ("fee", s(pl.col("fee"))),
        (
            "fee_details",
            pl.when(pl.col("fee") == 0)
            .then(L("[]"))
            .otherwise(
                frag(
                    [
                        '[{"amount":',
                        s(pl.col("fee")),
                        ',"application":null,"currency":"',
                        pl.col("cur"),
                        '","description":"Stripe processing fees","type":"stripe_fee"}]',
                    ]
                )
            ),
        ),
        ("net", s(pl.col("net"))),
        ("reporting_category", q(pl.col("category"))),
        ("source", q(pl.col("source"))),
        ("status", q(pl.col("status"))),
        ("type", q(pl.col("type"))),
    ]
)

PAYOUT_EXPR = obj(
    [
        ("id", q(pl.col("po_id"))),
        ("object", '"payout"'),
        ("amount", s(pl.col("amount"))),
        ("application_fee", "null"),
        ("application_fee_amount", "null"),
        ("arrival_date", s(pl.col("arrival"))),
        ("automatic", "true"),
        ("balance_transaction", q(pl.col("txn_id"))),
        ("created", s(pl.col("created"))),
        ("currency", q(pl.col("cur"))),
        ("description", '"STRIPE PAYOUT"'),
        ("destination", '"ba_1GeneratedBankAcct0001"'),
        ("failure_balance_transaction", "null"),
        ("failure_code", "null"),
        ("failure_message", "null"),
        ("livemode", "false"),
        ("metadata", "{}"),
        ("method", '"standard"'),
        ("original_payout", "null"),
        ("reconciliation_status", '"completed"'),
        ("reversed_by", "null"),
        ("source_type", '"card"'),
        ("statement_descriptor", "null"),
        ("status", q(pl.col("status"))),
        ("type", '"bank_account"'),
    ]
)


def dispute_balance_transactions(bt: pl.DataFrame, dp_ids: pl.DataFrame) -> pl.DataFrame:
    """dp_id -> JSON array text of its balance transactions (withdrawal, then reinstatement)."""
    d = (
        bt.filter(pl.col("category").is_in(["dispute", "dispute_reversal"]))
        .with_columns(j=BALANCE_TRANSACTION_EXPR)
        .sort("source", "created", "txn_id")
        .group_by("source", maintain_order=True)
        .agg(pl.col("j").str.join(","))
        .select(pl.col("source").alias("dp_id"), pl.concat_str([L("["), pl.col("j"), L("]")]).alias("dp_bts"))
    )
    return dp_ids.join(d, on="dp_id", how="left").with_columns(pl.col("dp_bts").fill_null(L("[]")))


def payout_truth(bt: pl.DataFrame, po: pl.DataFrame) -> pl.DataFrame:
    """One row per payout: what it pays out and the transactions behind it (minor units)."""
    parts = (
        bt.filter(pl.col("payout").is_not_null())
        .group_by("payout")
        .agg(
            charge_count=(pl.col("type") == "charge").sum(),
            charge_gross_minor=pl.col("amount").filter(pl.col("type") == "charge").sum(),
            fee_minor=pl.col("fee").sum(),
            refund_minor=-pl.col("amount").filter(pl.col("type") == "refund").sum(),
            dispute_minor=-pl.col("amount").filter(pl.col("type") == "adjustment").sum(),
            net_minor=pl.col("net").sum(),
        )
    )
    return po.select(
        pl.col("po_id").alias("payout_id"),
        pl.col("cur").str.to_uppercase().alias("currency"),
        pl.col("amount").alias("amount_minor"),
        (pl.col("created") // DAY).cast(pl.Int32).cast(pl.Date).alias("created_date"),
        (pl.col("arrival") // DAY).cast(pl.Int32).cast(pl.Date).alias("arrival_date"),
        "status",
    ).join(parts, left_on="payout_id", right_on="payout", how="left")
