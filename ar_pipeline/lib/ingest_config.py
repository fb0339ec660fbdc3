"""Typed, validated ingest configuration (one YAML file per source in `ingest_configs/`).

Two kinds of config file share the folder, told apart by `kind:`:

- `api_json` (the default): a source system's API pages. The file lists the entities (raw tables),
  which landing files hold them, where the records sit inside each file, and which JSON path feeds
  each typed column. Read by `ar_pipeline.lib.ingest`.
- `invoice_export`: one kind of invoice report exported by hand (CSV or Excel), mapping its columns
  to canonical invoice fields. Every such config lands in the shared table `raw_exports.raw_invoices`.
  Read by `ar_pipeline.lib.ingest_exports`.
- `payment_export`: the same for payment exports (e.g. Stripe Dashboard "unified payments"), with
  canonical payment fields and `pays_invoices_of`; lands in `raw_exports.raw_payments`.
- `fx_rates`: a table of daily exchange rates (e.g. downloaded from the bank or the ECB), with
  canonical fields rate_date, currency, quote_currency, rate; lands in `raw_exports.raw_fx_rates`.
  All three file kinds share their reading options (`ExportSpecBase`).

Adding an entity, a column or an export layout is a YAML change; the loaders and the Dagster asset
factory read these models. `load_source_specs` returns only the `api_json` configs (what every
API-side caller iterates); `load_export_specs` returns the `invoice_export` ones,
`load_payment_export_specs` the `payment_export` ones and `load_fx_rates_specs` the `fx_rates` ones.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

ColumnType = Literal["varchar", "currency", "decimal", "rate", "bigint", "boolean", "date", "timestamp", "json"]

#: DuckDB type each config type is loaded as. Money from QuickBooks arrives in major units with up
#: to 2 (sometimes more) decimals, so DECIMAL(18,4) keeps it exact; Stripe money is integer minor units.
DUCKDB_TYPES: dict[str, str] = {
    "varchar": "VARCHAR",
    "currency": "VARCHAR",  # an ISO 4217 code (any case); anything else is quarantined
    "decimal": "DECIMAL(18,4)",
    "rate": "DECIMAL(18,10)",
    "bigint": "BIGINT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMPTZ",
    "json": "JSON",
}

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_JSON_PATH = re.compile(r"^\$(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class IngestConfigError(ValueError):
    """A config file is missing, unreadable or invalid; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ColumnSpec(_Strict):
    name: str = Field(description="Column name in the raw table (snake_case).")
    path: str = Field(description="JSON path into one record, e.g. `$.CustomerRef.value`.")
    type: ColumnType = Field(description="Type the value must cast to; failures are quarantined.")
    required: bool = Field(default=False, description="A record without this value is quarantined.")

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(f"column name {value!r} must be snake_case (letters, digits, _)")
        return value

    @field_validator("path")
    @classmethod
    def _path_is_simple(cls, value: str) -> str:
        if not _JSON_PATH.match(value):
            raise ValueError(f"path {value!r} must look like $.Field or $.Parent.Child")
        return value


class EntitySpec(_Strict):
    table: str = Field(description="Raw table name, also the Dagster asset key's last part.")
    files: str = Field(description="Glob of landing files, relative to the source's landing folder.")
    records_path: str = Field(description="JSON path to the array of records inside each file.")
    description: str = ""
    primary_key: list[str] = Field(min_length=1)
    columns: list[ColumnSpec] = Field(min_length=1)

    @field_validator("table")
    @classmethod
    def _table_is_identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value) or not value.startswith("raw_"):
            raise ValueError(f"table {value!r} must be snake_case and start with 'raw_'")
        return value

    @model_validator(mode="after")
    def _keys_are_columns(self) -> EntitySpec:
        names = [c.name for c in self.columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate column names {duplicates}")
        missing = [k for k in self.primary_key if k not in names]
        if missing:
            raise ValueError(f"primary_key {missing} not among the columns")
        return self

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)


class AutomationSpec(_Strict):
    """What starts runs for a source without anyone clicking (see ar_pipeline/defs/automation)."""

    file_sensor: bool = Field(
        default=True, description="Run when files under this source's landing folder are added or changed."
    )
    schedule: str | None = Field(
        default=None, description="Cron for the API sync (API sources only), e.g. '0 */4 * * *'."
    )
    timezone: str = Field(default="UTC", description="IANA time zone the schedule's cron is read in.")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError(f"schedule {value!r} must be a 5-field cron expression like '0 */4 * * *'")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return iana_timezone(value)


