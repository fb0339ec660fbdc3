"""Invoice pre-send checks (`analytics.invoice_issues`)."""

from .checks import CANDIDATE_COLUMNS, HISTORY_COLUMNS, ISSUE_SCHEMA, check_invoice, find_issues, history_window
from .config import InvoiceRulesConfig
from .warehouse import invoice_issues_from_warehouse

__all__ = [
    "CANDIDATE_COLUMNS",
    "HISTORY_COLUMNS",
    "ISSUE_SCHEMA",
    "InvoiceRulesConfig",
    "check_invoice",
    "find_issues",
    "history_window",
    "invoice_issues_from_warehouse",
]
