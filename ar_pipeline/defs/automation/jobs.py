"""The one job that refreshes everything, and what triggers it unattended.

- `daily_ar_refresh` runs the whole pipeline each morning (06:00 in AR_TIMEZONE, default UTC).
- `landing_files_sensor` starts a run when files in the landing folder are added or changed.
Both start STOPPED, as Dagster's defaults do; switch them on in the UI (Automation tab) or set
`AR_AUTOMATION_ON=1` before `make ui` to start them running.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from ar_pipeline.lib.settings import Paths

refresh_ar_job = dg.define_asset_job(
    "refresh_ar",
    selection=dg.AssetSelection.all(),
    description="Load new landing files, rebuild the dbt models and run every check.",
)


def _default_status(kind: type) -> object:
    running = os.environ.get("AR_AUTOMATION_ON", "") in {"1", "true", "yes"}
    return kind.RUNNING if running else kind.STOPPED


def landing_fingerprint(landing_dir: Path) -> tuple[int, str]:
    """(newest mtime in ns, run key) for the JSON files under the landing folder."""
    files = sorted(p for p in landing_dir.glob("*/*/*.json") if p.is_file())
    if not files:
        return 0, ""
    stats = [(str(p), p.stat()) for p in files]
    newest = max(st.st_mtime_ns for _, st in stats)
    return newest, f"landing:{len(stats)}:{newest}"


def build_landing_sensor(landing_dir: Path) -> dg.SensorDefinition:
    @dg.sensor(
        name="landing_files_sensor",
        job=refresh_ar_job,
        minimum_interval_seconds=60,
        default_status=_default_status(dg.DefaultSensorStatus),
        description=f"Runs the pipeline when files under {landing_dir} are added or changed.",
    )
    def landing_files_sensor(context: dg.SensorEvaluationContext):
        newest, run_key = landing_fingerprint(landing_dir)
        last = int(context.cursor) if context.cursor else 0
        if newest <= last:
            return dg.SkipReason(f"No new or changed files under {landing_dir}")
        return dg.SensorResult(run_requests=[dg.RunRequest(run_key=run_key)], cursor=str(newest))

    return landing_files_sensor


@dg.definitions
def defs() -> dg.Definitions:
    schedule = dg.ScheduleDefinition(
        name="daily_ar_refresh",
        job=refresh_ar_job,
        cron_schedule="0 6 * * *",
        execution_timezone=os.environ.get("AR_TIMEZONE", "UTC"),
        default_status=_default_status(dg.DefaultScheduleStatus),
        description="Refresh AR marts every morning before finance starts.",
    )
    return dg.Definitions(
        jobs=[refresh_ar_job],
        schedules=[schedule],
        sensors=[build_landing_sensor(Paths.from_env().landing_dir)],
    )
