"""The AR dashboard: one self-contained HTML page (plotly.js embedded, opens offline, no CDN).

Read from the published copy (`<publish_dir>/ar.duckdb`), so the page shows exactly what BI tools
see. Sections whose tables are not built yet (risk scores, reminder queue, cash forecast) say so
instead of showing stale or invented numbers.
"""

from __future__ import annotations

import html
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ar_pipeline.lib.settings import PROJECT_ROOT
from ar_pipeline.lib.warehouse import table_exists

DEFAULT_TARGETS_FILE = PROJECT_ROOT / "ingest_configs" / "dashboard" / "targets.yaml"
BUCKET_COLOURS = ["#2e7d32", "#9ccc65", "#fdd835", "#fb8c00", "#e53935", "#8e24aa", "#5d4037"]


class DashboardTargets(BaseModel):
    """Targets the headline tiles are judged against (`ingest_configs/dashboard/targets.yaml`)."""

    model_config = ConfigDict(extra="forbid")

    dso_days: float = Field(45, gt=0, description="DSO at or below this is on target.")
    cei_percent: float = Field(80, ge=0, le=100, description="CEI at or above this is on target.")
    percent_current: float = Field(75, ge=0, le=100, description="Share of AR not yet due, at or above.")
    percent_over_90: float = Field(5, ge=0, le=100, description="Share of AR over 90 days, at or below.")


def load_targets(path: Path = DEFAULT_TARGETS_FILE) -> DashboardTargets:
    if not path.exists():
        return DashboardTargets()
    try:
        return DashboardTargets.model_validate(yaml.safe_load(path.read_text()) or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{path}: invalid dashboard targets: {problems}") from None


@dataclass(frozen=True)
class Tile:
    label: str
    value: str
    target: str
    on_target: bool | None


def money(amount: Decimal | float | None, currency: str) -> str:
    return "n/a" if amount is None else f"{currency} {float(amount):,.0f}"


def _tiles(conn: duckdb.DuckDBPyConnection, targets: DashboardTargets, currency: str, as_of: date) -> list[Tile]:
    open_ar, pct_current, pct_over_90 = conn.execute(
        """SELECT coalesce(sum(home_open_amount), 0),
                  100 * sum(CASE WHEN days_past_due <= 0 THEN home_open_amount ELSE 0 END)
                      / nullif(sum(home_open_amount), 0),
                  100 * sum(CASE WHEN days_past_due > 90 THEN home_open_amount ELSE 0 END)
                      / nullif(sum(home_open_amount), 0)
           FROM marts.fct_ar_aging"""
    ).fetchall()[0]
    dso = conn.execute(
        "SELECT dso, window_days FROM marts.ar_kpis_daily WHERE dimension = 'all' AND snapshot_date = ?", [as_of]
    ).fetchall()
    cei = conn.execute(
        """SELECT cei, month_end FROM marts.ar_kpis_monthly WHERE dimension = 'all' AND cei IS NOT NULL
           ORDER BY month_end DESC LIMIT 1"""
    ).fetchall()

    def judged(value, target, higher_is_better: bool) -> bool | None:
        if value is None:
            return None
        return float(value) >= target if higher_is_better else float(value) <= target

    dso_value = dso[0][0] if dso else None
    cei_value = cei[0][0] if cei else None
    return [
        Tile("Total open AR", money(open_ar, currency), "", None),
        Tile(
            "% current",
            f"{float(pct_current or 0):.1f}%",
            f"target ≥ {targets.percent_current:g}%",
            judged(pct_current, targets.percent_current, True),
        ),
        Tile(
            "% over 90 days",
            f"{float(pct_over_90 or 0):.1f}%",
            f"target ≤ {targets.percent_over_90:g}%",
            judged(pct_over_90, targets.percent_over_90, False),
        ),
        Tile(
            f"DSO ({dso[0][1]}-day)" if dso else "DSO",
            f"{float(dso_value):.1f} days" if dso_value is not None else "n/a",
            f"target ≤ {targets.dso_days:g} days",
            judged(dso_value, targets.dso_days, False),
        ),
        Tile(
            f"CEI ({cei[0][1]:%b %Y})" if cei else "CEI",
            f"{float(cei_value):.1f}%" if cei_value is not None else "n/a",
            f"target ≥ {targets.cei_percent:g}%",
            judged(cei_value, targets.cei_percent, True),
        ),
    ]


def _figure_html(fig, div_id: str) -> str:
    fig.update_layout(
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        height=380,
        template="plotly_white",
        font={"family": "system-ui, sans-serif", "size": 13},
    )
    return fig.to_html(
        full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False, "responsive": True}
    )


