"""Stripe list pages (API 2025-03-31.basil+ shapes) from a Sim."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from . import stripe_balance
from .jsonfmt import L, b, frag, obj, q, qn, s, sn, stripe_ids
from .simulate import CURRENCIES, STRIPE, Sim

ITEMS = [
    "Platform subscription",
    "Professional services",
    "Usage overage",
    "Onboarding package",
    "Premium support",
    "API calls bundle",
    "Seat licenses",
    "Data export add-on",
    "Training workshop",
    "Integration setup",
    "Storage add-on",
    "Consulting hours",
]


@dataclass
class StripeOut:
    frames: dict[str, pl.DataFrame]
    exprs: dict[str, pl.Expr]
    # per-entity hooks that add heavy rendered columns to one write slice at a time
    prepares: dict[str, Callable[[pl.DataFrame], pl.DataFrame]] = field(default_factory=dict)
    # ground truth of the money movement (stripe_balance): name -> table
    truth: dict[str, pl.DataFrame] = field(default_factory=dict)


def _ts(rng, days: np.ndarray, lo_h: float, hi_h: float) -> np.ndarray:
    return days * 86400 + rng.integers(int(lo_h * 3600), int(hi_h * 3600), len(days))


def build(sim: Sim) -> StripeOut:
    cfg = sim.cfg
    rng = np.random.default_rng([cfg.seed, 7202])
    salt = cfg.seed % 1_000_003
    end = sim.end_day

    # ------------------------------------------------------------- customers
    cu = sim.customers.filter(pl.col("source") == STRIPE).sort("created", "cust")
    nc = cu.height
    cus_ids = stripe_ids("cus_", np.arange(nc), salt + 1)
    prefixes = [f"{(x * 2_654_435_761 + salt * 97 + 0x1A2B3C) % 0xFFFFFFFF:08X}" for x in range(nc)]
    cu = cu.with_columns(
        cus_id=pl.Series(cus_ids, dtype=pl.String),
        prefix=pl.Series(prefixes, dtype=pl.String),
        created_ts=pl.Series(_ts(rng, cu["created"].to_numpy(), 8, 20)),
        cm=pl.when(pl.col("auto")).then(L("charge_automatically")).otherwise(L("send_invoice")),
        # Stripe writes currencies in lower case
        cur=pl.col("currency").replace_strict(
            {i: c.lower() for i, c in enumerate(CURRENCIES)}, return_dtype=pl.String
        ),
    )
    cmap = cu.select(
        "cust",
        "cus_id",
        "prefix",
        "name",
        "email",
        "cm",
        "country",
        "city",
        "postal",
        "street",
        "terms",
        "cur",
    )

    # ------------------------------------------------------------- invoices (finalized + drafts)
    iv = sim.invoices.filter(pl.col("source") == STRIPE).join(
        cmap, on="cust", how="left", maintain_order="left"
    )
    ni = iv.height
    cr_ts = _ts(rng, iv["day"].to_numpy(), 8, 10)
    iv = iv.with_columns(
        created_ts=pl.Series(cr_ts),
        fin_ts=pl.Series(cr_ts + rng.integers(60, 3600, ni)),
        void_ts=pl.Series(_ts(rng, np.minimum(iv["void_day"].to_numpy(), end + 1), 11, 19)),
        mark_ts=pl.Series(_ts(rng, np.minimum(iv["mark_day"].to_numpy(), end + 1), 11, 19)),
        cn_ts=pl.Series(_ts(rng, iv["credit_day"].to_numpy(), 9, 11)),
        draft=L(False),
    )
    iv = iv.with_columns(
        seq=pl.int_range(1, pl.len() + 1).over("cust", order_by=["day", "inv"]),
    ).with_columns(
        number=pl.concat_str([pl.col("prefix"), L("-"), pl.col("seq").cast(pl.String).str.zfill(4)])
    )

    dr = sim.drafts.join(cmap, on="cust", how="left", maintain_order="left")
    d_ts = _ts(rng, dr["day"].to_numpy(), 8, 10)
    dr = dr.select(
        pl.col("idx") + (10**9),
        "cust",
        "day",
        (pl.col("day") + pl.col("terms")).alias("due"),
        pl.col("amount").alias("subtotal"),
        pl.col("amount").alias("total"),
        (pl.col("cm") == "charge_automatically").alias("auto"),
        L(1).alias("n_lines"),
        *[pl.col(c) for c in cmap.columns if c != "cust"],
        created_ts=pl.Series(d_ts),
        draft=L(True),
    ).rename({"idx": "inv"})

    # invoice payments / charges
    ap = sim.applications.join(
        iv.select(
            "inv", "cust", "cus_id", "number", "auto", "name", "email", "country", "city", "postal",
            "cur",
        ),
        on="inv",
        how="inner",
        maintain_order="left",
    ).sort("day", "part")
    na = ap.height
    ap = ap.with_columns(
        paid_ts=pl.Series(_ts(rng, ap["day"].to_numpy(), 12, 19.5)),
        inpay_id=pl.Series(stripe_ids("inpay_", ap["part"].to_numpy(), salt + 2), dtype=pl.String),
        ch_id=pl.Series(stripe_ids("ch_", ap["part"].to_numpy(), salt + 3), dtype=pl.String),
        pi_id=pl.Series(stripe_ids("pi_", ap["part"].to_numpy(), salt + 4), dtype=pl.String),
        txn_id=pl.Series(stripe_ids("txn_", ap["part"].to_numpy(), salt + 5), dtype=pl.String),
        pm_id=pl.Series(stripe_ids("pm_", ap["part"].to_numpy(), salt + 6), dtype=pl.String),
        bank=pl.Series(rng.random(na) < 0.7) & ~pl.col("auto"),
        last4=pl.Series(rng.integers(1000, 9999, na)).cast(pl.String),
        exp_m=pl.Series(rng.integers(1, 13, na)),
        exp_y=pl.col("day").cast(pl.Int32).cast(pl.Date).dt.year()
        + pl.Series(rng.integers(1, 5, na)),
    )
    ap = ap.with_columns(n_inv_parts=pl.len().over("inv"))

    # refunds (+ post-payment credit notes) and disputes
    rf = sim.refunds.join(
        ap.select("part", "inv", "cust", "cus_id", "ch_id", "pi_id", "number", "cur"),
        on="part",
        how="inner",
        maintain_order="left",
    ).sort("day", "part")
    nrf = rf.height
    rf = rf.with_columns(
        created_ts=pl.Series(_ts(rng, rf["day"].to_numpy(), 9, 19)),
        re_id=pl.Series(stripe_ids("re_", np.arange(nrf), salt + 7), dtype=pl.String),
        txn_id=pl.Series(stripe_ids("txn_", np.arange(nrf) + 10**9, salt + 5), dtype=pl.String),
    )
    ap = ap.join(
        rf.group_by("part").agg(pl.col("amount").sum().alias("refunded_amt")),
        on="part",
        how="left",
        maintain_order="left",
    ).with_columns(pl.col("refunded_amt").fill_null(0))
    dp = sim.disputes.join(
        ap.select("part", "ch_id", "pi_id", "cur"), on="part", how="inner", maintain_order="left"
    ).sort("day", "part")
    ndp = dp.height
    dp = dp.with_columns(
        created_ts=pl.Series(_ts(rng, dp["day"].to_numpy(), 9, 19)),
        dp_id=pl.Series(stripe_ids("dp_", np.arange(ndp), salt + 8), dtype=pl.String),
    )
    ap = ap.with_columns(disputed=pl.col("part").is_in(dp["part"].implode()))

    # invoice-level aggregates
    inv_paid = ap.group_by("inv").agg(pl.col("paid_ts").max().alias("paid_at"))
    post_cn = rf.group_by("inv").agg(pl.col("amount").sum().alias("post_cn"))
    iv = iv.join(inv_paid, on="inv", how="left", maintain_order="left").join(
        post_cn, on="inv", how="left", maintain_order="left"
    )
    iv = iv.with_columns(
        pre_cn=pl.when(pl.col("has_credit")).then(pl.col("credit_amount")).otherwise(0),
        post_cn=pl.col("post_cn").fill_null(0),
        attempt=pl.when(pl.col("auto"))
        .then(1 + 2 * pl.col("retry").cast(pl.Int64))
        .otherwise(pl.col("n_parts")),
    )
    iv = iv.with_columns(
        amount_due=pl.col("total") - pl.col("pre_cn"),
        amount_paid=pl.col("paid_sum"),
    ).with_columns(
        amount_remaining=pl.when(pl.col("void"))
        .then(0)
        .otherwise(pl.col("amount_due") - pl.col("amount_paid")),
        eff_ts=pl.col("fin_ts"),
        paid_at=pl.when(pl.col("status") == "paid").then(pl.col("paid_at")).otherwise(None),
        voided_at=pl.when(pl.col("void")).then(pl.max_horizontal("void_ts", pl.col("fin_ts") + 60)),
        unc_at=pl.when(pl.col("status") == "uncollectible").then(pl.col("mark_ts")),
    )
    dr = dr.with_columns(
        status=L("draft"),
        number=L(None, dtype=pl.String),
        pre_cn=L(0),
        post_cn=L(0),
        attempt=L(0),
        amount_due=pl.col("total"),
        amount_paid=L(0),
        amount_remaining=pl.col("total"),
        eff_ts=L(None, dtype=pl.Int64),
        fin_ts=L(None, dtype=pl.Int64),
        paid_at=L(None, dtype=pl.Int64),
        voided_at=L(None, dtype=pl.Int64),
        unc_at=L(None, dtype=pl.Int64),
    )
    icols = [
        "inv",
        "cust",
        "cus_id",
        "name",
        "email",
        "cm",
        "country",
        "city",
        "postal",
        "street",
        "day",
        "due",
        "subtotal",
        "total",
        "auto",
        "n_lines",
        "created_ts",
        "status",
        "number",
        "pre_cn",
        "post_cn",
        "attempt",
        "amount_due",
        "amount_paid",
        "amount_remaining",
        "eff_ts",
        "fin_ts",
        "paid_at",
        "voided_at",
        "unc_at",
        "draft",
        "cur",
    ]
    allinv = pl.concat([iv.select(icols), dr.select(icols)], how="vertical_relaxed")
    allinv = allinv.with_columns(
        in_id=pl.Series(
            stripe_ids(
                "in_",
                np.where(
                    allinv["draft"].to_numpy(),
                    allinv["inv"].to_numpy() - 10**9 + 2 * 10**8,
                    allinv["inv"].to_numpy(),
                ),
                salt + 9,
            ),
            dtype=pl.String,
        ),
        due_ts=pl.when(pl.col("auto"))
        .then(None)
        .otherwise(pl.col("due") * 86400 + pl.col("created_ts") % 86400),
    )
    in_map = allinv.select("inv", "in_id")

    # invoice lines
    ln = sim.lines.join(iv.select("inv"), on="inv", how="inner", maintain_order="left")
    dln = dr.select(
        "inv",
        L(1).alias("line_no"),
        L(1).alias("qty"),
        pl.col("total").alias("unit"),
        pl.col("total").alias("amount"),
        (pl.col("inv") % 12).alias("item"),
    )
    ln = pl.concat(
        [
            ln.with_columns(g=pl.int_range(0, pl.len())),
            dln.with_columns(g=pl.int_range(0, pl.len()) + 10**9),
        ],
        how="vertical_relaxed",
    )
    item = pl.col("item")
    line_j = obj(
        [
            ("id", q(pl.col("il_id"))),
            ("object", '"line_item"'),
            ("amount", s(pl.col("amount"))),
            ("currency", q(pl.col("cur"))),
            ("description", q(pl.col("desc"))),
            ("discount_amounts", "[]"),
            ("discountable", "true"),
            ("discounts", "[]"),
            ("invoice", q(pl.col("in_id"))),
            ("livemode", "false"),
            ("metadata", "{}"),
            (
                "parent",
                frag(
                    [
                        '{"type":"invoice_item_details","invoice_item_details":{"invoice_item":"',
                        pl.col("ii_id"),
                        '","proration":false,"proration_details":{"credited_items":null},'
                        '"subscription":null},"subscription_item_details":null}',
                    ]
                ),
            ),
            (
                "period",
                frag(
                    [
                        '{"end":',
                        s(pl.col("created_ts")),
                        ',"start":',
                        s(pl.col("created_ts")),
                        "}",
                    ]
                ),
            ),
            ("pretax_credit_amounts", "[]"),
            (
                "pricing",
                frag(
                    [
                        '{"type":"price_details","price_details":{"price":"',
                        pl.col("price_id"),
                        '","product":"',
                        pl.col("prod_id"),
                        '"},"unit_amount_decimal":"',
                        s(pl.col("unit")),
                        '"}',
                    ]
                ),
            ),
            ("quantity", s(pl.col("qty"))),
            ("taxes", "[]"),
        ]
    )

    def invoice_prepare(part: pl.DataFrame) -> pl.DataFrame:
        """Render the invoice lines (``lines_j``) for one slice of invoices only."""
        lnc = ln.join(
            part.select("inv", "in_id", "created_ts", "cur"), on="inv", how="inner", maintain_order="left"
        )
        gl = lnc["g"].to_numpy()
        lnc = lnc.with_columns(
            il_id=pl.Series(stripe_ids("il_", gl, salt + 10), dtype=pl.String),
            ii_id=pl.Series(stripe_ids("ii_", gl, salt + 11), dtype=pl.String),
            price_id=pl.concat_str(
                [L("price_1DemoPrice"), item.cast(pl.String).str.zfill(2), L("x")]
            ),
            prod_id=pl.concat_str([L("prod_DemoProduct"), item.cast(pl.String).str.zfill(2)]),
            desc=item.replace_strict(dict(enumerate(ITEMS)), return_dtype=pl.String),
        ).select("inv", "line_no", line_j.alias("lj"))
        lagg = lnc.group_by("inv").agg(
            pl.col("lj").sort_by("line_no").str.join(",").alias("lines_j")
        )
        return part.join(lagg, on="inv", how="left", maintain_order="left")

    addr = obj(
        [
            ("city", q(pl.col("city"))),
            ("country", q(pl.col("country"))),
            ("line1", frag(['"', s(pl.col("street")), ' Market Street"'])),
            ("line2", "null"),
            ("postal_code", q(pl.col("postal").cast(pl.String))),
            ("state", "null"),
        ]
    )
    st = obj(
        [
            ("finalized_at", sn(pl.col("fin_ts"))),
            ("marked_uncollectible_at", sn(pl.col("unc_at"))),
            ("paid_at", sn(pl.col("paid_at"))),
            ("voided_at", sn(pl.col("voided_at"))),
        ]
    )
    invoice_expr = obj(
        [
            ("id", q(pl.col("in_id"))),
            ("object", '"invoice"'),
            ("account_country", '"US"'),
            ("account_name", '"Demo Co"'),
            ("amount_due", s(pl.col("amount_due"))),
            ("amount_overpaid", "0"),
            ("amount_paid", s(pl.col("amount_paid"))),
            ("amount_remaining", s(pl.col("amount_remaining"))),
            ("amount_shipping", "0"),
            ("attempt_count", s(pl.col("attempt"))),
            ("attempted", b(pl.col("attempt") > 0)),
            ("auto_advance", b(~pl.col("draft"))),
            ("billing_reason", '"manual"'),
            ("collection_method", q(pl.col("cm"))),
            ("created", s(pl.col("created_ts"))),
            ("currency", q(pl.col("cur"))),
            ("customer", q(pl.col("cus_id"))),
            ("customer_address", addr),
            ("customer_email", q(pl.col("email"))),
            ("customer_name", q(pl.col("name"))),
            ("customer_phone", "null"),
            ("customer_tax_exempt", '"none"'),
            ("default_payment_method", "null"),
            ("description", "null"),
            ("discounts", "[]"),
            ("due_date", sn(pl.col("due_ts"))),
            ("effective_at", sn(pl.col("eff_ts"))),
            ("ending_balance", pl.when(pl.col("draft")).then(L("null")).otherwise(L("0"))),
            ("footer", "null"),
            ("issuer", '{"type":"self"}'),
            (
                "lines",
                frag(
                    [
                        '{"object":"list","data":[',
                        pl.col("lines_j"),
                        '],"has_more":false,"total_count":',
                        s(pl.col("n_lines")),
                        ',"url":"/v1/invoices/',
                        pl.col("in_id"),
                        '/lines"}',
                    ]
                ),
            ),
            ("livemode", "false"),
            ("metadata", "{}"),
            ("next_payment_attempt", "null"),
            ("number", qn(pl.col("number"))),
            ("period_end", s(pl.col("created_ts"))),
            ("period_start", s(pl.col("created_ts"))),
            ("post_payment_credit_notes_amount", s(pl.col("post_cn"))),
            ("pre_payment_credit_notes_amount", s(pl.col("pre_cn"))),
            ("starting_balance", "0"),
            ("status", q(pl.col("status"))),
            ("status_transitions", st),
            ("subtotal", s(pl.col("subtotal"))),
            ("subtotal_excluding_tax", s(pl.col("subtotal"))),
            ("total", s(pl.col("total"))),
            ("total_discount_amounts", "[]"),
            ("total_excluding_tax", s(pl.col("total"))),
            ("total_taxes", "[]"),
        ]
    )

    # ------------------------------------------------------------- invoice_payments & charges
    ap = ap.join(in_map, on="inv", how="left", maintain_order="left")
    inpay_expr = obj(
        [
            ("id", q(pl.col("inpay_id"))),
            ("object", '"invoice_payment"'),
            ("amount_paid", s(pl.col("amount"))),
            ("amount_requested", s(pl.col("amount"))),
            ("created", s(pl.col("paid_ts"))),
            ("currency", q(pl.col("cur"))),
            ("invoice", q(pl.col("in_id"))),
            ("is_default", b(pl.col("n_inv_parts") == 1)),
            ("livemode", "false"),
            ("payment", frag(['{"type":"charge","charge":"', pl.col("ch_id"), '"}'])),
            ("status", '"paid"'),
            (
                "status_transitions",
                frag(['{"canceled_at":null,"paid_at":', s(pl.col("paid_ts")), "}"]),
            ),
        ]
    )
    pmd = (
        pl.when(pl.col("bank"))
        .then(
            frag(
                [
                    '{"type":"us_bank_account","us_bank_account":{"account_holder_type":"company",'
                    '"account_type":"checking","bank_name":"STRIPE TEST BANK","last4":"',
                    pl.col("last4"),
                    '","routing_number":"110000000"}}',
                ]
            )
        )
        .otherwise(
            frag(
                [
                    '{"type":"card","card":{"brand":"visa","country":"US","exp_month":',
                    s(pl.col("exp_m")),
                    ',"exp_year":',
                    s(pl.col("exp_y")),
                    ',"funding":"credit","last4":"',
                    pl.col("last4"),
                    '","network":"visa"}}',
                ]
            )
        )
    )
    charge_expr = obj(
        [
            ("id", q(pl.col("ch_id"))),
            ("object", '"charge"'),
            ("amount", s(pl.col("amount"))),
            ("amount_captured", s(pl.col("amount"))),
            ("amount_refunded", s(pl.col("refunded_amt"))),
            ("balance_transaction", q(pl.col("txn_id"))),
            (
                "billing_details",
                obj(
                    [
                        (
                            "address",
                            obj(
                                [
                                    ("city", q(pl.col("city"))),
                                    ("country", q(pl.col("country"))),
                                    ("line1", "null"),
                                    ("line2", "null"),
                                    ("postal_code", q(pl.col("postal").cast(pl.String))),
                                    ("state", "null"),
                                ]
                            ),
                        ),
                        ("email", q(pl.col("email"))),
                        ("name", q(pl.col("name"))),
                        ("phone", "null"),
                    ]
                ),
            ),
            ("captured", "true"),
            ("created", s(pl.col("paid_ts"))),
            ("currency", q(pl.col("cur"))),
            ("customer", q(pl.col("cus_id"))),
            ("description", frag(['"Payment for Invoice ', pl.col("number"), '"'])),
            ("disputed", b(pl.col("disputed"))),
            ("failure_code", "null"),
            ("failure_message", "null"),
            ("livemode", "false"),
            ("metadata", "{}"),
            (
                "outcome",
                '{"network_status":"approved_by_network","reason":null,"risk_level":"normal",'
                '"seller_message":"Payment complete.","type":"authorized"}',
            ),
            ("paid", "true"),
            ("payment_intent", q(pl.col("pi_id"))),
            ("payment_method", q(pl.col("pm_id"))),
            ("payment_method_details", pmd),
            ("refunded", b(pl.col("refunded_amt") == pl.col("amount"))),
            ("status", '"succeeded"'),
        ]
    )

    # ------------------------------------------------------------- refunds, disputes, credit notes
    refund_expr = obj(
        [
            ("id", q(pl.col("re_id"))),
            ("object", '"refund"'),
            ("amount", s(pl.col("amount"))),
            ("balance_transaction", q(pl.col("txn_id"))),
            ("charge", q(pl.col("ch_id"))),
            ("created", s(pl.col("created_ts"))),
            ("currency", q(pl.col("cur"))),
            ("metadata", "{}"),
            ("payment_intent", q(pl.col("pi_id"))),
            ("reason", '"requested_by_customer"'),
            ("receipt_number", "null"),
            ("status", '"succeeded"'),
        ]
    )
    dispute_expr = obj(
        [
            ("id", q(pl.col("dp_id"))),
            ("object", '"dispute"'),
            ("amount", s(pl.col("amount"))),
            ("balance_transactions", pl.col("dp_bts")),
            ("charge", q(pl.col("ch_id"))),
            ("created", s(pl.col("created_ts"))),
            ("currency", q(pl.col("cur"))),
            (
                "evidence_details",
                frag(
                    [
                        '{"due_by":',
                        s((pl.col("day") + 21) * 86400 + 86399),
                        ',"has_evidence":',
                        b(pl.col("status").is_in(["won", "lost", "under_review"])),
                        ',"past_due":false,"submission_count":',
                        pl.when(pl.col("status") == "needs_response")
                        .then(L("0"))
                        .otherwise(L("1")),
                        "}",
                    ]
                ),
            ),
            ("is_charge_refundable", b(pl.col("status") == "needs_response")),
            ("livemode", "false"),
            ("metadata", "{}"),
            ("payment_intent", q(pl.col("pi_id"))),
            ("reason", q(pl.col("reason"))),
            ("status", q(pl.col("status"))),
        ]
    )
    pre = iv.filter(pl.col("has_credit")).select(
        "inv",
        "cus_id",
        "number",
        "cur",
        pl.col("credit_amount").alias("amount"),
        pl.col("cn_ts").alias("created_ts"),
        L("pre_payment").alias("type"),
        L(None, dtype=pl.String).alias("re_id"),
        L("order_change").alias("reason"),
    )
    post = rf.select(
        "inv",
        "cus_id",
        "number",
        "cur",
        "amount",
        "created_ts",
        L("post_payment").alias("type"),
        "re_id",
        L("product_unsatisfactory").alias("reason"),
    )
    cn = pl.concat([pre, post], how="vertical_relaxed").sort("created_ts", "inv", "type")
    ncn = cn.height
    cn = cn.with_columns(
        cn_id=pl.Series(stripe_ids("cn_", np.arange(ncn), salt + 12), dtype=pl.String),
        cnli_id=pl.Series(stripe_ids("cnli_", np.arange(ncn), salt + 13), dtype=pl.String),
        seq=pl.int_range(1, pl.len() + 1).over("inv", order_by="created_ts"),
    ).join(in_map, on="inv", how="left", maintain_order="left")
    is_pre = pl.col("type") == "pre_payment"
    credit_note_expr = obj(
        [
            ("id", q(pl.col("cn_id"))),
            ("object", '"credit_note"'),
            ("amount", s(pl.col("amount"))),
            ("amount_shipping", "0"),
            ("created", s(pl.col("created_ts"))),
            ("currency", q(pl.col("cur"))),
            ("customer", q(pl.col("cus_id"))),
            ("customer_balance_transaction", "null"),
            ("discount_amount", "0"),
            ("discount_amounts", "[]"),
            ("effective_at", s(pl.col("created_ts"))),
            ("invoice", q(pl.col("in_id"))),
            (
                "lines",
                frag(
                    [
                        '{"object":"list","data":[{"id":"',
                        pl.col("cnli_id"),
                        '","object":"credit_note_line_item","amount":',
                        s(pl.col("amount")),
                        ',"description":"Credit","discount_amount":0,'
                        '"discount_amounts":[],"livemode":false,"quantity":1,"tax_rates":[],'
                        '"type":"custom_line_item","unit_amount":',
                        s(pl.col("amount")),
                        ',"unit_amount_decimal":"',
                        s(pl.col("amount")),
                        '"}],"has_more":false,"total_count":1,"url":"/v1/credit_notes/',
                        pl.col("cn_id"),
                        '/lines"}',
                    ]
                ),
            ),
            ("livemode", "false"),
            ("memo", "null"),
            ("metadata", "{}"),
            (
                "number",
                frag(
                    ['"', pl.col("number"), "-CN-", pl.col("seq").cast(pl.String).str.zfill(2), '"']
                ),
            ),
            ("out_of_band_amount", "null"),
            ("post_payment_amount", s(pl.when(is_pre).then(0).otherwise(pl.col("amount")))),
            ("pre_payment_amount", s(pl.when(is_pre).then(pl.col("amount")).otherwise(0))),
            ("reason", q(pl.col("reason"))),
            (
                "refunds",
                pl.when(is_pre)
                .then(L("[]"))
                .otherwise(
                    frag(
                        [
                            '[{"amount_refunded":',
                            s(pl.col("amount")),
                            ',"refund":"',
                            pl.col("re_id"),
                            '"}]',
                        ]
                    )
                ),
            ),
            ("status", '"issued"'),
            ("subtotal", s(pl.col("amount"))),
            ("subtotal_excluding_tax", s(pl.col("amount"))),
            ("total", s(pl.col("amount"))),
            ("total_excluding_tax", s(pl.col("amount"))),
            ("type", q(pl.col("type"))),
            ("voided_at", "null"),
        ]
    )

    # ------------------------------------------------------------- customer objects
    delinquent = (
        iv.filter(
            pl.col("status").is_in(["open", "uncollectible"])
            & (pl.col("due") < end)
            & (pl.col("amount_remaining") > 0)
        )
        .select("cust")
        .unique()
        .with_columns(delinquent=L(True))
    )
    n_fin = iv.group_by("cust").agg(pl.len().alias("n_fin"))
    cu = (
        cu.join(delinquent, on="cust", how="left", maintain_order="left")
        .join(n_fin, on="cust", how="left", maintain_order="left")
        .with_columns(
            pl.col("delinquent").fill_null(False), next_seq=pl.col("n_fin").fill_null(0) + 1
        )
    )
    customer_expr = obj(
        [
            ("id", q(pl.col("cus_id"))),
            ("object", '"customer"'),
            ("address", addr),
            ("balance", "0"),
            ("created", s(pl.col("created_ts"))),
            ("currency", q(pl.col("cur"))),
            ("default_source", "null"),
            ("delinquent", b(pl.col("delinquent"))),
            ("description", "null"),
            ("email", q(pl.col("email"))),
            ("invoice_prefix", q(pl.col("prefix"))),
            (
                "invoice_settings",
                '{"custom_fields":null,"default_payment_method":null,"footer":null,'
                '"rendering_options":null}',
            ),
            ("livemode", "false"),
            (
                "metadata",
                frag(
                    [
                        '{"region":"',
                        pl.col("region"),
                        '","segment":"',
                        pl.col("segment"),
                        '","payment_terms":"',
                        pl.when(pl.col("terms") == 0)
                        .then(L("due_on_receipt"))
                        .otherwise(pl.concat_str([L("net_"), pl.col("terms").cast(pl.String)])),
                        '"}',
                    ]
                ),
            ),
            ("name", q(pl.col("name"))),
            ("next_invoice_sequence", s(pl.col("next_seq"))),
            ("phone", q(pl.col("phone"))),
            ("preferred_locales", "[]"),
            ("shipping", "null"),
            ("tax_exempt", '"none"'),
            ("test_clock", "null"),
        ]
    )

    # ------------------------------------------------------------- money movement (own RNG stream)
    rng_b = np.random.default_rng([cfg.seed, stripe_balance.BALANCE_STREAM])
    un_ch, un_truth = stripe_balance.unapplied_charges(rng_b, iv, in_map, end, salt)
    all_ch = pl.concat([ap.select(un_ch.columns), un_ch], how="vertical_relaxed")
    bt, po, closes = stripe_balance.balance_transactions(rng_b, all_ch, rf, dp, end, salt)
    dp = dp.join(
        stripe_balance.dispute_balance_transactions(bt, closes), on="dp_id", how="left", maintain_order="left"
    )
    truth = {
        "stripe_unapplied_charges": un_truth,
        "stripe_payouts": stripe_balance.payout_truth(bt, po),
        "stripe_balance_transactions": bt.select(
            pl.col("txn_id").alias("balance_transaction_id"), "type", pl.col("category").alias("reporting_category"),
            "source", pl.col("cur").str.to_uppercase().alias("currency"), pl.col("amount").alias("amount_minor"),
            pl.col("fee").alias("fee_minor"), pl.col("net").alias("net_minor"), pl.col("payout").alias("payout_id"),
        ),
        "stripe_dispute_closes": closes.filter(pl.col("close_ts") > 0),
    }

    exprs = {
        "customers": customer_expr,
        "invoices": invoice_expr,
        "invoice_payments": inpay_expr,
        "charges": charge_expr,
        "refunds": refund_expr,
        "disputes": dispute_expr,
        "credit_notes": credit_note_expr,
        "balance_transactions": stripe_balance.BALANCE_TRANSACTION_EXPR,
        "payouts": stripe_balance.PAYOUT_EXPR,
    }
    # besides what the record expression reads: the truth's source ids and the lines hook's keys
    keep = {
        "customers": ("cust", "cus_id"),
        "invoices": ("inv", "in_id", "number", "draft", "created_ts"),
    }

    def newest(name: str, df: pl.DataFrame, ts: str, key: str) -> pl.DataFrame:
        """Newest first, narrowed to the columns the page writer / truth need."""
        need = set(exprs[name].meta.root_names()) | set(keep.get(name, ())) | {ts, key}
        return df.select([c for c in df.columns if c in need]).sort(
            [ts, key], descending=[True, True]
        )

    frames = {
        "customers": newest("customers", cu, "created_ts", "cus_id"),
        "invoices": newest("invoices", allinv, "created_ts", "in_id"),
        "invoice_payments": newest("invoice_payments", ap, "paid_ts", "inpay_id"),
        "charges": newest("charges", all_ch, "paid_ts", "ch_id"),
        "refunds": newest(
            "refunds",
            rf.join(
                ap.select("part", "amount").rename({"amount": "ch_amt"}), on="part", how="left"
            ),
            "created_ts",
            "re_id",
        ),
        "disputes": newest("disputes", dp, "created_ts", "dp_id"),
        "credit_notes": newest("credit_notes", cn, "created_ts", "cn_id"),
        "balance_transactions": newest("balance_transactions", bt, "created", "txn_id"),
        "payouts": newest("payouts", po, "created", "po_id"),
    }
    return StripeOut(frames=frames, exprs=exprs, prepares={"invoices": invoice_prepare}, truth=truth)
