"""Resources shared by every area: the DuckDB warehouse, the landing folder and dbt.

Paths come from environment variables (`AR_DUCKDB_PATH`, `AR_LANDING_DIR`, `AR_INGEST_CONFIG_DIR`)
with the defaults documented in the README; see `ar_pipeline.lib.settings`.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource
from dagster_duckdb import DuckDBResource
from pydantic import Field

from ar_pipeline.lib.ingest_config import SourceSpec, load_source_specs
from ar_pipeline.lib.settings import DBT_PROJECT_DIR, Paths, duckdb_memory_limit


class LandingResource(dg.ConfigurableResource):
    """Where source files land and where the ingest configs that describe them live."""

    landing_dir: str = Field(description="Folder with one sub-folder per source (AR_LANDING_DIR).")
    ingest_config_dir: str = Field(description="Folder of ingest YAMLs (AR_INGEST_CONFIG_DIR).")
    state_dir: str = Field(description="Connector cursors and rotated tokens (AR_STATE_DIR).")

    def landing_path(self) -> Path:
        return Path(self.landing_dir)

    def state_path(self) -> Path:
        return Path(self.state_dir)

    def source_specs(self) -> list[SourceSpec]:
        return load_source_specs(Path(self.ingest_config_dir))


class PublishResource(dg.ConfigurableResource):
    """Where read-only copies for BI tools are published (AR_PUBLISH_DIR)."""

    publish_dir: str = Field(description="Folder for the published DuckDB file, Parquet files and dashboard.")

    def path(self) -> Path:
        return Path(self.publish_dir)


def dbt_executable() -> str:
    """This environment's dbt (next to the running Python), else whatever `dbt` is on PATH."""
    local = Path(sys.executable).parent / "dbt"
    return str(local) if local.exists() else (shutil.which("dbt") or "dbt")


def build_resources(paths: Paths) -> dict[str, object]:
    return {
        "duckdb": DuckDBResource(
            database=str(paths.duckdb), connection_config={"memory_limit": duckdb_memory_limit()}
        ),
        "landing": LandingResource(
            landing_dir=str(paths.landing_dir),
            ingest_config_dir=str(paths.ingest_config_dir),
            state_dir=str(paths.state_dir),
        ),
        "publish": PublishResource(publish_dir=str(paths.publish_dir)),
        "dbt": DbtCliResource(
            project_dir=str(DBT_PROJECT_DIR),
            profiles_dir=str(DBT_PROJECT_DIR),
            dbt_executable=dbt_executable(),
        ),
    }


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources=build_resources(Paths.from_env()))
