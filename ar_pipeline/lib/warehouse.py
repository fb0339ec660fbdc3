"""Small shared questions about the DuckDB warehouse, asked the same way everywhere."""

from __future__ import annotations

import duckdb


def table_exists(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether `schema.table` (a table or a view) exists in the connection's current database.

    Attached databases (e.g. the copy being published) are not looked at."""
    return conn.execute(
        """SELECT count(*) FROM information_schema.tables
           WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ?""",
        [schema, table],
    ).fetchall()[0][0] > 0