def iana_timezone(value: str) -> str:
    """`value` when it names an IANA time zone (the config validators' shared check), else ValueError."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)") from None
    return value


class SourceSpec(_Strict):
    kind: Literal["api_json"] = "api_json"
    source: str = Field(description="Source system name; the dbt source name and asset key prefix.")
    schema_name: str = Field(alias="schema", description="DuckDB schema holding the raw tables.")
    description: str = ""
    landing_subdir: str = Field(description="Folder under AR_LANDING_DIR with this source's files.")
    freshness_warn_hours: int = Field(default=36, gt=0)
    automation: AutomationSpec = Field(default_factory=AutomationSpec)
    entities: list[EntitySpec] = Field(min_length=1)

    @field_validator("source", "schema_name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(f"{value!r} must be snake_case")
        return value



# --------------------------------------------------------------------------------------------------
# export configs (invoice_export, payment_export)

#: Schema and table every invoice-export config lands in (one table, `export_source` tells them apart).
EXPORT_SCHEMA = "raw_exports"
EXPORT_TABLE = "raw_invoices"

CanonicalField = Literal[
    "invoice_id", "customer_id", "customer_name", "invoice_date", "due_date", "amount",
    "open_balance", "paid_date", "currency", "status", "transaction_type", "terms", "po_number",
]
CANONICAL_FIELDS: tuple[str, ...] = CanonicalField.__args__  # type: ignore[attr-defined]
DATE_FIELDS = frozenset({"invoice_date", "due_date", "paid_date"})
AMOUNT_FIELDS = frozenset({"amount", "open_balance"})

#: Table every payment-export config lands in (in EXPORT_SCHEMA), and its canonical fields.
PAYMENT_TABLE = "raw_payments"
PaymentField = Literal[
    "payment_id", "customer_id", "customer_name", "payment_date", "amount", "amount_refunded",
    "currency", "status", "invoice_id", "invoice_number", "method",
]
PAYMENT_FIELDS: tuple[str, ...] = PaymentField.__args__  # type: ignore[attr-defined]
PAYMENT_DATE_FIELDS = frozenset({"payment_date"})
PAYMENT_AMOUNT_FIELDS = frozenset({"amount", "amount_refunded"})

#: Table every fx_rates config lands in (in EXPORT_SCHEMA), and its canonical fields.
FX_RATES_TABLE = "raw_fx_rates"
FxRateField = Literal["rate_date", "currency", "quote_currency", "rate"]
FX_RATE_FIELDS: tuple[str, ...] = FxRateField.__args__  # type: ignore[attr-defined]

#: ISO 4217 codes accepted in exports (active codes; a currency outside this list is quarantined).
ISO_CURRENCIES: frozenset[str] = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL
    GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW
    KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN
    NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK
    SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS
    VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL""".split()
)


