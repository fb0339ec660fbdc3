"""QuickBooks Online JSON query pages (Customer, Invoice, Payment, CreditMemo) from a Sim."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from .jsonfmt import L, b, date_s, frag, lit, members, money, obj, q, qbo_ts, rate6, s
from .simulate import CURRENCIES, QBO, Sim

CUR_NAME = {
    "USD": "United States Dollar",
    "EUR": "Euro",
    "GBP": "British Pound Sterling",
    "CAD": "Canadian Dollar",
}
TERM = {
    0: ("1", "Due on receipt"),
    15: ("2", "Net 15"),
    30: ("3", "Net 30"),
    60: ("4", "Net 60"),
    45: ("5", "Net 45"),
}
SEGMENT_TYPE = {"enterprise": "1", "mid_market": "2", "smb": "3"}
ITEMS = [
    ("1", "Consulting Services"),
    ("2", "Implementation"),
    ("3", "Annual License"),
    ("4", "Support Plan"),
    ("5", "Hardware Kit"),
    ("6", "Training Session"),
    ("7", "Managed Services"),
    ("8", "Installation"),
    ("9", "Maintenance Visit"),
    ("10", "Custom Development"),
    ("11", "Shipping & Handling"),
    ("12", "Subscription Seats"),
]
STREETS = [
    "Main St",
    "Market St",
    "Oak Ave",
    "Pine Rd",
    "Harbor Blvd",
    "Station Rd",
    "High St",
    "King St",
    "Elm St",
    "Park Ave",
]
PAYMENT_METHODS = np.array(["1", "2", "3", "4", "6"])  # Cash, Check, Visa, MasterCard, Amex
MEMO = lit({"value": "Thank you for your business and have a great day!"})


@dataclass
class QboOut:
    customers: pl.DataFrame
    invoices: pl.DataFrame
    payments: pl.DataFrame
    creditmemos: pl.DataFrame
    customer_expr: pl.Expr
    invoice_expr: pl.Expr
    payment_expr: pl.Expr
    creditmemo_expr: pl.Expr
    invoice_ids: pl.DataFrame  # inv, Id, DocNumber
    invoice_prepare: Callable[[pl.DataFrame], pl.DataFrame]  # adds lines_j to a write slice
    unapplied_truth: pl.DataFrame  # _ground_truth/quickbooks_unapplied_payments (see _unapplied_truth)


def _unapplied_truth(sim: Sim, pays: pl.DataFrame, invoice_ids: pl.DataFrame) -> pl.DataFrame:
    """One row per (QuickBooks payment with UnappliedAmt > 0, invoice it pays): stand-alone unapplied
    payments name the open invoice(s) they are for (qbo_unapplied; pattern on_account = none); the
    overpaid part of a regular payment (pattern overpayment) pays no invoice: it stays on account.
    `identifiable` is false where the books give no clear answer (auto-applying it is a guess)."""
    alone = (
        pays.filter(pl.col("kind") == 1)
        .select(pl.col("Id").alias("payment_id"), "src_key", pl.col("unapplied").alias("unapplied_amount_minor"))
        .join(sim.unapplied_truth, on="src_key", how="inner")
        .join(invoice_ids, on="inv", how="left")
        .select(
            "payment_id",
            "pattern",
            "identifiable",
            "unapplied_amount_minor",
            pl.col("Id").alias("source_invoice_id"),
            pl.col("DocNumber").alias("invoice_number"),
            pl.col("open_minor").alias("open_amount_minor"),
        )
    )
    over = pays.filter((pl.col("kind") == 0) & (pl.col("unapplied") > 0)).select(
        pl.col("Id").alias("payment_id"),
        L("overpayment").alias("pattern"),
        L(True).alias("identifiable"),
        pl.col("unapplied").alias("unapplied_amount_minor"),
        L(None, dtype=pl.String).alias("source_invoice_id"),
        L(None, dtype=pl.String).alias("invoice_number"),
        L(None, dtype=pl.Int64).alias("open_amount_minor"),
    )
    return (
        pl.concat([alone, over], how="vertical_relaxed")
        .with_columns(L("quickbooks").alias("source"))
        .select("payment_id", "pattern", "identifiable", "unapplied_amount_minor", "source",
                "source_invoice_id", "invoice_number", "open_amount_minor")
        .sort(pl.col("payment_id").cast(pl.Int64), "source_invoice_id")
    )


# sim.invoices columns the QuickBooks invoices use
_INV_COLS = [
    "inv",
    "cust",
    "day",
    "due",
    "subtotal",
    "tax",
    "total",
    "currency",
    "rate",
    "void",
    "void_day",
    "credit_amount",
    "credit_applied_by_end",
    "paid_sum",
    "tax_ppm",
]


def _narrow(df: pl.DataFrame, expr: pl.Expr, *keep: str) -> pl.DataFrame:
    """Only the columns ``expr`` reads (plus ``keep``), so sorted copies stay small."""
    need = set(expr.meta.root_names()) | set(keep)
    return df.select([c for c in df.columns if c in need])


def _tod(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(8 * 3600, 19 * 3600, n)


def _map(col: str, mapping: dict, dtype=pl.String) -> pl.Expr:
    return pl.col(col).replace_strict(mapping, return_dtype=dtype)



def _attach(frame: pl.DataFrame, ids: pl.DataFrame, kind: int, local: str, column: str) -> pl.DataFrame:
    """Join the shared-sequence `column` (Id or DocNumber) of transaction kind `kind` onto `frame`
    by its local row number, keeping `frame`'s order."""
    mapping = ids.filter(pl.col("t") == kind).select(pl.col("loc").alias(local), column)
    return frame.join(mapping, on=local, how="left", maintain_order="left")

