"""`ingest_configs/analytics/invoice_rules.yaml`: which pre-send rules run, their severity and
thresholds. Errors name the file and the field (via `load_yaml_model`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["error", "warning", "info"]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    severity: Severity = "warning"


class HistoryRule(_Rule):
    min_history: int = Field(default=5, ge=1, description="Customer invoices needed before the rule judges.")


class MissingDueDate(_Rule):
    severity: Severity = "error"


class BillingEmail(_Rule):
    severity: Severity = "error"
    pattern: str = Field(default=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", description="What a valid address looks like.")


_PO_NAMES = ["PO", "PO Number", "PO #", "P.O. Number", "Purchase Order"]


class MissingPo(HistoryRule):
    min_po_share: float = Field(default=1.0, gt=0, le=1, description="Share of past invoices with a PO.")
    quickbooks_custom_fields: list[str] = Field(
        default_factory=lambda: list(_PO_NAMES), description="QuickBooks CustomField names holding the PO."
    )
    stripe_custom_fields: list[str] = Field(
        default_factory=lambda: list(_PO_NAMES), description="Stripe invoice custom_fields names holding the PO."
    )
    stripe_metadata_keys: list[str] = Field(
        default_factory=lambda: ["po", "po_number", "purchase_order"], description="Stripe invoice metadata keys."
    )
    export_extra_columns: list[str] = Field(
        default_factory=list, description="Export extra_columns holding a PO when po_number is not mapped."
    )


class UnusualTerms(HistoryRule):
    min_usual_share: float = Field(default=0.8, gt=0, le=1, description="Share of past invoices on the usual terms.")
    tolerance_days: int = Field(default=2, ge=0)


class UnusualTaxRate(HistoryRule):
    tolerance_points: float = Field(default=0.01, ge=0, description="Allowed |rate - usual rate| (0.01 = 1 point).")
    min_usual_share: float = Field(default=0.8, gt=0, le=1, description="Share of past invoices at the usual rate.")
    export_tax_columns: list[str] = Field(
        default_factory=lambda: ["Tax", "Tax Amount", "Total Tax"],
        description="Export extra_columns holding the invoice's tax amount (the export's amount includes it).",
    )


class UnusualCurrency(HistoryRule):
    min_usual_share: float = Field(default=0.95, gt=0, le=1)


class AmountOutlier(HistoryRule):
    max_robust_z: float = Field(default=6.0, gt=0, description="|amount - median| / (1.4826 * MAD) above this fires.")
    min_relative_spread: float = Field(
        default=0.1, ge=0, description="Floor of the spread as a share of the median (for customers billed one price)."
    )


class SuspectedDuplicate(_Rule):
    severity: Severity = "error"
    window_days: int = Field(default=7, ge=0)
    amount_tolerance: float = Field(default=0.005, ge=0, description="Amounts this close count as the same.")


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    missing_due_date: MissingDueDate = MissingDueDate()
    billing_email: BillingEmail = BillingEmail()
    missing_po: MissingPo = MissingPo()
    unusual_terms: UnusualTerms = UnusualTerms()
    unusual_tax_rate: UnusualTaxRate = UnusualTaxRate()
    unusual_currency: UnusualCurrency = UnusualCurrency()
    amount_outlier: AmountOutlier = AmountOutlier()
    suspected_duplicate: SuspectedDuplicate = SuspectedDuplicate()


class InvoiceRulesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recent_sent_days: int = Field(
        default=14, ge=0, description="Sent invoices dated this many days before as-of are reported."
    )
    history_days: int = Field(default=730, ge=1, description="How far back a customer's history reaches.")
    export_pending_statuses: list[str] = Field(
        default_factory=lambda: ["draft", "pending", "not sent", "unsent"],
        description="Values of the export's status column (lower case) meaning 'not yet sent'.",
    )
    rules: Rules = Rules()
