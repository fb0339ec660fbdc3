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
@click.option("--archetype-mix", default=None, metavar="NAME=W,...",
              help="Customer payment-habit mix, e.g. prompt=0.5,chronic_late=0.1,defaulter=0.05 (archetypes "
              "prompt_payer, pay_after_reminder, chronic_late, seasonal, deteriorating, defaulter or a unique "
              "prefix; unlisted ones get 0; normalised). Default: the built-in mix.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate(seed: int, customers: int, years: float, invoices: int, end_date, archetype_mix: str | None,
             quiet: bool) -> None:
    """Write realistic QuickBooks and Stripe API pages (and a ground truth) to AR_LANDING_DIR.

    Simulates customers with payment habits (prompt, pay-after-reminder, chronic late, seasonal,
    deteriorating, defaulting), invoices, partial and multi-invoice payments, credit memos, voids,
    refunds and disputes. Re-running with the same options rewrites the same bytes.
    """
    from ar_pipeline.lib.generator import GeneratorConfig
    from ar_pipeline.lib.generator import generate as run_generator
    from ar_pipeline.lib.generator.config import parse_archetype_mix

    try:
        weights = parse_archetype_mix(archetype_mix) if archetype_mix is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--archetype-mix") from None
    paths = Paths.from_env()
    config = GeneratorConfig(
        landing_dir=paths.landing_dir,
        seed=seed,
        customers=customers,
        years=years,
        invoices=invoices,
        end_date=end_date.date() if end_date else date.today(),
        progress=not quiet,
        archetype_weights=weights,
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
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the HTML (default: <AR_PUBLISH_DIR>/ar_dashboard.html).")
def report(out: Path | None) -> None:
    """Write the AR dashboard (self-contained HTML, opens offline) from the published copy."""
    from ar_pipeline.lib.dashboard import load_targets, write_dashboard
    from ar_pipeline.lib.publish import PUBLISHED_DB_NAME

    paths = Paths.from_env()
    try:
        path = write_dashboard(paths.publish_dir / PUBLISHED_DB_NAME, out or paths.publish_dir / "ar_dashboard.html",
                               load_targets())
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Wrote the dashboard to {path}")


@main.command()
@click.option("--check", is_flag=True, help="Exit with an error if README.md's data dictionary is stale.")
def docs(check: bool) -> None:
    """Regenerate README.md's data dictionary from the dbt YAML: the marts' model YAML and the
    analytics tables' source declaration (dbt_project/models/analytics/_analytics__sources.yml)."""
    from ar_pipeline.lib.data_dictionary import README, published_tables, readme_with_dictionary, render

    current = README.read_text()
    try:
        updated = readme_with_dictionary(current, render(published_tables()))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if check:
        if updated != current:
            raise click.ClickException("README.md's data dictionary is stale: run `ar-pipeline docs`.")
        click.echo("README.md's data dictionary is up to date.")
        return
    README.write_text(updated)
    click.echo(f"Wrote the data dictionary to {README}")


# --------------------------------------------------------------------------------------------------
# collections worklist (README "Collections worklist")


@main.group()
def reminders() -> None:
    """The collections worklist: build, export and send reminders; record promises and holds.

    The queue (analytics.reminder_queue) is built by `ar-pipeline run` as of the marts' date, or
    rebuilt by `reminders build` after recording promises or holds.
    """


def _warehouse():
    import duckdb

    from ar_pipeline.lib.settings import duckdb_memory_limit

    paths = Paths.from_env()
    if not paths.duckdb.exists():
        raise click.ClickException(f"{paths.duckdb} does not exist: run `ar-pipeline run` first.")
    return duckdb.connect(str(paths.duckdb), config={"memory_limit": duckdb_memory_limit()})


def _policy():
    from ar_pipeline.lib.collections.policy import PolicyError, find_policy, load_policy

    folder = Paths.from_env().ingest_config_dir
    try:
        path = find_policy(folder)
        if path is None:
            raise click.ClickException(f"no kind: collections_policy file in {folder}")
        return load_policy(path), path
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from None


def _date_option(value: str | None, hint: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date in the form YYYY-MM-DD", param_hint=hint) from None


def _today() -> date:
    from ar_pipeline.lib.dbt_args import today_in

    return today_in(os.environ.get("AR_TIMEZONE", "UTC"))


@reminders.command("build")
def reminders_build() -> None:
    """Rebuild analytics.reminder_queue from the marts (as of their date), the log and the notes."""
    from ar_pipeline.lib.collections.warehouse import build_and_store

    policy, path = _policy()
    with _warehouse() as conn:
        try:
            result = build_and_store(conn, policy, path)
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from None
    _print_queue(result.queue)
    click.echo(f"{result.skipped.height} customers skipped (see analytics.reminder_queue_skipped)")


def _print_queue(queue, top: int = 25) -> None:
    from rich.console import Console
    from rich.table import Table

    as_of = queue["as_of_date"][0] if queue.height else "-"
    table = Table(title=f"Reminder queue as of {as_of} ({queue.height} reminders)")
    for col in ("#", "customer", "level", "channel", "tone", "assigned to", "invoices", "open (home)",
                "money at risk", "send"):
        table.add_column(col, justify="right" if col in ("#", "invoices", "open (home)", "money at risk") else "left")
    for r in queue.head(top).iter_rows(named=True):
        level = r["level"] + (" (escalated)" if r["escalated"] else "")
        table.add_row(str(r["priority_rank"]), r["customer_name"], level, r["channel"], r["tone"],
                      r["assigned_to"] or "", str(r["invoice_count"]), f"{r['open_amount_home']:,.2f}",
                      f"{r['money_at_risk']:,.2f}", f"{r['recommended_send_date']} {r['recommended_send_hour']:02d}:00")
    Console().print(table)


@reminders.command("show")
@click.option("--top", default=25, show_default=True, help="How many reminders to list.")
def reminders_show(top: int) -> None:
    """Print the current queue in priority order."""
    from ar_pipeline.lib.collections.warehouse import read_queue

    with _warehouse() as conn:
        try:
            queue = read_queue(conn)
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from None
    _print_queue(queue, top)


@reminders.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default=None,
              help="File format (default: from the file name).")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def reminders_export(fmt: str | None, path: Path) -> None:
    """Write the queue for the collectors to PATH (CSV or Excel), safe against formula injection."""
    from ar_pipeline.lib.collections.render import export_queue
    from ar_pipeline.lib.collections.warehouse import read_queue

    fmt = fmt or ("xlsx" if path.suffix.lower() == ".xlsx" else "csv")
    with _warehouse() as conn:
        try:
            queue = read_queue(conn)
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from None
    rows = export_queue(queue, path, fmt)  # type: ignore[arg-type]
    click.echo(f"Wrote {rows} reminders to {path}")


def _now_option(value: str | None, timezone: str):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date-time like 2026-03-04T09:30 or "
                                 "2026-03-04T09:30+01:00", param_hint="--now") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(timezone))


