"""The dbt project on Apache Spark builds the same marts as on DuckDB.

One seeded data set goes through the real pipeline into DuckDB (ingest + `dbt build`). Its raw tables
are then copied into a local Spark metastore (ar_pipeline.lib.spark_loader) and the project is built
again with `dbt build --target spark` (dbt-spark's in-process session method) up to the key marts.
Both engines' marts are read back and compared row by row: same keys, amounts equal to the cent,
KPI ratios equal to 6 decimals, every other column (dates, buckets, counts, rates, text) identical.

dbt runs in this process (dbtRunner) so it picks up the Spark session the test opened, with its
metastore in a temporary folder; `python -m ar_pipeline.lib.spark_loader` followed by the dbt CLI is
the same thing across processes (see the README).

Slow (two pipelines): marked `spark`; `make test-spark` runs it alone. Needs Java 17+.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from ar_pipeline.lib.settings import DBT_PROJECT_DIR

pytestmark = pytest.mark.spark

AS_OF = date(2026, 6, 30)
DBT_SELECT = ["+fct_invoices", "+fct_ar_aging", "+ar_kpis_monthly"]
# Every model up to the marts plus the marts' and seeds' own tests and the singular (reconciliation)
# tests (seeds load differently on Spark: an empty cell becomes the text 'None'); the per-column tests
# of staging and intermediate are left to the DuckDB suite to keep this under a few minutes (each
# Spark query costs a fraction of a second however small the data).
DBT_EXCLUDE = [
    "resource_type:unit_test",
    "test_type:generic,path:models/staging",
    "test_type:generic,path:models/intermediate",
]


def _java_available() -> bool:
    java_home = os.environ.get("JAVA_HOME")
    return shutil.which("java") is not None or bool(java_home and (Path(java_home) / "bin" / "java").exists())


if not _java_available():
    pytest.skip("Spark needs a Java runtime (17+): no `java` on PATH and no JAVA_HOME", allow_module_level=True)
pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[dev]'")
pytest.importorskip("dbt.adapters.spark", reason="dbt-spark is not installed: pip install -e '.[dev]'")


@dataclass(frozen=True)
class Mart:
    keys: tuple[str, ...]
    money: tuple[str, ...] = ()  # compared to the cent
    ratios: tuple[str, ...] = ()  # compared to 6 decimals


MARTS = {
    "fct_invoices": Mart(
        keys=("invoice_key",),
        money=("total_amount", "applied_amount", "open_amount", "home_total_amount", "home_open_amount"),
    ),
    "fct_ar_aging": Mart(keys=("invoice_key",), money=("open_amount", "home_open_amount")),
    # the incremental model (insert_overwrite by snapshot_date on Spark, delete+insert on DuckDB)
    "fct_ar_aging_snapshots": Mart(keys=("snapshot_date", "invoice_key"), money=("open_amount", "home_open_amount")),
    "ar_kpis_monthly": Mart(
        keys=("month_end", "dimension", "dimension_value"),
        money=("ar_end", "ar_current_end", "credit_sales", "collections"),
        ratios=("dso", "countback_dso", "best_possible_dso", "average_days_delinquent", "percent_current",
                "percent_over_90", "cei"),
    ),
}


def mart_differences(duckdb_rows: pl.DataFrame, spark_rows: pl.DataFrame, mart: Mart, sample: int = 5) -> list[str]:
    """What differs between the two engines' copies of one mart (empty list = same)."""
    if sorted(duckdb_rows.columns) != sorted(spark_rows.columns):
        return [f"columns differ: duckdb {sorted(duckdb_rows.columns)} vs spark {sorted(spark_rows.columns)}"]
    problems: list[str] = []
    if duckdb_rows.height != spark_rows.height:
        problems.append(f"row count: duckdb {duckdb_rows.height} vs spark {spark_rows.height}")
    keys = list(mart.keys)
    for name, frame in (("duckdb", duckdb_rows), ("spark", spark_rows)):
        if frame.select(keys).is_duplicated().any():
            problems.append(f"{name} has duplicate keys {keys}")
    only_duckdb = duckdb_rows.join(spark_rows, on=keys, how="anti", nulls_equal=True).select(keys)
    only_spark = spark_rows.join(duckdb_rows, on=keys, how="anti", nulls_equal=True).select(keys)
    if only_duckdb.height:
        problems.append(f"{only_duckdb.height} keys only in duckdb, e.g. {only_duckdb.head(sample).rows()}")
    if only_spark.height:
        problems.append(f"{only_spark.height} keys only in spark, e.g. {only_spark.head(sample).rows()}")

    both = duckdb_rows.join(spark_rows.select(duckdb_rows.columns), on=keys, how="inner", suffix="__spark",
                            nulls_equal=True)
    for column in duckdb_rows.columns:
        if column in keys:
            continue
        left, right = pl.col(column), pl.col(f"{column}__spark")
        if column in mart.money:
            differs = left.cast(pl.Float64).round(2).ne_missing(right.cast(pl.Float64).round(2))
        elif column in mart.ratios:
            # one unit in the 6th decimal: DuckDB divides in double, Spark in decimal(38,18), both round
            differs = ((left.cast(pl.Float64) - right.cast(pl.Float64)).abs() > 1.5e-6).fill_null(
                left.is_null() != right.is_null())
        else:
            differs = left.ne_missing(right)
        bad = both.filter(differs).select(*keys, column, f"{column}__spark")
        if bad.height:
            problems.append(f"{column}: {bad.height} rows differ, e.g. {bad.head(sample).rows()}")
    return problems