def _aging_over_time(conn: duckdb.DuckDBPyConnection, currency: str) -> str:
    import plotly.graph_objects as go

    frame = conn.sql(
        """SELECT s.snapshot_date, s.aging_bucket, min(s.aging_bucket_sort) AS bucket_sort,
                  sum(s.home_open_amount) AS amount
           FROM marts.fct_ar_aging_snapshots s
           WHERE last_day(s.snapshot_date) = s.snapshot_date
              OR s.snapshot_date = (SELECT max(snapshot_date) FROM marts.fct_ar_aging_snapshots)
           GROUP BY ALL ORDER BY snapshot_date, bucket_sort"""
    ).pl()
    fig = go.Figure()
    buckets = frame.select("aging_bucket", "bucket_sort").unique().sort("bucket_sort")["aging_bucket"].to_list()
    for i, bucket in enumerate(buckets):
        part = frame.filter(pl.col("aging_bucket") == bucket)
        fig.add_bar(
            x=part["snapshot_date"].to_list(),
            y=[float(v) for v in part["amount"]],
            name=bucket.replace("_", "–"),
            marker_color=BUCKET_COLOURS[i % len(BUCKET_COLOURS)],
            hovertemplate=f"%{{x|%d %b %Y}}<br>{bucket}: {currency} %{{y:,.0f}}<extra></extra>",
        )
    fig.update_layout(
        barmode="stack",
        title="Open AR by aging bucket (month ends and the as-of date)",
        yaxis={"title": f"Open AR ({currency})", "tickformat": ",.0f"},
        legend={"title": "Bucket"},
    )
    return _figure_html(fig, "chart-aging")


def _kpi_trend(conn: duckdb.DuckDBPyConnection) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    frame = conn.sql(
        """SELECT month_end, dso, countback_dso, best_possible_dso, cei FROM marts.ar_kpis_monthly
           WHERE dimension = 'all' ORDER BY month_end"""
    ).pl()
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for column, label in [
        ("dso", "DSO"),
        ("countback_dso", "Countback DSO"),
        ("best_possible_dso", "Best possible DSO"),
    ]:
        fig.add_trace(
            go.Scatter(
                x=frame["month_end"].to_list(),
                y=[None if v is None else float(v) for v in frame[column]],
                name=label,
                mode="lines+markers",
                hovertemplate=f"%{{x|%b %Y}}<br>{label}: %{{y:.1f}} days<extra></extra>",
            ),
            secondary_y=False,
        )
    fig.add_trace(
        go.Scatter(
            x=frame["month_end"].to_list(),
            y=[None if v is None else float(v) for v in frame["cei"]],
            name="CEI (%)",
            mode="lines",
            line={"dash": "dot"},
            hovertemplate="%{x|%b %Y}<br>CEI: %{y:.1f}%<extra></extra>",
        ),
        secondary_y=True,
    )
    fig.update_layout(title="DSO, countback DSO and CEI by month")
    fig.update_yaxes(title_text="Days", secondary_y=False)
    fig.update_yaxes(title_text="CEI (%)", range=[0, 105], tickmode="linear", tick0=0, dtick=20,
                     showgrid=False, secondary_y=True)
    return _figure_html(fig, "chart-kpis")


