"""Load invoice and payment exports and exchange-rate files (CSV / Excel files downloaded by hand)
into `raw_exports.raw_invoices`, `raw_exports.raw_payments` and `raw_exports.raw_fx_rates`.

Each `kind: invoice_export` config (see `ar_pipeline.lib.ingest_config.InvoiceExportSpec`) maps the
columns of one kind of report (QuickBooks "A/R Aging Detail", "Invoice List", a Stripe Dashboard
invoices CSV, any spreadsheet) to canonical invoice fields. Report layouts are handled the way
finance tools write them: preamble rows before the header (company, title, "As of <date>"), a
header found by its column names, section label rows (customer or aging bucket) remembered as
`section`, `Total for …` rows skipped, reading stopped at `TOTAL` (the footer stamp follows).
`kind: payment_export` configs (`PaymentExportSpec`, e.g. the Stripe Dashboard "unified payments"
CSV) are read by the same code over canonical payment fields; what differs per record kind (fields,
id, date and money fields, table) comes from the spec class, so parsing is never duplicated.
`kind: fx_rates` configs (`FxRatesSpec`) read daily exchange-rate files the same way; their `rate`
is kept to 10 decimals (never rounded to cents) and must be > 0, and a record is identified by
(rate_date, currency, quote_currency) instead of one id column.

Every data row ends up loaded, a duplicate, or quarantined in `ingest_audit.quarantine` with the
file's own header name, the row number, the raw value and what was expected. A file that cannot be
read at all (empty, wrong delimiter, missing columns, not an Excel file, wrong encoding) is
quarantined as one row with a sentence saying what to fix. Skip-unchanged, replace-on-change and
not-twice-the-same-record behave as in `ar_pipeline.lib.ingest`, using the same audit tables
(`source` = the export source name, `raw_table` = 'raw_invoices', 'raw_payments' or
'raw_fx_rates').

Files are small (a manual-upload path), so rows are parsed in Python and inserted in bulk via Arrow.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ar_pipeline.lib.ingest import (
    AUDIT_SCHEMA,
    LINEAGE_COLUMNS,
    EntityLoadResult,
    batch_totals,
    ensure_audit_tables,
    files_to_load,
    forget_files,
)
from ar_pipeline.lib.ingest_config import (
    DUCKDB_TYPES,
    EXPORT_SCHEMA,
    EXPORT_TABLE,
    FX_RATES_TABLE,
    ISO_CURRENCIES,
    PAYMENT_TABLE,
    ExportSpecBase,
    InvoiceExportSpec,
    PaymentExportSpec,
)

__all__ = [
    "EXPORT_COLUMNS", "EXPORT_QUALIFIED", "FX_RATES_COLUMNS", "FX_RATES_QUALIFIED", "ISO_CURRENCIES",
    "PAYMENT_COLUMNS", "PAYMENT_QUALIFIED",
    "ensure_export_table", "export_files", "export_specs_for_file", "load_export",
    "table_columns", "table_qualified",
]

EXPORT_QUALIFIED = f"{EXPORT_SCHEMA}.{EXPORT_TABLE}"
EXPORT_COLUMNS: dict[str, str] = {
    "export_source": "VARCHAR",
    "invoice_id": "VARCHAR",
    "customer_id": "VARCHAR",
    "customer_name": "VARCHAR",
    "invoice_date": "DATE",
    "due_date": "DATE",
    "amount": "DECIMAL(18,4)",
    "open_balance": "DECIMAL(18,4)",
    "paid_date": "DATE",
    "currency": "VARCHAR",
    "status": "VARCHAR",
    "transaction_type": "VARCHAR",
    "terms": "VARCHAR",
    "po_number": "VARCHAR",
    "report_as_of": "DATE",
    "section": "VARCHAR",
    "extra": "JSON",
}
PAYMENT_QUALIFIED = f"{EXPORT_SCHEMA}.{PAYMENT_TABLE}"
PAYMENT_COLUMNS: dict[str, str] = {
    "export_source": "VARCHAR",
    "pays_invoices_of": "VARCHAR",
    "payment_id": "VARCHAR",
    "customer_id": "VARCHAR",
    "customer_name": "VARCHAR",
    "payment_date": "DATE",
    "amount": "DECIMAL(18,4)",
    "amount_refunded": "DECIMAL(18,4)",
    "currency": "VARCHAR",
    "status": "VARCHAR",
    "invoice_id": "VARCHAR",
    "invoice_number": "VARCHAR",
    "method": "VARCHAR",
    "extra": "JSON",
}
FX_RATES_QUALIFIED = f"{EXPORT_SCHEMA}.{FX_RATES_TABLE}"
#: quote_currency NULL = the home currency (dbt var home_currency). The rate keeps 10 decimals
#: (the `rate` column type of the API configs), so 1.08125 or 0.0000393 are stored exactly.
FX_RATES_COLUMNS: dict[str, str] = {
    "export_source": "VARCHAR",
    "rate_date": "DATE",
    "currency": "VARCHAR",
    "quote_currency": "VARCHAR",
    "rate": DUCKDB_TYPES["rate"],
    "extra": "JSON",
}
_TABLE_COLUMNS: dict[str, dict[str, str]] = {
    EXPORT_TABLE: EXPORT_COLUMNS, PAYMENT_TABLE: PAYMENT_COLUMNS, FX_RATES_TABLE: FX_RATES_COLUMNS,
}
_ARROW_TYPES = {"VARCHAR": pa.string(), "DATE": pa.date32(), "DECIMAL(18,4)": pa.decimal128(18, 4),
                DUCKDB_TYPES["rate"]: pa.decimal128(18, 10), "JSON": pa.string()}
_STAGE_SCHEMAS = {
    table: pa.schema(
        [(name, _ARROW_TYPES[typ]) for name, typ in columns.items()]
        + [("_source_file", pa.string()), ("_source_row", pa.int64()), ("_record_hash", pa.string())]
    )
    for table, columns in _TABLE_COLUMNS.items()
}
_QUARANTINE_SCHEMA = pa.schema([
    ("source_file", pa.string()), ("source_row", pa.int64()), ("column_name", pa.string()),
    ("expected", pa.string()), ("raw_value", pa.string()), ("reason", pa.string()),
    ("record", pa.string()),
])

_FOUR_PLACES = Decimal("0.0001")
_MAX_AMOUNT = Decimal(10) ** 14  # DECIMAL(18,4)
_TEN_PLACES = Decimal("0.0000000001")
_MAX_RATE = Decimal(10) ** 8  # DECIMAL(18,10)
_CURRENCY_SYMBOLS = "$€£¥₹₩₽₺₪₫₱฿₦₴₲₡₵"
_DELIMITERS = [",", ";", "\t", "|"]
_AS_OF = re.compile(r"\bas\s+of\s+(.+?)\s*$", re.IGNORECASE)
_AS_OF_FORMATS = ["%B %d, %Y", "%b %d, %Y", "%B %d %Y", "%b %d %Y", "%d %B %Y", "%d %b %Y", "%Y-%m-%d"]
_EXCEL_SUFFIXES = {".xlsx", ".xlsm"}
#: How many rows from the top are searched for the header row.
HEADER_SEARCH_ROWS = 100


class FileProblem(Exception):
    """The whole file cannot be read as an export; the message is for a finance user."""

    def __init__(self, reason: str, expected: str, head: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.expected, self.head = reason, expected, head


@dataclass
class _FileOutcome:
    rows: list[dict] = field(default_factory=list)  # staged good rows (first occurrences)
    quarantined: list[dict] = field(default_factory=list)
    rows_in_file: int = 0
    duplicates_in_file: int = 0
    filtered: int = 0


# ---------------------------------------------------------------------------------------------
# tables and files


def table_columns(spec: ExportSpecBase) -> dict[str, str]:
    """Typed columns (before lineage) of the raw table a config's rows land in."""
    return _TABLE_COLUMNS[spec.TABLE]


