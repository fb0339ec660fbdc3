"""Publish read-only copies of the finance tables for BI tools.

DuckDB takes one writer: a BI tool holding the pipeline's own file open would block the next run,
and a reader during a run could see half-built tables. So after a successful run the tables of the
published schemas are copied to

- `<publish_dir>/ar.duckdb`: written to a temporary file next to it, then renamed over the old one
  (`os.replace`, atomic on POSIX): a reader sees either the previous copy or the new one, never a
  half-written file, and a reader that already has the old file open keeps reading it;
- `<publish_dir>/parquet/<schema>/<table>.parquet`: one file per table, each written to a
  temporary name and renamed into place (files of tables that no longer exist are removed).

A table `published.publish_info` in the DuckDB copy says when it was published, as of which date,
when the newest source file was loaded (the data's freshness), and how many rows each table has.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from ar_pipeline.lib.warehouse import table_exists

#: Schemas finance reads: the dbt marts and the Python analytics tables.
PUBLISHED_SCHEMAS: tuple[str, ...] = ("marts", "analytics")
PUBLISHED_DB_NAME = "ar.duckdb"


@dataclass(frozen=True)
class PublishedTable:
    schema: str
    table: str
    rows: int
    parquet_path: Path


@dataclass(frozen=True)
class PublishResult:
    duckdb_path: Path
    tables: list[PublishedTable]
    published_at: datetime
    as_of_date: date | None


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def tables_to_publish(conn: duckdb.DuckDBPyConnection, schemas: tuple[str, ...] = PUBLISHED_SCHEMAS
                      ) -> list[tuple[str, str]]:
    """(schema, table) of every table and view in the published schemas of the current database."""
    rows = conn.execute(
        """SELECT table_schema, table_name FROM information_schema.tables
           WHERE table_catalog = current_database() AND table_schema IN (SELECT unnest(?))
           ORDER BY table_schema, table_name""",
        [list(schemas)],
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def _as_of_date(conn: duckdb.DuckDBPyConnection, tables: list[tuple[str, str]]) -> date | None:
    if ("marts", "fct_invoices") not in tables:
        return None
    return conn.execute("SELECT max(as_of_date) FROM marts.fct_invoices").fetchall()[0][0]


def _data_loaded_at(conn: duckdb.DuckDBPyConnection) -> datetime | None:
    """When the newest source file was loaded (the data's freshness), if the audit table exists."""
    if not table_exists(conn, "ingest_audit", "file_loads"):
        return None
    return conn.execute("SELECT max(loaded_at) FROM ingest_audit.file_loads").fetchall()[0][0]


def publish_tables(conn: duckdb.DuckDBPyConnection, publish_dir: Path,
            schemas: tuple[str, ...] = PUBLISHED_SCHEMAS) -> PublishResult:
    """Copy the published schemas of `conn`'s database to `publish_dir` (see the module docstring)."""
    publish_dir.mkdir(parents=True, exist_ok=True)
    tables = tables_to_publish(conn, schemas)
    if not tables:
        raise RuntimeError(f"nothing to publish: no tables in schemas {', '.join(schemas)} (run the pipeline first)")
    published_at = datetime.now(UTC).replace(microsecond=0)
    as_of = _as_of_date(conn, tables)
    final_db = publish_dir / PUBLISHED_DB_NAME
    tmp_db = publish_dir / f".{PUBLISHED_DB_NAME}.{uuid.uuid4().hex}.tmp"
    alias = f"publish_{uuid.uuid4().hex[:8]}"
    published: list[PublishedTable] = []
    try:
        conn.execute(f"ATTACH '{tmp_db}' AS {alias}")
        try:
            for schema in sorted({s for s, _ in tables}):
                conn.execute(f"CREATE SCHEMA {alias}.{_quote(schema)}")
            for schema, table in tables:
                source = f"{_quote(schema)}.{_quote(table)}"
                conn.execute(f"CREATE TABLE {alias}.{source} AS SELECT * FROM {source}")
                rows = conn.execute(f"SELECT count(*) FROM {alias}.{source}").fetchall()[0][0]
                published.append(PublishedTable(schema, table, rows, _write_parquet(conn, publish_dir, schema, table)))
            conn.execute(f"CREATE SCHEMA {alias}.published")
            conn.execute(
                f"""CREATE TABLE {alias}.published.publish_info AS
                    SELECT CAST(? AS TIMESTAMP) AS published_at, CAST(? AS DATE) AS as_of_date,
                           CAST(? AS TIMESTAMPTZ) AS data_loaded_at,
                           unnest(?) AS table_name, unnest(?) AS row_count""",
                [published_at.replace(tzinfo=None), as_of, _data_loaded_at(conn),
                 [f"{t.schema}.{t.table}" for t in published], [t.rows for t in published]],
            )
        finally:
            conn.execute(f"DETACH {alias}")
        os.replace(tmp_db, final_db)
    finally:
        tmp_db.unlink(missing_ok=True)
        Path(f"{tmp_db}.wal").unlink(missing_ok=True)
    _remove_stale_parquet(publish_dir, {t.parquet_path for t in published})
    return PublishResult(final_db, published, published_at, as_of)


def _write_parquet(conn: duckdb.DuckDBPyConnection, publish_dir: Path, schema: str, table: str) -> Path:
    target = publish_dir / "parquet" / schema / f"{table}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        conn.execute(f"COPY (SELECT * FROM {_quote(schema)}.{_quote(table)}) TO '{tmp}' (FORMAT parquet)")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _remove_stale_parquet(publish_dir: Path, keep: set[Path]) -> None:
    for path in (publish_dir / "parquet").glob("*/*.parquet"):
        if path not in keep:
            path.unlink()