def _collections(conn: duckdb.DuckDBPyConnection, currency: str) -> str:
    import plotly.graph_objects as go

    frame = (
        conn.sql(
            """SELECT week_start, collections FROM marts.ar_collections_weekly
           WHERE dimension = 'all' ORDER BY week_start"""
        )
        .pl()
        .tail(26)
    )
    fig = go.Figure(
        go.Bar(
            x=frame["week_start"].to_list(),
            y=[float(v) for v in frame["collections"]],
            marker_color="#1565c0",
            hovertemplate=f"Week of %{{x|%d %b %Y}}<br>{currency} %{{y:,.0f}}<extra></extra>",
        )
    )
    fig.update_layout(
        title="Actual collections per week (last 26 weeks)",
        yaxis={"title": f"Collected ({currency})", "tickformat": ",.0f"},
    )
    return _figure_html(fig, "chart-collections")


def _cash_forecast(conn: duckdb.DuckDBPyConnection, currency: str) -> str:
    """Expected collections for the next 13 weeks with the p10-p90 band, after the actual weekly
    collections of the recent weeks (same convention as the forecast: invoices fully paid in the
    week) and what the week-ahead forecast had said for them."""
    import plotly.graph_objects as go

    fc = conn.sql(
        """SELECT week_start, expected_home, p10_amount, p90_amount FROM analytics.cash_forecast_weekly
           WHERE currency = 'ALL' ORDER BY week"""
    ).pl()
    past = (
        conn.sql(
            """SELECT week_start, actual_home, forecast_home FROM analytics.cash_forecast_vs_actual
               WHERE week = 1 ORDER BY week_start"""
        ).pl()
        if table_exists(conn, "analytics", "cash_forecast_vs_actual")
        else pl.DataFrame(schema={"week_start": pl.Date, "actual_home": pl.Float64, "forecast_home": pl.Float64})
    )
    weeks = fc["week_start"].to_list()
    hover = f"Week of %{{x|%d %b %Y}}<br>{currency} %{{y:,.0f}}"
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=weeks, y=[float(v) for v in fc["p90_amount"]], mode="lines", line={"width": 0},
                             name="p90", showlegend=False, hovertemplate=hover + "<extra>p90</extra>"))
    fig.add_trace(go.Scatter(x=weeks, y=[float(v) for v in fc["p10_amount"]], mode="lines", line={"width": 0},
                             fill="tonexty", fillcolor="rgba(21,101,192,0.18)", name="p10–p90 band",
                             hovertemplate=hover + "<extra>p10</extra>"))
    fig.add_trace(go.Scatter(x=weeks, y=[float(v) for v in fc["expected_home"]], mode="lines+markers",
                             line={"color": "#1565c0"}, name="Expected collections",
                             hovertemplate=hover + "<extra>expected</extra>"))
    if past.height:
        fig.add_trace(go.Bar(x=past["week_start"].to_list(), y=[float(v) for v in past["actual_home"]],
                             marker_color="#90a4ae", name="Collected (recent weeks)",
                             hovertemplate=hover + "<extra>collected</extra>"))
        fig.add_trace(go.Scatter(x=past["week_start"].to_list(), y=[float(v) for v in past["forecast_home"]],
                                 mode="lines", line={"color": "#546e7a", "dash": "dot"},
                                 name="Week-ahead forecast then", hovertemplate=hover + "<extra>forecast</extra>"))
    fig.update_layout(
        title="13-week cash-inflow forecast (expected, p10–p90) after recent actual collections",
        yaxis={"title": f"Collections per week ({currency})", "tickformat": ",.0f"},
    )
    total = float(fc["expected_home"].sum())
    return _figure_html(fig, "chart-forecast") + (
        f'<p class="note">Expected over 13 weeks: {html.escape(money(total, currency))}. Open invoices spread over '
        "their payment-date distribution given their age, plus new billing at the recent run-rate.</p>"
    )


