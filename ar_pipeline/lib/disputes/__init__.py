"""Dispute workflow (`analytics.dispute_queue`, `dispute_reasons`, `dispute_risk_invoices`)."""

from .config import DisputeRoutingConfig, RoutingRule
from .warehouse import dispute_tables, load_disputes
from .workflow import (
    DISPUTE_COLUMNS,
    build_queue,
    reason_from_note,
    reason_history,
    reason_summary,
    risk_invoices,
    route,
    suggest_action,
)

__all__ = [
    "DISPUTE_COLUMNS",
    "DisputeRoutingConfig",
    "RoutingRule",
    "build_queue",
    "dispute_tables",
    "load_disputes",
    "reason_from_note",
    "reason_history",
    "reason_summary",
    "risk_invoices",
    "route",
    "suggest_action",
]
