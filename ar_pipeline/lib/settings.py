"""Where things live. Every path comes from an environment variable with a sane default.

Relative paths are resolved against the project root (the folder holding `pyproject.toml`), so the
CLI, `dagster dev` and dbt agree on the same files whatever the working directory is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
REPO_DAGSTER_YAML = PROJECT_ROOT / "dagster.yaml"

DEFAULTS = {
    "AR_DUCKDB_PATH": "data/ar.duckdb",
    "AR_LANDING_DIR": "data/landing",
    "AR_INGEST_CONFIG_DIR": "ingest_configs",
    "DAGSTER_HOME": ".dagster_home",
    "AR_STATE_DIR": "data/state",
    "AR_PUBLISH_DIR": "data/published",
}


#: DuckDB's memory cap for the pipeline's connections and dbt: DuckDB otherwise takes up to 80% of
#: RAM for its buffer pool; with a cap it spills to disk instead (see bench/ for the trade-off).
DEFAULT_DUCKDB_MEMORY_LIMIT = "2GB"


def duckdb_memory_limit() -> str:
    return os.environ.get("AR_DUCKDB_MEMORY_LIMIT") or DEFAULT_DUCKDB_MEMORY_LIMIT


def resolve_path(value: str | os.PathLike[str]) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (PROJECT_ROOT / path)


def env_path(name: str) -> Path:
    """The path in env var `name`, or its documented default, made absolute."""
    return resolve_path(os.environ.get(name) or DEFAULTS[name])


@dataclass(frozen=True)
class Paths:
    duckdb: Path
    landing_dir: Path
    ingest_config_dir: Path
    dagster_home: Path
    state_dir: Path
    #: Read-only copies for BI tools (published DuckDB file, Parquet per table, dashboard).
    publish_dir: Path

    @classmethod
    def from_env(cls) -> Paths:
        return cls(
            duckdb=env_path("AR_DUCKDB_PATH"),
            landing_dir=env_path("AR_LANDING_DIR"),
            ingest_config_dir=env_path("AR_INGEST_CONFIG_DIR"),
            dagster_home=env_path("DAGSTER_HOME"),
            state_dir=env_path("AR_STATE_DIR"),
            publish_dir=env_path("AR_PUBLISH_DIR"),
        )