def _forecast_scenarios(conn: duckdb.DuckDBPyConnection, currency: str) -> str:
    """Cumulative expected cash over the 13 weeks, base and each scenario."""
    import plotly.graph_objects as go

    frame = conn.sql(
        """SELECT scenario, description, week_start, scenario_cumulative_home, first_week_below_minimum
           FROM analytics.cash_forecast_scenarios ORDER BY scenario = 'base' DESC, scenario, week"""
    ).pl()
    fig = go.Figure()
    notes = []
    for name in frame["scenario"].unique(maintain_order=True).to_list():
        part = frame.filter(pl.col("scenario") == name)
        fig.add_trace(go.Scatter(
            x=part["week_start"].to_list(), y=[float(v) for v in part["scenario_cumulative_home"]],
            mode="lines", name=part["description"][0],
            line={"width": 3 if name == "base" else 2, "dash": None if name == "base" else "dash"},
            hovertemplate=f"Week of %{{x|%d %b %Y}}<br>cumulative {currency} %{{y:,.0f}}<extra>{name}</extra>",
        ))
        below = part["first_week_below_minimum"][0]
        if below is not None:
            notes.append(f"{part['description'][0]}: cash position below the minimum in week {below}")
    fig.update_layout(
        title="Scenarios: cumulative expected cash vs base",
        yaxis={"title": f"Cumulative collections ({currency})", "tickformat": ",.0f"},
    )
    note = "; ".join(notes) if notes else "No scenario takes the cash position below the configured minimum."
    return _figure_html(fig, "chart-scenarios") + f'<p class="note">{html.escape(note)}</p>'


BACKTEST_SQL = """
WITH versions AS (
    SELECT DISTINCT cutoff, test_end, model_version, n_train, n_test FROM analytics.model_backtest_metrics
), runs AS (  -- per test window, the run on the most data (largest training set)
    SELECT *, row_number() OVER (PARTITION BY cutoff, test_end ORDER BY n_train DESC, model_version DESC) AS pick
    FROM versions
)
SELECT r.cutoff, r.test_end, r.n_test,
       max(m.value) FILTER (m.predictor = 'model' AND m.metric = 'mae_days') AS mae_model,
       max(m.value) FILTER (m.predictor = 'customer_history' AND m.metric = 'mae_days') AS mae_history,
       max(m.value) FILTER (m.predictor = 'model' AND m.metric = 'late_auc') AS auc_model,
       max(m.value) FILTER (m.predictor = 'customer_history' AND m.metric = 'late_auc') AS auc_history
FROM runs r JOIN analytics.model_backtest_metrics m USING (cutoff, test_end, model_version)
WHERE r.pick = 1
GROUP BY ALL ORDER BY r.cutoff, r.test_end
"""


def _model_backtest(conn: duckdb.DuckDBPyConnection) -> str:
    """How the payment model did against the customer's own history in each backtest window
    (analytics.model_backtest_metrics, written by `ar-pipeline backtest`): days-to-pay error as bars,
    late AUC in the table."""
    import plotly.graph_objects as go

    frame = conn.sql(BACKTEST_SQL).pl()
    labels = [f"{a:%d %b %Y} → {b:%d %b %Y}" for a, b in zip(frame["cutoff"], frame["test_end"], strict=True)]
    fig = go.Figure()
    for col, name in (("mae_model", "payment model"), ("mae_history", "customer's own median")):
        fig.add_trace(go.Bar(x=labels, y=[None if v is None else float(v) for v in frame[col]], name=name,
                             hovertemplate="%{x}<br>%{y:.2f} days off on average<extra>" + name + "</extra>"))
    fig.update_layout(title="Payment model vs the customer's own history: days-to-pay error per backtest window",
                      barmode="group", yaxis={"title": "Mean absolute error (days)"})

    def num(v, fmt: str) -> str:
        return "n/a" if v is None else format(v, fmt)

    rows = [(label, num(r["mae_model"], ".2f"), num(r["mae_history"], ".2f"), num(r["auc_model"], ".3f"),
             num(r["auc_history"], ".3f"), r["n_test"])
            for label, r in zip(labels, frame.iter_rows(named=True), strict=True)]
    table = _table(rows, ["test window", "MAE days: model", "MAE days: history", "late AUC: model",
                          "late AUC: history", "test invoices"])
    return (_figure_html(fig, "chart-backtest") + table
            + '<p class="note">Lower error and higher AUC are better. Written by <code>ar-pipeline backtest</code>; '
              "README 'Risk scores and the backtest' explains the protocol.</p>")


