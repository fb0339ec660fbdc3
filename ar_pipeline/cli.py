"""`ar-pipeline`: generate demo data, run the whole pipeline, and read the AR summary.

Paths come from the environment (defaults in brackets, relative to the project root):
AR_DUCKDB_PATH [data/ar.duckdb], AR_LANDING_DIR [data/landing], DAGSTER_HOME [.dagster_home],
AR_INGEST_CONFIG_DIR [ingest_configs], AR_TIMEZONE [UTC] for "today".
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from datetime import date
from pathlib import Path

import click

from ar_pipeline.lib.settings import REPO_DAGSTER_YAML, Paths


def _export_paths(paths: Paths) -> None:
    """Pin every path as an absolute env var for this process and the dbt subprocess it starts,
    so Dagster, dbt and the summary all read and write the same files."""
    os.environ["AR_DUCKDB_PATH"] = str(paths.duckdb)
    os.environ["AR_LANDING_DIR"] = str(paths.landing_dir)
    os.environ["AR_INGEST_CONFIG_DIR"] = str(paths.ingest_config_dir)
    os.environ["DAGSTER_HOME"] = str(paths.dagster_home)
    # dbt is started as a subprocess by name: make sure it is this environment's dbt.
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def ensure_dagster_home(dagster_home: Path) -> None:
    """Create DAGSTER_HOME with the repository's dagster.yaml (kept in sync with the repo file)."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    target = dagster_home / "dagster.yaml"
    if not target.exists() or target.read_text() != REPO_DAGSTER_YAML.read_text():
        shutil.copyfile(REPO_DAGSTER_YAML, target)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Accounts-receivable analytics: QuickBooks/Stripe files → DuckDB marts, run by Dagster.

    Typical use: `ar-pipeline generate` (demo data), `ar-pipeline run` (load, transform, check),
    `ar-pipeline summary` (what finance wants to see first).
    """


@main.command()
@click.option("--seed", default=42, show_default=True, help="Random seed; same seed, same files.")
@click.option("--customers", default=400, show_default=True, help="Number of customers.")
@click.option("--years", default=2.0, show_default=True, help="Years of history ending at --end-date.")
@click.option("--invoices", default=25_000, show_default=True, help="Target number of invoices.")
@click.option(
    "--end-date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Last day of history (YYYY-MM-DD). Default: today.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate(seed: int, customers: int, years: float, invoices: int, end_date, quiet: bool) -> None:
    """Write realistic QuickBooks and Stripe API pages (and a ground truth) to AR_LANDING_DIR.

    Simulates customers with payment habits (prompt, pay-after-reminder, chronic late, seasonal,
    deteriorating, defaulting), invoices, partial and multi-invoice payments, credit memos, voids,
    refunds and disputes. Re-running with the same options rewrites the same bytes.
    """
    from ar_pipeline.lib.generator import GeneratorConfig
    from ar_pipeline.lib.generator import generate as run_generator

    paths = Paths.from_env()
    config = GeneratorConfig(
        landing_dir=paths.landing_dir,
        seed=seed,
        customers=customers,
        years=years,
        invoices=invoices,
        end_date=end_date.date() if end_date else date.today(),
        progress=not quiet,
    )
    summary = run_generator(config)
    click.echo(f"Wrote demo data to {paths.landing_dir} ({summary.elapsed_seconds:.1f}s)")
    for (source, entity), count in sorted(summary.records.items()):
        click.echo(f"  {source:<10} {entity:<18} {count:>10,}")


@main.command()
@click.option("--as-of", "as_of", default=None, help="Compute marts as of this date (YYYY-MM-DD). Default: today.")
@click.option("--summary/--no-summary", default=True, show_default=True, help="Print the AR summary at the end.")
def run(as_of: str | None, summary: bool) -> None:
    """Materialize every asset (ingest → dbt → checks) in this process.

    Runs against the Dagster instance in DAGSTER_HOME, so the run, its logs and every
    materialization show up in the Dagster UI (`make ui`) afterwards.
    """
    from ar_pipeline.lib.dbt_args import parse_as_of

    paths = Paths.from_env()
    _export_paths(paths)
    try:
        as_of_date = parse_as_of(as_of, os.environ.get("AR_TIMEZONE", "UTC"))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--as-of") from exc
    ensure_dagster_home(paths.dagster_home)
    paths.duckdb.parent.mkdir(parents=True, exist_ok=True)
    if not any(p.is_file() for p in paths.landing_dir.glob("*/**/*")):
        click.echo(
            f"No landing files under {paths.landing_dir}. Run `ar-pipeline generate` first "
            "or point AR_LANDING_DIR at your exports.",
            err=True,
        )
        sys.exit(2)

    result = run_pipeline(as_of_date, paths)
    if not result.success:
        click.echo("Run failed; see the log above or the run in the Dagster UI (make ui).", err=True)
        sys.exit(1)
    if summary:
        print_summary(paths.duckdb)


def run_pipeline(as_of_date: date, paths: Paths):
    """Prepare the dbt manifest, load the definitions and execute the `refresh_ar` job."""
    import dagster as dg

    from ar_pipeline.defs.transform.project import prepare_dbt_manifest

    started = time.monotonic()
    click.echo("Preparing dbt manifest…")
    prepare_dbt_manifest()
    from ar_pipeline.definitions import defs

    definitions = defs()
    job = definitions.resolve_job_def("refresh_ar")
    click.echo(f"Running {job.name} as of {as_of_date} (Dagster home: {paths.dagster_home})")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            run_config={
                "ops": {"ar_dbt_models": {"config": {"as_of_date": as_of_date.isoformat()}}},
                "loggers": {"console": {"config": {"log_level": "INFO"}}},
            },
            raise_on_error=False,
        )
    click.echo(f"Run {result.run_id} {'succeeded' if result.success else 'FAILED'} "
               f"in {time.monotonic() - started:.1f}s")
    return result


def print_summary(duckdb_path: Path, top: int = 10) -> None:
    from rich.console import Console

    from ar_pipeline.lib.summary import ar_summary, render_summary

    Console().print(render_summary(ar_summary(duckdb_path, top=top)))
    click.echo("\nExplore runs, lineage and checks: `make ui`, then open http://127.0.0.1:3000")


def _load_and_report(sources_entities, landing_dir: Path, duckdb_path: Path, files=None) -> int:
    """Load through the ingest configs and print per-table counts and quarantine reasons.
    Returns the number of records quarantined."""
    import duckdb

    from ar_pipeline.lib.ingest import load_entity
    from ar_pipeline.lib.settings import duckdb_memory_limit

    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    quarantined = 0
    with duckdb.connect(str(duckdb_path), config={"memory_limit": duckdb_memory_limit()}) as conn:
        for source, entity in sources_entities:
            r = load_entity(conn, source, entity, landing_dir, files=files)
            quarantined += r.rows_quarantined
            click.echo(
                f"{source.source}.{entity.table}: files {r.files_loaded} loaded, "
                f"{r.files_skipped_unchanged} unchanged; rows read {r.rows_in_files}, "
                f"loaded {r.rows_loaded}, already loaded {r.rows_duplicate}, quarantined {r.rows_quarantined}"
            )
            for sample in r.quarantine_samples:
                click.echo(f"  quarantined: {sample}")
    return quarantined


@main.command()
@click.argument("source", type=click.Choice(["quickbooks", "stripe"]))
@click.option("--no-load", is_flag=True, help="Only fetch pages into the landing folder.")
def sync(source: str, no_load: bool) -> None:
    """Fetch new and changed records from the QuickBooks or Stripe API and load them.

    Pages land in AR_LANDING_DIR/<source>/ and are then loaded into the raw tables — the same code
    the Dagster assets run. The cursor (AR_STATE_DIR) advances only after a page is on disk, so an
    interrupted sync resumes where it stopped. Credentials come from the environment:
    QBO_CLIENT_ID, QBO_CLIENT_SECRET, QBO_REFRESH_TOKEN, QBO_REALM_ID (QBO_BASE_URL, QBO_TOKEN_URL
    optional) or STRIPE_API_KEY (STRIPE_API_BASE, STRIPE_API_VERSION optional).
    """
    from ar_pipeline.lib.connectors import files_landed, run_sync
    from ar_pipeline.lib.connectors.http import ApiError
    from ar_pipeline.lib.ingest_config import load_source_specs

    paths = Paths.from_env()
    try:
        summary = run_sync(source, paths.landing_dir, paths.state_dir, log=click.echo)
    except ApiError as exc:
        raise click.ClickException(f"{source} sync failed: {exc}") from None
    except ValueError as exc:  # ConnectorConfigError: names the missing variables
        raise click.ClickException(str(exc)) from None
    click.echo(f"{source}: {len(files_landed(summary))} page files landed")
    if no_load:
        return
    spec = next(s for s in load_source_specs(paths.ingest_config_dir) if s.source == source)
    _load_and_report([(spec, e) for e in spec.entities], paths.landing_dir, paths.duckdb)


def _load_export_and_report(spec, landing_dir: Path, duckdb_path: Path, files) -> int:
    """Load export files through one export config (invoice or payment export) and print what
    happened. Returns the number of rows quarantined."""
    import duckdb

    from ar_pipeline.lib.ingest_exports import load_export, table_qualified
    from ar_pipeline.lib.settings import duckdb_memory_limit

    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(duckdb_path), config={"memory_limit": duckdb_memory_limit()}) as conn:
        r = load_export(conn, spec, landing_dir, files=files)
    click.echo(
        f"{spec.source} -> {table_qualified(spec)}: files {r.files_loaded} loaded, "
        f"{r.files_skipped_unchanged} unchanged; rows read {r.rows_in_files}, loaded {r.rows_loaded}, "
        f"already loaded {r.rows_duplicate}, quarantined {r.rows_quarantined}"
        + (f"; left out by keep_only{' or without an id' if spec.filter_rows_without_id else ''} "
           f"{r.rows_filtered}" if r.rows_filtered else "")
    )
    for sample in r.quarantine_samples:
        click.echo(f"  quarantined: {sample}")
    return r.rows_quarantined


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--config", "config_name", default=None,
              help="Config name (e.g. quickbooks, or an export config such as quickbooks_invoice_list).")
@click.option("--table", default=None, help="Raw table, when the file's place does not say (e.g. raw_invoices).")
def ingest(path: Path, config_name: str | None, table: str | None) -> None:
    """Load one file through an ingest config and report rows read, loaded and quarantined.

    The config is found from where the file sits: an API page (e.g. .../quickbooks/invoice/x.json)
    or a CSV/Excel invoice or payment export in an export config's folder (e.g.
    .../exports/quickbooks_invoice_list/march.csv). For a file elsewhere give --config (and, for
    API pages, --table). Exits with 1 when records were quarantined.
    """
    from ar_pipeline.lib.ingest import entities_for_file
    from ar_pipeline.lib.ingest_config import ExportSpecBase, SourceSpec, load_all_specs
    from ar_pipeline.lib.ingest_exports import export_specs_for_file

    paths = Paths.from_env()
    all_specs = load_all_specs(paths.ingest_config_dir)
    if config_name:
        all_specs = [s for s in all_specs if s.source == config_name]
        if not all_specs:
            raise click.BadParameter(f"no ingest config named {config_name!r}", param_hint="--config")
    specs = [s for s in all_specs if isinstance(s, SourceSpec)]
    exports = [s for s in all_specs if isinstance(s, ExportSpecBase)]
    if config_name and exports:
        export_matches = exports
    elif not table:
        export_matches = export_specs_for_file(path, paths.landing_dir, exports)
    else:
        export_matches = []
    if export_matches:
        if len(export_matches) > 1:
            names = ", ".join(s.source for s in export_matches)
            raise click.UsageError(f"{path}: several export configs match ({names}). Give --config.")
        quarantined = _load_export_and_report(export_matches[0], paths.landing_dir, paths.duckdb, [path])
        if quarantined:
            sys.exit(1)
        return
    if table:
        matches = [(s, e) for s in specs for e in s.entities if e.table == table]
    else:
        matches = entities_for_file(path, paths.landing_dir, specs)
    if len(matches) != 1:
        names = ", ".join(f"{s.source}.{e.table}" for s, e in matches) or "none"
        hint = ("Give --config and --table (or --config <export config> for a CSV/Excel invoice or "
                "payment export)."
                if path.suffix.lower() in {".csv", ".xlsx", ".xlsm", ".xls"} or not matches
                else "Give --config and --table.")
        raise click.UsageError(
            f"{path}: cannot tell which raw table this file feeds (matches: {names}). {hint}"
        )
    quarantined = _load_and_report(matches, paths.landing_dir, paths.duckdb, files=[path])
    if quarantined:
        sys.exit(1)


@main.command()
@click.option("--as-of", "as_of", required=True, help="Date to age the receivables at (YYYY-MM-DD).")
@click.option("--by", type=click.Choice(["customer", "invoice"]), default="customer", show_default=True,
              help="One row per customer (buckets as columns, home currency) or per open invoice.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the table to this CSV file.")
def aging(as_of: str, by: str, csv_path: Path | None) -> None:
    """Aging as of any past date, rebuilt from the payment history.

    Recomputes that date's snapshot in marts.fct_ar_aging_snapshots with dbt (so it is exactly what
    the daily run would have stored for that date) and prints it. Needs a loaded warehouse
    (`ar-pipeline run` first).
    """
    from rich.console import Console
    from rich.table import Table

    from ar_pipeline.lib.aging import aging_table, build_snapshot
    from ar_pipeline.lib.dbt_args import parse_as_of

    try:
        as_of_date = parse_as_of(as_of, "UTC")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--as-of") from exc
    paths = Paths.from_env()
    if not paths.duckdb.exists():
        raise click.ClickException(f"{paths.duckdb} does not exist: run `ar-pipeline run` first.")
    try:
        build_snapshot(as_of_date, paths.duckdb)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    table = aging_table(paths.duckdb, as_of_date, by=by)
    if csv_path:
        table.write_csv(csv_path)
        click.echo(f"Wrote {table.height} rows to {csv_path}")
    shown = Table(title=f"Aging as of {as_of_date} ({table.height} {by}s)")
    columns = (["customer_name", *[c for c in table.columns if c not in ("customer_id", "customer_name")]]
               if by == "customer"
               else ["source_invoice_id", "customer_name", "due_date", "days_past_due", "aging_bucket",
                     "currency", "open_amount"])
    for col in columns:
        shown.add_column(col, justify="left" if col in ("customer_name", "source_invoice_id") else "right")
    for row in table.head(25).iter_rows(named=True):
        shown.add_row(*[f"{row[c]:,.2f}" if hasattr(row[c], "quantize") else str(row[c]) for c in columns])
    Console().print(shown)
    if table.height > 25:
        click.echo(f"… {table.height - 25} more rows (use --csv to get them all)")


@main.command()
@click.option("--top", default=10, show_default=True, help="How many overdue customers to list.")
def summary(top: int) -> None:
    """Print total open AR, aging buckets, DSO and the top overdue customers from the marts."""
    paths = Paths.from_env()
    if not paths.duckdb.exists():
        raise click.ClickException(f"{paths.duckdb} does not exist: run `ar-pipeline run` first.")
    print_summary(paths.duckdb, top=top)


@main.command()
@click.option("--check", is_flag=True, help="Exit with an error if README.md's data dictionary is stale.")
def docs(check: bool) -> None:
    """Regenerate README.md's data dictionary from the dbt model YAML (the column descriptions)."""
    from ar_pipeline.lib.data_dictionary import README, mart_tables, readme_with_dictionary, render

    current = README.read_text()
    try:
        updated = readme_with_dictionary(current, render(mart_tables()))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if check:
        if updated != current:
            raise click.ClickException("README.md's data dictionary is stale: run `ar-pipeline docs`.")
        click.echo("README.md's data dictionary is up to date.")
        return
    README.write_text(updated)
    click.echo(f"Wrote the data dictionary to {README}")