def _dbt_build_on_spark(root: Path) -> None:
    """`dbt build --target spark` in this process, so it reuses the Spark session already open here."""
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke([
        "build", "--target", "spark", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(root / "dbt_target"), "--log-path", str(root / "dbt_logs"),
        # Two dbt threads share the one Spark session: each statement is mostly fixed overhead.
        "--threads", "2",
        "--select", *DBT_SELECT, "--exclude", *DBT_EXCLUDE, "--indirect-selection", "cautious",
        "--vars", json.dumps({"as_of_date": AS_OF.isoformat()}),
    ])
    if not result.success:
        failed = [f"{r.node.unique_id}: {r.status} {r.message}" for r in getattr(result.result, "results", [])
                  if str(r.status) not in ("success", "pass")]
        pytest.fail(f"dbt build --target spark failed: {result.exception or ''}\n" + "\n".join(failed))


@pytest.fixture(scope="module")
def marts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, pl.DataFrame]]:
    """{mart: {"duckdb": rows, "spark": rows}} for one seeded data set built on both engines."""
    from ar_pipeline.defs.transform.project import prepare_dbt_manifest
    from ar_pipeline.lib.generator import GeneratorConfig, generate
    from ar_pipeline.lib.spark_loader import dbt_source_tables, export_raw_tables, register_tables, spark_session

    root = tmp_path_factory.mktemp("spark")
    landing, db, state = root / "landing", root / "ar.duckdb", root / "spark"
    generate(GeneratorConfig(landing_dir=landing, seed=11, customers=30, years=1.5, invoices=600,
                             end_date=AS_OF, progress=False))
    mp = pytest.MonkeyPatch()
    mp.setenv("AR_DUCKDB_PATH", str(db))
    mp.setenv("AR_LANDING_DIR", str(landing))
    mp.setenv("AR_SPARK_WAREHOUSE_DIR", str(state))
    try:
        # 1. DuckDB: the real Dagster job (ingest + dbt build), as in test_e2e.
        prepare_dbt_manifest()
        from ar_pipeline.definitions import defs

        result = defs().resolve_job_def("refresh_ar").execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            run_config={"ops": {"ar_dbt_models": {"config": {"as_of_date": AS_OF.isoformat()}}}},
            raise_on_error=False,
        )
        assert result.success, "the DuckDB pipeline failed"

        # 2. Spark: raw tables in, dbt, marts out, all on one session (one JVM start, one metastore).
        spark = spark_session(state)
        try:
            register_tables(spark, export_raw_tables(db, state / "raw_parquet", dbt_source_tables()))
            _dbt_build_on_spark(root)
            out = {name: {"spark": pl.from_arrow(spark.table(f"marts.{name}").toArrow())} for name in MARTS}
        finally:
            spark.stop()
    finally:
        mp.undo()

    with duckdb.connect(str(db), read_only=True) as conn:
        for name in MARTS:
            out[name]["duckdb"] = conn.sql(f"SELECT * FROM marts.{name}").pl()
    return out


@pytest.mark.parametrize("name", list(MARTS))
def test_spark_mart_equals_duckdb_mart(marts, name: str) -> None:
    duckdb_rows, spark_rows = marts[name]["duckdb"], marts[name]["spark"]
    assert duckdb_rows.height > 0, f"{name} is empty on DuckDB: nothing compared"
    assert mart_differences(duckdb_rows, spark_rows, MARTS[name]) == []


def test_data_exercises_buckets_sources_and_dimensions(marts) -> None:
    """The comparison is only worth something if the data exercises the interesting cases."""
    buckets = set(marts["fct_ar_aging"]["spark"]["aging_bucket"])
    assert "current" in buckets and len(buckets) >= 3  # current and at least two overdue buckets
    assert set(marts["fct_ar_aging_snapshots"]["spark"]["aging_bucket"]) > buckets  # history ages further
    assert marts["fct_invoices"]["spark"]["source"].n_unique() >= 2  # QuickBooks and Stripe
    assert set(marts["fct_invoices"]["spark"]["status"]) >= {"open", "paid"}
    assert set(marts["ar_kpis_monthly"]["spark"]["dimension"]) == {"all", "segment", "region", "collector"}
    assert marts["ar_kpis_monthly"]["spark"]["cei"].drop_nulls().len() > 0


def test_comparison_catches_a_one_cent_difference(marts) -> None:
    """The comparison can fail: one cent off on one invoice, or one invoice missing, is reported."""
    duckdb_rows = marts["fct_invoices"]["duckdb"]
    first_key = duckdb_rows["invoice_key"][0]
    one_cent_off = duckdb_rows.with_columns(
        pl.when(pl.col("invoice_key") == first_key)
        .then(pl.col("open_amount") + pl.lit(0.01).cast(duckdb_rows.schema["open_amount"]))
        .otherwise(pl.col("open_amount"))
        .alias("open_amount")
    )
    problems = mart_differences(duckdb_rows, one_cent_off, MARTS["fct_invoices"])
    assert len(problems) == 1 and problems[0].startswith("open_amount: 1 rows differ"), problems
    missing = mart_differences(duckdb_rows, duckdb_rows.slice(1), MARTS["fct_invoices"])
    assert any("keys only in duckdb" in p for p in missing) and any("row count" in p for p in missing)
