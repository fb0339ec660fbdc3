"""Behavioural tests for the demo-data simulator (ar_pipeline.lib.generator)."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import polars as pl
import pytest
import yaml
from pydantic import ValidationError

from ar_pipeline.lib.generator import GenerationSummary, GeneratorConfig, generate

REPO = Path(__file__).resolve().parents[1]
END = date(2025, 6, 18)
CENT = Decimal("0.01")


# ----------------------------------------------------------------------------- helpers
def _cfg(root: Path, **kw) -> GeneratorConfig:
    base = dict(
        landing_dir=root,
        seed=7,
        customers=30,
        years=1.5,
        invoices=600,
        end_date=END,
        progress=False,
    )
    base.update(kw)
    return GeneratorConfig(**base)


def _pages(folder: Path) -> list[dict]:
    return [json.loads(p.read_text(), parse_float=Decimal) for p in sorted(folder.glob("*.json"))]


def qbo(root: Path, folder: str, entity: str) -> list[dict]:
    return [
        r for page in _pages(root / "quickbooks" / folder) for r in page["QueryResponse"][entity]
    ]


def stripe(root: Path, folder: str) -> list[dict]:
    return [r for page in _pages(root / "stripe" / folder) for r in page["data"]]


_MISSING = object()


def resolve(rec, path: str):
    assert path.startswith("$.")
    cur = rec
    for part in path[2:].split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def castable(value, typ: str) -> bool:
    if typ == "varchar":
        return isinstance(value, str)
    if typ == "currency":
        return isinstance(value, str) and len(value) == 3 and value.isalpha()
    if typ in ("decimal", "rate"):
        return isinstance(value, (int, Decimal)) and not isinstance(value, bool)
    if typ == "bigint":
        return isinstance(value, int) and not isinstance(value, bool)
    if typ == "boolean":
        return isinstance(value, bool)
    if typ == "date":
        if not (isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)):
            return False
        date.fromisoformat(value)
        return True
    if typ == "timestamp":
        if not isinstance(value, str):
            return False
        return datetime.fromisoformat(value).tzinfo is not None
    if typ == "json":
        return True
    raise AssertionError(f"unknown type {typ}")


def money_minor(x) -> int:
    d = Decimal(x)
    assert d == d.quantize(CENT), f"more than 2 decimals: {x}"
    return int(d * 100)


def utc_date(ts: int) -> date:
    return datetime.fromtimestamp(ts, tz=UTC).date()


def month_ends(start: date, end: date) -> list[date]:
    out, d = [], date(start.year, start.month, 1)
    while True:
        nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
        me = nxt - timedelta(days=1)
        if me >= end:
            return out
        if me >= start:
            out.append(me)
        d = nxt


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, GenerationSummary, GeneratorConfig]:
    root = tmp_path_factory.mktemp("small")
    cfg = _cfg(root)
    return root, generate(cfg), cfg


@pytest.fixture(scope="module")
def medium(tmp_path_factory) -> tuple[Path, GenerationSummary, GeneratorConfig]:
    root = tmp_path_factory.mktemp("medium")
    cfg = _cfg(root, seed=11, customers=80, years=2.0, invoices=6000)
    return root, generate(cfg), cfg


# ----------------------------------------------------------------------------- config
def test_config_defaults_and_validation(tmp_path):
    c = GeneratorConfig(landing_dir=tmp_path)
    assert (c.seed, c.customers, c.years, c.invoices) == (42, 400, 2.0, 25_000)
    assert c.end_date == date.today()
    for bad in ({"customers": 0}, {"invoices": 0}, {"years": 0}, {"years": -1}, {"seed": -1}):
        with pytest.raises(ValidationError):
            GeneratorConfig(landing_dir=tmp_path, **bad)


# ----------------------------------------------------------------------------- files & determinism
def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_deterministic_bytes(tmp_path):
    a = _snapshot((generate(_cfg(tmp_path / "a")), tmp_path / "a")[1])
    b = _snapshot((generate(_cfg(tmp_path / "b")), tmp_path / "b")[1])
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]][:5]
    c = _snapshot((generate(_cfg(tmp_path / "c", seed=8)), tmp_path / "c")[1])
    assert any(a.get(k) != c.get(k) for k in a)


def test_regenerate_removes_stale_pages_only(tmp_path):
    generate(_cfg(tmp_path, invoices=3000, customers=40))
    inv_dir = tmp_path / "quickbooks" / "invoice"
    keep1 = inv_dir / "notes.txt"
    keep2 = tmp_path / "other_source" / "page_00001.json"
    keep2.parent.mkdir()
    keep1.write_text("x")
    keep2.write_text("{}")
    before = len(list(inv_dir.glob("*.json")))
    s = generate(_cfg(tmp_path, invoices=300, customers=40))
    after = len(list(inv_dir.glob("*.json")))
    assert after < before
    assert after == s.files[("quickbooks", "invoice")]
    for folder in ("invoices", "charges", "invoice_payments"):
        assert (
            len(list((tmp_path / "stripe" / folder).glob("*.json"))) == s.files[("stripe", folder)]
        )
    assert keep1.exists() and keep2.exists()


def test_counts_and_envelopes(small):
    root, summary, cfg = small
    q_inv = qbo(root, "invoice", "Invoice")
    s_inv = stripe(root, "invoices")
    finalized = [r for r in s_inv if r["status"] != "draft"]
    n = len(q_inv) + len(finalized)
    assert abs(n - cfg.invoices) <= 0.02 * cfg.invoices
    assert summary.records[("quickbooks", "invoice")] == len(q_inv)
    assert summary.records[("stripe", "invoices")] == len(s_inv)
    assert summary.truth_dir == root / "_ground_truth"
    assert summary.elapsed_seconds > 0
    # QBO envelopes: startPosition continues across pages, maxResults = records on the page
    pages = _pages(root / "quickbooks" / "payment")
    pos = 1
    for p in pages:
        assert p["QueryResponse"]["startPosition"] == pos
        assert p["QueryResponse"]["maxResults"] == len(p["QueryResponse"]["Payment"]) <= 1000
        assert "time" in p and datetime.fromisoformat(p["time"]).tzinfo is not None
        pos += len(p["QueryResponse"]["Payment"])
    # Stripe envelopes: newest first, has_more on all but the last page (the injected drafts are a
    # page of their own, see test_stripe_invoice_amounts)
    injected = set(pl.read_parquet(root / "_ground_truth" / "invoice_hygiene.parquet")["invoice_id"])
    for folder in ("invoices", "charges", "customers"):
        pages = [p for p in _pages(root / "stripe" / folder) if not {r["id"] for r in p["data"]} <= injected]
        assert [p["has_more"] for p in pages] == [True] * (len(pages) - 1) + [False]
        assert all(
            p["object"] == "list" and p["url"] == f"/v1/{folder}" and len(p["data"]) <= 100
            for p in pages
        )
        created = [r["created"] for p in pages for r in p["data"]]
        assert created == sorted(created, reverse=True)


# ----------------------------------------------------------------------------- loader contract
@pytest.mark.parametrize("source", ["quickbooks", "stripe"])
def test_required_paths_present_and_castable(small, source):
    root = small[0]
    conf = yaml.safe_load((REPO / "ingest_configs" / f"{source}.yaml").read_text())
    base = root / conf["landing_subdir"]
    for ent in conf["entities"]:
        files = sorted(base.glob(ent["files"]))
        if not files:
            # Deletions and refund receipts come only from the API connectors, not the simulator.
            assert ent["table"] in {"raw_deleted_objects", "raw_refund_receipts"}, ent["files"]
            continue
        n = 0
        for f in files:
            page = json.loads(f.read_text(), parse_float=Decimal)
            records = resolve(page, ent["records_path"])
            assert isinstance(records, list)
            for rec in records:
                n += 1
                for col in ent["columns"]:
                    v = resolve(rec, col["path"])
                    if col.get("required"):
                        assert v is not _MISSING and v is not None, (
                            ent["table"],
                            col["name"],
                            rec.get("Id", rec.get("id")),
                        )
                    if v is not _MISSING and v is not None:
                        assert castable(v, col["type"]), (ent["table"], col["name"], v)
        if ent["table"] in ("raw_invoices", "raw_customers", "raw_payments", "raw_charges"):
            assert n > 0, ent["table"]


# ---------------------------------------------------------------- QuickBooks arithmetic
def test_qbo_invoice_totals(small):
    root = small[0]
    invs = qbo(root, "invoice", "Invoice")
    assert invs
    for r in invs:
        assert r["domain"] == "QBO" and r["sparse"] is False
        items = [ln for ln in r["Line"] if ln["DetailType"] == "SalesItemLineDetail"]
        subs = [ln for ln in r["Line"] if ln["DetailType"] == "SubTotalLineDetail"]
        assert 1 <= len(items) <= 4 and len(subs) == 1
        sub = sum(Decimal(ln["Amount"]) for ln in items)
        assert Decimal(subs[0]["Amount"]) == sub
        for ln in items:
            d = ln["SalesItemLineDetail"]
            assert Decimal(d["UnitPrice"]) * d["Qty"] == Decimal(ln["Amount"])
        assert Decimal(r["TotalAmt"]) == sub + Decimal(r["TxnTaxDetail"]["TotalTax"])
        assert "ExchangeRate" in r
        if r["CurrencyRef"]["value"] != "USD":
            rate = Decimal(r["ExchangeRate"])
            assert (Decimal(r["TotalAmt"]) * rate).quantize(CENT, ROUND_HALF_UP) == Decimal(
                r["HomeTotalAmt"]
            )
            assert (Decimal(r["Balance"]) * rate).quantize(CENT, ROUND_HALF_UP) == Decimal(
                r["HomeBalance"]
            )
        if r.get("PrivateNote") == "Voided":
            assert Decimal(r["TotalAmt"]) == 0 == Decimal(r["Balance"])
            assert r["LinkedTxn"] == []


def test_qbo_payments_balance_and_invoice_balances(small):
    root = small[0]
    invs = {r["Id"]: r for r in qbo(root, "invoice", "Invoice")}
    memos = {r["Id"]: r for r in qbo(root, "creditmemo", "CreditMemo")}
    pays = qbo(root, "payment", "Payment")
    applied_inv: dict[str, Decimal] = defaultdict(Decimal)
    applied_cm: dict[str, Decimal] = defaultdict(Decimal)
    links: dict[str, set] = defaultdict(set)
    n_credit_apps = n_multi = n_unapplied = 0
    for p in pays:
        inv_sum = cm_sum = Decimal(0)
        for ln in p["Line"]:
            (lt,) = ln["LinkedTxn"]
            if lt["TxnType"] == "Invoice":
                inv_sum += Decimal(ln["Amount"])
                applied_inv[lt["TxnId"]] += Decimal(ln["Amount"])
                links[lt["TxnId"]].add(p["Id"])
                assert invs[lt["TxnId"]]["CustomerRef"]["value"] == p["CustomerRef"]["value"]
            else:
                assert lt["TxnType"] == "CreditMemo"
                cm_sum += Decimal(ln["Amount"])
                applied_cm[lt["TxnId"]] += Decimal(ln["Amount"])
        assert Decimal(p["TotalAmt"]) == inv_sum - cm_sum + Decimal(p["UnappliedAmt"])
        n_credit_apps += cm_sum > 0 and Decimal(p["TotalAmt"]) == 0
        n_multi += sum(1 for ln in p["Line"] if ln["LinkedTxn"][0]["TxnType"] == "Invoice") > 1
        n_unapplied += Decimal(p["UnappliedAmt"]) > 0
    for iid, r in invs.items():
        assert Decimal(r["Balance"]) == Decimal(r["TotalAmt"]) - applied_inv[iid], iid
        assert {x["TxnId"] for x in r["LinkedTxn"] if x["TxnType"] == "Payment"} == links[iid]
        assert Decimal(r["Balance"]) >= 0
    for mid, m in memos.items():
        assert (
            Decimal(m["Balance"])
            == Decimal(m["RemainingCredit"])
            == Decimal(m["TotalAmt"]) - applied_cm[mid]
        )
    assert n_credit_apps > 0 and n_multi > 0 and n_unapplied > 0


# ----------------------------------------------------------------------------- Stripe arithmetic
def test_stripe_invoice_amounts(small):
    root = small[0]
    invs = stripe(root, "invoices")
    inpays = stripe(root, "invoice_payments")
    charges = {c["id"]: c for c in stripe(root, "charges")}
    cns = stripe(root, "credit_notes")
    refunds = stripe(root, "refunds")
    paid: dict[str, int] = defaultdict(int)
    for ip in inpays:
        assert ip["status"] == "paid" and ip["amount_paid"] == ip["amount_requested"]
        assert ip["payment"]["type"] == "charge" and ip["payment"]["charge"] in charges
        paid[ip["invoice"]] += ip["amount_paid"]
    pre: dict[str, int] = defaultdict(int)
    for cn in cns:
        pre[cn["invoice"]] += cn["pre_payment_amount"]
        assert cn["amount"] == cn["pre_payment_amount"] + cn["post_payment_amount"]
    statuses = set()
    customer_currency = {c["id"]: c["currency"] for c in stripe(root, "customers")}
    invoice_currency = {r["id"]: r["currency"] for r in invs}
    for ip in inpays:  # a payment is in its invoice's currency
        assert ip["currency"] == invoice_currency[ip["invoice"]] == charges[ip["payment"]["charge"]]["currency"]
    for cn in cns:
        assert cn["currency"] == invoice_currency[cn["invoice"]]
    # drafts with injected pre-send mistakes (wrong currency, no due date) are checked in test_invoice_checks
    injected = set(pl.read_parquet(root / "_ground_truth" / "invoice_hygiene.parquet")["invoice_id"])
    for r in invs:
        statuses.add(r["status"])
        if r["id"] in injected:
            assert r["status"] == "draft" and r["number"] is None
            continue
        # Stripe writes lower-case codes; a customer bills in one currency
        assert r["object"] == "invoice" and r["currency"] == customer_currency[r["customer"]]
        assert r["currency"] in {"usd", "eur", "gbp"}
        assert all(li["currency"] == r["currency"] for li in r["lines"]["data"])
        assert r["total"] == sum(li["amount"] for li in r["lines"]["data"])
        if r["status"] == "draft":
            assert r["number"] is None and r["status_transitions"]["finalized_at"] is None
            continue
        assert r["effective_at"] == r["status_transitions"]["finalized_at"]
        assert r["amount_due"] == r["total"] - pre[r["id"]]
        assert r["amount_paid"] == paid[r["id"]]
        if r["status"] != "void":
            assert r["amount_remaining"] == r["amount_due"] - paid[r["id"]]
        if r["status"] == "paid":
            assert r["amount_remaining"] == 0 and r["status_transitions"]["paid_at"] is not None
        if r["collection_method"] == "charge_automatically":
            assert r["due_date"] is None
        else:
            assert r["due_date"] is not None
    assert {"open", "paid", "draft"} <= statuses
    for rf in refunds:
        assert (
            rf["amount"]
            <= charges[rf["charge"]]["amount_refunded"]
            <= charges[rf["charge"]]["amount"]
        )


# ----------------------------------------------------------------------------- truth vs source
def _source_open_balances(root: Path, as_of: date) -> dict[tuple[str, str], tuple[int, int]]:
    """Independent recomputation from the written JSON.

    Returns (source, id) -> (open minor units, home-currency open minor units). Stripe has no
    exchange rate: a foreign invoice is converted at the rates file's latest rate on or before its
    invoice date, the way the pipeline does it."""
    out = {}
    rates = _rates_file(root)
    invs = qbo(root, "invoice", "Invoice")
    applied: dict[str, Decimal] = defaultdict(Decimal)
    for p in qbo(root, "payment", "Payment"):
        if date.fromisoformat(p["TxnDate"]) <= as_of:
            for ln in p["Line"]:
                lt = ln["LinkedTxn"][0]
                if lt["TxnType"] == "Invoice":
                    applied[lt["TxnId"]] += Decimal(ln["Amount"])
    for r in invs:
        if r.get("PrivateNote") == "Voided" or date.fromisoformat(r["TxnDate"]) > as_of:
            continue
        open_amt = Decimal(r["TotalAmt"]) - applied[r["Id"]]
        if open_amt > 0:
            rate = Decimal(r["ExchangeRate"])
            out[("quickbooks", r["Id"])] = (
                money_minor(open_amt),
                money_minor((open_amt * rate).quantize(CENT, ROUND_HALF_UP)),
            )
    paid: dict[str, int] = defaultdict(int)
    for ip in stripe(root, "invoice_payments"):
        if utc_date(ip["status_transitions"]["paid_at"]) <= as_of:
            paid[ip["invoice"]] += ip["amount_paid"]
    pre: dict[str, int] = defaultdict(int)
    for cn in stripe(root, "credit_notes"):
        if utc_date(cn["effective_at"]) <= as_of:
            pre[cn["invoice"]] += cn["pre_payment_amount"]
    for r in stripe(root, "invoices"):
        if r["status"] in ("draft", "void") or utc_date(r["effective_at"]) > as_of:
            continue
        mu = r["status_transitions"]["marked_uncollectible_at"]
        if mu is not None and utc_date(mu) <= as_of:
            continue
        open_amt = r["total"] - pre[r["id"]] - paid[r["id"]]
        if open_amt > 0:
            home = open_amt
            if r["currency"] != "usd":
                _, rate = _rate_on_or_before(rates, r["currency"].upper(), utc_date(r["effective_at"]))
                home = money_minor((Decimal(open_amt) / 100 * Decimal(rate)).quantize(CENT, ROUND_HALF_UP))
            out[("stripe", r["id"])] = (open_amt, home)
    return out


def test_truth_open_balances_match_source(small):
    root, _, cfg = small
    ob = pl.read_parquet(root / "_ground_truth" / "open_balances.parquet")
    start = cfg.end_date - timedelta(days=cfg.history_days - 1)
    dates = month_ends(start, cfg.end_date)
    assert sorted(ob["as_of_date"].unique().to_list()) == dates + [cfg.end_date]
    for as_of in [cfg.end_date] + dates[-3:] + dates[:1]:
        truth = {
            (r["source"], r["source_invoice_id"]): (
                r["open_amount_minor"],
                r["home_open_amount_minor"],
            )
            for r in ob.filter(pl.col("as_of_date") == as_of).iter_rows(named=True)
        }
        src = _source_open_balances(root, as_of)
        assert truth == src, (as_of, set(truth) ^ set(src))
    # at end_date the open amount is also exactly the QBO Balance / Stripe amount_remaining
    end_truth = ob.filter(pl.col("as_of_date") == cfg.end_date)
    q_bal = {
        r["Id"]: money_minor(r["Balance"])
        for r in qbo(root, "invoice", "Invoice")
        if Decimal(r["Balance"]) > 0
    }
    s_bal = {
        r["id"]: r["amount_remaining"]
        for r in stripe(root, "invoices")
        if r["status"] == "open" and r["amount_remaining"] > 0
    }
    t = {
        (r["source"], r["source_invoice_id"]): r["open_amount_minor"]
        for r in end_truth.iter_rows(named=True)
    }
    assert {k[1]: v for k, v in t.items() if k[0] == "quickbooks"} == q_bal
    assert {k[1]: v for k, v in t.items() if k[0] == "stripe"} == s_bal


def test_truth_invoices_consistent(small):
    root, _, cfg = small
    tv = pl.read_parquet(root / "_ground_truth" / "invoices.parquet")
    tc = pl.read_parquet(root / "_ground_truth" / "customers.parquet")
    assert tv.height == cfg.invoices and tc.height == cfg.customers
    assert tv["source_invoice_id"].n_unique() == tv.height
    assert set(tv["status_at_end"].unique()) <= {"open", "paid", "void", "uncollectible"}
    assert tv["total_minor"].dtype == pl.Int64
    paid = tv.filter(pl.col("status_at_end") == "paid")
    assert paid["paid_date"].null_count() == 0
    assert (paid["days_late"] == (paid["paid_date"] - paid["due_date"]).dt.total_days()).all()
    assert (
        tv.filter(pl.col("status_at_end") != "paid")["paid_date"].null_count()
        == tv.height - paid.height
    )
    assert tv["exchange_rate"].str.contains(r"^\d+\.\d{6}$").all()
    assert (tv.filter(pl.col("currency") == "USD")["exchange_rate"] == "1.000000").all()
    q_inv = {r["Id"]: r for r in qbo(root, "invoice", "Invoice")}
    for r in tv.filter(pl.col("source") == "quickbooks").iter_rows(named=True):
        src = q_inv[r["source_invoice_id"]]
        assert money_minor(src["TotalAmt"]) == r["total_minor"]
        assert (
            src["DocNumber"] == r["invoice_number"] and src["DueDate"] == r["due_date"].isoformat()
        )
        assert (r["status_at_end"] == "paid") == (
            Decimal(src["Balance"]) == 0 and src.get("PrivateNote") != "Voided"
        )
    s_inv = {r["id"]: r for r in stripe(root, "invoices")}
    for r in tv.filter(pl.col("source") == "stripe").iter_rows(named=True):
        src = s_inv[r["source_invoice_id"]]
        assert src["status"] == r["status_at_end"] and src["total"] == r["total_minor"]
        assert utc_date(src["effective_at"]) == r["invoice_date"]
        due = utc_date(src["due_date"]) if src["due_date"] is not None else r["invoice_date"]
        assert due == r["due_date"]
        if r["status_at_end"] == "paid":
            assert utc_date(src["status_transitions"]["paid_at"]) == r["paid_date"]


def test_aging_buckets_follow_edges(medium):
    ob = pl.read_parquet(medium[0] / "_ground_truth" / "open_balances.parquet")
    assert (ob["days_past_due"] == (ob["as_of_date"] - ob["due_date"]).dt.total_days()).all()
    assert (ob["open_amount_minor"] > 0).all()
    for row in ob.select("days_past_due", "aging_bucket").unique().iter_rows():
        d, bucket = row
        want = (
            "current"
            if d <= 0
            else "1_30"
            if d <= 30
            else "31_60"
            if d <= 60
            else "61_90"
            if d <= 90
            else "over_90"
        )
        assert bucket == want, row
    assert set(ob["aging_bucket"].unique()) == {"current", "1_30", "31_60", "61_90", "over_90"}
    usd = ob.filter(pl.col("currency") == "USD")
    assert (usd["open_amount_minor"] == usd["home_open_amount_minor"]).all()
    assert ob.filter(pl.col("currency") != "USD").height > 0


# ----------------------------------------------------------------------------- behaviour
def test_archetypes_differ(medium):
    root = medium[0]
    tv = pl.read_parquet(root / "_ground_truth" / "invoices.parquet")
    med = dict(
        tv.filter(pl.col("status_at_end") == "paid")
        .group_by("archetype")
        .agg(pl.col("days_late").median())
        .iter_rows()
    )
    assert med["chronic_late"] > med["prompt_payer"] + 20
    assert med["pay_after_reminder"] > med["prompt_payer"]
    assert med["chronic_late"] > med["pay_after_reminder"]
    det = tv.filter((pl.col("archetype") == "deteriorating") & (pl.col("status_at_end") == "paid"))
    mid = det["invoice_date"].min() + (det["invoice_date"].max() - det["invoice_date"].min()) / 2
    first = det.filter(pl.col("invoice_date") < mid)["days_late"].median()
    second = det.filter(pl.col("invoice_date") >= mid)["days_late"].median()
    assert second > first + 7
    # defaulters leave old invoices open (or written off) at the end
    dflt = tv.filter(pl.col("archetype") == "defaulter")
    stuck = dflt.filter(
        pl.col("status_at_end").is_in(["open", "uncollectible"])
        & (pl.col("due_date") < medium[2].end_date - timedelta(days=60))
    )
    assert stuck.height > 0
    # segments/regions/currencies are reflected in the source customers
    tc = pl.read_parquet(root / "_ground_truth" / "customers.parquet")
    assert set(tc["segment"]) == {"enterprise", "mid_market", "smb"}
    # some Stripe customers in Europe and the UK bill in EUR/GBP (the rates file converts them)
    assert set(tc.filter(pl.col("source") == "stripe")["currency"]) <= {"USD", "EUR", "GBP"}
    assert tc.filter((pl.col("source") == "stripe") & (pl.col("currency") != "USD")).height > 0
    s_cus = {c["id"]: c for c in stripe(root, "customers")}
    for r in tc.filter(pl.col("source") == "stripe").iter_rows(named=True):
        assert s_cus[r["source_customer_id"]]["metadata"]["segment"] == r["segment"]
        assert s_cus[r["source_customer_id"]]["metadata"]["region"] == r["region"]


def test_nothing_after_end_date(small):
    root, _, cfg = small
    end = cfg.end_date
    for folder, ent in (
        ("invoice", "Invoice"),
        ("payment", "Payment"),
        ("creditmemo", "CreditMemo"),
        ("customer", "Customer"),
    ):
        for r in qbo(root, folder, ent):
            if "TxnDate" in r:
                assert date.fromisoformat(r["TxnDate"]) <= end
            for k in ("CreateTime", "LastUpdatedTime"):
                ts = datetime.fromisoformat(r["MetaData"][k])
                assert ts.date() <= end and 8 <= ts.hour < 19
            assert r["MetaData"]["CreateTime"] <= r["MetaData"]["LastUpdatedTime"]
    event_fields = {
        "invoices": [
            "created",
            "effective_at",
            "status_transitions.finalized_at",
            "status_transitions.paid_at",
            "status_transitions.voided_at",
            "status_transitions.marked_uncollectible_at",
        ],
        "invoice_payments": ["created", "status_transitions.paid_at"],
        "charges": ["created"],
        "refunds": ["created"],
        "disputes": ["created"],
        "credit_notes": ["created", "effective_at"],
        "customers": ["created"],
    }
    for folder, fields in event_fields.items():
        for r in stripe(root, folder):
            for f in fields:
                v = resolve(r, "$." + f)
                if v is not _MISSING and v is not None:
                    dt = datetime.fromtimestamp(v, tz=UTC)
                    assert dt.date() <= end and 8 <= dt.hour < 20, (folder, f, v)


# ----------------------------------------------------------------------------- linked customers
def test_linked_customers_share_name_and_email_and_change_no_amount(tmp_path):
    generate(_cfg(tmp_path / "linked", linked_customers=4))
    generate(_cfg(tmp_path / "plain", linked_customers=0))
    truth = pl.read_parquet(tmp_path / "linked" / "_ground_truth" / "customers.parquet")
    pairs = truth.filter(pl.col("linked_customer_id").is_not_null()).select(
        pl.concat_str("source", pl.lit(":"), "source_customer_id").alias("customer_id"), "linked_customer_id")
    assert pairs.height == 8  # 4 pairs, recorded on both sides
    assert set(pairs.rows()) == {(b, a) for a, b in pairs.rows()}
    assert all(a.split(":")[0] != b.split(":")[0] for a, b in pairs.rows())
    people = {f"quickbooks:{c['Id']}": (c["DisplayName"], c["PrimaryEmailAddr"]["Address"])
              for c in qbo(tmp_path / "linked", "customer", "Customer")}
    people |= {f"stripe:{c['id']}": (c["name"], c["email"]) for c in stripe(tmp_path / "linked", "customers")}
    assert all(people[a] == people[b] for a, b in pairs.rows())
    # every other customer keeps a name and e-mail of its own
    unlinked = [v for k, v in people.items() if k not in set(pairs["customer_id"])]
    assert len({n for n, _ in unlinked}) == len({e for _, e in unlinked}) == len(unlinked)
    plain = pl.read_parquet(tmp_path / "plain" / "_ground_truth" / "customers.parquet")
    assert plain["linked_customer_id"].null_count() == plain.height
    for table in ("invoices", "open_balances"):
        a = pl.read_parquet(tmp_path / "linked" / "_ground_truth" / f"{table}.parquet")
        b = pl.read_parquet(tmp_path / "plain" / "_ground_truth" / f"{table}.parquet")
        assert a.equals(b), table
    assert truth.drop("linked_customer_id").equals(plain.drop("linked_customer_id"))


# ----------------------------------------------------------------------------- exchange rates file
def _rates_file(root: Path) -> pl.DataFrame:
    from ar_pipeline.lib.generator import FX_RATES_DIRNAME, FX_RATES_FILE

    return pl.read_csv(root / FX_RATES_DIRNAME / FX_RATES_FILE, schema_overrides={"rate": pl.String},
                       try_parse_dates=True)


def _rate_on_or_before(rates: pl.DataFrame, currency: str, day: date) -> tuple[date, str]:
    rows = rates.filter((pl.col("currency") == currency) & (pl.col("date") <= day)).sort("date")
    last = rows.row(-1, named=True)
    return last["date"], last["rate"]


def test_rates_file_is_a_bank_download_of_the_documents_rates(medium):
    root, summary, cfg = medium
    rates = _rates_file(root)
    assert rates.columns == ["date", "currency", "quote_currency", "rate"]
    assert summary.records[("reference", "fx_rates")] == rates.height
    assert set(rates["currency"]) == {"EUR", "GBP", "CAD"} and set(rates["quote_currency"]) == {"USD"}
    assert rates["rate"].str.contains(r"^\d+\.\d{6}$").all()
    assert rates.select("date", "currency").is_unique().all()
    start = cfg.end_date - timedelta(days=cfg.history_days - 1)
    assert rates["date"].min() == start and rates["date"].max() <= cfg.end_date
    # no weekend rates (banks publish none) except the very first day of the history
    weekend = rates.filter(pl.col("date").dt.weekday() >= 6)
    assert set(weekend["date"]) <= {start}
    # every document's rate is the file's latest rate on or before its date (weekend = Friday's)
    tv = pl.read_parquet(root / "_ground_truth" / "invoices.parquet")
    foreign = tv.filter(pl.col("currency") != "USD")
    assert foreign.filter(pl.col("source") == "stripe").height > 0
    saw_weekend = False
    for r in foreign.iter_rows(named=True):
        rate_day, rate = _rate_on_or_before(rates, r["currency"], r["invoice_date"])
        assert rate == r["exchange_rate"], r
        assert (r["invoice_date"] - rate_day).days <= 2
        saw_weekend |= rate_day != r["invoice_date"]
    assert saw_weekend
    for r in qbo(root, "payment", "Payment"):
        if r["CurrencyRef"]["value"] != "USD":
            rate_day, rate = _rate_on_or_before(rates, r["CurrencyRef"]["value"], date.fromisoformat(r["TxnDate"]))
            assert Decimal(rate) == Decimal(str(r["ExchangeRate"]))


# ----------------------------------------------------------------------------- Stripe money movement
def test_stripe_payouts_reconcile_from_the_pages(medium):
    """From the landed pages alone: every charge and refund has its balance transaction (net = amount
    - fee), each automatic payout pays exactly the transactions of its currency that became available
    since the previous payout, and charges - fees - refunds - disputes = payout amount to the cent."""
    root, _summary, cfg = medium
    bts = {t["id"]: t for t in stripe(root, "balance_transactions")}
    payouts = stripe(root, "payouts")
    charges, refunds = stripe(root, "charges"), stripe(root, "refunds")
    assert payouts and len(bts) >= len(charges) + len(refunds) + len(payouts)
    for t in bts.values():
        assert t["net"] == t["amount"] - t["fee"] and (t["type"] == "payout" or t["available_on"] % 86400 == 0)
    for c in charges:
        t = bts[c["balance_transaction"]]
        assert (t["type"], t["source"], t["amount"]) == ("charge", c["id"], c["amount"]) and t["fee"] > 0
    for r in refunds:
        t = bts[r["balance_transaction"]]
        assert (t["type"], t["source"], t["amount"]) == ("refund", r["id"], -r["amount"])
    by_cur: dict[str, list[dict]] = {}
    for p in payouts:
        assert bts[p["balance_transaction"]]["amount"] == -p["amount"] and p["arrival_date"] > p["created"]
        by_cur.setdefault(p["currency"], []).append(p)
    movements = [t for t in bts.values() if t["type"] != "payout"]
    covered = 0
    for cur, ps in by_cur.items():
        prev = -1
        for p in sorted(ps, key=lambda p: p["created"]):
            paid = [t for t in movements if t["currency"] == cur and prev < t["available_on"] <= p["created"]]
            gross = sum(t["amount"] for t in paid if t["type"] == "charge")
            fees = sum(t["fee"] for t in paid)
            refunded = -sum(t["amount"] for t in paid if t["type"] == "refund")
            disputed = -sum(t["amount"] for t in paid if t["type"] == "adjustment")
            assert gross - fees - refunded - disputed == p["amount"] > 0, p["id"]
            covered += len(paid)
            prev = p["created"]
    assert covered > 0.9 * len(movements)  # the rest became available after the last payout
    truth = pl.read_parquet(root / "_ground_truth" / "stripe_payouts.parquet")
    assert sorted(truth["payout_id"].to_list()) == sorted(p["id"] for p in payouts)


def test_stripe_dispute_balance_transactions_follow_the_outcome(medium):
    root, _summary, _cfg = medium
    disputes = stripe(root, "disputes")
    assert disputes
    for d in disputes:
        kinds = [t["reporting_category"] for t in d["balance_transactions"]]
        assert kinds == (["dispute", "dispute_reversal"] if d["status"] == "won" else ["dispute"]), d["id"]
        assert d["balance_transactions"][0]["amount"] == -d["amount"]
        if d["status"] == "won":
            back = d["balance_transactions"][1]
            assert back["amount"] == d["amount"] and back["created"] > d["created"]


def test_stripe_charges_outside_the_invoice_flow(medium):
    root, _summary, _cfg = medium
    linked = {p["payment"]["charge"] for p in stripe(root, "invoice_payments")}
    loose = {c["id"]: c for c in stripe(root, "charges") if c["id"] not in linked}
    truth = pl.read_parquet(root / "_ground_truth" / "stripe_unapplied_charges.parquet")
    assert loose and set(loose) == set(truth["charge_id"])
    invoices = {i["id"]: i for i in stripe(root, "invoices")}
    for row in truth.filter(pl.col("pattern") == "exact").iter_rows(named=True):
        inv = invoices[row["source_invoice_id"]]
        c = loose[row["charge_id"]]
        # the invoice stays open in Stripe, for the charge's amount and customer
        assert inv["status"] == "open" and inv["amount_remaining"] == c["amount"] and inv["customer"] == c["customer"]


def test_qbo_unapplied_payments_truth_matches_the_pages(medium):
    """Every QuickBooks payment with UnappliedAmt has a truth row; a stand-alone one pays invoices of
    its customer still open at the end (its amount = their open balance, or a short-pay within the
    rule), dated between the latest invoice's date and the end; the overpaid part of a regular payment
    pays nothing; an 'ambiguous' payment's customer has another open invoice of the same amount."""
    from ar_pipeline.lib.generator.qbo_unapplied import short_pay_ok

    root, _summary, cfg = medium
    invs = {r["Id"]: r for r in qbo(root, "invoice", "Invoice")}
    pays = {p["Id"]: p for p in qbo(root, "payment", "Payment") if Decimal(p["UnappliedAmt"]) > 0}
    truth = pl.read_parquet(root / "_ground_truth" / "quickbooks_unapplied_payments.parquet")
    assert set(truth["payment_id"]) == set(pays)
    open_by_cust: dict[tuple[str, str], list[int]] = defaultdict(list)
    for r in invs.values():
        if Decimal(r["Balance"]) > 0:
            open_by_cust[(r["CustomerRef"]["value"], r["CurrencyRef"]["value"])].append(money_minor(r["Balance"]))
    bank = pl.read_parquet(root / "_ground_truth" / "bank_matches.parquet").filter(pl.col("source") == "quickbooks")
    paid_twice = set(bank["source_invoice_id"].drop_nulls()) & set(truth["source_invoice_id"].drop_nulls())
    assert not paid_twice  # the bank lines do not pay them again
    assert truth["source_invoice_id"].drop_nulls().is_unique().all()
    patterns = defaultdict(int)
    for (pid,), rows in truth.group_by("payment_id"):
        p = pays[pid]
        pattern = rows["pattern"][0]
        patterns[pattern] += 1
        amount = money_minor(p["UnappliedAmt"])
        assert rows["unapplied_amount_minor"].to_list() == [amount] * rows.height
        if pattern in ("overpayment", "on_account"):
            assert rows.height == 1 and rows["source_invoice_id"][0] is None
            assert (len(p["Line"]) > 0) == (pattern == "overpayment"), pid
            continue
        assert p["Line"] == [] and Decimal(p["TotalAmt"]) == Decimal(p["UnappliedAmt"])
        paid = [invs[i] for i in rows["source_invoice_id"]]
        pay_day = date.fromisoformat(p["TxnDate"])
        opens = [money_minor(i["Balance"]) for i in paid]
        assert rows["open_amount_minor"].to_list() == opens
        for i in paid:
            assert i["CustomerRef"]["value"] == p["CustomerRef"]["value"]
            assert i["CurrencyRef"]["value"] == p["CurrencyRef"]["value"]
            assert date.fromisoformat(i["TxnDate"]) <= pay_day <= cfg.end_date
            assert money_minor(i["Balance"]) > 0 and pid not in {x["TxnId"] for x in i["LinkedTxn"]}
        need = sum(opens)
        same = open_by_cust[(p["CustomerRef"]["value"], p["CurrencyRef"]["value"])].count(opens[0])
        if pattern == "short_pay":
            assert len(paid) == 1 and short_pay_ok(need - amount, need), pid
        else:
            assert amount == need and len(paid) == (2 if pattern == "two_invoices" else 1), pid
        assert rows["identifiable"].all() == (pattern != "ambiguous")
        assert (same > 1) == (pattern == "ambiguous"), pid
    assert patterns["exact"] >= 10 and patterns["overpayment"] > 0 and patterns["two_invoices"] > 0, patterns
    assert patterns["exact"] > 0.5 * sum(n for k, n in patterns.items() if k != "overpayment")
