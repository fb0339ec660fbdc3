"""The `ar-pipeline` command: help text and clear errors before any work starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ar_pipeline.cli import main


def test_help_explains_each_command() -> None:
    out = CliRunner().invoke(main, ["--help"]).output
    for command in ("generate", "run", "summary"):
        assert command in out
    run_help = CliRunner().invoke(main, ["run", "--help"]).output
    assert "--as-of" in run_help and "DAGSTER_HOME" in run_help
    gen_help = CliRunner().invoke(main, ["generate", "--help"]).output
    assert all(opt in gen_help for opt in ("--seed", "--customers", "--years", "--invoices"))


def test_run_without_landing_files_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AR_LANDING_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("AR_DUCKDB_PATH", str(tmp_path / "ar.duckdb"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    monkeypatch.setenv("AR_INGEST_CONFIG_DIR", "ingest_configs")  # restored after: run() pins env vars
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2
    assert "No landing files" in result.output and "ar-pipeline generate" in result.output
    # DAGSTER_HOME is created with the repository's instance config
    assert (tmp_path / "dh" / "dagster.yaml").read_text().startswith("# Dagster instance config")


def test_bad_as_of_date_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    result = CliRunner().invoke(main, ["run", "--as-of", "2026-13-01"])
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.output


def test_summary_without_warehouse_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AR_DUCKDB_PATH", str(tmp_path / "missing.duckdb"))
    result = CliRunner().invoke(main, ["summary"])
    assert result.exit_code == 1
    assert "run `ar-pipeline run` first" in result.output
