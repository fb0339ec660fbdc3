"""Where each source keeps a PO number and the tax, named in invoice_rules.yaml, read into the two
columns the rules judge (`po_number`, `po_checked`, `tax_rate`). Pure functions, no database.

- QuickBooks: PO from the invoice's `CustomField` list (`Name` in `missing_po.quickbooks_custom_fields`,
  value `StringValue`); tax rate `TotalTax / (TotalAmt - TotalTax)`.
- Stripe: PO from `custom_fields` (`name` in `missing_po.stripe_custom_fields`, printed on the invoice)
  or else `metadata` (key in `missing_po.stripe_metadata_keys`); tax rate
  `(total - total_excluding_tax) / total_excluding_tax` (Stripe's total_excluding_tax is after
  discounts and before tax, so the difference is exactly the tax in every API version).
- Exports: PO from the mapped `po_number` column, else an extra column named in
  `missing_po.export_extra_columns`; tax from an extra column named in
  `unusual_tax_rate.export_tax_columns` (the amount of tax; the export's `amount` includes it).

Names and keys match without case. A source is only judged for a PO when the config names at least one
field for it (exports always: they have the `po_number` column).
"""

from __future__ import annotations

import json
import re

import polars as pl

from .config import InvoiceRulesConfig

RAW_FIELD_COLUMNS = {
    "source": pl.String,
    "is_export": pl.Boolean,
    "total_amount": pl.Float64,
    "qb_total_tax": pl.Float64,
    "qb_custom_fields": pl.String,
    "st_total_excluding_tax": pl.Float64,
    "st_custom_fields": pl.String,
    "st_metadata": pl.String,
    "ex_po_number": pl.String,
    "ex_extra": pl.String,
}


def _load(text: str | None):
    if text is None or not str(text).strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _pick(pairs: list[tuple[object, object]], names: list[str]) -> str | None:
    wanted = [n.strip().lower() for n in names]
    for want in wanted:  # config order decides between two fields
        for name, value in pairs:
            if isinstance(name, str) and name.strip().lower() == want and value is not None and str(value).strip():
                return str(value).strip()
    return None


def parse_amount_text(text: object) -> float | None:
    """'1,234.50', '1.234,50', '15,00', '15.00', '$ 12.5' -> float; the later of ',' and '.' is the
    decimal separator; a lone ',' is one when 1-2 digits follow it. None when not a number."""
    if text is None:
        return None
    if isinstance(text, int | float):
        return float(text)
    s = re.sub(r"[^0-9,.\-]", "", str(text))
    if not re.search(r"\d", s):
        return None
    if "," in s and "." in s:
        dec = "," if s.rfind(",") > s.rfind(".") else "."
    elif "," in s:
        dec = "," if re.search(r",\d{1,2}$", s) else None
    else:
        dec = "."
    thousands = {",", "."} - {dec}
    for t in thousands:
        s = s.replace(t, "")
    if dec == ",":
        s = s.replace(",", ".")
    try:
        return float(s)
    except ValueError:
        return None


def po_number(row: dict, cfg: InvoiceRulesConfig) -> tuple[str | None, bool]:
    """(PO number or None, whether this source is judged for a PO)."""
    rule = cfg.rules.missing_po
    src = row["source"]
    if row["is_export"]:
        extra = _load(row["ex_extra"])
        pairs = list(extra.items()) if isinstance(extra, dict) else []
        po = row["ex_po_number"] if row["ex_po_number"] and str(row["ex_po_number"]).strip() else None
        return po or _pick(pairs, rule.export_extra_columns), True
    if src == "quickbooks":
        fields = _load(row["qb_custom_fields"])
        pairs = [(f.get("Name"), f.get("StringValue")) for f in fields or [] if isinstance(f, dict)]
        return _pick(pairs, rule.quickbooks_custom_fields), bool(rule.quickbooks_custom_fields)
    if src == "stripe":
        fields = _load(row["st_custom_fields"])
        pairs = [(f.get("name"), f.get("value")) for f in fields or [] if isinstance(f, dict)]
        meta = _load(row["st_metadata"])
        meta_pairs = list(meta.items()) if isinstance(meta, dict) else []
        po = _pick(pairs, rule.stripe_custom_fields) or _pick(meta_pairs, rule.stripe_metadata_keys)
        return po, bool(rule.stripe_custom_fields or rule.stripe_metadata_keys)
    return None, False


def tax_rate(row: dict, cfg: InvoiceRulesConfig) -> float | None:
    """Tax as a share of the amount before tax; None when the source or invoice carries no tax."""
    total = row["total_amount"]
    if total is None:
        return None
    if row["is_export"]:
        extra = _load(row["ex_extra"])
        pairs = list(extra.items()) if isinstance(extra, dict) else []
        tax = parse_amount_text(_pick(pairs, cfg.rules.unusual_tax_rate.export_tax_columns))
    elif row["source"] == "quickbooks":
        tax = row["qb_total_tax"]
    elif row["source"] == "stripe":
        excl = row["st_total_excluding_tax"]
        tax = None if excl is None else total - excl
    else:
        tax = None
    if tax is None or total - tax <= 0:
        return None
    return tax / (total - tax)


def with_po_and_tax(invoices: pl.DataFrame, cfg: InvoiceRulesConfig) -> pl.DataFrame:
    """Adds po_number, po_checked and tax_rate from the RAW_FIELD_COLUMNS and drops those."""
    rows = invoices.select(list(RAW_FIELD_COLUMNS)).cast(RAW_FIELD_COLUMNS).to_dicts()
    pos = [po_number(r, cfg) for r in rows]
    return invoices.drop([c for c in RAW_FIELD_COLUMNS if c not in ("source", "total_amount")]).with_columns(
        po_number=pl.Series([p for p, _ in pos], dtype=pl.String),
        po_checked=pl.Series([c for _, c in pos], dtype=pl.Boolean),
        tax_rate=pl.Series([tax_rate(r, cfg) for r in rows], dtype=pl.Float64),
    )
