"""Typed, validated ingest configuration (one YAML file per source system in `ingest_configs/`).

A source file lists the entities (raw tables) of one system, which landing files hold them, where
the records sit inside each file, and which JSON path feeds each typed column. Adding an entity
or a column is a YAML change; the loader and the Dagster asset factory read these models.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ColumnType = Literal["varchar", "decimal", "rate", "bigint", "boolean", "date", "timestamp", "json"]

#: DuckDB type each config type is loaded as. Money from QuickBooks arrives in major units with up
#: to 2 (sometimes more) decimals, so DECIMAL(18,4) keeps it exact; Stripe money is integer minor units.
DUCKDB_TYPES: dict[str, str] = {
    "varchar": "VARCHAR",
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


class SourceSpec(_Strict):
    source: str = Field(description="Source system name; the dbt source name and asset key prefix.")
    schema_name: str = Field(alias="schema", description="DuckDB schema holding the raw tables.")
    description: str = ""
    landing_subdir: str = Field(description="Folder under AR_LANDING_DIR with this source's files.")
    freshness_warn_hours: int = Field(default=36, gt=0)
    entities: list[EntitySpec] = Field(min_length=1)

    @field_validator("source", "schema_name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(f"{value!r} must be snake_case")
        return value


def load_source_spec(path: Path) -> SourceSpec:
    """Read and validate one source YAML; errors name the file and the offending field."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise IngestConfigError(f"{path}: cannot read ingest config ({exc})") from exc
    except yaml.YAMLError as exc:
        raise IngestConfigError(f"{path}: not valid YAML ({exc})") from exc
    try:
        return SourceSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise IngestConfigError(f"{path}: invalid ingest config: {problems}") from exc


def load_source_specs(config_dir: Path) -> list[SourceSpec]:
    """All source configs in a folder, sorted by file name; source names must be unique."""
    paths = sorted(config_dir.glob("*.yaml"))
    if not paths:
        raise IngestConfigError(f"{config_dir}: no *.yaml ingest configs found")
    specs = [load_source_spec(p) for p in paths]
    names = [s.source for s in specs]
    if len(set(names)) != len(names):
        raise IngestConfigError(f"{config_dir}: duplicate source names {names}")
    return specs