@main.command("cash-match-eval")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Also write the figures (and the wrong matches) to this JSON file.")
def cash_match_eval(json_path: Path | None) -> None:
    """Score cash application on the generator's truth: precision and recall of auto-applied matches.

    Matches the bank-statement lines under AR_LANDING_DIR/bank against the open invoices in the marts
    (as built by `ar-pipeline run`) and compares with AR_LANDING_DIR/_ground_truth/bank_matches.parquet.
    """
    import json

    import duckdb
    import polars as pl

    from ar_pipeline.lib.cash_application import evaluate, suggestions_from_warehouse

    paths = Paths.from_env()
    truth_path = paths.landing_dir / "_ground_truth" / "bank_matches.parquet"
    if not paths.duckdb.exists():
        raise click.ClickException(f"{paths.duckdb} does not exist: run `ar-pipeline run` first.")
    if not truth_path.exists():
        raise click.ClickException(f"{truth_path} does not exist: run `ar-pipeline generate` first.")
    with duckdb.connect(str(paths.duckdb), read_only=True) as conn:
        as_of = conn.sql("SELECT max(as_of_date) FROM marts.fct_invoices").fetchall()[0][0]
        out = suggestions_from_warehouse(conn, paths.landing_dir, paths.ingest_config_dir / "analytics", as_of)
        invoices = conn.sql("SELECT invoice_key, source, source_invoice_id FROM marts.fct_invoices").pl()
    result = evaluate(out, pl.read_parquet(truth_path), invoices)
    click.echo(f"Cash application as of {as_of}: {result['bank_lines']} bank lines, "
               f"{result['payable_lines']} pay open invoices")
    click.echo(f"  auto-applied {result['auto_applied']}, correct {result['correct_auto_applied']}")
    click.echo(f"  precision {result['precision']:.2%}  recall (auto-matched share) {result['recall']:.2%}")
    click.echo("  by pattern (lines / auto-applied / correct):")
    for row in result["by_pattern"]:
        click.echo(f"    {row['pattern']:<12} {row['lines']:>6} {row['auto_applied']:>6} {row['correct']:>6}")
    if json_path:
        json_path.write_text(json.dumps({"as_of_date": str(as_of), **result}, indent=2, default=str))
        click.echo(f"Wrote {json_path}")


if __name__ == "__main__":
    main()
