"""Deterministic demo-data simulator for ar-pipeline.

Writes QuickBooks Online query pages and Stripe list pages into the landing zone (the shapes the
ingest configs in ``ingest_configs/`` read), the daily exchange rates a finance team would download
from its bank (``<landing>/reference/fx_rates/``, read by ``ingest_configs/fx_rates.yaml``), plus
ground-truth parquet files in ``<landing>/_ground_truth/`` for tests.

    from ar_pipeline.lib.generator import GeneratorConfig, GenerationSummary, generate
    summary = generate(GeneratorConfig(landing_dir=Path("data/landing"), seed=42))
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from . import bank, hygiene, quickbooks, stripe, truth
from .config import GenerationSummary, GeneratorConfig
from .jsonfmt import PageWriter, date_s, rate6
from .simulate import CURRENCIES, EPOCH, Sim, fx_published, simulate

__all__ = [
    "FX_RATES_DIRNAME",
    "FX_RATES_FILE",
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
#: Folder (under the landing dir) and name of the generated rates file (see ingest_configs/fx_rates.yaml).
FX_RATES_DIRNAME = "reference/fx_rates"
FX_RATES_FILE = "daily_rates.csv"
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
    "balance_transactions",
    "payouts",
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


def write_fx_rates(sim: Sim, folder: Path) -> tuple[int, int]:
    """The simulated daily rates as a bank's rates file: `date,currency,quote_currency,rate`, one
    row per published day (weekdays) and foreign currency, in USD (the home currency) with 6
    decimals: exactly the rates QuickBooks documents carry. Returns (rows, bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    days = fx_published(sim.start_day, sim.fx.shape[1])
    frames = [
        pl.DataFrame({
            "day": days,
            "currency": [str(CURRENCIES[c])] * len(days),
            "rate": sim.fx[c, days - sim.start_day],
        })
        for c in range(1, len(CURRENCIES))
    ]
    rates = pl.concat(frames).sort("day", "currency").select(
        date_s(pl.col("day")).alias("date"),
        "currency",
        pl.lit("USD").alias("quote_currency"),
        rate6(pl.col("rate")).alias("rate"),
    )
    path = folder / FX_RATES_FILE
    rates.write_csv(path)
    return rates.height, path.stat().st_size


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
    _clean(landing / bank.BANK_DIRNAME, bank.BANK_FILE)

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
        writer = PageWriter(progress, task)
        qtime = _qbo_time(sim)

        def pages(df, size: int) -> int:
            return max(1, -(-df.height // size))

        # One source at a time: build, write, then drop everything but what the truth needs, so
        # QuickBooks and Stripe frames are never resident together.
        q = quickbooks.build(sim)
        qframes = {
            "customer": (q.customers, q.customer_expr, None),
            "invoice": (q.invoices, q.invoice_expr, q.invoice_prepare),
            "payment": (q.payments, q.payment_expr, None),
            "creditmemo": (q.creditmemos, q.creditmemo_expr, None),
        }
        qbo_ids = q.invoice_ids
        qbo_truth = {"quickbooks_unapplied_payments": q.unapplied_truth}
        del q
        total_pages = sum(pages(df, QBO_PAGE) for df, _, _ in qframes.values())
        if progress:
            progress.update(task, description="writing pages", total=total_pages, completed=0)

        for folder in list(qframes):
            df, expr, prep = qframes.pop(folder)
            ent = QBO_ENTITIES[folder]

            def wrap(page: int, n: int, last: bool, ent: str = ent) -> tuple[str, str]:
                start = (page - 1) * QBO_PAGE + 1
                return (
                    f'{{"QueryResponse":{{"{ent}":[',
                    f'],"startPosition":{start},"maxResults":{n}}},"time":"{qtime}"}}',
                )

            n, npages = writer.write_entity(
                qdir / folder, df, expr, QBO_PAGE, wrap, chunk_pages=20, prepare=prep
            )
            del df, expr, prep
            summary.records[("quickbooks", folder)] = n
            summary.files[("quickbooks", folder)] = npages

        st = stripe.build(sim)
        total_pages += sum(pages(st.frames[k], STRIPE_PAGE) for k in STRIPE_ENTITIES)
        if progress:
            progress.update(task, total=total_pages)
        # the ground truth only needs the Stripe source ids
        s_keep = {
            "customers": st.frames["customers"].select("cust", "cus_id"),
            "invoices": st.frames["invoices"].select("inv", "in_id", "number", "draft"),
            "payouts": st.frames["payouts"].select("po_id", "cur", "amount", "arrival"),
        }
        stripe_truth = st.truth

        for folder in STRIPE_ENTITIES:
            df, expr = st.frames.pop(folder), st.exprs.pop(folder)
            prep = st.prepares.pop(folder, None)

            def wrap(page: int, n: int, last: bool, folder: str = folder) -> tuple[str, str]:
                more = "false" if last else "true"
                return (f'{{"object":"list","url":"/v1/{folder}","has_more":{more},"data":[', "]}")

            n, npages = writer.write_entity(
                sdir / folder, df, expr, STRIPE_PAGE, wrap, chunk_pages=200, prepare=prep
            )
            del df, expr, prep
            summary.records[("stripe", folder)] = n
            summary.files[("stripe", folder)] = npages
        del st

        if progress:
            progress.update(task, description="ground truth")
        fx_rows, fx_bytes = write_fx_rates(sim, landing / FX_RATES_DIRNAME)
        summary.records[("reference", "fx_rates")] = fx_rows
        summary.files[("reference", "fx_rates")] = 1
        writer.bytes += fx_bytes
        tables = truth.build(sim, qbo_ids, s_keep) | stripe_truth | qbo_truth
        # bank credits for cash application: own RNG stream, so nothing above changes
        bank_lines, bank_truth = bank.build(sim, tables, s_keep["customers"], cfg.seed, s_keep["payouts"])
        # Stripe drafts with injected pre-send mistakes: own RNG stream, drafts are not AR
        drafts, hygiene_truth = hygiene.build(sim, tables, s_keep["customers"], cfg.seed)
        del sim, qbo_ids, s_keep
        summary.bytes_written = writer.bytes + truth.write(tables, tdir)
        summary.bytes_written += bank.write(bank_lines, bank_truth, landing, tdir)
        summary.bytes_written += hygiene.write(drafts, hygiene_truth, sdir, tdir)
        summary.records[("stripe", "invoices")] += len(drafts)
        summary.files[("stripe", "invoices")] += 1
        summary.records[("ground_truth", "invoice_hygiene")] = hygiene_truth.height
        summary.files[("ground_truth", "invoice_hygiene")] = 1
        summary.records[("bank", "statement_lines")] = bank_lines.height
        summary.files[("bank", "statement_lines")] = 1
        summary.records[("ground_truth", "bank_matches")] = bank_truth.height
        summary.files[("ground_truth", "bank_matches")] = 1
        for name, df in tables.items():
            summary.records[("ground_truth", name)] = df.height
            summary.files[("ground_truth", name)] = 1
    finally:
        if progress:
            progress.stop()
    summary.elapsed_seconds = time.perf_counter() - t0
    return summary
