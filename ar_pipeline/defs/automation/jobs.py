"""Jobs and what triggers them unattended, built from the ingest configs.

- `refresh_ar`: the whole pipeline. `daily_ar_refresh` runs it every morning (06:00 in AR_TIMEZONE).
- Per source config (`ingest_configs/<name>.yaml`, `automation:` block):
  - `<source>_files_sensor` (when `file_sensor: true`, the default) starts `ingest_<source>` when
    files under that source's landing folder are added or changed; the run key is the set of files
    and their mtimes, so a file is processed once.
  - `<source>_api_schedule` (API sources, `schedule:` cron in `timezone:`) runs the API sync and
    everything downstream; it skips, with a reason, while the source has no credentials.
All of them start RUNNING (they need the Dagster daemon, which `dagster dev` / `make ui` starts);
set `AR_AUTOMATION_OFF=1` to start them stopped instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from ar_pipeline.lib.connectors import API_SOURCES, is_configured
from ar_pipeline.lib.ingest_config import (
    ExportSpecBase,
    FxRatesSpec,
    IngestSpec,
    InvoiceExportSpec,
    PaymentExportSpec,
    load_all_specs,
)
from ar_pipeline.lib.settings import Paths

refresh_ar_job = dg.define_asset_job(
    "refresh_ar",
    selection=dg.AssetSelection.all(),
    description="Sync the APIs, load new landing files, rebuild the dbt models and run every check.",
)


def _default_status(kind: type) -> object:
    stopped = os.environ.get("AR_AUTOMATION_OFF", "") in {"1", "true", "yes"}
    return kind.STOPPED if stopped else kind.RUNNING


def landing_fingerprint(folder: Path, patterns: list[str] | None = None) -> tuple[int, str]:
    """(newest mtime in ns, run key) of the files under `folder` (matching `patterns`, recursively
    by default). The key changes when a file is added, removed or modified."""
    patterns = patterns or ["**/*"]
    files = sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})
    if not files:
        return 0, ""
    stats = [p.stat() for p in files]
    newest = max(st.st_mtime_ns for st in stats)
    return newest, f"{folder.name}:{len(files)}:{newest}"


EXPORTS_KEY = dg.AssetKey(["exports", "raw_invoices"])
PAYMENTS_KEY = dg.AssetKey(["exports", "raw_payments"])
FX_RATES_KEY = dg.AssetKey(["exports", "raw_fx_rates"])


def source_asset_selection(spec: IngestSpec) -> dg.AssetSelection:
    """A source's sync and raw-table assets and everything downstream of them."""
    if isinstance(spec, InvoiceExportSpec):
        return dg.AssetSelection.assets(EXPORTS_KEY).downstream()
    if isinstance(spec, PaymentExportSpec):
        return dg.AssetSelection.assets(PAYMENTS_KEY).downstream()
    if isinstance(spec, FxRatesSpec):
        return dg.AssetSelection.assets(FX_RATES_KEY).downstream()
    keys = [dg.AssetKey([spec.source, e.table]) for e in spec.entities]
    if spec.source in API_SOURCES:
        keys.append(dg.AssetKey([spec.source, "api_pages"]))
    return dg.AssetSelection.assets(*keys).downstream()


def build_files_sensor(name: str, folder: Path, job: dg.UnresolvedAssetJobDefinition,
                       patterns: list[str] | None = None) -> dg.SensorDefinition:
    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=60,
        default_status=_default_status(dg.DefaultSensorStatus),
        description=f"Runs {job.name} when files under {folder} are added or changed.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        newest, run_key = landing_fingerprint(folder, patterns)
        last = int(context.cursor) if context.cursor else 0
        if newest <= last:
            return dg.SkipReason(f"No new or changed files under {folder}")
        return dg.SensorResult(run_requests=[dg.RunRequest(run_key=run_key)], cursor=str(newest))

    return _sensor


def build_api_schedule(spec: IngestSpec, job: dg.UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    source = spec.source

    @dg.schedule(
        name=f"{source}_api_schedule",
        job=job,
        cron_schedule=spec.automation.schedule,
        execution_timezone=spec.automation.timezone,
        default_status=_default_status(dg.DefaultScheduleStatus),
        description=f"Syncs the {source} API and rebuilds what depends on it ({spec.automation.schedule}, "
        f"{spec.automation.timezone}).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        if not is_configured(source):
            return dg.SkipReason(f"{source} API credentials are not set ({', '.join(API_SOURCES[source])})")
        return dg.RunRequest(run_key=f"{source}:{context.scheduled_execution_time.isoformat()}")

    return _schedule


@dg.definitions
def defs() -> dg.Definitions:
    paths = Paths.from_env()
    jobs: list = [refresh_ar_job]
    sensors, schedules = [], [
        dg.ScheduleDefinition(
            name="daily_ar_refresh",
            job=refresh_ar_job,
            cron_schedule="0 6 * * *",
            execution_timezone=os.environ.get("AR_TIMEZONE", "UTC"),
            default_status=_default_status(dg.DefaultScheduleStatus),
            description="Refresh everything every morning before finance starts.",
        )
    ]
    for spec in load_all_specs(paths.ingest_config_dir):
        job = dg.define_asset_job(
            f"ingest_{spec.source}",
            selection=source_asset_selection(spec),
            description=f"Load {spec.source} and rebuild everything downstream of it.",
        )
        jobs.append(job)
        if spec.automation.file_sensor:
            patterns = spec.files if isinstance(spec, ExportSpecBase) else ["**/*.json"]
            sensors.append(build_files_sensor(f"{spec.source}_files_sensor",
                                              paths.landing_dir / spec.landing_subdir, job, patterns))
        if spec.source in API_SOURCES and spec.automation.schedule:
            schedules.append(build_api_schedule(spec, job))
    return dg.Definitions(jobs=jobs, schedules=schedules, sensors=sensors)