#: One or more header names (non-empty after trimming).
HeaderNames = Annotated[
    list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]], Field(min_length=1)
]


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class ExportSpecBase(_Strict):
    """Reading options shared by every export config (invoice and payment exports).

    Subclasses add `kind`, `columns`, `keep_only` and `required` over their own canonical fields,
    and set the class constants below, which the loader (`ar_pipeline.lib.ingest_exports`) reads."""

    #: What one data row is ("invoice", "payment"): used in messages.
    RECORD: ClassVar[str] = ""
    #: Raw table (in EXPORT_SCHEMA) the rows land in.
    TABLE: ClassVar[str] = ""
    #: Canonical fields, in table order; the id field; date and money fields; the minimum mapping.
    FIELDS: ClassVar[tuple[str, ...]] = ()
    ID_FIELD: ClassVar[str] = ""
    DATE_FIELDS: ClassVar[frozenset[str]] = frozenset()
    AMOUNT_FIELDS: ClassVar[frozenset[str]] = frozenset()
    MINIMUM_FIELDS: ClassVar[tuple[str, ...]] = ()
    #: Fields that together identify one record (duplicates within a file, re-loads); default the id.
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ()
    #: ISO 4217 currency fields (validated, stored upper case); `currency` falls back to the config's.
    CURRENCY_FIELDS: ClassVar[frozenset[str]] = frozenset({"currency"})
    #: Exchange-rate fields: > 0, kept to 10 decimals (never rounded to cents like amounts).
    RATE_FIELDS: ClassVar[frozenset[str]] = frozenset()

    source: str = Field(description="Export source name; stored in the raw table's export_source.")
    description: str = ""
    landing_subdir: str = Field(description="Folder under AR_LANDING_DIR with these export files.")
    automation: AutomationSpec = Field(default_factory=AutomationSpec)
    files: list[str] = Field(min_length=1, description='Glob(s) of files, e.g. "*.csv" or ["*.csv", "*.xlsx"].')
    date_format: list[str] = Field(
        default=["%m/%d/%Y"], min_length=1,
        description="strptime format(s) of text dates, tried in order (Excel date cells need none).",
    )
    decimal_separator: Literal[".", ","] = "."
    thousands_separator: Literal[",", ".", " ", "'", ""] = ","
    delimiter: str = Field(default=",", description="CSV field delimiter: ',', ';', '\\t' or '|'.")
    encoding: str = Field(default="utf-8", description="Text encoding of CSV files (a UTF-8 BOM is always fine).")
    currency: str | None = Field(default=None, description="Currency when the file has no currency column.")
    header: Literal["auto"] | int = Field(
        default="auto", description="`auto`: first row holding the required headers; or a 1-based row number."
    )
    sheet: str | None = Field(default=None, description="Excel sheet name; default the first sheet.")
    skip_rows_where_first_cell_matches: list[str] = Field(default=["^Total for ", "^TOTAL$"])
    stop_at_rows_where_first_cell_matches: list[str] = Field(
        default=["^TOTAL$", r"^(Accrual|Cash) [Bb]asis\b"],
        description="Reading stops at the first row whose first non-empty cell matches (totals, footer stamp).",
    )
    extra_columns: list[str] = Field(default_factory=list)
    filter_rows_without_id: bool = Field(
        default=False,
        description="A data row whose id cell is empty is left out (counted as filtered) instead of "
        "quarantined, e.g. Stripe PaymentIntents without a charge in a payments export.",
    )
    # set by subclasses over their own canonical fields
    columns: dict[str, HeaderNames]
    keep_only: dict[str, HeaderNames]
    required: list[str]

    @field_validator("files", "date_format", mode="before")
    @classmethod
    def _as_lists(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("columns", "keep_only", mode="before")
    @classmethod
    def _values_as_lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _as_list(v) for k, v in value.items()}
        return value

    @field_validator("source")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(f"{value!r} must be snake_case")
        return value

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        if value not in {",", ";", "\t", "|"}:
            raise ValueError(f"delimiter {value!r} must be one of ',', ';', '\\t', '|'")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is not None and value.upper() not in ISO_CURRENCIES:
            raise ValueError(f"{value!r} is not a 3-letter ISO currency code")
        return value.upper() if value else value

    @field_validator("header")
    @classmethod
    def _header_row(cls, value: Literal["auto"] | int) -> Literal["auto"] | int:
        if isinstance(value, int) and value < 1:
            raise ValueError("header row number must be 1 or more (rows count from 1)")
        return value

    @field_validator("date_format")
    @classmethod
    def _date_formats(cls, value: list[str]) -> list[str]:
        for fmt in value:
            if "%" not in fmt:
                raise ValueError(f"date format {fmt!r} has no % directives (e.g. %m/%d/%Y)")
        return value

    @field_validator("skip_rows_where_first_cell_matches", "stop_at_rows_where_first_cell_matches")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression ({exc})") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExportSpecBase:
        if self.decimal_separator == self.thousands_separator:
            raise ValueError("decimal_separator and thousands_separator must differ")
        for name in self.MINIMUM_FIELDS:
            if name not in self.columns:
                raise ValueError(f"columns: {name} must be mapped to a header")
        unmapped = [f for f in self.required if f not in self.columns]
        if unmapped:
            raise ValueError(f"required: {unmapped} not mapped in columns")
        unmapped = [f for f in self.keep_only if f not in self.columns]
        if unmapped:
            raise ValueError(f"keep_only: {unmapped} not mapped in columns")
        if "currency" not in self.columns and self.currency is None:
            raise ValueError("currency: give a fixed currency (e.g. USD) or map a currency column")
        return self

    def header_names(self, field: str) -> list[str]:
        return self.columns.get(field, [])  # type: ignore[call-overload]

    @classmethod
    def key_fields(cls) -> tuple[str, ...]:
        """The fields identifying one record: KEY_FIELDS, or just the id field."""
        return cls.KEY_FIELDS or (cls.ID_FIELD,)