def _money_at_risk(conn: duckdb.DuckDBPyConnection, currency: str) -> tuple[str, str]:
    """Top customers by money at risk: the risk scores when built, else overdue AR × the customer's
    historical share of invoices paid late (said so on the page)."""
    import plotly.graph_objects as go

    if table_exists(conn, "analytics", "customer_risk_scores") and table_exists(
        conn, "analytics", "invoice_risk_scores"
    ):
        source = "risk model: open amount × probability of paying more than 30 days late"
        frame = conn.sql(
            """SELECT c.customer_name, sum(a.home_open_amount * s.p_late_30) AS at_risk,
                      sum(a.home_open_amount) AS open_amount, max(r.risk_band) AS band,
                      max(r.risk_score) AS score, max(r.drivers) AS drivers
               FROM marts.fct_ar_aging a JOIN analytics.invoice_risk_scores s USING (invoice_key)
               JOIN marts.dim_customers c ON c.customer_id = a.customer_id
               LEFT JOIN analytics.customer_risk_scores r ON r.customer_id = a.customer_id
               GROUP BY c.customer_name ORDER BY at_risk DESC LIMIT 10"""
        ).pl()
    else:
        source = (
            "risk scores not built yet: overdue amount × the customer's historical share of "
            "invoices paid late (ar_customer_payment_stats)"
        )
        frame = conn.sql(
            """SELECT c.customer_name,
                      sum(a.home_open_amount) * coalesce(max(st.percent_paid_late), 50) / 100 AS at_risk,
                      sum(a.home_open_amount) AS open_amount, NULL AS band, NULL AS score,
                      'share of past invoices paid late: ' || coalesce(round(max(st.percent_paid_late)), 50) || '%'
                          AS drivers
               FROM marts.fct_ar_aging a JOIN marts.dim_customers c ON c.customer_id = a.customer_id
               LEFT JOIN marts.ar_customer_payment_stats st ON st.customer_id = a.customer_id
               WHERE a.days_past_due > 0
               GROUP BY c.customer_name ORDER BY at_risk DESC LIMIT 10"""
        ).pl()
    frame = frame.sort("at_risk")
    fig = go.Figure(
        go.Bar(
            x=[float(v) for v in frame["at_risk"]],
            y=frame["customer_name"].to_list(),
            orientation="h",
            marker_color="#c62828",
            hovertemplate=f"%{{y}}<br>at risk: {currency} %{{x:,.0f}}<extra></extra>",
        )
    )
    fig.update_layout(title="Top 10 customers by money at risk", xaxis={"title": f"{currency}", "tickformat": ",.0f"})
    table = _table(
        [(r["customer_name"], money(r["at_risk"], currency), money(r["open_amount"], currency),
          r["band"] or "n/a", "n/a" if r["score"] is None else r["score"], r["drivers"] or "")
         for r in frame.sort("at_risk", descending=True).iter_rows(named=True)],
        ["Customer", "Money at risk", "Open amount", "Risk band", "Score (0–100)", "Why"],
    )
    return _figure_html(fig, "chart-risk") + table, source


