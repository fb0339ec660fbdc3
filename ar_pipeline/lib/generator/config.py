"""Configuration and summary types for the demo-data generator."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator


class GeneratorConfig(BaseModel):
    """What to simulate and where to write it.

    ``invoices`` is the number of finalized invoices (QuickBooks + Stripe) to create; a handful of
    Stripe drafts are written on top of it. Everything is derived from ``seed`` and ``end_date``,
    so the same config always produces byte-identical files.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    landing_dir: Path = Field(default=Path("data/landing"), description="Root of the landing zone.")
    seed: int = Field(default=42, ge=0, description="Seed for numpy.random.default_rng.")
    customers: int = Field(default=400, ge=1, le=1_000_000, description="Number of customers.")
    years: float = Field(default=2.0, gt=0, le=20, description="Length of the history in years.")
    invoices: int = Field(default=25_000, ge=1, le=50_000_000, description="Target invoice count.")
    end_date: date = Field(default_factory=date.today, description="Last day of the history.")
    progress: bool = Field(default=False, description="Show a rich progress bar on stderr.")
    linked_customers: int = Field(
        default=3, ge=0, le=1_000_000,
        description="Stripe customers given the name and e-mail of a QuickBooks customer (one business "
        "billed in both systems; ground truth customers.linked_customer_id). Changes no amount.",
    )
    archetype_weights: tuple[float, float, float, float, float, float] | None = Field(
        default=None,
        description="Customer mix over (prompt_payer, pay_after_reminder, chronic_late, seasonal, "
        "deteriorating, defaulter); normalised. Default: the built-in mix.",
    )

    @field_validator("archetype_weights")
    @classmethod
    def _weights_positive(cls, v):
        if v is not None and (min(v) < 0 or sum(v) <= 0):
            raise ValueError("archetype_weights must be >= 0 with a positive sum")
        return v

    @field_validator("years")
    @classmethod
    def _years_at_least_a_month(cls, v: float) -> float:
        if v * 365.25 < 28:
            raise ValueError(f"years must cover at least 28 days (got {v} years)")
        return v

    @field_validator("end_date")
    @classmethod
    def _end_date_sane(cls, v: date) -> date:
        if v.year < 1990 or v.year > 2200:
            raise ValueError(f"end_date {v} is outside 1990..2200")
        return v

    @property
    def history_days(self) -> int:
        return max(28, int(round(self.years * 365.25)))


#: archetype names in the order of ``GeneratorConfig.archetype_weights`` (same as simulate.ARCHETYPES)
ARCHETYPE_NAMES = ("prompt_payer", "pay_after_reminder", "chronic_late", "seasonal", "deteriorating", "defaulter")


def parse_archetype_mix(text: str) -> tuple[float, float, float, float, float, float]:
    """``archetype_weights`` from ``name=weight,...`` (e.g. ``prompt=0.2,chronic_late=0.4``).

    A name is an archetype of ARCHETYPE_NAMES or an unambiguous prefix of one (``prompt``);
    archetypes not listed get weight 0; the weights are normalised by the generator. Raises
    ValueError naming the offending item: unknown or ambiguous name, repeated archetype, weight
    that is not a finite number >= 0, or weights summing to 0."""
    weights = dict.fromkeys(ARCHETYPE_NAMES, 0.0)
    seen: set[str] = set()
    items = [part.strip() for part in text.split(",") if part.strip()]
    if not items:
        raise ValueError("archetype mix is empty: expected name=weight,... "
                         f"with names from {', '.join(ARCHETYPE_NAMES)}")
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or not name:
            raise ValueError(f"{item!r} is not name=weight")
        matches = [a for a in ARCHETYPE_NAMES if a == name] or [a for a in ARCHETYPE_NAMES if a.startswith(name)]
        if len(matches) != 1:
            what = "ambiguous" if matches else "unknown"
            raise ValueError(f"{what} archetype {name!r} in {item!r}: use one of {', '.join(ARCHETYPE_NAMES)}")
        if matches[0] in seen:
            raise ValueError(f"archetype {matches[0]!r} given twice")
        seen.add(matches[0])
        try:
            w = float(value)
        except ValueError:
            raise ValueError(f"weight {value.strip()!r} of {matches[0]} is not a number") from None
        if not (w >= 0 and w != float("inf")):
            raise ValueError(f"weight {value.strip()!r} of {matches[0]} must be a finite number >= 0")
        weights[matches[0]] = w
    if sum(weights.values()) <= 0:
        raise ValueError("archetype mix weights sum to 0: give at least one positive weight")
    return tuple(weights[a] for a in ARCHETYPE_NAMES)  # type: ignore[return-value]


@dataclass
class GenerationSummary:
    """What ``generate`` wrote."""

    records: dict[tuple[str, str], int] = field(default_factory=dict)
    files: dict[tuple[str, str], int] = field(default_factory=dict)
    truth_dir: Path | None = None
    elapsed_seconds: float = 0.0
    bytes_written: int = 0

    @property
    def files_written(self) -> int:
        return sum(self.files.values())

    @property
    def total_records(self) -> int:
        return sum(self.records.values())