class InvoiceExportSpec(ExportSpecBase):
    """Column mapping for one kind of invoice export file (e.g. QuickBooks "A/R Aging Detail")."""

    RECORD: ClassVar[str] = "invoice"
    TABLE: ClassVar[str] = EXPORT_TABLE
    FIELDS: ClassVar[tuple[str, ...]] = CANONICAL_FIELDS
    ID_FIELD: ClassVar[str] = "invoice_id"
    DATE_FIELDS: ClassVar[frozenset[str]] = DATE_FIELDS
    AMOUNT_FIELDS: ClassVar[frozenset[str]] = AMOUNT_FIELDS
    MINIMUM_FIELDS: ClassVar[tuple[str, ...]] = ("invoice_id", "invoice_date", "amount")

    kind: Literal["invoice_export"]
    columns: dict[CanonicalField, HeaderNames] = Field(
        min_length=1, description="Canonical field -> header name(s); case-insensitive, first match wins."
    )
    keep_only: dict[CanonicalField, HeaderNames] = Field(default_factory=dict)
    required: list[CanonicalField] = Field(default=["invoice_id", "invoice_date", "amount"])


class PaymentExportSpec(ExportSpecBase):
    """Column mapping for one kind of payment export file (e.g. Stripe Dashboard "unified payments").
    Every such config lands in the shared table `raw_exports.raw_payments`."""

    RECORD: ClassVar[str] = "payment"
    TABLE: ClassVar[str] = PAYMENT_TABLE
    FIELDS: ClassVar[tuple[str, ...]] = PAYMENT_FIELDS
    ID_FIELD: ClassVar[str] = "payment_id"
    DATE_FIELDS: ClassVar[frozenset[str]] = PAYMENT_DATE_FIELDS
    AMOUNT_FIELDS: ClassVar[frozenset[str]] = PAYMENT_AMOUNT_FIELDS
    MINIMUM_FIELDS: ClassVar[tuple[str, ...]] = ("payment_id", "payment_date", "amount")

    kind: Literal["payment_export"]
    pays_invoices_of: str = Field(
        description="Source whose invoice ids the payments' invoice_id refers to: an API source "
        "(e.g. stripe) or an invoice_export config (e.g. stripe_invoices_export).",
    )
    columns: dict[PaymentField, HeaderNames] = Field(
        min_length=1, description="Canonical field -> header name(s); case-insensitive, first match wins."
    )
    keep_only: dict[PaymentField, HeaderNames] = Field(default_factory=dict)
    required: list[PaymentField] = Field(default=["payment_id", "payment_date", "amount"])

    @field_validator("pays_invoices_of")
    @classmethod
    def _pays_identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(f"{value!r} must be snake_case (a source or export config name)")
        return value


class FxRatesSpec(ExportSpecBase):
    """Column mapping for a file of exchange rates (e.g. daily rates from the bank or the ECB).

    One row is one rate: on `rate_date`, 1 unit of `currency` is worth `rate` units of
    `quote_currency` (blank = the home currency, dbt var home_currency). Every such config lands in
    the shared table `raw_exports.raw_fx_rates`; a row is identified by (rate_date, currency,
    quote_currency), so a later file with the same rate is a duplicate and a changed rate a new
    version (the newest load wins in dbt)."""

    RECORD: ClassVar[str] = "exchange rate"
    TABLE: ClassVar[str] = FX_RATES_TABLE
    FIELDS: ClassVar[tuple[str, ...]] = FX_RATE_FIELDS
    ID_FIELD: ClassVar[str] = "rate_date"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("rate_date", "currency", "quote_currency")
    DATE_FIELDS: ClassVar[frozenset[str]] = frozenset({"rate_date"})
    AMOUNT_FIELDS: ClassVar[frozenset[str]] = frozenset()
    CURRENCY_FIELDS: ClassVar[frozenset[str]] = frozenset({"currency", "quote_currency"})
    RATE_FIELDS: ClassVar[frozenset[str]] = frozenset({"rate"})
    MINIMUM_FIELDS: ClassVar[tuple[str, ...]] = ("rate_date", "rate")

    kind: Literal["fx_rates"]
    columns: dict[FxRateField, HeaderNames] = Field(
        min_length=1, description="Canonical field -> header name(s); case-insensitive, first match wins."
    )
    keep_only: dict[FxRateField, HeaderNames] = Field(default_factory=dict)
    required: list[FxRateField] = Field(default=["rate_date", "currency", "rate"])

    @model_validator(mode="after")
    def _rate_fields_required(self) -> FxRatesSpec:
        missing = [f for f in self.MINIMUM_FIELDS if f not in self.required]
        if missing:
            raise ValueError(f"required: {missing} must be listed (a rate needs a date and a value)")
        return self


ExportSpec = InvoiceExportSpec | PaymentExportSpec | FxRatesSpec
IngestSpec = SourceSpec | InvoiceExportSpec | PaymentExportSpec | FxRatesSpec


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors()
    )