def _reminder_queue(conn: duckdb.DuckDBPyConnection, currency: str) -> str:
    """Today's worklist: contacts per level, stacked by collector, and the totals as a table."""
    import plotly.graph_objects as go

    frame = conn.sql(
        """SELECT level, min(level_index) AS level_index, coalesce(assigned_to, collector, 'unassigned') AS owner,
                  count(*) AS customers, sum(open_amount_home) AS open_amount, sum(money_at_risk) AS at_risk
           FROM analytics.reminder_queue GROUP BY ALL ORDER BY level_index, owner"""
    ).pl()
    levels = frame.select("level", "level_index").unique().sort("level_index")["level"].to_list()
    fig = go.Figure()
    for owner in sorted(set(frame["owner"].to_list())):
        part = frame.filter(pl.col("owner") == owner)
        counts = dict(zip(part["level"].to_list(), part["customers"].to_list(), strict=True))
        fig.add_bar(x=levels, y=[counts.get(level, 0) for level in levels], name=owner,
                    hovertemplate=f"{owner}<br>%{{x}}: %{{y}} customers<extra></extra>")
    fig.update_layout(barmode="stack", title=f"Today's reminder queue: {frame['customers'].sum()} customers by level",
                      yaxis={"title": "Customers to contact"}, legend={"title": "Collector"})
    table = _table([(r["level"], r["owner"], r["customers"], money(r["open_amount"], currency),
                     money(r["at_risk"], currency)) for r in frame.iter_rows(named=True)],
                   ["Level", "Collector", "Customers", "Open amount", "Money at risk"])
    return _figure_html(fig, "chart-queue") + table


def _alerts(conn: duckdb.DuckDBPyConnection, as_of: date) -> list[str]:
    alerts = []
    for dispute_id, customer, amount, currency, due in conn.execute(
        """SELECT d.dispute_id, coalesce(c.customer_name, d.customer_id), d.amount, d.currency, d.evidence_due_date
           FROM marts.fct_disputes d LEFT JOIN marts.dim_customers c USING (customer_id)
           WHERE d.is_open AND d.evidence_due_date IS NOT NULL AND d.evidence_due_date <= ? + INTERVAL 7 DAY
           ORDER BY d.evidence_due_date""",
        [as_of],
    ).fetchall():
        alerts.append(f"Dispute {dispute_id} ({customer}, {money(amount, currency)}): evidence due {due:%d %b %Y}.")
    missing = conn.execute(
        "SELECT count(*), sum(open_amount) FROM marts.fct_ar_aging WHERE home_open_amount IS NULL"
    ).fetchall()[0]
    if missing[0]:
        alerts.append(
            f"{missing[0]} open invoices have no exchange rate: they are missing from the home-currency totals."
        )
    if table_exists(conn, "analytics", "forecast_alerts"):
        alerts += [r[0] for r in conn.execute("SELECT message FROM analytics.forecast_alerts").fetchall()]
    return alerts


def _not_built(title: str, what: str) -> str:
    return f'<section class="pending"><h2>{html.escape(title)}</h2><p>{html.escape(what)}</p></section>'