@reminders.command("send")
@click.option("--dry-run/--send", "dry_run", default=True, show_default=True,
              help="--dry-run (default) prints what would be sent; --send delivers and logs.")
@click.option("--now", "now_text", default=None,
              help="The time to act as of (ISO date-time; without an offset it is company time, the "
                   "policy's timing.timezone). Default: the clock. For tests and replays.")
@click.option("--ignore-schedule", is_flag=True,
              help="Send every reminder recommended for today or earlier now, without waiting for its hour.")
def reminders_send(dry_run: bool, now_text: str | None, ignore_schedule: bool) -> None:
    """Deliver the queue's reminders that are due: e-mail by SMTP (or the webhook), call tasks and
    letters to the webhook. A reminder is due at its recommended send date and hour (company time);
    ones not due yet are reported as scheduled and sent by a later run (run this hourly, or turn on
    the send_reminders_hourly schedule). Each reminder is delivered at most once, even across
    crashes and re-runs.

    Environment: AR_SMTP_HOST, AR_SMTP_PORT, AR_SMTP_USER, AR_SMTP_PASSWORD, AR_SMTP_FROM,
    AR_SMTP_SECURITY (starttls|ssl|none), AR_SMTP_CA_FILE, AR_REMINDER_WEBHOOK_URL,
    AR_REMINDER_WEBHOOK_TOKEN.
    """
    from ar_pipeline.lib.collections.send import SettingsError, Transports, send_queue
    from ar_pipeline.lib.collections.warehouse import read_queue

    policy, _ = _policy()
    timezone = policy.timing.timezone
    now = _now_option(now_text, timezone)
    try:
        transports = Transports.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    with _warehouse() as conn:
        try:
            queue = read_queue(conn)
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from None
        clock = (lambda: now) if now is not None else None
        report = send_queue(conn, queue, transports, dry_run=dry_run, now=now, timezone=timezone,
                            ignore_schedule=ignore_schedule, **({"clock": clock} if clock else {}))
    for line in report.lines:
        click.echo(line)
    if dry_run:
        click.echo(f"Dry run: {len(report.would_send)} would be sent, {len(report.scheduled)} scheduled for later, "
                   f"{len(report.skipped)} skipped, {len(report.already_done)} already done. "
                   "Nothing was sent or logged; use --send.")
    else:
        click.echo(f"{len(report.delivered)} sent, {len(report.failed)} failed, {len(report.scheduled)} scheduled "
                   f"for later, {len(report.skipped)} skipped, {len(report.already_done)} already done "
                   "(analytics.reminder_log)")
        if report.failed:
            sys.exit(1)


