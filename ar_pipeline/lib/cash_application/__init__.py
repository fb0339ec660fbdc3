"""Cash application: match unapplied money to open invoices (see `matching`), bank lines that are
Stripe payouts to the payouts (see `payouts`), read bank statements through a YAML layout, and score
auto-applied matches against the generator's truth."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl

from ar_pipeline.lib.warehouse import table_exists

from .config import (
    AnalyticsConfigError,
    BankStatementLayout,
    CashApplicationConfig,
    load_yaml_model,
)
from .matching import PAYMENT_COLUMNS, SUGGESTION_SCHEMA, Matcher, match_payments, normalise_name
from .payouts import PAYOUT_COLUMNS

__all__ = [
    "PAYMENT_COLUMNS",
    "PAYOUT_COLUMNS",
    "SUGGESTION_SCHEMA",
    "AnalyticsConfigError",
    "BankStatementLayout",
    "CashApplicationConfig",
    "Matcher",
    "evaluate",
    "load_yaml_model",
    "match_payments",
    "normalise_name",
    "read_bank_statements",
    "suggestions_from_warehouse",
]

OPEN_INVOICES_SQL = """
SELECT i.invoice_key, i.invoice_number, i.customer_id, c.customer_name, i.currency,
       CAST(i.open_amount AS DOUBLE) AS open_amount, CAST(i.exchange_rate AS DOUBLE) AS exchange_rate, i.due_date
FROM marts.fct_invoices i LEFT JOIN marts.dim_customers c ON c.customer_id = i.customer_id
WHERE i.status = 'open' AND i.open_amount > 0
ORDER BY i.invoice_key
"""

# unapplied payments and open credit memos: the customer is known, there is no reference text
UNAPPLIED_SQL = """
SELECT 'unapplied:' || credit_key AS payment_key, credit_type AS payment_source, document_date AS payment_date,
       CAST(unapplied_amount AS DOUBLE) AS amount, currency, CAST(NULL AS VARCHAR) AS reference,
       customer_name AS payer_name, customer_id
FROM marts.fct_unapplied_cash ORDER BY credit_key
"""

PAYOUTS_SQL = """
SELECT payout_id, currency, CAST(amount AS DOUBLE) AS amount, arrival_date, charge_count,
       CAST(charge_gross_amount AS DOUBLE) AS charge_gross_amount, CAST(fee_amount AS DOUBLE) AS fee_amount,
       CAST(refund_amount AS DOUBLE) AS refund_amount, CAST(dispute_amount AS DOUBLE) AS dispute_amount, is_reconciled
