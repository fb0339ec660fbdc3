"""The collections policy: one `kind: collections_policy` YAML in the ingest config folder.

Levels are days relative to the due date of a customer's most overdue invoice (negative = a
courtesy reminder before the due date), in the style of Odoo follow-up levels and OCA credit
control policy levels (peers.md §3). Validation errors name the file and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ar_pipeline.lib.ingest_config import iana_timezone

POLICY_KIND = "collections_policy"
DEFAULT_POLICY_FILE = "collections_policy.yaml"

Channel = Literal["email", "call_task", "letter"]
Tone = Literal["friendly", "neutral", "firm"]
TONES: tuple[str, ...] = ("friendly", "neutral", "firm")

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class PolicyError(ValueError):
    """The policy file is missing, unreadable or invalid; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Level(_Strict):
    name: str = Field(description="Level name (snake_case), e.g. firm_reminder; shown in the queue and the log.")
    days: int = Field(description="Days after the due date of the most overdue invoice; negative = before it.")
    channel: Channel = Field(description="email (sent by `reminders send`), call_task or letter (posted as tasks).")
    template: str = Field(description="Template name in templates_dir: <template>.subject.j2 and <template>.body.j2.")
    tone: Tone = Field(default="neutral", description="Base tone; adjusted by payment history and segment.")
    min_days_since_previous_contact: int = Field(
        default=0, ge=0, description="No contact at this level until this many days after the customer's last one."
    )
    skip_levels: bool = Field(
        default=False,
        description="A customer whose invoices already qualify for this level gets it directly, even if lower "
        "levels were never sent (otherwise reminders climb one level per contact).",
    )
    assignee: str | None = Field(
        default=None, description="Person the action is assigned to instead of the customer's collector."
    )

    @field_validator("name", "template")
    @classmethod
    def _snake(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} must be snake_case (lower-case letters, digits, _)")
        return value


class Exclusions(_Strict):
    disputed_invoices: bool = Field(default=True, description="Leave out invoices with an open dispute.")
    pause_customer_on_dispute: bool = Field(
        default=False, description="Pause every reminder to a customer while any of its disputes is open."
    )
    min_balance: float = Field(
        default=0, ge=0, description="No reminder when the customer's remindable balance (home currency) is below this."
    )
    card_autopay: bool = Field(
        default=True, description="Leave out Stripe invoices with collection_method charge_automatically."
    )
    card_autopay_grace_days: int | None = Field(
        default=None, ge=0,
        description="Include autopay invoices again once they are this many days past due (Stripe's retries "
        "failed); null = never remind them.",
    )


class Escalation(_Strict):
    level: str = Field(description="Level an escalated customer is moved to (must be one of levels).")
    assignee: str | None = Field(default=None, description="Named manager escalated actions are assigned to.")
    days_past_due: int | None = Field(default=None, ge=1, description="Escalate when an invoice is this late.")
    unanswered_reminders: int | None = Field(
        default=2, ge=1,
        description="Escalate after this many overdue reminders (courtesy ones do not count) with no response "
        "(a payment, a note such as a promise or hold, or a dispute) since the first of them.",
    )
    broken_promise: bool = Field(default=True, description="Escalate when a promise to pay was not kept.")
    broken_promise_lookback_days: int = Field(
        default=90, ge=1, description="A promise broken longer ago than this no longer escalates."
    )
    risk_band_jump: int | None = Field(
        default=2, ge=1,
        description="Escalate when the customer's risk band is this many bands worse than at the last contact.",
    )


class ToneRules(_Strict):
    good_payer_max_late_share: float = Field(
        default=0.1, ge=0, le=1, description="Customers paying late at most this often get a friendlier tone."
    )
    chronic_late_min_late_share: float = Field(
        default=0.5, ge=0, le=1, description="Customers paying late at least this often get a firmer tone."
    )
    min_paid_invoices: int = Field(default=3, ge=1, description="History needed before the late share counts.")
    segment_shift: dict[str, int] = Field(
        default_factory=dict, description="Tone steps per customer segment: -1 friendlier, +1 firmer."
    )