def _note(customer: str, note_type: str, on: str | None, until: str | None, amount: float | None,
          note: str | None) -> None:
    from datetime import UTC, datetime

    from ar_pipeline.lib.collections.store import add_note

    noted_on = _date_option(on, "--on") or _today()
    until_date = _date_option(until, "--until")
    with _warehouse() as conn:
        known = conn.execute("SELECT count(*) FROM marts.dim_customers WHERE customer_id = ?",
                             [customer]).fetchall()[0][0]
        if not known:
            raise click.BadParameter(f"no customer {customer!r} in marts.dim_customers "
                                     "(ids look like quickbooks:58 or stripe:cus_...)", param_hint="--customer")
        try:
            add_note(conn, customer_id=customer, note_type=note_type, noted_on=noted_on, until=until_date,
                     amount=amount, note=note, created_at=datetime.now(UTC))
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    click.echo(f"Recorded {note_type} for {customer} on {noted_on}" + (f" until {until_date}" if until_date else "")
               + ". Rebuild the queue with `ar-pipeline reminders build`.")


_ON = click.option("--on", default=None, help="Date the note takes effect (YYYY-MM-DD). Default: today.")
_NOTE = click.option("--note", default=None, help="Free text.")


@reminders.command("promise")
@click.option("--customer", required=True, help="Customer id, e.g. quickbooks:58.")
@click.option("--until", required=True, help="Date the customer promised to pay by (YYYY-MM-DD).")
@click.option("--amount", type=float, default=None, help="Amount promised (home currency); default: any payment.")
@_ON
@_NOTE
def reminders_promise(customer: str, until: str, amount: float | None, on: str | None, note: str | None) -> None:
    """Record a promise to pay: no reminders until the date; escalation if it is broken."""
    _note(customer, "promise", on, until, amount, note)


@reminders.command("hold")
@click.option("--customer", required=True, help="Customer id, e.g. quickbooks:58.")
@click.option("--until", default=None, help="Last day of the hold (YYYY-MM-DD). Default: until released.")
@click.option("--do-not-contact", is_flag=True, help="Never contact this customer (until released).")
@_ON
@_NOTE
def reminders_hold(customer: str, until: str | None, do_not_contact: bool, on: str | None, note: str | None) -> None:
    """Put a customer on hold (or do-not-contact): no reminders while it lasts."""
    if do_not_contact and until:
        raise click.UsageError("--do-not-contact lasts until released; it takes no --until")
    _note(customer, "do_not_contact" if do_not_contact else "hold", on, until, None, note)


@reminders.command("release")
@click.option("--customer", required=True, help="Customer id, e.g. quickbooks:58.")
@_ON
@_NOTE
def reminders_release(customer: str, on: str | None, note: str | None) -> None:
    """End a customer's hold or do-not-contact."""
    _note(customer, "release", on, None, None, note)


@reminders.command("record")
@click.argument("reminder_id")
@click.option("--status", type=click.Choice(["called", "sent", "skipped", "failed"]), required=True,
              help="called: the call was made; sent/failed: settle an unsettled 'sending'; skipped: not done.")
@click.option("--outcome", default=None, help="What happened (e.g. 'promised to pay Friday').")
def reminders_record(reminder_id: str, status: str, outcome: str | None) -> None:
    """Record what happened to a reminder (appends to analytics.reminder_log)."""
    from ar_pipeline.lib.collections.send import record_outcome

    with _warehouse() as conn:
        try:
            record_outcome(conn, reminder_id, status, outcome)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="REMINDER_ID") from None
    click.echo(f"{reminder_id}: {status}")


