"""YAML configs for cash application: the bank-statement CSV layout and the matching thresholds.

Both live in `ingest_configs/analytics/` (a sub-folder, so the ingest loader, which reads
`ingest_configs/*.yaml` as source configs, does not see them). Errors name the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class AnalyticsConfigError(ValueError):
    """A broken analytics YAML: the message names the file and the field."""


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors())


M = TypeVar("M", bound=BaseModel)


def load_yaml_model(path: Path, model: type[M]) -> M:
    """Read `path` and validate it as `model`; any problem raises AnalyticsConfigError naming the
    file and the field."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise AnalyticsConfigError(f"{path}: cannot read: {exc}") from exc
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise AnalyticsConfigError(f"{path}: invalid config: {_problems(exc)}") from exc


class BankColumns(BaseModel):
    """Which CSV column holds each field (header names as they appear in the bank's file)."""

    model_config = ConfigDict(extra="forbid")

    date: str = Field(description="Value/booking date of the credit.")
    amount: str = Field(description="Amount credited (positive = money in).")
    reference: str = Field(description="Reference / remittance text.")
    payer_name: str = Field(description="Name of the payer (counterparty).")
    currency: str | None = Field(default=None, description="Currency of the amount; blank = default_currency.")
    line_id: str | None = Field(default=None, description="The bank's id of the line; blank = file:row.")


class BankStatementLayout(BaseModel):
    """A generic bank-statement CSV: where the files are and which column is which."""

    model_config = ConfigDict(extra="forbid")

    landing_subdir: str = Field(default="bank", description="Folder under AR_LANDING_DIR.")
    files: list[str] = Field(default_factory=lambda: ["*.csv"], min_length=1)
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    date_format: str = Field(default="%Y-%m-%d")
    decimal_separator: str = Field(default=".", min_length=1, max_length=1)
    default_currency: str = Field(default="USD", min_length=3, max_length=3)
    credits_only: bool = Field(default=True, description="Ignore lines with amount <= 0 (debits).")
    columns: BankColumns


class CashApplicationConfig(BaseModel):
    """Matching thresholds (see ingest_configs/analytics/cash_application.yaml for their meaning)."""

    model_config = ConfigDict(extra="forbid")

    auto_apply_min_confidence: float = Field(default=0.9, gt=0, le=1)
    fee_tolerance_abs: float = Field(default=50.0, ge=0)
    fee_tolerance_pct: float = Field(default=0.02, ge=0, lt=1)
    fx_tolerance_pct: float = Field(default=0.03, ge=0, lt=1)
    min_partial_share: float = Field(default=0.1, gt=0, le=1)
    name_match_min_score: float = Field(default=85.0, ge=0, le=100)
    typo_min_length: int = Field(default=4, ge=1)
    max_subset_invoices: int = Field(default=4, ge=1, le=8)
    max_subset_candidates: int = Field(default=18, ge=1, le=40)
    max_subset_pair_candidates: int = Field(default=500, ge=2, le=3000)
    home_currency: str = Field(default="USD", min_length=3, max_length=3)
    stop_words: list[str] = Field(default_factory=list)
    payout_markers: list[str] = Field(
        default_factory=lambda: ["STRIPE"], min_length=1, description="Words that mark a bank line as a payout."
    )
    payout_days_before: int = Field(default=1, ge=0, description="A payout may be booked this many days early.")
    payout_days_after: int = Field(default=3, ge=0, description="... or this many days after its arrival date.")
