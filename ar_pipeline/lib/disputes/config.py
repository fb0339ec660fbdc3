"""`ingest_configs/analytics/dispute_routing.yaml`: how QuickBooks notes become disputes, who owns
which dispute, and the thresholds behind the suggested next action. Errors name the file and the
field (via `load_yaml_model`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RoutingRule(BaseModel):
    """First rule whose reasons and amount band match the dispute wins."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    reasons: list[str] = Field(default_factory=list, description="Dispute reasons; empty = any reason.")
    min_amount: float = Field(default=0.0, ge=0, description="Home-currency amount at least this (inclusive).")
    max_amount: float | None = Field(default=None, gt=0, description="Home-currency amount below this; blank = no cap.")
    owner: str = Field(min_length=1)
    team: str = Field(min_length=1)
    respond_within_days: int = Field(default=14, ge=0, description="Deadline when the source gives none.")

    @model_validator(mode="after")
    def _band(self) -> RoutingRule:
        if self.max_amount is not None and self.max_amount <= self.min_amount:
            raise ValueError("max_amount must be greater than min_amount")
        return self


class QuickBooksDisputes(BaseModel):
    """QuickBooks has no dispute object: a credit memo or an invoice whose private note contains a
    keyword is treated as a dispute with the keyword's reason."""

    model_config = ConfigDict(extra="forbid")

    credit_memo_notes: bool = True
    invoice_notes: bool = True
    reason_keywords: dict[str, list[str]] = Field(
        default_factory=dict, description="reason -> keywords (case-insensitive substrings of the private note)."
    )
    credit_memo_outcome: str = Field(
        default="lost", description="Outcome of a dispute settled by a credit memo (the money was given back)."
    )


class NextAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_history: int = Field(default=5, ge=1, description="Closed disputes of a reason needed to suggest from history.")
    contest_min_win_share: float = Field(default=0.5, ge=0, le=1)
    accept_max_win_share: float = Field(default=0.2, ge=0, le=1)
    won_outcomes: list[str] = Field(
        default_factory=lambda: ["won", "prevented", "closed_without_chargeback"],
        min_length=1,
        description="Outcomes counted as won (the money stayed with us).",
    )

    @model_validator(mode="after")
    def _order(self) -> NextAction:
        if self.accept_max_win_share > self.contest_min_win_share:
            raise ValueError("accept_max_win_share must not exceed contest_min_win_share")
        return self


class RiskFlag(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lookback_days: int = Field(default=365, ge=1)
    min_disputes: int = Field(default=1, ge=1, description="Disputes in the lookback that flag a customer.")
    recurring_min: int = Field(default=2, ge=2, description="Disputes of one reason that make it recurring.")


class DisputeRoutingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_owner: str = Field(default="ar-disputes", min_length=1)
    default_team: str = Field(default="Accounts receivable", min_length=1)
    default_respond_within_days: int = Field(default=14, ge=0)
    routing: list[RoutingRule] = Field(default_factory=list)
    quickbooks: QuickBooksDisputes = QuickBooksDisputes()
    next_action: NextAction = NextAction()
    risk: RiskFlag = RiskFlag()
