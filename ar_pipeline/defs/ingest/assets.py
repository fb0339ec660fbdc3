"""Ingest assets: one per raw table declared in `ingest_configs/*.yaml`.

Each asset loads new/changed landing files for its table (see `ar_pipeline.lib.ingest`) and carries
two checks: a blocking reconciliation (every input record is loaded, a known duplicate, or
quarantined) and a warning when records were quarantined. Keys are `[source, table]`, the same keys
dbt sources get, so the asset graph is one lineage from files to marts.
"""


import dagster as dg
from dagster_duckdb import DuckDBResource

from ar_pipeline.defs.ingest.api_sync import api_pages_key, build_api_sync_asset
from ar_pipeline.defs.resources import LandingResource
from ar_pipeline.lib.connectors import API_SOURCES
from ar_pipeline.lib.ingest import AUDIT_SCHEMA, landing_files, load_entity, qualified
from ar_pipeline.lib.ingest_config import EntitySpec, SourceSpec, load_source_specs
from ar_pipeline.lib.settings import Paths

RECONCILES = "all_records_accounted_for"
NO_QUARANTINE = "no_records_quarantined"


def reconciliation_counts(conn, source: SourceSpec, entity: EntitySpec, files: list[str]) -> dict:
    """Counts over the files now in the landing folder, read back from the tables themselves."""
    row = conn.execute(
        f"""
        WITH current_files AS (SELECT unnest(?::VARCHAR[]) AS source_file)
        SELECT
          (SELECT coalesce(sum(rows_in_file), 0) FROM {AUDIT_SCHEMA}.file_loads
             WHERE source = ? AND raw_table = ? AND source_file IN (SELECT * FROM current_files)),
          (SELECT count(*) FROM {qualified(source, entity)}
             WHERE _source_file IN (SELECT * FROM current_files)),
          (SELECT coalesce(sum(rows_duplicate), 0) FROM {AUDIT_SCHEMA}.file_loads
             WHERE source = ? AND raw_table = ? AND source_file IN (SELECT * FROM current_files)),
          (SELECT count(*) FROM {AUDIT_SCHEMA}.quarantine
             WHERE source = ? AND raw_table = ? AND source_file IN (SELECT * FROM current_files)),
          (SELECT count(*) FROM (SELECT * FROM current_files) f
             WHERE source_file NOT IN (SELECT source_file FROM {AUDIT_SCHEMA}.file_loads
                                        WHERE source = ? AND raw_table = ?))
        """,
        [files] + [source.source, entity.table] * 4,
    ).fetchone()
    assert row is not None
    rows_in, loaded, duplicate, quarantined, unloaded_files = (int(x) for x in row)
    return {
        "rows_in_files": rows_in,
        "rows_in_raw_table": loaded,
        "rows_duplicate": duplicate,
        "rows_quarantined": quarantined,
        "files_not_loaded": unloaded_files,
    }


def build_ingest_asset(source: SourceSpec, entity: EntitySpec) -> dg.AssetsDefinition:
    key = dg.AssetKey([source.source, entity.table])

    @dg.asset(
        key=key,
        group_name="ingest",
        deps=[api_pages_key(source.source)] if source.source in API_SOURCES else [],
        kinds={"duckdb", source.source},
        description=entity.description or f"{source.source} {entity.table}",
        pool="duckdb",
        retry_policy=dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL),
        check_specs=[
            dg.AssetCheckSpec(
                RECONCILES,
                asset=key,
                blocking=True,
                description="Every record in the landing files is loaded, a known duplicate, "
                "or quarantined with a reason.",
            ),
            dg.AssetCheckSpec(
                NO_QUARANTINE,
                asset=key,
                description="Warns when records were quarantined (see ingest_audit.quarantine).",
            ),
        ],
        metadata={
            "table": f"{source.schema_name}.{entity.table}",
            "landing_glob": f"{source.landing_subdir}/{entity.files}",
            "primary_key": entity.primary_key,
        },
    )
    def _ingest(context: dg.AssetExecutionContext, duckdb: DuckDBResource, landing: LandingResource):
        landing_dir = landing.landing_path()
        files = [str(p) for p in landing_files(landing_dir, source, entity)]
        if not files:
            context.log.warning(
                f"No files match {landing_dir / source.landing_subdir / entity.files}; "
                "the raw table stays as it is."
            )

        def progress(done: int, total: int) -> None:
            context.log.info(f"{key.to_user_string()}: {done}/{total} new or changed files loaded")

        with duckdb.get_connection() as conn:
            result = load_entity(conn, source, entity, landing_dir, batch_id=context.run.run_id,
                                 progress=progress)
            counts = reconciliation_counts(conn, source, entity, files)
            total_rows = conn.execute(f"SELECT count(*) FROM {qualified(source, entity)}").fetchone()
        context.log.info(
            f"{key.to_user_string()}: {result.files_loaded} files loaded, "
            f"{result.files_skipped_unchanged} unchanged skipped; rows loaded={result.rows_loaded} "
            f"duplicate={result.rows_duplicate} quarantined={result.rows_quarantined}"
        )
        accounted = counts["rows_in_raw_table"] + counts["rows_duplicate"] + counts["rows_quarantined"]
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": int(total_rows[0]) if total_rows else 0,
                "files_loaded": result.files_loaded,
                "files_skipped_unchanged": result.files_skipped_unchanged,
                "rows_loaded": result.rows_loaded,
                "rows_duplicate": result.rows_duplicate,
                "rows_quarantined": result.rows_quarantined,
            }
        )
        yield dg.AssetCheckResult(
            check_name=RECONCILES,
            passed=counts["rows_in_files"] == accounted and counts["files_not_loaded"] == 0,
            metadata=counts,
        )
        yield dg.AssetCheckResult(
            check_name=NO_QUARANTINE,
            passed=counts["rows_quarantined"] == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "rows_quarantined": counts["rows_quarantined"],
                "samples": dg.MetadataValue.md(
                    "\n".join(f"- {s}" for s in result.quarantine_samples) or "none"
                ),
            },
        )

    return _ingest


@dg.definitions
def defs() -> dg.Definitions:
    specs = load_source_specs(Paths.from_env().ingest_config_dir)
    return dg.Definitions(
        assets=[
            *(build_api_sync_asset(s.source) for s in specs if s.source in API_SOURCES),
            *(build_ingest_asset(s, e) for s in specs for e in s.entities),
        ],
    )