def load_spec(path: Path) -> IngestSpec:
    """Read and validate one config YAML of either kind; errors name the file and the field."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise IngestConfigError(f"{path}: cannot read ingest config ({exc})") from exc
    except yaml.YAMLError as exc:
        raise IngestConfigError(f"{path}: not valid YAML ({exc})") from exc
    kind = data.get("kind", "api_json") if isinstance(data, dict) else "api_json"
    model: type[SourceSpec] | type[ExportSpecBase]
    if kind == "api_json":
        model = SourceSpec
    elif kind == "invoice_export":
        model = InvoiceExportSpec
    elif kind == "payment_export":
        model = PaymentExportSpec
    elif kind == "fx_rates":
        model = FxRatesSpec
    else:
        raise IngestConfigError(
            f"{path}: invalid ingest config: kind: {kind!r} must be 'api_json', 'invoice_export', "
            "'payment_export' or 'fx_rates'"
        )
    try:
        return model.model_validate(data)  # type: ignore[return-value]
    except ValidationError as exc:
        raise IngestConfigError(f"{path}: invalid ingest config: {_problems(exc)}") from exc


def load_source_spec(path: Path) -> SourceSpec:
    """Read and validate one API (`kind: api_json`) source YAML."""
    spec = load_spec(path)
    if not isinstance(spec, SourceSpec):
        raise IngestConfigError(f"{path}: kind: is {spec.kind!r}, expected an api_json source config")
    return spec


def load_export_spec(path: Path) -> InvoiceExportSpec:
    """Read and validate one `kind: invoice_export` YAML."""
    spec = load_spec(path)
    if not isinstance(spec, InvoiceExportSpec):
        raise IngestConfigError(f"{path}: kind: is {spec.kind!r}, expected an invoice_export config")
    return spec


def load_payment_export_spec(path: Path) -> PaymentExportSpec:
    """Read and validate one `kind: payment_export` YAML."""
    spec = load_spec(path)
    if not isinstance(spec, PaymentExportSpec):
        raise IngestConfigError(f"{path}: kind: is {spec.kind!r}, expected a payment_export config")
    return spec


def load_fx_rates_spec(path: Path) -> FxRatesSpec:
    """Read and validate one `kind: fx_rates` YAML."""
    spec = load_spec(path)
    if not isinstance(spec, FxRatesSpec):
        raise IngestConfigError(f"{path}: kind: is {spec.kind!r}, expected an fx_rates config")
    return spec


#: Other config kinds sharing the folder, read by their own loaders (not ingest configs):
#: `collections_policy` (ar_pipeline.lib.collections.policy).
OTHER_CONFIG_KINDS = frozenset({"collections_policy"})


def _is_other_kind(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False  # load_spec reports it
    return isinstance(data, dict) and data.get("kind") in OTHER_CONFIG_KINDS


def load_all_specs(config_dir: Path) -> list[IngestSpec]:
    """Every ingest config in a folder (all ingest kinds), sorted by file name; source names must be
    unique. Files of OTHER_CONFIG_KINDS (e.g. the collections policy) are left to their loaders."""
    paths = [p for p in sorted(config_dir.glob("*.yaml")) if not _is_other_kind(p)]
    if not paths:
        raise IngestConfigError(f"{config_dir}: no *.yaml ingest configs found")
    specs = [load_spec(p) for p in paths]
    names = [s.source for s in specs]
    if len(set(names)) != len(names):
        raise IngestConfigError(f"{config_dir}: duplicate source names {names}")
    return specs


def load_source_specs(config_dir: Path) -> list[SourceSpec]:
    """The API (`kind: api_json`) source configs in a folder, sorted by file name. Every config in
    the folder is validated, so a broken export config is reported here too."""
    return [s for s in load_all_specs(config_dir) if isinstance(s, SourceSpec)]


def load_export_specs(config_dir: Path) -> list[InvoiceExportSpec]:
    """The `kind: invoice_export` configs in a folder (possibly none), sorted by file name."""
    return [s for s in load_all_specs(config_dir) if isinstance(s, InvoiceExportSpec)]


def load_payment_export_specs(config_dir: Path) -> list[PaymentExportSpec]:
    """The `kind: payment_export` configs in a folder (possibly none), sorted by file name."""
    return [s for s in load_all_specs(config_dir) if isinstance(s, PaymentExportSpec)]


def load_fx_rates_specs(config_dir: Path) -> list[FxRatesSpec]:
    """The `kind: fx_rates` configs in a folder (possibly none), sorted by file name."""
    return [s for s in load_all_specs(config_dir) if isinstance(s, FxRatesSpec)]
