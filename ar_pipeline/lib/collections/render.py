"""Reminder messages from templates, and the collectors' CSV/XLSX export.

Templates are rendered in Jinja's `SandboxedEnvironment` with plain data only (strings, numbers,
lists, dicts): a template cannot reach Python objects, their attributes or the file system (an
attempt raises `jinja2.exceptions.SecurityError`). Undefined variables are errors, not blanks.

The export neutralises every text cell starting with = + - @ or a tab / carriage return by
prefixing a single quote (OWASP "CSV injection"), so a customer name like `=HYPERLINK(...)` stays
text in Excel, LibreOffice and Google Sheets.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import polars as pl
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

EXPORT_COLUMNS = [
    "priority_rank", "as_of_date", "reminder_id", "customer_name", "customer_id", "email", "segment",
    "collector", "assigned_to", "level", "channel", "tone", "escalated", "escalation_reasons", "invoice_count",
    "invoice_numbers", "due_dates", "max_days_past_due", "currencies", "open_amount_home", "p_late_30",
    "money_at_risk", "priority_reason", "risk_band", "usual_payment_weekday", "recommended_send_date",
    "recommended_send_hour", "subject", "body",
]


def template_env(templates_dir: Path) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(str(templates_dir)),
        undefined=StrictUndefined,
        autoescape=False,  # plain-text e-mail; nothing here is HTML
        keep_trailing_newline=False,
    )


def message_context(row: dict[str, Any]) -> dict[str, Any]:
    """The variables a template sees: plain data copied out of a queue row."""
    details = json.loads(row["invoices"])
    return {
        "customer_id": str(row["customer_id"]),
        "customer_name": str(row["customer_name"]),
        "collector": str(row["collector"] or ""),
        "assigned_to": str(row["assigned_to"] or ""),
        "level": str(row["level"]),
        "tone": str(row["tone"]),
        "escalated": bool(row["escalated"]),
        "escalation_reasons": str(row["escalation_reasons"] or ""),
        "max_days_past_due": int(row["max_days_past_due"]),
        "invoices": details["invoices"],
        "totals": details["totals"],
        "as_of_date": str(row["as_of_date"]),
    }


def render_message(env: SandboxedEnvironment, template: str, context: dict[str, Any]) -> tuple[str, str]:
    """(subject, body). The subject is one line: whitespace (including CR/LF from data) collapses."""
    subject = env.get_template(f"{template}.subject.j2").render(context)
    body = env.get_template(f"{template}.body.j2").render(context)
    return re.sub(r"\s+", " ", subject).strip(), body.strip() + "\n"


def render_queue(queue: pl.DataFrame, templates_dir: Path) -> pl.DataFrame:
    """The queue with `subject` and `body` columns rendered from each row's template."""
    env = template_env(templates_dir)
    rendered = [render_message(env, r["template"], message_context(r)) for r in queue.iter_rows(named=True)]
    return queue.with_columns(
        subject=pl.Series([s for s, _ in rendered], dtype=pl.String),
        body=pl.Series([b for _, b in rendered], dtype=pl.String),
    )


def neutralise(value: str | None) -> str | None:
    """A text cell a spreadsheet would run as a formula, made literal with a leading quote."""
    if value is not None and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def safe_for_spreadsheet(frame: pl.DataFrame) -> pl.DataFrame:
    """Every text column neutralised (numbers and dates stay typed: a negative number is not text)."""
    text = [c for c, t in frame.schema.items() if t == pl.String]
    return frame.with_columns(pl.col(c).map_elements(neutralise, return_dtype=pl.String) for c in text)


def export_queue(queue: pl.DataFrame, path: Path, fmt: Literal["csv", "xlsx"]) -> int:
    """Write the collectors' worklist; returns the number of rows."""
    columns = [c for c in EXPORT_COLUMNS if c in queue.columns]
    frame = safe_for_spreadsheet(queue.select(columns))
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        frame.write_csv(path)
    else:
        _write_xlsx(frame, path)
    return frame.height


def _write_xlsx(frame: pl.DataFrame, path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "reminders"
    ws.append(frame.columns)
    for row in frame.iter_rows():
        ws.append(list(row))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    # openpyxl stores a str starting with '=' as a formula; after neutralise() none does, and
    # marking every text cell as a string keeps it that way whatever openpyxl guesses.
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            if isinstance(cell.value, str):
                cell.data_type = "s"
    ws.freeze_panes = "A2"
    wb.save(path)
