"""End-to-end benchmark: generate N invoices, then run the whole pipeline through Dagster.

    .venv/bin/python bench/run_bench.py --invoices 1000000

Writes `bench/results/<date>-<N>.json` with at least: invoices, total_seconds, peak_rss_mb and
stages {name: seconds}: `generate` (the simulator, run as its own process), `pipeline` (the Dagster
run: every ingest asset, dbt build with its tests, every check), and one entry per Dagster step
(each ingest asset and the dbt step) read from the run's event log. Peak RSS is the largest
resident set of this process or any child (the generator process, the dbt subprocess).
Run it on a quiet machine, one benchmark at a time; run it twice to see the page-cache effect.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)  # ru_maxrss is KiB on Linux


def step_seconds(instance, run_id: str) -> dict[str, float]:
    """Seconds per Dagster step, from STEP_START to STEP_SUCCESS/FAILURE in the event log."""
    import dagster as dg

    starts: dict[str, float] = {}
    out: dict[str, float] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = record.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            out[f"step:{event.step_key}"] = round(record.timestamp - starts[event.step_key], 2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=25_000)
    parser.add_argument("--customers", type=int, default=None, help="Default: invoices / 60, at least 400.")
    parser.add_argument("--years", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path, default=None, help="Default: a temp dir, removed after.")
    args = parser.parse_args()
    customers = args.customers or max(400, args.invoices // 60)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ar-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        "AR_DUCKDB_PATH": str(workdir / "ar.duckdb"),
        "AR_LANDING_DIR": str(workdir / "landing"),
        # model artefacts and the published copy stay in the workdir too, not in the repo's data/
        "AR_STATE_DIR": str(workdir / "state"),
        "AR_PUBLISH_DIR": str(workdir / "published"),
        "DAGSTER_HOME": str(workdir / "dagster_home"),
    }
    for stale in (workdir / "ar.duckdb", workdir / "ar.duckdb.wal"):
        stale.unlink(missing_ok=True)
    os.environ.update(env)
    stages: dict[str, float] = {}
    started = time.monotonic()

    cli = [sys.executable, "-m", "ar_pipeline.cli"]
    t0 = time.monotonic()
    subprocess.run(
        [*cli, "generate", "--quiet", "--seed", str(args.seed), "--customers", str(customers),
         "--years", str(args.years), "--invoices", str(args.invoices),
         "--end-date", date.today().isoformat()],
        check=True, env={**os.environ, **env},
    )
    stages["generate"] = round(time.monotonic() - t0, 2)

    from ar_pipeline.cli import _export_paths, ensure_dagster_home, run_pipeline
    from ar_pipeline.lib.settings import Paths

    paths = Paths.from_env()
    _export_paths(paths)
    ensure_dagster_home(paths.dagster_home)
    t0 = time.monotonic()
    result = run_pipeline(date.today(), paths)
    stages["pipeline"] = round(time.monotonic() - t0, 2)
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        stages.update(step_seconds(instance, result.run_id))
    total = round(time.monotonic() - started, 2)

    import duckdb

    with duckdb.connect(str(paths.duckdb), read_only=True) as conn:
        counts = {
            "raw_invoices_quickbooks": conn.execute("SELECT count(*) FROM raw_quickbooks.raw_invoices").fetchone()[0],
            "raw_invoices_stripe": conn.execute("SELECT count(*) FROM raw_stripe.raw_invoices").fetchone()[0],
            "fct_invoices": conn.execute("SELECT count(*) FROM marts.fct_invoices").fetchone()[0],
            "fct_ar_aging": conn.execute("SELECT count(*) FROM marts.fct_ar_aging").fetchone()[0],
        }
    landing_bytes = sum(p.stat().st_size for p in (workdir / "landing").rglob("*.json"))
    figures = {
        "invoices": args.invoices,
        "customers": customers,
        "success": result.success,
        "total_seconds": total,
        "peak_rss_mb": peak_rss_mb(),
        "stages": stages,
        "row_counts": counts,
        "landing_mb": round(landing_bytes / 2**20, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "date": date.today().isoformat(),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"{date.today().isoformat()}-{args.invoices}.json"
    run_number = 2
    while out.exists():  # keep earlier runs of the same day (cold vs warm page cache)
        out = RESULTS_DIR / f"{date.today().isoformat()}-{args.invoices}-run{run_number}.json"
        run_number += 1
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(f"wrote {out}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
