"""Payment prediction and risk scores (schema `analytics`), downstream of the marts.

- `analytics/payment_model`: trains the payment models on everything known at the marts' as-of
  date and saves the artefact (joblib + JSON: trained-at, data cut-off, features, validation
  metrics, seed) under AR_STATE_DIR/models.
- `analytics/invoice_risk_scores`: per open invoice, P(late), P(> 30 days late), predicted pay
  date p10/p50/p90 and the top drivers (ar_pipeline.lib.prediction.score).
- `analytics/customer_risk_scores`: per customer, risk score 0–100 (100 × P(next invoice paid more
  than 30 days late)), band (thresholds in `<AR_INGEST_CONFIG_DIR>/analytics/risk_bands.yaml`),
  expected days late, open exposure, trend vs 91 days earlier and drivers.
Blocking Great Expectations checks (suites in ar_pipeline.lib.prediction.quality; GX is imported
only when a check runs): `feature_frame_gx` on the training feature frame, emitted by
`payment_model` itself before it trains (a failing frame saves no model); `invoice_scores_gx`
(probabilities in [0, 1], p10 ≤ p50 ≤ p90, no null keys, one row per open invoice, every open
invoice scored) and `customer_scores_gx` (score 0–100, one row per customer).
"""

from datetime import UTC, datetime

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from ar_pipeline.defs.analytics.column_schemas import with_column_schemas
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


FEATURE_CHECK = "feature_frame_gx"


def _check_result(outcome, name: str | None = None) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name, passed=outcome.success, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"expectations": outcome.evaluated, "failed": len(outcome.failed),
                  "failures": dg.MetadataValue.json(outcome.failed)})


@dg.asset(key=MODEL_KEY, deps=MARTS, kinds={"sklearn", "polars"},
          check_specs=[dg.AssetCheckSpec(FEATURE_CHECK, asset=MODEL_KEY, blocking=True,
                                         description="GX suite on the training feature frame")],
          **COMMON)
def payment_model(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                  landing: LandingResource) -> dg.MaterializeResult:
    """Payment models (late, > 30 days late, days to pay) trained on everything known at the
    marts' as-of date; artefact under AR_STATE_DIR/models. The feature frame is validated first
    (blocking `feature_frame_gx`); when it fails nothing is trained or saved."""
    from ar_pipeline.lib.prediction.model import TrainConfig, train
    from ar_pipeline.lib.prediction.quality import feature_suite, validate
    from ar_pipeline.lib.prediction.score import training_table_at

    history = _history(duckdb)
    rows, cutoff = training_table_at(history)
    outcome = validate(rows, "feature_frame", feature_suite())
    check = _check_result(outcome, FEATURE_CHECK)
    if not outcome.success:
        context.log.error(f"Feature frame failed {len(outcome.failed)} expectations: no model trained")
        return dg.MaterializeResult(metadata={"trained": False, "data_cutoff": cutoff.isoformat()},
                                    check_results=[check])
    model = train(rows, cutoff, TrainConfig(), trained_at=datetime.now(UTC).isoformat(timespec="seconds"))
    path = model.save(landing.state_path() / "models")
    context.log.info(f"Saved {model.version} to {path}")
    return dg.MaterializeResult(metadata={
        "trained": True, "model_version": model.version, "path": str(path), "data_cutoff": cutoff.isoformat(),
        "n_train": model.n_train, "classifier_kind": str(model.classifier_kind), "timing_kind": model.timing_kind,
    }, check_results=[check])


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
    """Per customer: risk score 0-100 (100 x P(next invoice > 30 days late)), band (risk_bands.yaml),
    expected days late, open exposure, trend, drivers."""
    from ar_pipeline.defs.analytics.hygiene import analytics_config_dir
    from ar_pipeline.lib.prediction.model import PaymentModel
    from ar_pipeline.lib.prediction.score import BANDS_FILE, load_bands, score_customers

    bands = load_bands(analytics_config_dir(landing) / BANDS_FILE)
    model = PaymentModel.load(landing.state_path() / "models")
    with duckdb.get_connection() as conn:
        invoices = conn.sql("select * from analytics.invoice_risk_scores").pl()
    scores = score_customers(model, _history(duckdb), invoices, bands)
    _write(duckdb, "customer_risk_scores", scores)
    return dg.MaterializeResult(metadata={"dagster/row_count": scores.height, "model_version": model.version})


@dg.asset_check(asset=INVOICE_KEY, name="invoice_scores_gx", blocking=True,
                description="GX: probabilities in [0, 1], p10 <= p50 <= p90, no null keys, one row per open "
                "invoice, every open invoice of marts.fct_invoices scored")
def invoice_scores_gx(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    from ar_pipeline.lib.prediction.quality import invoice_scores_suite, validate

    with duckdb.get_connection() as conn:
        scores = conn.sql("select * from analytics.invoice_risk_scores").pl()
        open_keys = conn.sql("select invoice_key from marts.fct_invoices where status = 'open'").pl()
    # a null key among the open invoices can never be matched: the set comparison then fails
    keys = [k if k is not None else "<null invoice_key>" for k in open_keys["invoice_key"].to_list()]
    return _check_result(validate(scores, "invoice_risk_scores", invoice_scores_suite(keys)))


@dg.asset_check(asset=CUSTOMER_KEY, name="customer_scores_gx", blocking=True,
                description="GX: risk score 0-100, P(late) in [0, 1], one row per customer, no null ids")
def customer_scores_gx(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    from ar_pipeline.lib.prediction.quality import customer_scores_suite, validate

    with duckdb.get_connection() as conn:
        scores = conn.sql("select * from analytics.customer_risk_scores").pl()
    return _check_result(validate(scores, "customer_risk_scores", customer_scores_suite()))


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=with_column_schemas([payment_model, invoice_risk_scores, customer_risk_scores]),
                          asset_checks=[invoice_scores_gx, customer_scores_gx])