def table_qualified(spec: ExportSpecBase) -> str:
    """`raw_exports.<table>` for a config (raw_invoices, raw_payments or raw_fx_rates)."""
    return f"{EXPORT_SCHEMA}.{spec.TABLE}"


def ensure_export_table(conn: duckdb.DuckDBPyConnection) -> None:
    """Create `raw_exports.raw_invoices`, `raw_exports.raw_payments`, `raw_exports.raw_fx_rates` and
    the audit tables if they do not exist yet (every export table, so downstream models find them
    even before any file)."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {EXPORT_SCHEMA}")
    for table, columns in _TABLE_COLUMNS.items():
        cols = [f"{n} {t}" for n, t in columns.items()]
        cols += [f"{n} {t}" for n, t in LINEAGE_COLUMNS.items()]
        conn.execute(f"CREATE TABLE IF NOT EXISTS {EXPORT_SCHEMA}.{table} ({', '.join(cols)})")
    ensure_audit_tables(conn)


def _is_working_file(path: Path) -> bool:
    # Excel's lock files (~$book.xlsx) and hidden files are never exports.
    return path.is_file() and not path.name.startswith(("~$", "."))


def export_files(landing_dir: Path, spec: ExportSpecBase) -> list[Path]:
    """Files in the config's landing folder matching any of its globs, sorted, resolved."""
    base = landing_dir / spec.landing_subdir
    found = {p.resolve() for pattern in spec.files for p in base.glob(pattern) if _is_working_file(p)}
    return sorted(found)


