"""Small shared questions about the DuckDB warehouse, asked the same way everywhere."""

from __future__ import annotations

from datetime import date
from typing import Literal, overload

import duckdb


def table_exists(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether `schema.table` (a table or a view) exists in the connection's current database.

    Attached databases (e.g. the copy being published) are not looked at."""
    return conn.execute(
        """SELECT count(*) FROM information_schema.tables
           WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ?""",
        [schema, table],
    ).fetchall()[0][0] > 0


@overload
def marts_as_of(conn: duckdb.DuckDBPyConnection, *, required: Literal[True]) -> date: ...
@overload
def marts_as_of(conn: duckdb.DuckDBPyConnection, *, required: Literal[False]) -> date | None: ...
def marts_as_of(conn: duckdb.DuckDBPyConnection, *, required: bool) -> date | None:
    """The as-of date the marts were built for (the dbt var `as_of_date` of the run that built them,
    never the clock): the one `as_of_date` of marts.fct_invoices, or of marts.dim_customers when
    there is no invoice.

    Raises RuntimeError when marts.fct_invoices does not exist (the marts were never built) and
    ValueError when a table holds several as-of dates. When both tables are empty: None if not
    `required` (callers that write empty tables for an empty ledger), else RuntimeError."""
    if not table_exists(conn, "marts", "fct_invoices"):
        raise RuntimeError("marts.fct_invoices does not exist: build the marts first (`ar-pipeline run`)")
    for table in ("marts.fct_invoices", "marts.dim_customers"):
        rows = conn.execute(f"SELECT DISTINCT as_of_date FROM {table} WHERE as_of_date IS NOT NULL").fetchall()
        if len(rows) > 1:
            raise ValueError(f"{table} holds several as_of_date values: {sorted(r[0] for r in rows)}")
        if rows:
            return rows[0][0]
    if required:
        raise RuntimeError("marts.fct_invoices and marts.dim_customers are empty: no as-of date to build for")
    return None
