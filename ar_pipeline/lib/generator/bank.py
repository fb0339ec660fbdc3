"""Bank-statement credits for cash application, with the invoices each one truly pays.

Built after everything else from its own RNG stream (``default_rng([seed, BANK_STREAM])``), so the
QuickBooks/Stripe pages and the other truth files are byte-identical with or without it. The lines
pay invoices still open at ``end_date`` (money the bank received in the last days that nobody has
applied yet) in the ways customers really pay:

    clean        invoice number in the remittance text, exact amount
    typo         one character of the number wrong or missing
    no_prefix    a Stripe number without its prefix ('0012' for 'ACME1234-0012')
    multi_ref    several invoices of one customer, all numbers listed
    multi_noref  several invoices of one customer, no reference (only the sum tells)
    noref        one invoice, no reference
    fee          number given, a bank fee (5-35) deducted
    partial      number given, part of the invoice paid
    fx           a foreign-currency invoice paid in USD at about the day's rate
    noise        credits that pay no invoice (interest, a vendor refund, an unknown payer)
    stripe_payout  a Stripe payout arriving (amount = payout net, counterparty STRIPE); pays no
                 invoice directly: its truth row names the payout (``payout_id``). Added last and
                 drawn from no RNG, so the lines above are the same with or without them.

Writes ``<landing>/bank/bank_statement.csv`` (layout: ingest_configs/analytics/bank_statement.yaml)
and ``_ground_truth/bank_matches.parquet``: one row per (bank line, invoice it pays); noise lines
have a null invoice.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

from .simulate import CURRENCIES, EPOCH, QBO, SOURCES, Sim

BANK_STREAM = 0xBA4C
BANK_DIRNAME = "bank"
BANK_FILE = "bank_statement.csv"
PATTERNS = ["clean", "typo", "no_prefix", "multi_ref", "multi_noref", "noref", "fee", "partial", "fx"]
WEIGHTS = np.array([0.30, 0.10, 0.06, 0.12, 0.06, 0.12, 0.10, 0.06, 0.08])
NOISE_SHARE = 0.05
_REF_TEMPLATES = ["INV {n}", "Invoice {n}", "{n}", "PAYMENT INV#{n}", "Inv. {n} thank you", "REF {n}"]
_NOREF_TEMPLATES = ["", "PAYMENT", "SUPPLIER PAYMENT", "ACH CREDIT", "Monthly payment"]
_NOISE = [
    ("INTEREST CREDIT", "First National Bank"),
    ("REFUND", "Office Supplies Direct"),
    ("TRANSFER", "J SMITH"),
    ("DEPOSIT", "Unknown"),
]


def _customer_keys(sim: Sim, stripe_customers: pl.DataFrame) -> pl.DataFrame:
    """cust -> (source, source_customer_id, name), the ids the loader gives each customer."""
    q = (
        sim.customers.filter(pl.col("source") == QBO)
        .sort("created", "cust")
        .with_columns(source_customer_id=pl.int_range(1, pl.len() + 1).cast(pl.String))
        .select("cust", "source_customer_id")
    )
    ids = pl.concat([q, stripe_customers.select("cust", pl.col("cus_id").alias("source_customer_id"))])
    return sim.customers.select(
        "cust",
        pl.col("source").replace_strict(dict(enumerate(SOURCES)), return_dtype=pl.String).alias("source"),
        "name",
    ).join(ids, on="cust", how="inner")


def _payer_name(name: str, rng: np.random.Generator) -> str:
    v = rng.integers(0, 5)
    if v == 0:
        return name.upper()
    if v == 1:
        return name.upper()[:20]  # bank field truncated
    if v == 2:
        return " ".join(name.split()[:-1]) if len(name.split()) > 2 else name  # legal suffix dropped
    if v == 3:
        return f"PAYMENT FROM {name.upper()}"
    return name


def _typo(number: str, rng: np.random.Generator) -> str:
    digits = [i for i, ch in enumerate(number) if ch.isdigit()]
    i = int(digits[rng.integers(0, len(digits))]) if digits else len(number) - 1
    if rng.random() < 0.5 and len(number) > 4:
        return number[:i] + number[i + 1 :]  # a digit dropped
    repl = str((int(number[i]) + 1 + rng.integers(0, 8)) % 10) if number[i].isdigit() else "0"
    return number[:i] + repl + number[i + 1 :]


def build(
    sim: Sim,
    truth_tables: dict[str, pl.DataFrame],
    stripe_customers: pl.DataFrame,
    seed: int,
    payouts: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(bank lines, truth matches)."""
    rng = np.random.default_rng([seed, BANK_STREAM])
    end = EPOCH + timedelta(days=sim.end_day)
    ob = truth_tables["open_balances"].filter(pl.col("as_of_date") == end).sort("source", "source_invoice_id")
    names = _customer_keys(sim, stripe_customers)
    ob = ob.join(
        names.select("source", "source_customer_id", "name"), on=["source", "source_customer_id"], how="left"
    ).sort("source", "source_invoice_id")
    rates = truth_tables["invoices"].select("source", "source_invoice_id", "exchange_rate")
    ob = ob.join(rates, on=["source", "source_invoice_id"], how="left").sort("source", "source_invoice_id")
    recs = ob.to_dicts()
    by_cust: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(recs):
        by_cust.setdefault((r["source"], r["source_customer_id"]), []).append(i)
    n_lines = min(3000, max(10, int(round(0.3 * len(recs)))))
    order = rng.permutation(len(recs))
    used: set[int] = set()
    # invoices a Stripe charge outside the invoice flow or a QuickBooks payment not yet applied
    # already paid are not paid again by the bank
    for name, source in (("stripe_unapplied_charges", "stripe"), ("quickbooks_unapplied_payments", "quickbooks")):
        paid = truth_tables.get(name)
        if paid is not None:
            taken = set(paid["source_invoice_id"].drop_nulls().to_list())
            used |= {i for i, r in enumerate(recs) if r["source"] == source and r["source_invoice_id"] in taken}
    lines, truth = [], []
    fx_ok = CURRENCIES[0]
    for i in order:
        if len(lines) >= n_lines:
            break
        if i in used:
            continue
        r = recs[int(i)]
        pattern = PATTERNS[int(rng.choice(len(PATTERNS), p=WEIGHTS / WEIGHTS.sum()))]
        if pattern == "no_prefix" and "-" not in (r["invoice_number"] or ""):
            pattern = "typo"
        if pattern == "fx" and r["currency"] == fx_ok:
            pattern = "clean"
        group = [int(i)]
        if pattern in ("multi_ref", "multi_noref"):
            others = [
                j
                for j in by_cust[(r["source"], r["source_customer_id"])]
                if j not in used and j != i and recs[j]["currency"] == r["currency"]
            ]
            if not others:
                pattern = "clean"
            else:
                k = int(min(len(others), rng.integers(1, 4)))
                group += [int(x) for x in rng.choice(others, size=k, replace=False)]
        used.update(group)
        invs = [recs[j] for j in group]
        num = r["invoice_number"] or ""
        open_minor = sum(v["open_amount_minor"] for v in invs)
        currency = r["currency"]
        amount_minor = open_minor
        if pattern == "fee":
            amount_minor = open_minor - int(rng.integers(500, 3500))
            if amount_minor <= 0 or (open_minor - amount_minor) > 0.02 * open_minor:
                pattern, amount_minor = "clean", open_minor
        elif pattern == "partial":
            amount_minor = int(open_minor * rng.uniform(0.3, 0.8))
        elif pattern == "fx":
            rate = float(r["exchange_rate"]) * rng.uniform(0.99, 1.01)
            amount_minor = int(round(open_minor * rate))
            currency = str(fx_ok)
        template = _REF_TEMPLATES[int(rng.integers(0, len(_REF_TEMPLATES)))]
        if pattern in ("noref", "multi_noref"):
            reference = _NOREF_TEMPLATES[int(rng.integers(0, len(_NOREF_TEMPLATES)))]
        elif pattern == "typo":
            reference = template.format(n=_typo(num, rng))
        elif pattern == "no_prefix":
            reference = template.format(n=num.split("-")[-1])
        elif pattern == "multi_ref":
            reference = "INV " + ", ".join(v["invoice_number"] for v in invs)
        else:
            reference = template.format(n=num)
        day = sim.end_day - int(rng.integers(0, 7))
        line_id = f"BNK{len(lines) + 1:06d}"
        lines.append(
            {
                "booking_date": EPOCH + timedelta(days=day),
                "amount_minor": amount_minor,
                "currency": currency,
                "counterparty_name": _payer_name(r["name"] or "", rng),
                "remittance_information": reference,
                "bank_reference": line_id,
            }
        )
        for v in invs:
            truth.append(
                {
                    "bank_reference": line_id,
                    "pattern": pattern,
                    "source": v["source"],
                    "source_invoice_id": v["source_invoice_id"],
                    "invoice_number": v["invoice_number"],
                }
            )
    n_noise = max(1, int(round(NOISE_SHARE * len(lines))))
    for _ in range(n_noise):
        ref, payer = _NOISE[int(rng.integers(0, len(_NOISE)))]
        line_id = f"BNK{len(lines) + 1:06d}"
        lines.append(
            {
                "booking_date": EPOCH + timedelta(days=sim.end_day - int(rng.integers(0, 7))),
                "amount_minor": int(rng.integers(100, 99_999)),
                "currency": str(fx_ok),
                "counterparty_name": payer,
                "remittance_information": ref,
                "bank_reference": line_id,
            }
        )
        truth.append(
            {
                "bank_reference": line_id,
                "pattern": "noise",
                "source": None,
                "source_invoice_id": None,
                "invoice_number": None,
            }
        )
    # Stripe payouts that arrived in the statement's week (payouts: po_id, cur, amount, arrival)
    if payouts is not None:
        first = (sim.end_day - 6) * 86400
        arrived = payouts.filter((pl.col("arrival") >= first) & (pl.col("arrival") <= sim.end_day * 86400))
        for p in arrived.sort("arrival", "po_id").iter_rows(named=True):
            line_id = f"BNK{len(lines) + 1:06d}"
            lines.append(
                {
                    "booking_date": EPOCH + timedelta(days=p["arrival"] // 86400),
                    "amount_minor": p["amount"],
                    "currency": p["cur"].upper(),
                    "counterparty_name": "STRIPE",
                    "remittance_information": f"STRIPE TRANSFER ST-{p['po_id'][-10:].upper()}",
                    "bank_reference": line_id,
                }
            )
            truth.append(
                {
                    "bank_reference": line_id,
                    "pattern": "stripe_payout",
                    "source": None,
                    "source_invoice_id": None,
                    "invoice_number": None,
                    "payout_id": p["po_id"],
                }
            )
    bank = pl.DataFrame(
        lines,
        schema={
            "booking_date": pl.Date,
            "amount_minor": pl.Int64,
            "currency": pl.String,
            "counterparty_name": pl.String,
            "remittance_information": pl.String,
            "bank_reference": pl.String,
        },
    ).sort("booking_date", "bank_reference")
    bank = bank.select(
        pl.col("booking_date").dt.strftime("%Y-%m-%d"),
        (pl.col("amount_minor") // 100)
        .cast(pl.String)
        .add(pl.lit("."))
        .add((pl.col("amount_minor") % 100).cast(pl.String).str.zfill(2))
        .alias("amount"),
        "currency",
        "counterparty_name",
        "remittance_information",
        "bank_reference",
    )
    truth_df = pl.DataFrame(
        truth,
        schema={
            "bank_reference": pl.String,
            "pattern": pl.String,
            "source": pl.String,
            "source_invoice_id": pl.String,
            "invoice_number": pl.String,
            "payout_id": pl.String,
        },
    )
    return bank, truth_df


def write(bank: pl.DataFrame, truth_df: pl.DataFrame, landing: Path, truth_dir: Path) -> int:
    folder = landing / BANK_DIRNAME
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / BANK_FILE
    bank.write_csv(path)
    tp = truth_dir / "bank_matches.parquet"
    truth_df.write_parquet(tp, compression="zstd", statistics=False)
    return path.stat().st_size + tp.stat().st_size
