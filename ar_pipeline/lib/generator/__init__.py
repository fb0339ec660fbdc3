"""Deterministic demo-data simulator for ar-pipeline.

Writes QuickBooks Online query pages and Stripe list pages into the landing zone (the shapes the
ingest configs in ``ingest_configs/`` read) plus ground-truth parquet files in
``<landing>/_ground_truth/`` for tests.

    from ar_pipeline.lib.generator import GeneratorConfig, GenerationSummary, generate
    summary = generate(GeneratorConfig(landing_dir=Path("data/landing"), seed=42))
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from . import quickbooks, stripe, truth
from .config import GenerationSummary, GeneratorConfig
from .jsonfmt import PageWriter
from .simulate import EPOCH, Sim, simulate

__all__ = [
    "QBO_ENTITIES",
    "STRIPE_ENTITIES",
    "TRUTH_DIRNAME",
    "GenerationSummary",
    "GeneratorConfig",
    "generate",
]

QBO_PAGE = 1000
STRIPE_PAGE = 100
TRUTH_DIRNAME = "_ground_truth"
# folder -> QBO entity name
QBO_ENTITIES = {
    "customer": "Customer",
    "invoice": "Invoice",
    "payment": "Payment",
    "creditmemo": "CreditMemo",
}
STRIPE_ENTITIES = (
    "customers",
    "invoices",
    "invoice_payments",
    "charges",
    "refunds",
    "disputes",
    "credit_notes",
)


def _clean(folder: Path, pattern: str) -> None:
    if folder.is_dir():
        for p in sorted(folder.glob(pattern)):
            if p.is_file():
                p.unlink()


def _qbo_time(sim: Sim) -> str:
    """Response 'time': end_date 23:58:00 company time (derived from end_date, never the clock)."""
    d = EPOCH + timedelta(days=sim.end_day)
    t = datetime(d.year, d.month, d.day, 23, 58, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
    s = t.isoformat(timespec="milliseconds")
    return s


def generate(cfg: GeneratorConfig) -> GenerationSummary:
    """Simulate and write the landing files and ground truth. Returns what was written."""
    t0 = time.perf_counter()
    landing = Path(cfg.landing_dir)
    qdir, sdir, tdir = landing / "quickbooks", landing / "stripe", landing / TRUTH_DIRNAME
    for f in QBO_ENTITIES:
        _clean(qdir / f, "*.json")
    for f in STRIPE_ENTITIES:
        _clean(sdir / f, "*.json")
    _clean(tdir, "*.parquet")

    summary = GenerationSummary(truth_dir=tdir)
    progress = None
    if cfg.progress:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        progress.start()
    try:
        task = progress.add_task("simulating", total=None) if progress else None
        sim = simulate(cfg)
        q = quickbooks.build(sim)
        st = stripe.build(sim)
        qframes = {
            "customer": (q.customers, q.customer_expr),
            "invoice": (q.invoices, q.invoice_expr),
            "payment": (q.payments, q.payment_expr),
            "creditmemo": (q.creditmemos, q.creditmemo_expr),
        }
        total_pages = sum(max(1, -(-df.height // QBO_PAGE)) for df, _ in qframes.values())
        total_pages += sum(max(1, -(-st.frames[k].height // STRIPE_PAGE)) for k in STRIPE_ENTITIES)
        if progress:
            progress.update(task, description="writing pages", total=total_pages, completed=0)
        writer = PageWriter(progress, task)
        qtime = _qbo_time(sim)

        for folder, (df, expr) in qframes.items():
            ent = QBO_ENTITIES[folder]

            def wrap(page: int, n: int, last: bool, ent: str = ent) -> tuple[str, str]:
                start = (page - 1) * QBO_PAGE + 1
                return (
                    f'{{"QueryResponse":{{"{ent}":[',
                    f'],"startPosition":{start},"maxResults":{n}}},"time":"{qtime}"}}',
                )

            n, pages = writer.write_entity(qdir / folder, df, expr, QBO_PAGE, wrap, chunk_pages=20)
            summary.records[("quickbooks", folder)] = n
            summary.files[("quickbooks", folder)] = pages

        for folder in STRIPE_ENTITIES:
            df, expr = st.frames[folder], st.exprs[folder]

            def wrap(page: int, n: int, last: bool, folder: str = folder) -> tuple[str, str]:
                more = "false" if last else "true"
                return (f'{{"object":"list","url":"/v1/{folder}","has_more":{more},"data":[', "]}")

            n, pages = writer.write_entity(
                sdir / folder, df, expr, STRIPE_PAGE, wrap, chunk_pages=200
            )
            summary.records[("stripe", folder)] = n
            summary.files[("stripe", folder)] = pages

        if progress:
            progress.update(task, description="ground truth")
        tables = truth.build(sim, q.invoice_ids, st.frames)
        summary.bytes_written = writer.bytes + truth.write(tables, tdir)
        for name, df in tables.items():
            summary.records[("ground_truth", name)] = df.height
            summary.files[("ground_truth", name)] = 1
    finally:
        if progress:
            progress.stop()
    summary.elapsed_seconds = time.perf_counter() - t0
    return summary