@reminders.command("log")
@click.option("--unsettled", is_flag=True, help="Only reminders left 'sending' (delivery not confirmed).")
@click.option("--limit", default=50, show_default=True)
def reminders_log(unsettled: bool, limit: int) -> None:
    """Print analytics.reminder_log, newest first."""
    from ar_pipeline.lib.collections.store import read_log

    with _warehouse() as conn:
        log = read_log(conn)
    if log.height and unsettled:
        last = log.group_by("reminder_id", maintain_order=True).last()
        log = last.filter(last["status"] == "sending")
    for r in log.reverse().head(limit).iter_rows(named=True):
        click.echo(f"{r['status_at']} {r['reminder_id']} {r['customer_id']} {r['level']} {r['channel']} "
                   f"{r['status']}: {r['outcome'] or ''}")
    if not log.height:
        click.echo("no log rows")


@main.command("backtest")
@click.option("--cutoff", required=True, help="Train on invoices settled before this date (YYYY-MM-DD); "
              "test on invoices issued on or after it.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every result to this JSON file.")
@click.option("--rolling", default=1, show_default=True, type=click.IntRange(1, 24),
              help="Number of expanding-window cut-offs ending at --cutoff.")
@click.option("--step-days", default=60, show_default=True, type=click.IntRange(7, 3650),
              help="Days between rolling cut-offs.")
@click.option("--seed", default=42, show_default=True, help="Seed for the models and the bootstrap.")
def backtest(cutoff: str, json_path: Path | None, rolling: int, step_days: int, seed: int) -> None:
    """Backtest the payment models against the naive baselines on the loaded history.

    Writes the metrics to analytics.model_backtest_metrics (and --json) and prints them: ROC AUC,
    Brier score and accuracy of "paid late", MAE of days to pay and 80%-interval coverage, for the
    model, the customer's own history, "pays on the due date" and the majority class; plus a
    bootstrap 95% interval of the model-minus-customer-history AUC and MAE differences.
    """
    import json

    import duckdb
    from rich.console import Console
    from rich.table import Table

    from ar_pipeline.lib.prediction.backtest import metrics_frame, run_rolling, write_metrics
    from ar_pipeline.lib.prediction.data import load_history
    from ar_pipeline.lib.prediction.model import TrainConfig

    try:
        cut = date.fromisoformat(cutoff)
    except ValueError as exc:
        raise click.BadParameter(f"{cutoff!r} is not a YYYY-MM-DD date", param_hint="--cutoff") from exc
    paths = Paths.from_env()
    if not paths.duckdb.exists():
        raise click.ClickException(f"{paths.duckdb} does not exist: run `ar-pipeline run` first.")
    with duckdb.connect(str(paths.duckdb), read_only=True) as conn:
        try:
            history = load_history(conn, home_currency=os.environ.get("AR_HOME_CURRENCY", "USD"))
        except (duckdb.Error, ValueError) as exc:
            raise click.ClickException(f"cannot read the marts: {exc}") from None
    try:
        results = run_rolling(history, cut, rolling, step_days, TrainConfig(seed=seed))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    frame = metrics_frame(results)
    with duckdb.connect(str(paths.duckdb)) as conn:
        write_metrics(conn, frame)
    if json_path:
        json_path.write_text(json.dumps(results, indent=2, default=str))
        click.echo(f"Wrote {len(results)} backtest(s) to {json_path}")
    console = Console()
    metrics = ["late_auc", "late_brier", "late_accuracy", "late30_auc", "mae_days", "coverage_80"]
    for r in results:
        shown = Table(title=f"Backtest {r['model_version']}: train settled < {r['cutoff']} ({r['n_train']}), "
                            f"test issued {r['test_start']}..{r['test_end']} ({r['n_test']})")
        shown.add_column("predictor", justify="left")
        for m in metrics:
            shown.add_column(m, justify="right")
        for name, vals in r["predictors"].items():
            shown.add_row(name, *["-" if vals.get(m) is None else f"{vals[m]:.3f}" for m in metrics])
        console.print(shown)
        v = r["validation"]
        console.print(f"  chosen on the training period's validation slice: late {r['classifier_kind']['late']}, "
                      f"> 30 late {r['classifier_kind']['late30']}, days to pay {v.get('days_to_pay_choice')} "
                      f"(validation 80% coverage {v.get('days_to_pay_val_coverage_80', float('nan')):.3f})")
        for key, d in r["vs_customer_history"].items():
            if d["value"] is not None:
                console.print(f"  model - customer history, {key}: {d['value']:+.3f} "
                              f"(95% CI {d['ci_low']:+.3f} .. {d['ci_high']:+.3f})")