def _table(rows: list[tuple], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; background: #f5f6f8; color: #1c1c1c; }
header, footer { background: #263238; color: #fff; padding: 12px 24px; }
header h1 { margin: 0 0 4px 0; font-size: 22px; }
.freshness { font-size: 13px; opacity: .85; }
main { padding: 16px 24px; display: grid; gap: 16px; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); gap: 12px; }
.tile { background: #fff; border-radius: 8px; padding: 12px 16px; border-left: 6px solid #90a4ae; }
.tile.good { border-left-color: #2e7d32; } .tile.bad { border-left-color: #c62828; }
.tile .label { font-size: 13px; color: #546e7a; } .tile .value { font-size: 24px; font-weight: 600; }
.tile .target { font-size: 12px; color: #78909c; }
section { background: #fff; border-radius: 8px; padding: 12px 16px; }
section h2 { font-size: 17px; margin: 4px 0 8px 0; }
.note { font-size: 12px; color: #607d8b; }
.pending { border: 1px dashed #b0bec5; background: #fafafa; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #eceff1; text-align: left; }
"""


def render_dashboard(conn: duckdb.DuckDBPyConnection, targets: DashboardTargets) -> str:
    """The dashboard HTML for the database behind `conn` (a published copy)."""
    import plotly.offline

    as_of, currency = conn.execute(
        "SELECT max(as_of_date), coalesce(max(home_currency), 'USD') FROM marts.fct_ar_aging"
    ).fetchall()[0]
    if as_of is None:
        as_of = conn.execute("SELECT max(as_of_date) FROM marts.fct_invoices").fetchall()[0][0]
    info = (
        conn.execute("SELECT max(published_at), max(data_loaded_at) FROM published.publish_info").fetchall()[0]
        if table_exists(conn, "published", "publish_info")
        else (None, None)
    )
    freshness = (
        f"As of {as_of:%d %B %Y} · data loaded {info[1]:%d %b %Y %H:%M %Z}" if info[1] else f"As of {as_of:%d %B %Y}"
    ) + (f" · published {info[0]:%d %b %Y %H:%M} UTC" if info[0] else "")
    tiles = _tiles(conn, targets, currency, as_of)
    risk_chart, risk_source = _money_at_risk(conn, currency)
    alerts = _alerts(conn, as_of)

    tile_html = "".join(
        f'<div class="tile {"" if t.on_target is None else ("good" if t.on_target else "bad")}">'
        f'<div class="label">{html.escape(t.label)}</div><div class="value">{html.escape(t.value)}</div>'
        f'<div class="target">{html.escape(t.target)}</div></div>'
        for t in tiles
    )
    sections = [
        f'<section class="tiles">{tile_html}</section>',
        f"<section>{_aging_over_time(conn, currency)}</section>",
        f"<section>{_kpi_trend(conn)}</section>",
        f'<section>{risk_chart}<p class="note">Money at risk from the {html.escape(risk_source)}.</p></section>',
    ]
    if table_exists(conn, "analytics", "reminder_queue"):
        sections.append(f"<section>{_reminder_queue(conn, currency)}</section>")
    else:
        sections.append(_not_built("Today's reminder queue", "The collections worklist (analytics.reminder_queue) "
                                   "has not been built."))
    sections.append(f"<section>{_collections(conn, currency)}</section>")
    if not table_exists(conn, "analytics", "cash_forecast_weekly"):
        sections.append(
            _not_built(
                "13-week cash forecast and scenarios",
                "The cash forecast (analytics.cash_forecast_weekly, cash_forecast_scenarios) is not built yet.",
            )
        )
    else:
        sections.append(f"<section>{_cash_forecast(conn, currency)}</section>")
        if table_exists(conn, "analytics", "cash_forecast_scenarios"):
            sections.append(f"<section>{_forecast_scenarios(conn, currency)}</section>")
    if table_exists(conn, "analytics", "model_backtest_metrics"):
        sections.append(f"<section>{_model_backtest(conn)}</section>")
    else:
        sections.append(_not_built("Payment model backtest", "No backtest has been run on this data: `ar-pipeline "
                                   "backtest --cutoff YYYY-MM-DD` writes analytics.model_backtest_metrics."))
    sections.append(
        "<section><h2>Open alerts</h2>"
        + (
            "<ul>" + "".join(f"<li>{html.escape(a)}</li>" for a in alerts) + "</ul>"
            if alerts
            else "<p>No open alerts.</p>"
        )
        + "</section>"
    )
    note = html.escape(freshness)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>AR dashboard — {as_of:%d %b %Y}</title><style>{STYLE}</style>"
        f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script></head><body>"
        f"<header><h1>Accounts receivable</h1><div class='freshness'>{note}</div></header>"
        f"<main>{''.join(sections)}</main>"
        f"<footer class='freshness'>{note} · amounts in {html.escape(currency)} (home currency) · generated "
        f"{datetime.now(UTC):%d %b %Y %H:%M} UTC by ar-pipeline</footer></body></html>"
    )


def write_dashboard(published_db: Path, out: Path, targets: DashboardTargets) -> Path:
    """Render from the published copy and replace `out` atomically."""
    if not published_db.exists():
        raise FileNotFoundError(f"{published_db} does not exist: run the pipeline first (`ar-pipeline run`).")
    with duckdb.connect(str(published_db), read_only=True) as conn:
        page = render_dashboard(conn, targets)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
