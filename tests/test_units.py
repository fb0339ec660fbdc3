"""Small pure pieces: dbt arguments, as-of parsing, settings, the landing sensor."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest

from ar_pipeline.lib.dbt_args import dbt_build_args, parse_as_of
from ar_pipeline.lib.settings import PROJECT_ROOT, env_path


def test_dbt_build_args_pass_as_of_date_as_var() -> None:
    args = dbt_build_args(date(2026, 3, 31), {"home_currency": "EUR"})
    assert args[:2] == ["build", "--vars"]
    assert json.loads(args[2]) == {"as_of_date": "2026-03-31", "home_currency": "EUR"}


def test_parse_as_of() -> None:
    assert parse_as_of("2026-01-31", "UTC") == date(2026, 1, 31)
    assert isinstance(parse_as_of(None, "Pacific/Kiritimati"), date)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_as_of("31/01/2026", "UTC")


def test_env_paths_resolve_against_project_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AR_DUCKDB_PATH", raising=False)
    assert env_path("AR_DUCKDB_PATH") == PROJECT_ROOT / "data" / "ar.duckdb"
    monkeypatch.setenv("AR_DUCKDB_PATH", "elsewhere/x.duckdb")
    assert env_path("AR_DUCKDB_PATH") == PROJECT_ROOT / "elsewhere" / "x.duckdb"
    monkeypatch.setenv("AR_DUCKDB_PATH", str(tmp_path / "abs.duckdb"))
    assert env_path("AR_DUCKDB_PATH") == tmp_path / "abs.duckdb"


def test_landing_sensor_requests_once_per_change(tmp_path: Path) -> None:
    from ar_pipeline.defs.automation.jobs import build_files_sensor, refresh_ar_job

    sensor = build_files_sensor("test_files_sensor", tmp_path, refresh_ar_job, ["**/*.json"])
    assert isinstance(sensor(dg.build_sensor_context()), dg.SkipReason)
    page = tmp_path / "quickbooks" / "invoice" / "page_00001.json"
    page.parent.mkdir(parents=True)
    page.write_text("{}")
    (tmp_path / "notes.txt").write_text("not a landing file")  # outside the pattern: ignored
    first = sensor(dg.build_sensor_context())
    assert len(first.run_requests) == 1 and first.cursor
    again = sensor(dg.build_sensor_context(cursor=first.cursor))
    assert isinstance(again, dg.SkipReason)
    stat = page.stat()
    os.utime(page, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = sensor(dg.build_sensor_context(cursor=first.cursor))
    assert len(changed.run_requests) == 1
    assert changed.run_requests[0].run_key != first.run_requests[0].run_key


def test_automation_is_built_from_the_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    from ar_pipeline.defs.automation.jobs import defs as automation_defs

    monkeypatch.delenv("AR_AUTOMATION_OFF", raising=False)
    d = automation_defs()
    sensors = {s.name: s for s in d.sensors}
    schedules = {s.name: s for s in d.schedules}
    assert {"quickbooks_files_sensor", "stripe_files_sensor", "generic_invoices_files_sensor"} <= set(sensors)
    assert {"daily_ar_refresh", "quickbooks_api_schedule", "stripe_api_schedule"} <= set(schedules)
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    assert schedules["quickbooks_api_schedule"].execution_timezone == "UTC"
    assert {j.name for j in d.jobs} >= {"refresh_ar", "ingest_quickbooks", "ingest_generic_invoices"}


def test_api_schedule_skips_without_credentials_and_runs_with_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from ar_pipeline.defs.automation.jobs import defs as automation_defs

    for var in ("STRIPE_API_KEY",):
        monkeypatch.delenv(var, raising=False)
    schedule = next(s for s in automation_defs().schedules if s.name == "stripe_api_schedule")
    when = datetime(2026, 11, 22, 4, 15, tzinfo=UTC)
    skipped = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=when))
    assert skipped.skip_message and "STRIPE_API_KEY" in skipped.skip_message
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_x")
    ran = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=when))
    assert len(ran.run_requests) == 1 and ran.run_requests[0].run_key.startswith("stripe:2026-11-22T04:15")