@main.command("forecast-backtest")
@click.option("--from", "date_from", required=True, help="First weekly forecast date to replay (YYYY-MM-DD).")
@click.option("--to", "date_to", required=True, help="Last forecast date to replay (YYYY-MM-DD), at most the data end.")
@click.option("--seed", default=None, type=int, help="Simulation seed (default: forecast_scenarios.yaml's).")
@click.option("--sims", default=200, show_default=True, type=click.IntRange(50, 20000),
              help="Simulations per forecast date for the bands.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the metrics and the per-week detail to this JSON file.")
def forecast_backtest(date_from: str, date_to: str, seed: int | None, sims: int, json_path: Path | None) -> None:
    """Replay the 13-week cash forecast weekly from --from to --to over the loaded history.

    Each forecast uses only what was known at its date. Prints WAPE of weekly collections (weeks
    1-13 pooled and per horizon week), bias and 80%-band coverage, next to the baselines "every open
    invoice pays on its due date", "historical collection curve by aging bucket" and "last 4 weeks'
    average"; writes them to analytics.forecast_backtest_metrics.
    """
    import json
    from dataclasses import replace

    import duckdb
    import polars as pl

    from ar_pipeline.lib.forecast import backtest as fbt
    from ar_pipeline.lib.forecast.data import load_ledger
    from ar_pipeline.lib.forecast.scenarios import load_settings

    start = _parse_date(date_from, "--from")
    end = _parse_date(date_to, "--to")
    paths = Paths.from_env()
    if not paths.duckdb.exists():
        raise click.ClickException(f"{paths.duckdb} does not exist: run `ar-pipeline run` first.")
    settings = load_settings(_analytics_config_dir(paths))
    cfg = replace(settings.model.config(), n_sims=sims, **({"seed": seed} if seed is not None else {}))
    with duckdb.connect(str(paths.duckdb), read_only=True) as conn:
        try:
            ledger = load_ledger(conn, home_currency=os.environ.get("AR_HOME_CURRENCY", "USD"))
        except (duckdb.Error, ValueError) as exc:
            raise click.ClickException(f"cannot read the marts: {exc}") from None
    try:
        detail, metrics = fbt.run(ledger.invoices, ledger.data_end, start, end, cfg)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    with duckdb.connect(str(paths.duckdb)) as conn:
        fbt.write_metrics(conn, metrics, start, end, ledger.data_end, cfg.seed)
    n_dates = detail["forecast_date"].n_unique()
    click.echo(f"Forecast backtest: {n_dates} weekly forecast dates {start}..{end}, data end {ledger.data_end}, "
               f"seed {cfg.seed}; scored weeks need to end by the data end.")
    wide = metrics.pivot(on="predictor", index=["horizon_week", "metric"], values="value")
    click.echo(f"{'week':>4} {'metric':<12}" + "".join(f"{p:>14}" for p in fbt.PREDICTORS))
    for row in wide.sort("horizon_week", "metric").iter_rows(named=True):
        label = "all" if row["horizon_week"] == 0 else str(row["horizon_week"])
        click.echo(f"{label:>4} {row['metric']:<12}" + "".join(
            f"{'-' if row.get(p) is None else format(row[p], '.3f'):>14}" for p in fbt.PREDICTORS))
    if json_path:
        json_path.write_text(json.dumps({"metrics": metrics.to_dicts(),
                                         "detail": detail.with_columns(pl.col("forecast_date").cast(pl.String))
                                         .to_dicts()}, indent=2, default=str))
        click.echo(f"Wrote {json_path}")