class Timing(_Strict):
    timezone: str = Field(
        default="UTC",
        description="The company's IANA time zone (e.g. Europe/Berlin): send hours and payment hours are in it.",
    )
    send_hour: int = Field(default=9, ge=0, le=23, description="Hour (company time) to send at.")
    days_before_usual_payment_weekday: int = Field(
        default=1, ge=0, le=6, description="Send this many days before the weekday the customer usually pays on."
    )
    min_payments: int = Field(default=3, ge=1, description="Payments needed before the usual weekday counts.")
    business_days_only: bool = Field(default=True, description="Never recommend Saturday or Sunday.")
    min_hour_observations: int = Field(
        default=5, ge=1,
        description="Timestamped payments needed before the customer's usual payment hour replaces send_hour.",
    )
    hours_before_usual_payment_hour: int = Field(
        default=1, ge=0, le=23, description="Send this many hours before the customer's usual payment hour.",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return iana_timezone(value)

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class CollectionsPolicy(_Strict):
    kind: Literal["collections_policy"]
    name: str = Field(default="default")
    description: str = ""
    templates_dir: str = Field(
        default="reminder_templates", description="Folder of Jinja templates, relative to the policy file."
    )
    levels: list[Level] = Field(min_length=1)
    exclusions: Exclusions = Field(default_factory=Exclusions)
    escalation: Escalation | None = None
    risk_bands: list[str] = Field(
        default=["low", "medium", "high", "very_high"],
        description="Risk bands of analytics.customer_risk_scores from best to worst (for risk_band_jump).",
    )
    tone: ToneRules = Field(default_factory=ToneRules)
    timing: Timing = Field(default_factory=Timing)

    @model_validator(mode="after")
    def _consistent(self) -> CollectionsPolicy:
        names = [lv.name for lv in self.levels]
        if len(set(names)) != len(names):
            raise ValueError(f"levels: duplicate level names {sorted({n for n in names if names.count(n) > 1})}")
        days = [lv.days for lv in self.levels]
        if days != sorted(days) or len(set(days)) != len(days):
            raise ValueError(f"levels: days must be strictly increasing in file order, got {days}")
        if self.escalation is not None and self.escalation.level not in names:
            raise ValueError(f"escalation.level: {self.escalation.level!r} is not one of the levels {names}")
        if self.tone.good_payer_max_late_share >= self.tone.chronic_late_min_late_share:
            raise ValueError("tone: good_payer_max_late_share must be below chronic_late_min_late_share")
        return self

    def level_index(self, name: str) -> int:
        return next(i for i, lv in enumerate(self.levels) if lv.name == name)


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors()
    )


def load_policy(path: Path) -> CollectionsPolicy:
    """Read and validate a policy file, and check each level's templates exist."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read collections policy ({exc})") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML ({exc})") from exc
    try:
        policy = CollectionsPolicy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"{path}: invalid collections policy: {_problems(exc)}") from exc
    folder = templates_path(path, policy)
    for i, level in enumerate(policy.levels):
        for part in ("subject", "body"):
            if not (folder / f"{level.template}.{part}.j2").is_file():
                raise PolicyError(
                    f"{path}: invalid collections policy: levels.{i}.template: "
                    f"{folder / f'{level.template}.{part}.j2'} does not exist"
                )
    return policy


def templates_path(policy_path: Path, policy: CollectionsPolicy) -> Path:
    folder = Path(policy.templates_dir)
    return folder if folder.is_absolute() else policy_path.parent / folder


def find_policy(config_dir: Path) -> Path | None:
    """The `kind: collections_policy` file in the config folder (None if there is none)."""
    found = [p for p in sorted(config_dir.glob("*.yaml")) if config_kind(p) == POLICY_KIND]
    if len(found) > 1:
        raise PolicyError(f"{config_dir}: several collections policies {[p.name for p in found]}; keep one")
    return found[0] if found else None


def config_kind(path: Path) -> str | None:
    """The `kind:` of a config YAML (None when unreadable; the loaders report those)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return data.get("kind") if isinstance(data, dict) else None