def export_specs_for_file(
    path: Path, landing_dir: Path, specs: Iterable[ExportSpecBase]
) -> list[ExportSpecBase]:
    """The export configs whose landing folder and file globs match `path`."""
    path = path.resolve()
    matches = []
    for spec in specs:
        base = (landing_dir / spec.landing_subdir).resolve()
        try:
            relative = path.relative_to(base)
        except ValueError:
            continue
        if any(relative.match(pattern) for pattern in spec.files):
            matches.append(spec)
    return matches


# ---------------------------------------------------------------------------------------------
# reading cells


def _text(value: Any) -> str:
    """A cell as trimmed text (Excel numbers and dates rendered the way a person would type them)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).replace("\u00a0", " ").strip()


def _norm(value: Any) -> str:
    return " ".join(_text(value).split()).casefold()


def _read_csv(path: Path, spec: ExportSpecBase) -> tuple[list[tuple[int, list[Any]]], str]:
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        encoding, data = "utf-8", data[3:]
    else:
        encoding = spec.encoding
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise FileProblem(
            f"the file is not {encoding} text (byte 0x{exc.object[exc.start]:02x} at position "
            f"{exc.start} cannot be read); save it as 'CSV UTF-8' or set `encoding:` in the config "
            "(e.g. cp1252 for files from older Excel versions)",
            f"a {encoding} text file",
            data[:200].decode(encoding, errors="replace"),
        ) from None
    rows: list[tuple[int, list[Any]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=spec.delimiter)
    line = 1
    try:
        for record in reader:
            rows.append((line, record))  # the line the record starts on (quoted fields may span lines)
            line = reader.line_num + 1
    except csv.Error as exc:
        raise FileProblem(
            f"the file is not readable as CSV near line {reader.line_num} ({exc})",
            "a CSV file", text[:200],
        ) from None
    return rows, text


def _read_xlsx(path: Path, spec: ExportSpecBase) -> list[tuple[int, list[Any]]]:
    import openpyxl

    expected = "an Excel .xlsx workbook"
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic == b"\xd0\xcf\x11\xe0":  # OLE2 container: a legacy .xls saved under an .xlsx name
        raise FileProblem("the file is an old-format Excel workbook (.xls); open it in Excel and "
                          "save it as .xlsx or CSV", expected)
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, InvalidFileException, KeyError, XML errors…
        raise FileProblem(
            "the Excel file could not be opened: it may be truncated (an interrupted download or "
            f"copy), password-protected or not really an .xlsx file ({type(exc).__name__}: {exc})",
            expected,
        ) from None
    try:
        if spec.sheet is not None:
            if spec.sheet not in workbook.sheetnames:
                raise FileProblem(f"the workbook has no sheet named {spec.sheet!r} (it has "
                                  f"{', '.join(workbook.sheetnames)})", expected)
            sheet = workbook[spec.sheet]
        else:
            sheet = workbook.worksheets[0]
        return [(i, list(r)) for i, r in enumerate(sheet.iter_rows(values_only=True), start=1)]
    except FileProblem:
        raise
    except Exception as exc:
        raise FileProblem(
            "the Excel file could not be read to the end: it may be truncated or damaged "
            f"({type(exc).__name__}: {exc})", expected,
        ) from None
    finally:
        workbook.close()


# ---------------------------------------------------------------------------------------------
# header


def _expected_columns(spec: ExportSpecBase) -> str:
    return ", ".join(spec.header_names(f)[0] for f in spec.required)


def _map_header(cells: list[Any], spec: ExportSpecBase) -> dict[str, int]:
    """Canonical field -> column index, for the fields whose header names appear in `cells`."""
    normed = [_norm(c) for c in cells]
    mapping: dict[str, int] = {}
    for name, headers in spec.columns.items():
        for header in headers:
            key = " ".join(header.split()).casefold()
            if key in normed:
                mapping[name] = normed.index(key)
                break
    return mapping


def _find_header(
    rows: list[tuple[int, list[Any]]], spec: ExportSpecBase, text: str | None
) -> tuple[int, dict[str, int]]:
    """(position in `rows` of the header row, field -> column index); FileProblem if none fits."""
    expected = f"columns {_expected_columns(spec)}"
    if isinstance(spec.header, int):
        for pos, (number, cells) in enumerate(rows):
            if number == spec.header:
                mapping = _map_header(cells, spec)
                missing = [f for f in spec.required if f not in mapping]
                if not missing:
                    return pos, mapping
                raise _missing_columns(spec, number, cells, missing)
        raise FileProblem(f"the file has no row {spec.header} (header: {spec.header} in the config)",
                          expected)
    best: tuple[int, int, list[Any]] | None = None  # (matched required, row number, cells)
    for pos, (number, cells) in enumerate(rows[:HEADER_SEARCH_ROWS]):
        mapping = _map_header(cells, spec)
        matched = sum(f in mapping for f in spec.required)
        if matched == len(spec.required):
            return pos, mapping
        if matched >= 2 and (best is None or matched > best[0]):
            best = (matched, number, cells)
    if best is not None:
        mapping = _map_header(best[2], spec)
        raise _missing_columns(spec, best[1], best[2], [f for f in spec.required if f not in mapping])
    if text is not None:
        for line in text.splitlines()[:HEADER_SEARCH_ROWS]:
            for delimiter in _DELIMITERS:
                if delimiter == spec.delimiter or delimiter not in line:
                    continue
                cells = next(csv.reader([line], delimiter=delimiter), [])
                if all(f in _map_header(cells, spec) for f in spec.required):
                    raise FileProblem(
                        f"expected {expected}; the file's header looks like {line.strip()[:200]!r} "
                        f"— is the delimiter {delimiter!r}? (set `delimiter:` in the config to read it)",
                        expected, line.strip()[:200],
                    )
    first = next((cells for _, cells in rows if any(_text(c) for c in cells)), [])
    shown = ", ".join(_text(c) for c in first if _text(c))[:200]
    raise FileProblem(
        f"no header row with the {expected} was found in the first {HEADER_SEARCH_ROWS} rows "
        f"(the first non-empty row reads {shown!r}); is this the right report for this folder?",
        expected, shown,
    )


def _missing_columns(spec: ExportSpecBase, number: int, cells: list[Any], missing: list[str]) -> FileProblem:
    shown = ", ".join(_text(c) for c in cells if _text(c))[:200]
    wanted = "; ".join(
        f"{spec.header_names(f)[0]} (looked for {' / '.join(repr(h) for h in spec.header_names(f))})"
        for f in missing
    )
    noun = "column" if len(missing) == 1 else "columns"
    return FileProblem(
        f"the header row (row {number}) has no {noun} {wanted}; expected columns "
        f"{_expected_columns(spec)}, the header reads {shown!r}",
        f"columns {_expected_columns(spec)}", shown,
    )


def _report_as_of(preamble: list[tuple[int, list[Any]]], spec: ExportSpecBase) -> date | None:
    """The date of an "As of <date>" line above the header (the report's snapshot date)."""
    for _, cells in preamble:
        texts = [_text(c) for c in cells if _text(c)]
        # an unquoted "As of Sep 23, 2026" is split at its comma: look at the joined row too
        for text in [*texts, ", ".join(t.strip() for t in texts)]:
            match = _AS_OF.search(text)
            if not match:
                continue
            value = re.sub(r"\bSept\b", "Sep", match.group(1).strip().rstrip("."))
            for fmt in [*_AS_OF_FORMATS, *spec.date_format]:
                try:
                    return datetime.strptime(value, fmt).date()
                except ValueError:
                    continue
    return None


# ---------------------------------------------------------------------------------------------
# values


def _date_example(spec: ExportSpecBase) -> str:
    sample = datetime(2026, 12, 31, 23, 59, 59)
    return " or ".join(f"{sample.strftime(f)} ({f})" for f in spec.date_format)


def _parse_date(raw: Any, spec: ExportSpecBase) -> date | None:
    """A date from a text or Excel cell; None when blank; ValueError when it does not parse."""
    if raw is None or isinstance(raw, bool):
        if raw is None:
            return None
        raise ValueError
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    if isinstance(raw, (int, float)):  # an Excel date serial in a cell without a date format
        if 1 <= raw < 2958466:
            from openpyxl.utils.datetime import from_excel

            return from_excel(raw).date()
        raise ValueError
    text = _text(raw)
    if not text:
        return None
    for fmt in spec.date_format:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError


def _amount_pattern(spec: ExportSpecBase) -> re.Pattern[str]:
    dec = re.escape(spec.decimal_separator)
    th = spec.thousands_separator
    integer = rf"(?:\d{{1,3}}(?:{re.escape(th)}\d{{3}})+|\d+)" if th and th != " " else r"\d+"
    return re.compile(rf"(?:{integer}(?:{dec}\d+)?|{dec}\d+)")


def _parse_amount(raw: Any, spec: ExportSpecBase, pattern: re.Pattern[str]) -> Decimal | None:
    """Money from a text or Excel cell: `$1,500.00`, `(50.00)`, `-50`, `1.234,56` (per config)."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise ValueError
    if isinstance(raw, (int, float, Decimal)):
        value = Decimal(str(raw))
    else:
        text = _text(raw)
        if not text:
            return None
        negative = False
        t = text.replace(" ", "")
        if t.startswith("(") and t.endswith(")"):
            negative, t = True, t[1:-1]
        code = re.match(r"^([A-Za-z]{3})|([A-Za-z]{3})$", t)
        if code and (code.group(1) or code.group(2)).upper() in ISO_CURRENCIES:
            t = t[3:] if code.group(1) else t[:-3]
        for _ in range(2):  # sign and symbol in either order: -$5, $-5, 5-, 5$
            t = t.strip(_CURRENCY_SYMBOLS)
            if t.startswith("-") or t.endswith("-"):
                negative, t = not negative, t.strip("-")
            elif t.startswith("+"):
                t = t[1:]
        if not pattern.fullmatch(t):
            raise ValueError
        if spec.thousands_separator:
            t = t.replace(spec.thousands_separator, "")
        t = t.replace(spec.decimal_separator, ".")
        try:
            value = Decimal(t)
        except InvalidOperation:
            raise ValueError from None
        if negative:
            value = -value
    if not value.is_finite() or abs(value) >= _MAX_AMOUNT:
        raise ValueError
    return value.quantize(_FOUR_PLACES)


def _parse_rate(raw: Any, spec: ExportSpecBase, pattern: re.Pattern[str]) -> Decimal | None:
    """An exchange rate: a number > 0 written like an amount (`1.0812`, `1,0812` per config), kept
    to 10 decimals (rounded half-even beyond that); no sign, brackets or currency symbol."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise ValueError
    if isinstance(raw, (int, float, Decimal)):
        value = Decimal(str(raw))
    else:
        text = _text(raw).replace(" ", "")
        if not text:
            return None
        if not pattern.fullmatch(text):
            raise ValueError
        if spec.thousands_separator:
            text = text.replace(spec.thousands_separator, "")
        try:
            value = Decimal(text.replace(spec.decimal_separator, "."))
        except InvalidOperation:
            raise ValueError from None
    if not value.is_finite() or value >= _MAX_RATE:
        raise ValueError
    value = value.quantize(_TEN_PLACES)
    if value <= 0:
        raise ValueError
    return value


# ---------------------------------------------------------------------------------------------
# one file


def _parse_file(path: Path, spec: ExportSpecBase) -> _FileOutcome:
    """Read one export file into staged rows and quarantined rows (raises FileProblem)."""
    name = str(path)
    expected_file = f"an {spec.RECORD} export with columns {_expected_columns(spec)}"
    if path.suffix.lower() == ".xls":
        raise FileProblem("the file is an old-format Excel workbook (.xls); open it in Excel and save "
                          "it as .xlsx or CSV", expected_file)
    if path.suffix.lower() in _EXCEL_SUFFIXES:
        rows, text = _read_xlsx(path, spec), None
    else:
        rows, text = _read_csv(path, spec)
    if not any(_text(c) for _, cells in rows for c in cells):
        raise FileProblem("the file is empty (no rows at all)", expected_file)
    header_pos, mapping = _find_header(rows, spec, text)
    header_number, header_cells = rows[header_pos]
    header_texts = [_text(c) for c in header_cells]
    header_norm = [_norm(c) for c in header_cells]
    as_of = _report_as_of(rows[:header_pos], spec)
    extra_idx = {h: header_norm.index(_norm(h)) for h in spec.extra_columns if _norm(h) in header_norm}
    skip = [re.compile(p) for p in spec.skip_rows_where_first_cell_matches]
    stop = [re.compile(p) for p in spec.stop_at_rows_where_first_cell_matches]
    keep_only = {f: {_norm(v) for v in values} for f, values in spec.keep_only.items()}
    amount_pattern = _amount_pattern(spec)
    amount_example = f"1{spec.thousands_separator}234{spec.decimal_separator}56"
    rate_example = f"1{spec.decimal_separator}0812"
    date_example = _date_example(spec)
    id_field = spec.ID_FIELD
    id_idx = mapping[id_field]
    is_invoice = isinstance(spec, InvoiceExportSpec)
    is_payment = isinstance(spec, PaymentExportSpec)
    key_fields = spec.key_fields()

    out = _FileOutcome()
    section: str | None = None
    seen: dict[tuple, tuple[str, int]] = {}  # record key -> (record hash, row number)
    for number, cells in rows[header_pos + 1:]:
        texts = [_text(c) for c in cells]
        filled = [t for t in texts if t]
        if not filled:
            continue
        first = filled[0]
        if any(p.search(first) for p in stop):
            break
        if any(p.search(first) for p in skip) or [_norm(c) for c in cells] == header_norm:
            continue
        id_text = texts[id_idx] if id_idx < len(texts) else ""
        if not id_text and len(filled) == 1:
            section = first  # a group label: customer or aging bucket, or the footer stamp
            continue
        if not id_text and spec.filter_rows_without_id:
            out.filtered += 1  # e.g. a Stripe PaymentIntent without a charge: not a payment
            continue

        def cell(index: int, cells: list[Any] = cells) -> Any:
            return cells[index] if index < len(cells) else None

        if keep_only and any(_norm(cell(mapping[f])) not in allowed for f, allowed in keep_only.items()):
            out.filtered += 1
            continue
        out.rows_in_file += 1
        record = {(header_texts[i] if i < len(header_texts) and header_texts[i] else f"column {i + 1}"): t
                  for i, t in enumerate(texts) if t}
        values: dict[str, Any] = {}
        problems: list[tuple[str, str, str | None, str]] = []  # header, expected, raw, reason
        for fname in spec.FIELDS:
            if fname not in mapping:
                continue
            raw = cell(mapping[fname])
            header = header_texts[mapping[fname]]
            shown = _text(raw)
            try:
                if fname in spec.DATE_FIELDS:
                    expected = f"a date like {date_example}"
                    value: Any = _parse_date(raw, spec)
                elif fname in spec.AMOUNT_FIELDS:
                    expected = f"an amount like {amount_example}"
                    value = _parse_amount(raw, spec, amount_pattern)
                elif fname in spec.RATE_FIELDS:
                    expected = f"an exchange rate > 0 like {rate_example}"
                    value = _parse_rate(raw, spec, amount_pattern)
                elif fname in spec.CURRENCY_FIELDS:
                    expected = "a 3-letter ISO currency code like USD"
                    value = shown.upper() or (spec.currency if fname == "currency" else None)
                    if value is not None and value not in ISO_CURRENCIES:
                        problems.append((header, expected, shown,
                                         f"{header}: unknown currency {shown!r}, expected {expected}"))
                        continue
                else:
                    expected = "a value"
                    value = shown or None
            except ValueError:
                problems.append((header, expected, shown, f"{header}: expected {expected}, got {shown!r}"))
                continue
            if value is None and fname in spec.required:
                problems.append((header, f"{expected} (required)", None,
                                 f"{header}: missing required value"))
            values[fname] = value
        if problems:
            out.quarantined.append(_quarantine_row(name, number, problems, record))
            continue
        if is_invoice:
            if "customer_id" not in mapping or values.get("customer_id") is None:
                values["customer_id"] = values.get("customer_name")
            if values.get("due_date") is None:
                values["due_date"] = values.get("invoice_date")
        if "currency" not in mapping:
            values["currency"] = spec.currency
        extra = {h: _text(cell(i)) or None for h, i in extra_idx.items()} or None
        content = [None if values.get(f) is None else str(values[f]) for f in spec.FIELDS]
        record_hash = hashlib.md5(json.dumps([content, extra], sort_keys=True).encode()).hexdigest()
        record_key = tuple(values.get(f) for f in key_fields)
        record_id = " / ".join("" if v is None else str(v) for v in record_key)
        if record_key in seen:
            first_hash, first_row = seen[record_key]
            if first_hash == record_hash:
                out.duplicates_in_file += 1
            else:
                header = header_texts[id_idx]
                what = "id" if len(key_fields) == 1 else " + ".join(key_fields)
                out.quarantined.append(_quarantine_row(name, number, [(
                    header, f"one row per {spec.RECORD} {what}", record_id,
                    f"duplicate {spec.RECORD} {what} {record_id} with different content "
                    f"(first seen at row {first_row})",
                )], record))
            continue
        seen[record_key] = (record_hash, number)
        context = ({"report_as_of": as_of, "section": section} if is_invoice
                   else {"pays_invoices_of": getattr(spec, "pays_invoices_of", None)} if is_payment
                   else {})
        out.rows.append({
            **{f: values.get(f) for f in spec.FIELDS},
            "export_source": spec.source, **context,
            "extra": json.dumps(extra) if extra is not None else None,
            "_source_file": name, "_source_row": number, "_record_hash": record_hash,
        })
    return out


def _quarantine_row(name: str, number: int | None, problems: list[tuple[str, str, str | None, str]],
                    record: dict | None) -> dict:
    header, expected, raw, _ = problems[0]
    return {
        "source_file": name, "source_row": number, "column_name": header, "expected": expected,
        "raw_value": raw[:200] if raw is not None else None,
        "reason": "; ".join(p[3] for p in problems),
        "record": json.dumps(record) if record is not None else None,
    }


# ---------------------------------------------------------------------------------------------
# loading


def _load_file(
    conn: duckdb.DuckDBPyConnection, spec: ExportSpecBase, path: str, st, batch_id: str,
    loaded_at: datetime,
) -> int:
    """Parse, check and insert one file; writes its file_loads row. Returns rows filtered out."""
    try:
        outcome = _parse_file(Path(path), spec)
        file_broken = False
    except FileProblem as problem:
        outcome = _FileOutcome(quarantined=[{
            "source_file": path, "source_row": None, "column_name": None, "expected": problem.expected,
            "raw_value": problem.head[:200] if problem.head else None, "reason": problem.reason,
            "record": None,
        }])
        file_broken = True
    if outcome.quarantined:
        quarantine_rows = pa.Table.from_pylist(outcome.quarantined, schema=_QUARANTINE_SCHEMA)  # noqa: F841
        conn.execute(
            f"""INSERT INTO {AUDIT_SCHEMA}.quarantine
                SELECT ?, ?, source_file, source_row, column_name, expected, raw_value, reason,
                       CAST(record AS JSON), ?, ? FROM quarantine_rows""",
            [spec.source, spec.TABLE, batch_id, loaded_at],
        )
    loaded = 0
    target = table_qualified(spec)
    if outcome.rows:
        stage = pa.Table.from_pylist(outcome.rows, schema=_STAGE_SCHEMAS[spec.TABLE])  # noqa: F841
        names = list(table_columns(spec))
        select = ", ".join(f"CAST(s.{n} AS JSON)" if n == "extra" else f"s.{n}" for n in names)
        # A record already loaded with identical content (same source, key and hash, e.g. from an
        # overlapping export) is the same fact: counted as a duplicate, not inserted again.
        same_key = " AND ".join(f"t.{f} IS NOT DISTINCT FROM s.{f}" for f in spec.key_fields())
        row = conn.execute(
            f"""INSERT INTO {target}
                SELECT {select}, s._source_file, s._source_row, s._record_hash, ?, ? FROM stage s
                WHERE NOT EXISTS (
                    SELECT 1 FROM {target} t
                    WHERE t.export_source = s.export_source AND {same_key}
                      AND t._record_hash = s._record_hash)""",
            [batch_id, loaded_at],
        ).fetchone()
        loaded = int(row[0]) if row else 0
    rows_in = 1 if file_broken else outcome.rows_in_file
    quarantined = len(outcome.quarantined)
    conn.execute(
        f"INSERT INTO {AUDIT_SCHEMA}.file_loads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [spec.source, spec.TABLE, path, st.st_size, st.st_mtime_ns, rows_in, loaded,
         rows_in - loaded - quarantined, quarantined, batch_id, loaded_at],
    )
    return outcome.filtered