def _parse_date(value: str, hint: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a YYYY-MM-DD date", param_hint=hint) from exc


def _analytics_config_dir(paths: Paths) -> Path:
    configured = paths.ingest_config_dir / "analytics"
    shipped = Path(__file__).resolve().parent.parent / "ingest_configs" / "analytics"
    return configured if configured.is_dir() else shipped


@main.command("cash-match-eval")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Also write the figures (and the wrong matches) to this JSON file.")
def cash_match_eval(json_path: Path | None) -> None:
    """Score cash application on the generator's truth: precision and recall of auto-applied matches.

    Matches the bank-statement lines under AR_LANDING_DIR/bank (Stripe payouts included) and the
    unapplied money in the marts (QuickBooks unapplied payments, Stripe charges tied to no invoice)
    against the open invoices and Stripe payouts in the marts (as built by `ar-pipeline run`), and
    compares with AR_LANDING_DIR/_ground_truth/bank_matches.parquet, stripe_unapplied_charges.parquet
    and quickbooks_unapplied_payments.parquet (without that file, QuickBooks unapplied payments are
    only counted).
    """
    import json

    import duckdb
    import polars as pl

    from ar_pipeline.lib.cash_application import evaluate, suggestions_from_warehouse

    paths = Paths.from_env()
    truth_path = paths.landing_dir / "_ground_truth" / "bank_matches.parquet"
    stripe_path = paths.landing_dir / "_ground_truth" / "stripe_unapplied_charges.parquet"
    if not paths.duckdb.exists():
        raise click.ClickException(f"{paths.duckdb} does not exist: run `ar-pipeline run` first.")
    if not truth_path.exists():
        raise click.ClickException(f"{truth_path} does not exist: run `ar-pipeline generate` first.")
    with duckdb.connect(str(paths.duckdb), read_only=True) as conn:
        as_of = conn.sql("SELECT max(as_of_date) FROM marts.fct_invoices").fetchall()[0][0]
        out = suggestions_from_warehouse(conn, paths.landing_dir, paths.ingest_config_dir / "analytics", as_of)
        invoices = conn.sql("SELECT invoice_key, source, source_invoice_id FROM marts.fct_invoices").pl()
    stripe_truth = pl.read_parquet(stripe_path) if stripe_path.exists() else None
    qbo_path = paths.landing_dir / "_ground_truth" / "quickbooks_unapplied_payments.parquet"
    qbo_truth = pl.read_parquet(qbo_path) if qbo_path.exists() else None
    result = evaluate(out, pl.read_parquet(truth_path), invoices, stripe_truth, qbo_truth)
    click.echo(f"Cash application as of {as_of}: {result['bank_lines']} bank lines, "
               f"{result['payable_lines']} pay open invoices or are Stripe payouts")
    click.echo(f"  auto-applied {result['auto_applied']}, correct {result['correct_auto_applied']}")
    click.echo(f"  precision {result['precision']:.2%}  recall (auto-matched share) {result['recall']:.2%}")
    click.echo("  by pattern (lines / auto-applied / correct):")
    for row in result["by_pattern"]:
        click.echo(f"    {row['pattern']:<14} {row['lines']:>6} {row['auto_applied']:>6} {row['correct']:>6}")
    click.echo("  by source (payments / with truth / auto-applied / correct / precision / recall):")

    def pct(x: object) -> str:
        return "n/a" if x is None else f"{x:.2%}"

    def num(x: object) -> str:
        return "n/a" if x is None else str(x)

    for name, s in [*result["by_source"].items(), ("overall", result["overall"])]:
        click.echo(f"    {name:<21} {s['lines']:>6} {num(s['payable']):>6} {s['auto_applied']:>6} "
                   f"{num(s['correct_auto_applied']):>6} {pct(s['precision']):>8} {pct(s['recall']):>8}")
    q = result["by_source"]["quickbooks_unapplied"]
    if "by_pattern" in q:
        click.echo("  quickbooks_unapplied by pattern (payments / auto-applied / correct):")
        for row in q["by_pattern"]:
            click.echo(f"    {row['pattern']:<14} {row['lines']:>6} {row['auto_applied']:>6} {row['correct']:>6}")
        click.echo("    (overpayment, on_account and ambiguous pay no identifiable invoice: auto-applying is wrong)")
    else:
        click.echo(f"    (no {qbo_path.name}: quickbooks_unapplied only counted; overall pools the sources with truth)")
    if json_path:
        json_path.write_text(json.dumps({"as_of_date": str(as_of), **result}, indent=2, default=str))
        click.echo(f"Wrote {json_path}")


if __name__ == "__main__":
    main()