def build(sim: Sim) -> QboOut:
    rng = np.random.default_rng([sim.cfg.seed, 7101])
    end = sim.end_day

    # ------------------------------------------------------------- customers
    cu = sim.customers.filter(pl.col("source") == QBO).sort("created", "cust")
    nq = cu.height
    cu = cu.with_columns(
        cid=pl.int_range(1, nq + 1).cast(pl.String),
        cur=pl.col("currency").replace_strict(dict(enumerate(CURRENCIES)), return_dtype=pl.String),
        created_ts=pl.col("created") * 86400 + pl.Series(_tod(rng, nq)),
        addr_id=pl.int_range(100, 100 + nq).cast(pl.String),
        street_s=pl.concat_str(
            [
                pl.col("street").cast(pl.String),
                L(" "),
                pl.Series([STREETS[i % 10] for i in range(nq)], dtype=pl.String),
            ]
        ),
        inactive=(pl.col("default_day") <= end) & pl.Series(rng.random(nq) < 0.5),
    )
    cmap = cu.select(
        "cust",
        "cid",
        pl.col("name").alias("cname"),
        "cur",
        "email",
        "terms",
        "addr_id",
        "street_s",
        "city",
        "subdiv",
        "postal",
        "country",
    )

    # ------------------------------------------------------------- invoices
    # customer attributes (cmap) are only needed to render records: they are joined per write slice
    iv = sim.invoices.filter(pl.col("source") == QBO).select(_INV_COLS)
    ni = iv.height
    iv = iv.with_columns(
        total_w=pl.when(pl.col("void")).then(0).otherwise(pl.col("total")),
        open_end=pl.when(pl.col("void"))
        .then(0)
        .otherwise(
            pl.col("total")
            - pl.col("paid_sum")
            - pl.when(pl.col("credit_applied_by_end")).then(pl.col("credit_amount")).otherwise(0)
        ),
        create_ts=pl.col("day") * 86400 + pl.Series(_tod(rng, ni)),
        void_ts=pl.col("void_day") * 86400 + pl.Series(_tod(rng, ni)),
        email_status=pl.Series(np.where(rng.random(ni) < 0.88, "EmailSent", "NotSet")),
        inv_local=pl.int_range(0, ni),
    )
    iv = iv.with_columns(
        void_ts=pl.max_horizontal("void_ts", "create_ts"),
        email_status=pl.when((pl.col("day") >= end - 2) & pl.Series(rng.random(ni) < 0.4))
        .then(L("NeedToSend"))
        .otherwise(pl.col("email_status")),
    )

    # ------------------------------------------------------------- payments
    apps = (
        sim.applications.join(
            iv.select("inv", "cust", "currency"), on="inv", how="inner", maintain_order="left"
        )
        .join(sim.customers.select("cust", "batch"), on="cust", how="left", maintain_order="left")
        .with_columns(g=pl.when(pl.col("batch")).then(-1).otherwise(pl.col("part")))
    )
    reg = (
        apps.group_by("cust", "day", "g", maintain_order=True)
        .agg(pl.col("currency").first(), pl.col("amount").sum().alias("applied"))
        .sort("day", "cust", "g")
    )
    nr = reg.height
    un_flag = rng.random(nr) < 0.02
    un_amt = np.where(
        un_flag, np.maximum(np.round(reg["applied"].to_numpy() * rng.uniform(0.01, 0.2, nr)), 1), 0
    )
    reg = reg.with_columns(
        kind=L(0), unapplied=pl.Series(un_amt.astype(np.int64)), src_key=pl.col("g")
    )

    ua = sim.unapplied.join(
        sim.customers.select("cust", "currency"), on="cust", how="left", maintain_order="left"
    )
    una = ua.select(
        "cust",
        "day",
        "currency",
        L(0, dtype=pl.Int64).alias("applied"),
        L(1).alias("kind"),
        pl.col("amount").alias("unapplied"),
        "src_key",
    )
    cr = sim.credits.filter(pl.col("source") == QBO).sort("credit_day", "inv")
    cr = cr.with_columns(cm_local=pl.int_range(0, cr.height))
    cra = cr.filter(pl.col("credit_applied_by_end")).select(
        "cust",
        pl.col("credit_apply_day").alias("day"),
        "currency",
        L(0, dtype=pl.Int64).alias("applied"),
        L(2).alias("kind"),
        L(0, dtype=pl.Int64).alias("unapplied"),
        pl.col("cm_local").alias("src_key"),
    )
    cols = ["cust", "day", "currency", "applied", "kind", "unapplied", "src_key"]
    pays = pl.concat([reg.select(cols), una.select(cols), cra.select(cols)], how="vertical_relaxed")
    pays = pays.sort("day", "kind", "cust", "src_key")
    del reg, ua, una, cra
    npay = pays.height
    pays = pays.with_columns(
        pay_local=pl.int_range(0, npay),
        create_ts=pl.col("day") * 86400 + pl.Series(_tod(rng, npay)),
        method=pl.Series(rng.choice(PAYMENT_METHODS, npay, p=[0.04, 0.5, 0.2, 0.16, 0.1])),
        checkno=pl.Series(rng.integers(1000, 99999, npay)).cast(pl.String),
    )

    # ------------------------------------------------------------- shared transaction ids
    keys = pl.concat(
        [
            iv.select(pl.col("day"), L(0).alias("t"), pl.col("inv_local").alias("loc")),
            cr.select(
                pl.col("credit_day").alias("day"), L(1).alias("t"), pl.col("cm_local").alias("loc")
            ),
            pays.select(pl.col("day"), L(2).alias("t"), pl.col("pay_local").alias("loc")),
        ],
        how="vertical_relaxed",
    ).sort("day", "t", "loc")
    keys = keys.with_columns(Id=pl.int_range(1, keys.height + 1).cast(pl.String))
    docs = keys.filter(pl.col("t") < 2).with_columns(
        DocNumber=pl.int_range(1001, 1001 + pl.len()).cast(pl.String)
    )
    iv = _attach(_attach(iv, keys, 0, "inv_local", "Id"), docs, 0, "inv_local", "DocNumber")
    cr = _attach(_attach(cr, keys, 1, "cm_local", "Id"), docs, 1, "cm_local", "DocNumber")
    pays = _attach(pays, keys, 2, "pay_local", "Id")
    del keys, docs

    # ------------------------------------------------------------- payment lines
    pid_reg = pays.filter(pl.col("kind") == 0).select(
        pl.col("src_key"), pl.col("cust"), pl.col("day"), pl.col("Id").alias("pay_id"), "create_ts"
    )
    # regular application rows -> payment Id
    apps = apps.join(
        pid_reg,
        left_on=["g", "cust", "day"],
        right_on=["src_key", "cust", "day"],
        how="left",
        maintain_order="left",
    )
    apps = apps.join(
        iv.select("inv", pl.col("Id").alias("inv_id")), on="inv", how="left", maintain_order="left"
    )
    line_reg = apps.select(
        "pay_id",
        "part",
        obj(
            [
                ("Amount", money(pl.col("amount"))),
                ("LinkedTxn", frag(['[{"TxnId":"', pl.col("inv_id"), '","TxnType":"Invoice"}]'])),
            ]
        ).alias("lj"),
    )
    cr_pay = pays.filter(pl.col("kind") == 2).select(
        pl.col("src_key").alias("cm_local"),
        pl.col("Id").alias("pay_id"),
        pl.col("create_ts").alias("app_ts"),
    )
    cr = cr.join(cr_pay, on="cm_local", how="left", maintain_order="left")
    cr = cr.join(
        iv.select("inv", pl.col("Id").alias("inv_id")), on="inv", how="left", maintain_order="left"
    )
    line_cr = cr.filter(pl.col("pay_id").is_not_null()).select(
        "pay_id",
        L(0, dtype=pl.Int64).alias("part"),
        frag(
            [
                '{"Amount":',
                money(pl.col("credit_amount")),
                ',"LinkedTxn":[{"TxnId":"',
                pl.col("inv_id"),
                '","TxnType":"Invoice"}]},{"Amount":',
                money(pl.col("credit_amount")),
                ',"LinkedTxn":[{"TxnId":"',
                pl.col("Id"),
                '","TxnType":"CreditMemo"}]}',
            ]
        ).alias("lj"),
    )
    lines_all = pl.concat([line_reg, line_cr], how="vertical_relaxed")
    pl_agg = lines_all.group_by("pay_id").agg(
        pl.col("lj").sort_by("part").str.join(",").alias("lines_j")
    )
    pays = pays.join(pl_agg, left_on="Id", right_on="pay_id", how="left", maintain_order="left")
    del pid_reg, line_reg, line_cr, lines_all, pl_agg
    pays = pays.join(
        cmap.select("cust", "cid", "cname", "cur"), on="cust", how="left", maintain_order="left"
    )
    pays = pays.with_columns(
        total=pl.col("applied") + pl.col("unapplied"),
        rate=pl.Series(sim.fx_rate(pays["currency"].to_numpy(), pays["day"].to_numpy())),
        lines_j=pl.col("lines_j").fill_null(L("")),
    )

    # ------------------------------------------------------------- invoice links / versions
    links = (
        pl.concat(
            [
                apps.select("inv", "pay_id", "create_ts"),
                cr.filter(pl.col("pay_id").is_not_null()).select(
                    "inv", "pay_id", pl.col("app_ts").alias("create_ts")
                ),
            ],
            how="vertical_relaxed",
        )
        .unique(["inv", "pay_id"])
        .sort("create_ts", "pay_id")
    )
    del apps
    lk = links.group_by("inv", maintain_order=True).agg(
        frag(['{"TxnId":"', pl.col("pay_id"), '","TxnType":"Payment"}'])
        .str.join(",")
        .alias("linked_j"),
        pl.len().alias("n_links"),
        pl.col("create_ts").max().alias("last_link_ts"),
    )
    iv = iv.join(lk, on="inv", how="left", maintain_order="left").with_columns(
        linked_j=pl.col("linked_j").fill_null(L("")),
        sync=(
            pl.col("n_links").fill_null(0)
            + pl.col("void").cast(pl.Int64)
            + (pl.col("email_status") == "EmailSent").cast(pl.Int64)
        ).cast(pl.String),
        upd_ts=pl.max_horizontal(
            "create_ts",
            pl.col("last_link_ts").fill_null(0),
            pl.when(pl.col("void")).then(pl.col("void_ts")).otherwise(0),
        ),
    )
    del links, lk

    # invoice lines
    ln = sim.lines.join(
        iv.select("inv", "void", "tax_ppm"), on="inv", how="inner", maintain_order="left"
    )
    item_id = pl.col("item").replace_strict(
        {i: v[0] for i, v in enumerate(ITEMS)}, return_dtype=pl.String
    )
    item_nm = pl.col("item").replace_strict(
        {i: v[1] for i, v in enumerate(ITEMS)}, return_dtype=pl.String
    )
    zero = pl.col("void")
    line_j = obj(
        [
            ("Id", q(pl.col("line_no").cast(pl.String))),
            ("LineNum", s(pl.col("line_no"))),
            ("Description", q(item_nm)),
            ("Amount", money(pl.when(zero).then(0).otherwise(pl.col("amount")))),
            ("DetailType", '"SalesItemLineDetail"'),
            (
                "SalesItemLineDetail",
                obj(
                    [
                        ("ItemRef", obj([("value", q(item_id)), ("name", q(item_nm))])),
                        ("UnitPrice", money(pl.when(zero).then(0).otherwise(pl.col("unit")))),
                        ("Qty", s(pl.when(zero).then(0).otherwise(pl.col("qty")))),
                        (
                            "TaxCodeRef",
                            pl.when(pl.col("tax_ppm") > 0)
                            .then(L('{"value":"TAX"}'))
                            .otherwise(L('{"value":"NON"}')),
                        ),
                    ]
                ),
            ),
        ]
    )

    def invoice_prepare(part: pl.DataFrame) -> pl.DataFrame:
        """Customer attributes and rendered invoice lines (``lines_j``) for one slice only."""
        part = part.join(cmap, on="cust", how="left", maintain_order="left")
        lnc = ln.filter(pl.col("inv").is_in(part["inv"].implode())).select(
            "inv", line_j.alias("lj")
        )
        lagg = lnc.group_by("inv", maintain_order=True).agg(
            pl.col("lj").str.join(",").alias("lines_j")
        )
        return part.join(lagg, on="inv", how="left", maintain_order="left")

    sub_w = pl.when(pl.col("void")).then(0).otherwise(pl.col("subtotal"))
    tax_w = pl.when(pl.col("void")).then(0).otherwise(pl.col("tax"))
    non_usd = pl.col("cur") != "USD"
    rate_j = pl.when(non_usd).then(rate6(pl.col("rate"))).otherwise(L("1"))

    def home(c: pl.Expr) -> pl.Expr:
        return money((c * pl.col("rate") + 500_000) // 1_000_000)

    cur_ref = obj([("value", q(pl.col("cur"))), ("name", q(_map("cur", CUR_NAME)))])
    bill_addr = obj(
        [
            ("Id", q(pl.col("addr_id"))),
            ("Line1", q(pl.col("street_s"))),
            ("City", q(pl.col("city"))),
            ("CountrySubDivisionCode", q(pl.col("subdiv"))),
            ("PostalCode", q(pl.col("postal").cast(pl.String))),
            ("Country", q(pl.col("country"))),
        ]
    )

    def meta(c: str, u: str) -> pl.Expr:
        created, updated = q(qbo_ts(pl.col(c))), q(qbo_ts(pl.col(u)))
        return obj([("CreateTime", created), ("LastUpdatedTime", updated)])

    term_ref = obj(
        [
            ("value", q(_map("terms", {k: v[0] for k, v in TERM.items()}))),
            ("name", q(_map("terms", {k: v[1] for k, v in TERM.items()}))),
        ]
    )
    tax_detail = (
        pl.when(pl.col("tax_ppm") > 0)
        .then(
            frag(
                [
                    '{"TxnTaxCodeRef":{"value":"2"},"TotalTax":',
                    money(tax_w),
                    ',"TaxLine":[{"Amount":',
                    money(tax_w),
                    ',"DetailType":"TaxLineDetail","TaxLineDetail":'
                    '{"TaxRateRef":{"value":"3"},"PercentBased":true,"TaxPercent":',
                    money(pl.col("tax_ppm") // 100),
                    ',"NetAmountTaxable":',
                    money(sub_w),
                    "}}]}",
                ]
            )
        )
        .otherwise(L('{"TotalTax":0}'))
    )

    invoice_expr = frag(
        [
            "{",
            members(
                [
                    ("AllowIPNPayment", "false"),
                    ("AllowOnlinePayment", "false"),
                    ("AllowOnlineCreditCardPayment", "false"),
                    ("AllowOnlineACHPayment", "false"),
                    ("domain", '"QBO"'),
                    ("sparse", "false"),
                    ("Id", q(pl.col("Id"))),
                    ("SyncToken", q(pl.col("sync"))),
                    ("MetaData", meta("create_ts", "upd_ts")),
                    ("CustomField", "[]"),
                    ("DocNumber", q(pl.col("DocNumber"))),
                    ("TxnDate", q(date_s(pl.col("day")))),
                    ("CurrencyRef", cur_ref),
                    ("ExchangeRate", rate_j),
                    ("LinkedTxn", frag(["[", pl.col("linked_j"), "]"])),
                    (
                        "Line",
                        frag(
                            [
                                "[",
                                pl.col("lines_j"),
                                ',{"Amount":',
                                money(sub_w),
                                ',"DetailType":"SubTotalLineDetail","SubTotalLineDetail":{}}]',
                            ]
                        ),
                    ),
                    ("TxnTaxDetail", tax_detail),
                    (
                        "CustomerRef",
                        obj([("value", q(pl.col("cid"))), ("name", q(pl.col("cname")))]),
                    ),
                    ("CustomerMemo", MEMO),
                    ("BillAddr", bill_addr),
                    ("SalesTermRef", term_ref),
                    ("DueDate", q(date_s(pl.col("due")))),
                    ("TotalAmt", money(pl.col("total_w"))),
                    ("ApplyTaxAfterDiscount", "false"),
                    ("PrintStatus", '"NotSet"'),
                    ("EmailStatus", q(pl.col("email_status"))),
                    ("BillEmail", obj([("Address", q(pl.col("email")))])),
                    ("Balance", money(pl.col("open_end"))),
                ]
            ),
            pl.when(non_usd)
            .then(
                frag(
                    [
                        ',"HomeTotalAmt":',
                        home(pl.col("total_w")),
                        ',"HomeBalance":',
                        home(pl.col("open_end")),
                    ]
                )
            )
            .otherwise(L("")),
            pl.when(pl.col("void")).then(L(',"PrivateNote":"Voided"')).otherwise(L("")),
            "}",
        ]
    )

    # ------------------------------------------------------------- credit memos
    crt = _tod(rng, cr.height)
    cr = (
        cr.join(cmap, on="cust", how="left", maintain_order="left")
        .with_columns(
            create_ts=pl.col("credit_day") * 86400 + pl.Series(crt),
            remaining=pl.when(pl.col("pay_id").is_null())
            .then(pl.col("credit_amount"))
            .otherwise(0),
            rate=pl.Series(sim.fx_rate(cr["currency"].to_numpy(), cr["credit_day"].to_numpy())),
        )
        .with_columns(
            upd_ts=pl.max_horizontal("create_ts", pl.col("app_ts").fill_null(0)),
            sync=pl.col("pay_id").is_not_null().cast(pl.Int64).cast(pl.String),
            inv_doc=pl.col("inv").replace_strict(iv["inv"], iv["DocNumber"], default=None),
        )
    )
    amt = money(pl.col("credit_amount"))
    creditmemo_expr = frag(
        [
            "{",
            members(
                [
                    ("RemainingCredit", money(pl.col("remaining"))),
                    ("domain", '"QBO"'),
                    ("sparse", "false"),
                    ("Id", q(pl.col("Id"))),
                    ("SyncToken", q(pl.col("sync"))),
                    ("MetaData", meta("create_ts", "upd_ts")),
                    ("CustomField", "[]"),
                    ("DocNumber", q(pl.col("DocNumber"))),
                    ("TxnDate", q(date_s(pl.col("credit_day")))),
                    ("CurrencyRef", cur_ref),
                    ("ExchangeRate", rate_j),
                    ("PrivateNote", frag(['"Credit for invoice ', pl.col("inv_doc"), '"'])),
                    (
                        "Line",
                        frag(
                            [
                                '[{"Id":"1","LineNum":1,"Description":"Service credit","Amount":',
                                amt,
                                ',"DetailType":"SalesItemLineDetail","SalesItemLineDetail":{"ItemRef":'
                                '{"value":"13","name":"Service Credit"},"UnitPrice":',
                                amt,
                                ',"Qty":1,"TaxCodeRef":{"value":"NON"}}},{"Amount":',
                                amt,
                                ',"DetailType":"SubTotalLineDetail","SubTotalLineDetail":{}}]',
                            ]
                        ),
                    ),
                    ("TxnTaxDetail", '{"TotalTax":0}'),
                    (
                        "CustomerRef",
                        obj([("value", q(pl.col("cid"))), ("name", q(pl.col("cname")))]),
                    ),
                    ("BillAddr", bill_addr),
                    ("TotalAmt", amt),
                    ("ApplyTaxAfterDiscount", "false"),
                    ("PrintStatus", '"NeedToPrint"'),
                    ("EmailStatus", '"EmailSent"'),
                    ("BillEmail", obj([("Address", q(pl.col("email")))])),
                    ("Balance", money(pl.col("remaining"))),
                ]
            ),
            pl.when(non_usd)
            .then(
                frag(
                    [
                        ',"HomeTotalAmt":',
                        home(pl.col("credit_amount")),
                        ',"HomeBalance":',
                        home(pl.col("remaining")),
                    ]
                )
            )
            .otherwise(L("")),
            "}",
        ]
    )

    # ------------------------------------------------------------- payment records
    is_money = pl.col("kind") != 2
    payment_expr = frag(
        [
            "{",
            members(
                [
                    (
                        "CustomerRef",
                        obj([("value", q(pl.col("cid"))), ("name", q(pl.col("cname")))]),
                    ),
                    ("DepositToAccountRef", '{"value":"4"}'),
                ]
            ),
            pl.when(is_money)
            .then(frag([',"PaymentMethodRef":{"value":"', pl.col("method"), '"}']))
            .otherwise(L("")),
            pl.when(is_money & (pl.col("method") == "2"))
            .then(frag([',"PaymentRefNum":"', pl.col("checkno"), '"']))
            .otherwise(L("")),
            ",",
            members(
                [
                    ("TotalAmt", money(pl.col("total"))),
                    ("UnappliedAmt", money(pl.col("unapplied"))),
                    ("ProcessPayment", "false"),
                    ("domain", '"QBO"'),
                    ("sparse", "false"),
                    ("Id", q(pl.col("Id"))),
                    ("SyncToken", '"0"'),
                    ("MetaData", meta("create_ts", "create_ts")),
                    ("TxnDate", q(date_s(pl.col("day")))),
                    ("CurrencyRef", cur_ref),
                    ("ExchangeRate", rate_j),
                    ("LinkedTxn", "[]"),
                    ("Line", frag(["[", pl.col("lines_j"), "]"])),
                ]
            ),
            "}",
        ]
    )

    # ------------------------------------------------------------- customer records
    cust_bal = (
        pl.concat(
            [
                iv.select("cust", pl.col("open_end").alias("v")),
                pays.select("cust", (-pl.col("unapplied")).alias("v")),
                cr.select("cust", (-pl.col("remaining")).alias("v")),
            ],
            how="vertical_relaxed",
        )
        .group_by("cust")
        .agg(pl.col("v").sum().alias("balance"))
    )
    cust_upd = (
        pl.concat(
            [
                iv.select("cust", pl.col("upd_ts").alias("t")),
                pays.select("cust", pl.col("create_ts").alias("t")),
                cr.select("cust", pl.col("upd_ts").alias("t")),
            ],
            how="vertical_relaxed",
        )
        .group_by("cust")
        .agg(pl.col("t").max().alias("last_ts"))
    )
    cu = (
        cu.join(cust_bal, on="cust", how="left", maintain_order="left")
        .join(cust_upd, on="cust", how="left", maintain_order="left")
        .with_columns(
            balance=pl.col("balance").fill_null(0),
            upd_ts=pl.max_horizontal("created_ts", pl.col("last_ts").fill_null(0)),
        )
    )
    seg_type = _map("segment", SEGMENT_TYPE)
    customer_expr = obj(
        [
            ("Taxable", b(pl.col("tax_ppm") > 0)),
            ("BillAddr", bill_addr),
            ("ShipAddr", bill_addr),
            ("Job", "false"),
            ("BillWithParent", "false"),
            ("Balance", money(pl.col("balance"))),
            ("BalanceWithJobs", money(pl.col("balance"))),
            ("CurrencyRef", cur_ref),
            ("PreferredDeliveryMethod", '"Email"'),
            ("domain", '"QBO"'),
            ("sparse", "false"),
            ("Id", q(pl.col("cid"))),
            ("SyncToken", q(pl.col("inactive").cast(pl.Int64).cast(pl.String))),
            ("MetaData", meta("created_ts", "upd_ts")),
            ("CompanyName", q(pl.col("name"))),
            ("FullyQualifiedName", q(pl.col("name"))),
            ("DisplayName", q(pl.col("name"))),
            ("PrintOnCheckName", q(pl.col("name"))),
            ("Active", b(~pl.col("inactive"))),
            ("PrimaryPhone", obj([("FreeFormNumber", q(pl.col("phone")))])),
            ("PrimaryEmailAddr", obj([("Address", q(pl.col("email")))])),
            (
                "SalesTermRef",
                obj([("value", q(_map("terms", {k: v[0] for k, v in TERM.items()})))]),
            ),
            ("CustomerTypeRef", obj([("value", q(seg_type))])),
        ]
    )
    cu = cu.with_columns(street_s=pl.col("street_s"), addr_id=pl.col("addr_id"))

    invoice_ids = iv.select("inv", "Id", "DocNumber")
    unapplied_truth = _unapplied_truth(sim, pays, invoice_ids)
    iv = _narrow(iv, invoice_expr, "inv", "cust")
    pays = _narrow(pays, payment_expr)
    cr = _narrow(cr, creditmemo_expr)
    return QboOut(
        customers=cu.sort(pl.col("cid").cast(pl.Int64)),
        invoices=iv.sort(pl.col("Id").cast(pl.Int64)),
        payments=pays.sort(pl.col("Id").cast(pl.Int64)),
        creditmemos=cr.sort(pl.col("Id").cast(pl.Int64)),
        customer_expr=customer_expr,
        invoice_expr=invoice_expr,
        payment_expr=payment_expr,
        creditmemo_expr=creditmemo_expr,
        invoice_ids=invoice_ids,
        invoice_prepare=invoice_prepare,
        unapplied_truth=unapplied_truth,
    )
