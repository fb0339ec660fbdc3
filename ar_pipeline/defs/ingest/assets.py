"""Ingest assets: one per raw table declared in `ingest_configs/*.yaml`.

API configs (`kind: api_json`) give one asset per entity, keyed `[source, table]`. All invoice-export
configs (`kind: invoice_export`, hand-downloaded CSV/Excel reports) feed one shared table and one
asset, `["exports", "raw_invoices"]`, built only when at least one such config exists; likewise all
payment-export configs (`kind: payment_export`) feed `["exports", "raw_payments"]`, and all exchange-rate
files (`kind: fx_rates`) feed `["exports", "raw_fx_rates"]`.

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
from ar_pipeline.lib.ingest import AUDIT_SCHEMA, EntityLoadResult, landing_files, load_entity, qualified
from ar_pipeline.lib.ingest_config import (
    EXPORT_TABLE,
    FX_RATES_TABLE,
    PAYMENT_TABLE,
    EntitySpec,
    ExportSpecBase,
    FxRatesSpec,
    InvoiceExportSpec,
    PaymentExportSpec,
    SourceSpec,
    load_all_specs,
)
from ar_pipeline.lib.ingest_exports import export_files, load_export, table_qualified
from ar_pipeline.lib.settings import Paths

RECONCILES = "all_records_accounted_for"
NO_QUARANTINE = "no_records_quarantined"


def reconciliation_counts(conn, source: SourceSpec, entity: EntitySpec, files: list[str]) -> dict:
    """Counts over the files now in the landing folder, read back from the tables themselves."""
    return _reconciliation_counts(conn, source.source, entity.table, qualified(source, entity), files)


def _reconciliation_counts(
    conn, source_name: str, raw_table: str, table_sql: str, files: list[str], table_filter: str = ""
) -> dict:
    row = conn.execute(
        f"""
        WITH current_files AS (SELECT unnest(?::VARCHAR[]) AS source_file)
        SELECT
          (SELECT coalesce(sum(rows_in_file), 0) FROM {AUDIT_SCHEMA}.file_loads
             WHERE source = ? AND raw_table = ? AND source_file IN (SELECT * FROM current_files)),
          (SELECT count(*) FROM {table_sql}
             WHERE _source_file IN (SELECT * FROM current_files){table_filter}),
          (SELECT coalesce(sum(rows_duplicate), 0) FROM {AUDIT_SCHEMA}.file_loads
             WHERE source = ? AND raw_table = ? AND source_file IN (SELECT * FROM current_files)),
          (SELECT count(*) FROM {AUDIT_SCHEMA}.quarantine
             WHERE source = ? AND raw_table = ? AND source_file IN (SELECT * FROM current_files)),
          (SELECT count(*) FROM (SELECT * FROM current_files) f
             WHERE source_file NOT IN (SELECT source_file FROM {AUDIT_SCHEMA}.file_loads
                                        WHERE source = ? AND raw_table = ?))
        """,
        [files] + [source_name, raw_table] * 4,
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


def export_reconciliation_counts(conn, specs: list[ExportSpecBase], files: dict[str, list[str]]) -> dict:
    """Reconciliation counts for a shared export table, summed over the export configs;
    `files` maps each export source name to its files now in the landing folder."""
    total = {"rows_in_files": 0, "rows_in_raw_table": 0, "rows_duplicate": 0, "rows_quarantined": 0,
             "files_not_loaded": 0}
    for spec in specs:
        counts = _reconciliation_counts(
            conn, spec.source, spec.TABLE, table_qualified(spec), files.get(spec.source, []),
            table_filter=f" AND export_source = '{spec.source}'",
        )
        for name, value in counts.items():
            total[name] += value
    return total


def _check_results(counts: dict, samples: list[str]):
    accounted = counts["rows_in_raw_table"] + counts["rows_duplicate"] + counts["rows_quarantined"]
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
            "samples": dg.MetadataValue.md("\n".join(f"- {s}" for s in samples) or "none"),
        },
    )


def _check_specs(key: dg.AssetKey, what: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            RECONCILES,
            asset=key,
            blocking=True,
            description=f"Every {what} in the landing files is loaded, a known duplicate, "
            "or quarantined with a reason.",
        ),
        dg.AssetCheckSpec(
            NO_QUARANTINE,
            asset=key,
            description=f"Warns when {what}s were quarantined (see ingest_audit.quarantine).",
        ),
    ]


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
        check_specs=_check_specs(key, "record"),
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
        yield from _check_results(counts, result.quarantine_samples)

    return _ingest


EXPORTS_KEY = dg.AssetKey(["exports", EXPORT_TABLE])
PAYMENTS_KEY = dg.AssetKey(["exports", PAYMENT_TABLE])
FX_RATES_KEY = dg.AssetKey(["exports", FX_RATES_TABLE])
_EXPORT_KEYS: dict[type, dg.AssetKey] = {
    InvoiceExportSpec: EXPORTS_KEY, PaymentExportSpec: PAYMENTS_KEY, FxRatesSpec: FX_RATES_KEY,
}


def build_export_asset(
    specs: list[InvoiceExportSpec] | list[PaymentExportSpec] | list[FxRatesSpec],
) -> dg.AssetsDefinition:
    """One asset loading every export config of one kind into its shared table:
    invoice exports into `raw_exports.raw_invoices` (key EXPORTS_KEY), payment exports into
    `raw_exports.raw_payments` (key PAYMENTS_KEY), exchange-rate files into
    `raw_exports.raw_fx_rates` (key FX_RATES_KEY)."""
    specs = list(specs)
    kinds = {type(s) for s in specs}
    if len(kinds) != 1:
        names = sorted(k.__name__ for k in kinds)
        raise ValueError(f"build_export_asset needs export configs of one kind, got {names}")
    first = specs[0]
    key = _EXPORT_KEYS[type(first)]
    record, table = first.RECORD, table_qualified(first)
    what = "Exchange-rate files" if isinstance(first, FxRatesSpec) else f"{record.capitalize()} exports"

    @dg.asset(
        key=key,
        group_name="ingest",
        kinds={"duckdb", "csv"},
        description=f"{what} (CSV/Excel files downloaded by hand) from "
        + ", ".join(s.source for s in specs) + ", in one table keyed by export_source.",
        pool="duckdb",
        retry_policy=dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL),
        check_specs=_check_specs(key, "data row"),
        metadata={
            "table": table,
            "landing_globs": [f"{s.landing_subdir}/{g}" for s in specs for g in s.files],
            "export_sources": [s.source for s in specs],
        },
    )
    def _ingest_exports(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                        landing: LandingResource):
        landing_dir = landing.landing_path()
        files = {s.source: [str(p) for p in export_files(landing_dir, s)] for s in specs}
        if not any(files.values()):
            folders = ", ".join(sorted({str(landing_dir / s.landing_subdir) for s in specs}))
            context.log.info(f"No {record} files under {folders}; nothing to load.")
        results: list[EntityLoadResult] = []
        with duckdb.get_connection() as conn:
            for spec in specs:
                def progress(done: int, total: int, name: str = spec.source) -> None:
                    context.log.info(f"{name}: {done}/{total} new or changed export files loaded")

                result = load_export(conn, spec, landing_dir, batch_id=context.run.run_id,
                                     progress=progress)
                results.append(result)
                context.log.info(
                    f"{spec.source}: {result.files_loaded} files loaded, "
                    f"{result.files_skipped_unchanged} unchanged skipped; rows loaded={result.rows_loaded} "
                    f"duplicate={result.rows_duplicate} quarantined={result.rows_quarantined} "
                    f"left out by keep_only/without id={result.rows_filtered}"
                )
            counts = export_reconciliation_counts(conn, specs, files)
            total_rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": int(total_rows[0]) if total_rows else 0,
                "files_loaded": sum(r.files_loaded for r in results),
                "files_skipped_unchanged": sum(r.files_skipped_unchanged for r in results),
                "rows_loaded": sum(r.rows_loaded for r in results),
                "rows_duplicate": sum(r.rows_duplicate for r in results),
                "rows_quarantined": sum(r.rows_quarantined for r in results),
                "rows_filtered": sum(r.rows_filtered for r in results),
            }
        )
        yield from _check_results(counts, [s for r in results for s in r.quarantine_samples][:10])

    return _ingest_exports


@dg.definitions
def defs() -> dg.Definitions:
    specs = load_all_specs(Paths.from_env().ingest_config_dir)
    api = [s for s in specs if isinstance(s, SourceSpec)]
    exports = [s for s in specs if isinstance(s, InvoiceExportSpec)]
    payments = [s for s in specs if isinstance(s, PaymentExportSpec)]
    fx_rates = [s for s in specs if isinstance(s, FxRatesSpec)]
    return dg.Definitions(
        assets=[
            *(build_api_sync_asset(s.source) for s in api if s.source in API_SOURCES),
            *(build_ingest_asset(s, e) for s in api for e in s.entities),
            *([build_export_asset(exports)] if exports else []),
            *([build_export_asset(payments)] if payments else []),
            *([build_export_asset(fx_rates)] if fx_rates else []),
        ],
    )
