"""Days-to-pay design comparison on a loaded history: the README's backtest protocol (cut-off
2026-01-01 to the data end, and 6 rolling cut-offs 60 days apart ending 2026-09-01) for one
`TrainConfig` variant, printing and saving model vs customer-median MAE per cut-off.

Used to choose the days-to-pay design on *tuning* histories only (README "Risk scores and the
backtest"); the report histories are then run once with `ar-pipeline backtest`.

    AR_DUCKDB_PATH=... python bench/prediction_tuning.py --name t101 --config '{"min_fold_fit_ratio": 0}'
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb

from ar_pipeline.lib.prediction.backtest import feature_table, run_backtest, run_rolling
from ar_pipeline.lib.prediction.data import load_history
from ar_pipeline.lib.prediction.model import TrainConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True, help="label of the history and variant, used in the result file name")
    ap.add_argument("--config", default="{}", help="TrainConfig fields to override, as JSON")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    cfg = replace(TrainConfig(), **json.loads(args.config))
    conn = duckdb.connect(os.environ["AR_DUCKDB_PATH"], read_only=True)
    history = load_history(conn)
    conn.close()
    table = feature_table(history)
    results = [run_backtest(history, date(2026, 1, 1), None, cfg, n_boot=200, table=table),
               *run_rolling(history, date(2026, 9, 1), 6, 60, cfg, n_boot=200, table=table)]
    rows = []
    for r in results:
        diff = r["vs_customer_history"]["mae_days_diff"]
        rows.append({"cutoff": r["cutoff"], "test_end": r["test_end"],
                     "mae_model": r["predictors"]["model"]["mae_days"],
                     "mae_customer_median": r["predictors"]["customer_history"]["mae_days"],
                     "diff": diff["value"], "ci_low": diff["ci_low"], "ci_high": diff["ci_high"],
                     "coverage_80": r["predictors"]["model"]["coverage_80"],
                     "late_auc": r["predictors"]["model"]["late_auc"],
                     "choice": r["validation"]["days_to_pay_choice"]})
        x = rows[-1]
        print(f"{x['cutoff']} → {x['test_end']}  MAE {x['mae_model']:.2f} vs {x['mae_customer_median']:.2f}  "
              f"diff {x['diff']:+.2f} ({x['ci_low']:+.2f} .. {x['ci_high']:+.2f})  {x['choice']}", flush=True)
    diffs = [x["diff"] for x in rows]
    print(f"mean diff {sum(diffs) / len(diffs):+.3f}, worst {max(diffs):+.3f}")
    out = Path(args.out) / f"prediction-tuning-{args.name}.json"
    out.write_text(json.dumps({"name": args.name, "config": json.loads(args.config), "data_end": str(history.data_end),
                               "results": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