def load_export(
    conn: duckdb.DuckDBPyConnection,
    spec: ExportSpecBase,
    landing_dir: Path,
    batch_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    files: list[Path] | None = None,
) -> EntityLoadResult:
    """Load new and changed export files of one config into its table: `raw_exports.raw_invoices`
    (invoice_export), `raw_exports.raw_payments` (payment_export) or `raw_exports.raw_fx_rates`
    (fx_rates).

    `files` restricts the load to those files (e.g. one export given on the command line); by
    default every file matching the config's globs in its landing folder is considered."""
    table, target = spec.TABLE, table_qualified(spec)
    batch_id = batch_id or uuid.uuid4().hex
    loaded_at = datetime.now(UTC)
    ensure_export_table(conn)
    result = EntityLoadResult(source=spec.source, table=table)
    if files is None:
        files = export_files(landing_dir, spec)
    result.files_seen = len(files)
    stats = {str(p.resolve()): p.stat() for p in files}
    todo, changed = files_to_load(conn, spec.source, table, stats)
    result.files_skipped_unchanged = len(stats) - len(todo)
    conn.execute("BEGIN TRANSACTION")
    try:
        if changed:
            # A file that changed replaces what it loaded before (never adds to it).
            forget_files(conn, spec.source, table, target, changed,
                         table_filter=f" AND export_source = '{spec.source}'")
        for done, name in enumerate(todo, start=1):
            result.rows_filtered += _load_file(conn, spec, name, stats[name], batch_id, loaded_at)
            if progress:
                progress(done, len(todo))
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    batch_totals(conn, result, batch_id, spec.source, table)
    result.quarantine_samples = [
        f"{r[0]} row {r[1]}: {r[2]}" if r[1] is not None else f"{r[0]}: {r[2]}"
        for r in conn.execute(
            f"""SELECT source_file, source_row, reason FROM {AUDIT_SCHEMA}.quarantine
                WHERE batch_id = ? AND source = ? AND raw_table = ?
                ORDER BY source_file, source_row NULLS FIRST LIMIT 5""",
            [batch_id, spec.source, table],
        ).fetchall()
    ]
    return result

