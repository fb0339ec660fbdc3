"""Payment prediction and risk scores (schema `analytics`), downstream of the marts.

- `analytics/payment_model`: trains the payment models on everything known at the marts' as-of
  date and saves the artefact (joblib + JSON: trained-at, data cut-off, features, validation
  metrics, seed) under AR_STATE_DIR/models.
- `analytics/invoice_risk_scores`: per open invoice, P(late), P(> 30 days late), predicted pay
  date p10/p50/p90 and the top drivers (ar_pipeline.lib.prediction.score).
- `analytics/customer_risk_scores`: per customer, risk score 0–100, band, expected days late, open
  exposure, trend vs 91 days earlier and drivers.
Blocking checks (plain SQL, not Great Expectations): probabilities in [0, 1], p10 ≤ p50 ≤ p90,
one row per open invoice and every open invoice scored.
"""

from datetime import UTC, datetime

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from ar_pipeline.defs.resources import LandingResource

MARTS = [dg.AssetKey(["marts", m]) for m in ("fct_invoices", "fct_ar_events", "dim_customers")]
MODEL_KEY = dg.AssetKey(["analytics", "payment_model"])
INVOICE_KEY = dg.AssetKey(["analytics", "invoice_risk_scores"])
CUSTOMER_KEY = dg.AssetKey(["analytics", "customer_risk_scores"])
COMMON = {"group_name": "analytics", "owners": ["team:finance-analytics"], "pool": "duckdb"}


def _history(duckdb: DuckDBResource):
    import os

    from ar_pipeline.lib.prediction.data import load_history

    with duckdb.get_connection() as conn:
        return load_history(conn, home_currency=os.environ.get("AR_HOME_CURRENCY", "USD"))


def _write(duckdb: DuckDBResource, table: str, frame: pl.DataFrame) -> None:
    with duckdb.get_connection() as conn:
        conn.execute("create schema if not exists analytics")
        conn.register("_frame", frame.to_arrow())
        conn.execute(f"create or replace table analytics.{table} as select * from _frame")
        conn.unregister("_frame")


@dg.asset(key=MODEL_KEY, deps=MARTS, kinds={"sklearn", "polars"}, **COMMON)
def payment_model(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                  landing: LandingResource) -> dg.MaterializeResult:
    """Payment models (late, > 30 days late, days to pay) trained on everything known at the
    marts' as-of date; artefact under AR_STATE_DIR/models."""
    from ar_pipeline.lib.prediction.model import TrainConfig, train
    from ar_pipeline.lib.prediction.score import training_table_at

    history = _history(duckdb)
    rows, cutoff = training_table_at(history)
    model = train(rows, cutoff, TrainConfig(), trained_at=datetime.now(UTC).isoformat(timespec="seconds"))
    path = model.save(landing.state_path() / "models")
    context.log.info(f"Saved {model.version} to {path}")
    return dg.MaterializeResult(metadata={
        "model_version": model.version, "path": str(path), "data_cutoff": cutoff.isoformat(),
        "n_train": model.n_train, "classifier_kind": str(model.classifier_kind), "timing_kind": model.timing_kind,
    })


@dg.asset(key=INVOICE_KEY, deps=[MODEL_KEY, *MARTS], kinds={"sklearn", "duckdb"}, **COMMON)
def invoice_risk_scores(duckdb: DuckDBResource, landing: LandingResource) -> dg.MaterializeResult:
    """Per open invoice: p_late, p_late_30, predicted pay date p10/p50/p90, drivers, model_version."""
    from ar_pipeline.lib.prediction.model import PaymentModel
    from ar_pipeline.lib.prediction.score import score_open_invoices

    model = PaymentModel.load(landing.state_path() / "models")
    scores = score_open_invoices(model, _history(duckdb))
    _write(duckdb, "invoice_risk_scores", scores)
    return dg.MaterializeResult(metadata={"dagster/row_count": scores.height, "model_version": model.version})


@dg.asset(key=CUSTOMER_KEY, deps=[INVOICE_KEY, MODEL_KEY, *MARTS], kinds={"sklearn", "duckdb"}, **COMMON)
def customer_risk_scores(duckdb: DuckDBResource, landing: LandingResource) -> dg.MaterializeResult:
    """Per customer: risk score 0-100, band, expected days late, open exposure, trend, drivers."""
    from ar_pipeline.lib.prediction.model import PaymentModel
    from ar_pipeline.lib.prediction.score import score_customers

    model = PaymentModel.load(landing.state_path() / "models")
    with duckdb.get_connection() as conn:
        invoices = conn.sql("select * from analytics.invoice_risk_scores").pl()
    scores = score_customers(model, _history(duckdb), invoices)
    _write(duckdb, "customer_risk_scores", scores)
    return dg.MaterializeResult(metadata={"dagster/row_count": scores.height, "model_version": model.version})


def _failures(duckdb: DuckDBResource, sql: str) -> int:
    with duckdb.get_connection() as conn:
        return int(conn.sql(sql).fetchall()[0][0])


INVOICE_RULES = {
    "probabilities_in_range": "select count(*) from analytics.invoice_risk_scores where p_late is null "
    "or p_late < 0 or p_late > 1 or p_late_30 is null or p_late_30 < 0 or p_late_30 > 1",
    "pay_dates_ordered": "select count(*) from analytics.invoice_risk_scores where predicted_pay_date_p10 is null "
    "or predicted_pay_date_p10 > predicted_pay_date_p50 or predicted_pay_date_p50 > predicted_pay_date_p90",
    "one_row_per_open_invoice": "select count(*) - count(distinct invoice_key) + count(*) filter "
    "(where invoice_key is null) from analytics.invoice_risk_scores",
    "every_open_invoice_scored": "select count(*) from marts.fct_invoices i where i.status = 'open' and not exists "
    "(select 1 from analytics.invoice_risk_scores s where s.invoice_key = i.invoice_key)",
}
CUSTOMER_RULES = {
    "scores_in_range": "select count(*) from analytics.customer_risk_scores where risk_score is null "
    "or risk_score < 0 or risk_score > 100 or p_late_next_invoice < 0 or p_late_next_invoice > 1",
    "one_row_per_customer": "select count(*) - count(distinct customer_id) + count(*) filter "
    "(where customer_id is null) from analytics.customer_risk_scores",
}


def _build_check(asset_key: dg.AssetKey, name: str, sql: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset_key, name=name, blocking=True, description=f"Rows breaking: {sql}")
    def _check(duckdb: DuckDBResource) -> dg.AssetCheckResult:
        failed = _failures(duckdb, sql)
        return dg.AssetCheckResult(passed=failed == 0, metadata={"failed_rows": failed})

    return _check


@dg.definitions
def defs() -> dg.Definitions:
    checks = [_build_check(INVOICE_KEY, n, s) for n, s in INVOICE_RULES.items()]
    checks += [_build_check(CUSTOMER_KEY, n, s) for n, s in CUSTOMER_RULES.items()]
    return dg.Definitions(assets=[payment_model, invoice_risk_scores, customer_risk_scores], asset_checks=checks)
