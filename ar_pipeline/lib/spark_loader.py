"""Copy the raw tables dbt reads from the DuckDB file into a local Spark metastore.

The Python ingest lands raw data in DuckDB only. To build the dbt project with ``--target spark``
(dbt-spark's in-process ``session`` method), the sources must exist as Spark tables named like the
dbt sources (``raw_quickbooks.raw_invoices``, ...). This module:

1. lists those tables from the dbt sources files, so it never drifts from what dbt reads;
2. exports each one from DuckDB to Parquet (JSON columns as plain strings, Spark has no JSON type);
3. registers each Parquet folder as an external table in the Spark metastore.

The Spark settings below mirror the ``spark`` output of ``dbt_project/profiles.yml``: same
warehouse folder and same Derby metastore, so a later ``dbt build --target spark`` sees the tables.
The embedded Derby metastore admits one JVM at a time: run the loader and dbt one after the other
(``python -m ar_pipeline.lib.spark_loader``, then dbt), not side by side.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ar_pipeline.lib.settings import DBT_PROJECT_DIR, resolve_path

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Default root of the local Spark state; AR_SPARK_WAREHOUSE_DIR overrides it (as in profiles.yml).
DEFAULT_SPARK_STATE_DIR = "data/spark"


def dbt_source_tables(dbt_project_dir: Path = DBT_PROJECT_DIR) -> list[tuple[str, str]]:
    """(schema, table) of every dbt source table, read from the models' ``*sources.yml`` files."""
    tables: set[tuple[str, str]] = set()
    for path in sorted((dbt_project_dir / "models").rglob("*sources.yml")):
        for source in (yaml.safe_load(path.read_text()) or {}).get("sources", []):
            if ((source.get("config") or {}).get("meta") or {}).get("ar_pipeline", {}).get("documentation_only"):
                continue  # declared to document Python-built tables (schema analytics); no model reads it
            schema = source.get("schema", source["name"])
            tables.update((schema, table["name"]) for table in source.get("tables", []))
    return sorted(tables)


def spark_conf(state_dir: Path, shuffle_partitions: int = 2) -> dict[str, str]:
    """Session settings matching the ``spark`` output of profiles.yml for this state folder."""
    state_dir = state_dir.resolve()
    return {
        "spark.sql.warehouse.dir": str(state_dir / "warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL":
            f"jdbc:derby:;databaseName={state_dir / 'metastore_db'};create=true",
        # derby.log lands in derby.system.home (else in the working directory).
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={state_dir}",
        "spark.driver.memory": "1g",
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.log.level": "ERROR",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.ansi.enabled": "false",  # dbt-spark forces this too
    }


def spark_session(state_dir: Path) -> SparkSession:
    """A local Spark session with Hive support (as dbt-spark builds it) on ``state_dir``."""
    from pyspark.sql import SparkSession

    state_dir.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.appName("ar_pipeline").enableHiveSupport()
    for key, value in spark_conf(state_dir).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def export_raw_tables(duckdb_path: Path, out_dir: Path, tables: Iterable[tuple[str, str]]) -> dict[str, Path]:
    """Write each ``schema.table`` of the DuckDB file to ``out_dir/schema/table/data.parquet``.

    Returns ``{"schema.table": folder}``. JSON columns are cast to text; every other DuckDB type in
    the raw tables (varchar, integers, decimals, dates, timestamps with time zone) maps to Parquet
    types Spark reads as they are. A missing table is an error: dbt would fail on it anyway.
    """
    import duckdb

    folders: dict[str, Path] = {}
    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        for schema, table in tables:
            columns = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                [schema, table],
            ).fetchall()
            if not columns:
                raise LookupError(f"{schema}.{table} is not in {duckdb_path}: run the ingest first")
            select = ", ".join(
                f'CAST("{name}" AS VARCHAR) AS "{name}"' if data_type == "JSON" else f'"{name}"'
                for name, data_type in columns
            )
            folder = out_dir / schema / table
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / "data.parquet"
            conn.execute(f"COPY (SELECT {select} FROM {schema}.{table}) TO '{target}' (FORMAT parquet)")
            folders[f"{schema}.{table}"] = folder
    return folders


def register_tables(spark: SparkSession, folders: dict[str, Path]) -> None:
    """(Re)create each ``schema.table`` as an external Parquet table over its folder."""
    for schema in sorted({name.split(".")[0] for name in folders}):
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {schema}")
    for name, folder in sorted(folders.items()):
        # Dropping an external table leaves its files alone; re-running the loader replaces them.
        spark.sql(f"DROP TABLE IF EXISTS {name}")
        spark.sql(f"CREATE TABLE {name} USING parquet LOCATION '{folder.resolve()}'")


def load_duckdb_raw_into_spark(duckdb_path: Path, state_dir: Path) -> dict[str, int]:
    """Export every dbt source table and register it in Spark; returns row counts as Spark sees them."""
    folders = export_raw_tables(duckdb_path, state_dir / "raw_parquet", dbt_source_tables())
    spark = spark_session(state_dir)
    try:
        register_tables(spark, folders)
        return {name: spark.table(name).count() for name in sorted(folders)}
    finally:
        spark.stop()


def main(argv: list[str] | None = None) -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duckdb", default=os.environ.get("AR_DUCKDB_PATH", "data/ar.duckdb"),
                        help="DuckDB file holding the raw_* schemas (default: $AR_DUCKDB_PATH)")
    parser.add_argument("--state-dir", default=os.environ.get("AR_SPARK_WAREHOUSE_DIR", DEFAULT_SPARK_STATE_DIR),
                        help="Spark warehouse + metastore folder (default: $AR_SPARK_WAREHOUSE_DIR or data/spark)")
    args = parser.parse_args(argv)
    counts = load_duckdb_raw_into_spark(resolve_path(args.duckdb), resolve_path(args.state_dir))
    for name, rows in counts.items():
        print(f"{name}: {rows} rows")


if __name__ == "__main__":
    main()
