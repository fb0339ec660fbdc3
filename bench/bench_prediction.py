"""Benchmark of the payment models: feature building, training and scoring at N invoices.

    .venv/bin/python bench/bench_prediction.py --invoices 1000000

Generates N invoices with the demo generator and builds the ledger straight from its ground-truth
parquet (invoice, due and paid dates, amounts: the same columns the marts give; this times the
prediction code, not the dbt pipeline, which bench/run_bench.py covers). Then times, in one
process: `features` (build_features over every invoice), `train` (model selection + final fits at
a cut-off 90 days before the end, on a seeded sample of at most TrainConfig.max_train_rows of the
`train_rows` known then), `score` (predict + drivers for the invoices issued after it).
Writes `bench/results/<date>-prediction-<N>.json` with seconds per stage, peak RSS, row counts and
the backtest metrics of that split. AR_ML_THREADS sets scikit-learn's threads (default 1).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def ledger_from_truth(landing: Path) -> pl.DataFrame:
    inv = pl.read_parquet(landing / "_ground_truth" / "invoices.parquet")
    return inv.filter(pl.col("status_at_end") != "void").select(
        pl.concat_str("source", pl.lit(":"), "source_invoice_id").alias("invoice_key"),
        pl.concat_str("source", pl.lit(":"), "source_customer_id").alias("customer_id"),
        "source", "invoice_date", "due_date", "paid_date", "currency",
        (pl.col("total_minor").cast(pl.Float64) / 100 * pl.col("exchange_rate").cast(pl.Float64)).alias("amount_home"),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=None, help="Default: invoices / 60, at least 400.")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    customers = args.customers or max(400, args.invoices // 60)
    end = date(2026, 6, 30)

    from ar_pipeline.lib.generator import GeneratorConfig, generate
    from ar_pipeline.lib.prediction.backtest import evaluate, split
    from ar_pipeline.lib.prediction.features import build_features
    from ar_pipeline.lib.prediction.model import TrainConfig, explain, ml_threads, train

    stages: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ar-bench-pred-") as tmp:
        t0 = time.monotonic()
        generate(GeneratorConfig(landing_dir=Path(tmp), seed=args.seed, customers=customers,
                                 invoices=args.invoices, end_date=end))
        stages["generate"] = round(time.monotonic() - t0, 2)
        ledger = ledger_from_truth(Path(tmp))

    started = time.monotonic()
    t0 = time.monotonic()
    feats = build_features(ledger)
    stages["features"] = round(time.monotonic() - t0, 2)
    table = feats.join(ledger.select("invoice_key", "paid_date"), on="invoice_key")
    cutoff = end - timedelta(days=90)
    sp = split(table, cutoff, end + timedelta(days=1), end)
    t0 = time.monotonic()
    model = train(sp.train, cutoff, TrainConfig(seed=args.seed))
    stages["train"] = round(time.monotonic() - t0, 2)
    t0 = time.monotonic()
    model.predict(sp.test)
    drivers = explain(model, sp.test)
    stages["score"] = round(time.monotonic() - t0, 2)
    stages["features_train_score"] = round(time.monotonic() - started, 2)
    metrics = evaluate(model, sp, n_boot=100, seed=args.seed)

    result = {
        "benchmark": "prediction", "invoices": ledger.height, "customers": customers,
        "train_rows": sp.train.height, "train_rows_used": model.validation.get("n_used"),
        "scored_rows": sp.test.height, "drivers_rows": len(drivers),
        "cutoff": cutoff.isoformat(), "classifier_kind": model.classifier_kind, "timing_kind": model.timing_kind,
        "timing_choice": model.validation.get("days_to_pay_choice"),
        "stages": stages, "peak_rss_mb": peak_rss_mb(), "ml_threads": ml_threads(),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "metrics": metrics,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"{date.today().isoformat()}-prediction-{args.invoices}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({k: result[k] for k in ("invoices", "train_rows", "scored_rows", "stages", "peak_rss_mb")}))
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