FROM marts.fct_stripe_payouts WHERE status NOT IN ('canceled', 'failed') ORDER BY payout_id
"""


def _amount(text: str | None, decimal: str) -> float | None:
    if text is None or not str(text).strip():
        return None
    s = str(text).strip().replace(" ", "")
    s = s.replace("," if decimal == "." else ".", "").replace(decimal, ".")
    try:
        return float(s)
    except ValueError:
        return None


def read_bank_statements(landing_dir: Path, layout: BankStatementLayout, as_of: date | None = None) -> pl.DataFrame:
    """Every bank-statement file under `<landing>/<landing_subdir>` as payment rows (PAYMENT_COLUMNS):
    credits only (unless configured otherwise), dated on or before `as_of`. A row whose date or
    amount cannot be read raises a ValueError naming the file, row and column."""
    folder = Path(landing_dir) / layout.landing_subdir
    files = sorted({p for pat in layout.files for p in folder.glob(pat) if p.is_file()})
    c = layout.columns
    rows = []
    for f in files:
        df = pl.read_csv(f, separator=layout.delimiter, infer_schema=False)
        missing = [
            v for v in (c.date, c.amount, c.reference, c.payer_name, c.currency, c.line_id) if v and v not in df.columns
        ]
        if missing:
            raise ValueError(
                f"{f}: columns {missing} (from the bank layout config) are not in the file; it has {df.columns}"
            )
        for n, r in enumerate(df.to_dicts(), start=2):
            try:
                d = datetime.strptime((r[c.date] or "").strip(), layout.date_format).date()
            except ValueError as exc:
                raise ValueError(
                    f"{f}: row {n}, column {c.date!r}: {r[c.date]!r} is not a date ({layout.date_format})"
                ) from exc
            amt = _amount(r[c.amount], layout.decimal_separator)
            if amt is None:
                raise ValueError(f"{f}: row {n}, column {c.amount!r}: {r[c.amount]!r} is not an amount")
            if (layout.credits_only and amt <= 0) or (as_of is not None and d > as_of):
                continue
            line = (r[c.line_id] if c.line_id else None) or f"{f.name}:{n}"
            rows.append(
                {
                    "payment_key": f"bank:{line}",
                    "payment_source": "bank_statement",
                    "payment_date": d,
                    "amount": amt,
                    "currency": ((r[c.currency] if c.currency else None) or layout.default_currency).upper(),
                    "reference": r[c.reference],
                    "payer_name": r[c.payer_name],
                    "customer_id": None,
                }
            )
    return pl.DataFrame(rows, schema=PAYMENT_COLUMNS) if rows else pl.DataFrame(schema=PAYMENT_COLUMNS)


def suggestions_from_warehouse(conn, landing_dir: Path, config_dir: Path, as_of: date | None) -> pl.DataFrame:
    """Match everything unapplied in the marts and the bank statements under the landing folder
    (configs `cash_application.yaml`, `bank_statement.yaml` in `config_dir`); adds `as_of_date`."""
    cfg = load_yaml_model(config_dir / "cash_application.yaml", CashApplicationConfig)
    layout = load_yaml_model(config_dir / "bank_statement.yaml", BankStatementLayout)
    invoices = conn.sql(OPEN_INVOICES_SQL).pl()
    unapplied = conn.sql(UNAPPLIED_SQL).pl().cast(PAYMENT_COLUMNS)
    bank = read_bank_statements(landing_dir, layout, as_of)
    payouts = (
        conn.sql(PAYOUTS_SQL).pl()
        if table_exists(conn, "marts", "fct_stripe_payouts")
        else pl.DataFrame(schema=PAYOUT_COLUMNS)
    )
    out = match_payments(pl.concat([unapplied, bank]), invoices, cfg, payouts)
    return out.with_columns(pl.lit(as_of, dtype=pl.Date).alias("as_of_date"))


def _keys(col: str) -> pl.Expr:
    return pl.col(col).drop_nulls().sort().str.join(",")


def _score(j: pl.DataFrame) -> dict[str, object]:
    """j: one row per payment with want (truth key, '' = pays nothing), got, auto."""
    j = j.with_columns(pl.col("auto").fill_null(False), (pl.col("want") != "").alias("payable")).with_columns(
        (pl.col("auto") & (pl.col("got") == pl.col("want")) & pl.col("payable")).alias("correct")
    )
    auto, correct, payable = int(j["auto"].sum()), int(j["correct"].sum()), int(j["payable"].sum())
    return {
        "lines": j.height,
        "payable": payable,
        "auto_applied": auto,
        "correct_auto_applied": correct,
        "precision": correct / auto if auto else 1.0,
        "recall": correct / payable if payable else 1.0,
        "_frame": j,
    }


def evaluate(
    suggestions: pl.DataFrame,
    truth: pl.DataFrame,
    invoices: pl.DataFrame,
    stripe_truth: pl.DataFrame | None = None,
    quickbooks_truth: pl.DataFrame | None = None,
) -> dict[str, object]:
    """Precision and recall of auto-applied matches against the generator's truth.

    `truth`: _ground_truth/bank_matches.parquet (a line pays invoices, or is a Stripe payout naming
    `payout_id`, or pays nothing); `stripe_truth`: _ground_truth/stripe_unapplied_charges.parquet;
    `quickbooks_truth`: _ground_truth/quickbooks_unapplied_payments.parquet (a payment pays invoices,
    or nothing: on account, an overpaid part, or `identifiable` false where the books give no clear
    answer, so auto-applying it counts as wrong); `invoices`: invoice_key, source, source_invoice_id
    (to name truth invoices by key). A payment is correctly auto-matched when it is auto-applied to
    exactly the invoices it pays (or to its payout). Precision = correct / auto-applied; recall =
    correct / payments that pay something identifiable.

    Top-level figures are the bank lines' (with `by_pattern` and `wrong`); `by_source` has bank lines,
    Stripe unapplied charges and QuickBooks unapplied payments (without `quickbooks_truth`: counts
    only, precision and recall None; with it also its `by_pattern` and `wrong`); `overall` pools the
    sources that have truth."""
    keys = invoices.select("invoice_key", "source", "source_invoice_id")
    t = truth.join(keys, on=["source", "source_invoice_id"], how="left")
    if "payout_id" not in t.columns:
        t = t.with_columns(pl.lit(None, dtype=pl.String).alias("payout_id"))
    want = t.group_by("bank_reference").agg(
        pl.col("pattern").first(),
        pl.when(pl.col("payout_id").drop_nulls().len() > 0)
        .then(pl.lit("payout:") + pl.col("payout_id").drop_nulls().first())
        .otherwise(_keys("invoice_key"))
        .alias("want"),
    )
    sug = suggestions if "payout_id" in suggestions.columns else suggestions.with_columns(payout_id=pl.lit(None))
    per_payment = sug.group_by("payment_key").agg(
        pl.col("auto_apply").any().alias("auto"),
        pl.when(pl.col("payout_id").drop_nulls().len() > 0)
        .then(pl.lit("payout:") + pl.col("payout_id").drop_nulls().first())
        .otherwise(_keys("invoice_key"))
        .alias("got"),
        pl.col("match_pattern").first(),
        pl.col("payment_source").first(),
    )
    got = per_payment.filter(pl.col("payment_source") == "bank_statement").with_columns(
        pl.col("payment_key").str.strip_prefix("bank:").alias("bank_reference")
    )
    bank = _score(want.join(got, on="bank_reference", how="left"))
    j = bank.pop("_frame")
    per = (
        j.group_by("pattern")
        .agg(lines=pl.len(), auto_applied=pl.col("auto").sum(), correct=pl.col("correct").sum())
        .sort("pattern")
    )
    by_source: dict[str, dict[str, object]] = {"bank_statement": dict(bank)}
    unapplied = per_payment.filter(pl.col("payment_key").str.starts_with("unapplied:")).with_columns(
        pl.col("payment_key").str.extract(r"^unapplied:([a-z_]+):").alias("src")
    )
    pooled = [j.select("want", "got", "auto")]
    if stripe_truth is not None:
        st = stripe_truth.join(keys, on=["source", "source_invoice_id"], how="left").group_by("charge_id").agg(
            _keys("invoice_key").alias("want")
        )
        sg = unapplied.filter(pl.col("src") == "stripe").with_columns(
            pl.col("payment_key").str.extract(r"^unapplied:stripe:(.+):unapplied$").alias("charge_id")
        )
        s = _score(st.join(sg, on="charge_id", how="left"))
        pooled.append(s.pop("_frame").select("want", "got", "auto"))
        by_source["stripe_unapplied"] = s
    q = unapplied.filter(pl.col("src") == "quickbooks")
    if quickbooks_truth is not None:
        qt = (
            quickbooks_truth.join(keys, on=["source", "source_invoice_id"], how="left")
            .group_by("payment_id")
            .agg(
                pl.col("pattern").first(),
                pl.when(pl.col("identifiable").all()).then(_keys("invoice_key")).otherwise(pl.lit("")).alias("want"),
            )
        )
        qg = q.with_columns(
            pl.col("payment_key").str.extract(r"^unapplied:quickbooks:(.+):unapplied$").alias("payment_id")
        )
        qs = _score(qt.join(qg.drop("match_pattern"), on="payment_id", how="left"))
        qj = qs.pop("_frame")
        pooled.append(qj.select("want", "got", "auto"))
        qs["by_pattern"] = (
            qj.group_by("pattern")
            .agg(lines=pl.len(), auto_applied=pl.col("auto").sum(), correct=pl.col("correct").sum())
            .sort("pattern")
            .to_dicts()
        )
        qs["wrong"] = (
            qj.filter(pl.col("auto") & ~pl.col("correct")).select("payment_id", "pattern", "want", "got").to_dicts()
        )
        by_source["quickbooks_unapplied"] = qs
    else:
        by_source["quickbooks_unapplied"] = {
            "lines": q.height,
            "payable": None,
            "auto_applied": int(q["auto"].sum()),
            "correct_auto_applied": None,
            "precision": None,
            "recall": None,
        }
    overall = _score(pl.concat(pooled))
    overall.pop("_frame")
    return {
        "bank_lines": bank["lines"],
        "payable_lines": bank["payable"],
        "auto_applied": bank["auto_applied"],
        "correct_auto_applied": bank["correct_auto_applied"],
        "precision": bank["precision"],
        "recall": bank["recall"],
        "by_pattern": per.to_dicts(),
        "by_source": by_source,
        "overall": overall,
        "wrong": j.filter(pl.col("auto") & ~pl.col("correct"))
        .select("bank_reference", "pattern", "match_pattern", "want", "got")
        .to_dicts(),
    }
