"""Publishing read-only copies: atomic replacement, readers undisturbed, Parquet per table."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

from ar_pipeline.lib.publish import publish_tables


def _warehouse(path: Path, invoices: int) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(str(path))
    for schema in ("marts", "analytics", "raw_x"):
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    conn.execute(f"""CREATE OR REPLACE TABLE marts.fct_invoices AS
                     SELECT i AS invoice_key, DATE '2026-06-30' AS as_of_date, i * 1.5 AS open_amount
                     FROM range({invoices}) t(i)""")
    conn.execute("CREATE OR REPLACE TABLE analytics.scores AS SELECT 1 AS invoice_key, 0.25 AS p_late")
    conn.execute("CREATE OR REPLACE TABLE raw_x.secret AS SELECT 'not for BI' AS s")
    return conn


def test_publish_copies_the_finance_schemas_only(tmp_path: Path) -> None:
    conn = _warehouse(tmp_path / "ar.duckdb", 10)
    result = publish_tables(conn, tmp_path / "published")
    published = {(t.schema, t.table, t.rows) for t in result.tables}
    assert published == {("marts", "fct_invoices", 10), ("analytics", "scores", 1)}
    assert str(result.as_of_date) == "2026-06-30"
    with duckdb.connect(str(result.duckdb_path), read_only=True) as pub:
        total = pub.execute("SELECT sum(open_amount) FROM marts.fct_invoices").fetchall()[0][0]
        assert total == sum(i * 1.5 for i in range(10))
        raw = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw_x'"
        assert pub.execute(raw).fetchall()[0][0] == 0
        info = dict(pub.execute("SELECT table_name, row_count FROM published.publish_info").fetchall())
    assert info == {"marts.fct_invoices": 10, "analytics.scores": 1}
    assert pl.read_parquet(tmp_path / "published" / "parquet" / "marts" / "fct_invoices.parquet").height == 10
    assert not list((tmp_path / "published").glob(".*tmp*"))  # no temporary files left behind


def test_a_reader_keeps_its_copy_while_a_new_one_is_published(tmp_path: Path) -> None:
    conn = _warehouse(tmp_path / "ar.duckdb", 10)
    publish_tables(conn, tmp_path / "published")
    reader = duckdb.connect(str(tmp_path / "published" / "ar.duckdb"), read_only=True)
    assert reader.execute("SELECT count(*) FROM marts.fct_invoices").fetchall()[0][0] == 10
    conn.execute(
        "CREATE OR REPLACE TABLE marts.fct_invoices AS SELECT i AS invoice_key, DATE '2026-07-31' AS as_of_date, "
        "1.0 AS open_amount FROM range(25) t(i)")
    publish_tables(conn, tmp_path / "published")  # the pipeline writes; the BI reader is not blocked
    assert reader.execute("SELECT count(*) FROM marts.fct_invoices").fetchall()[0][0] == 10  # its snapshot
    reader.close()
    with duckdb.connect(str(tmp_path / "published" / "ar.duckdb"), read_only=True) as fresh:
        assert fresh.execute("SELECT count(*) FROM marts.fct_invoices").fetchall()[0][0] == 25


def test_parquet_of_dropped_tables_is_removed(tmp_path: Path) -> None:
    conn = _warehouse(tmp_path / "ar.duckdb", 3)
    publish_tables(conn, tmp_path / "published")
    conn.execute("DROP TABLE analytics.scores")
    publish_tables(conn, tmp_path / "published")
    assert sorted(p.name for p in (tmp_path / "published" / "parquet").rglob("*.parquet")) == ["fct_invoices.parquet"]


def test_nothing_to_publish_is_a_clear_error(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "empty.duckdb")) as conn, \
            pytest.raises(RuntimeError, match="run the pipeline first"):
        publish_tables(conn, tmp_path / "published")
    assert not (tmp_path / "published" / "ar.duckdb").exists()


def test_readme_data_dictionary_is_generated_from_the_model_yaml_and_current() -> None:
    from ar_pipeline.lib.data_dictionary import (
        README,
        analytics_tables,
        mart_tables,
        published_tables,
        readme_with_dictionary,
        render,
    )

    tables = mart_tables()
    assert {"fct_invoices", "fct_ar_aging", "ar_kpis_monthly", "fct_ar_events"} <= {t.name for t in tables}
    undocumented = [f"{t.name}.{c.name}" for t in tables for c in t.columns if not (c.description and c.data_type)]
    assert undocumented == [], "every mart column needs a description and a data_type in the model YAML"
    analytics = analytics_tables()
    assert {"invoice_risk_scores", "reminder_queue", "cash_forecast_weekly"} <= {t.name for t in analytics}
    assert all(t.schema == "analytics" and t.description and t.columns for t in analytics)
    undocumented = [f"{t.name}.{c.name}" for t in analytics for c in t.columns if not (c.description and c.data_type)]
    assert undocumented == [], "every analytics column needs a description and a data_type in its source YAML"
    text = README.read_text()
    assert readme_with_dictionary(text, render(published_tables())) == text, "README is stale: run `ar-pipeline docs`"
