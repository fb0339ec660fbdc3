"""Collections: delivery through a real local SMTP server (aiosmtpd) and a local HTTP webhook
(pytest-httpserver), at most once per reminder id; sandboxed templates; formula-safe exports; the
warehouse reader and the `reminders` CLI over a small DuckDB file holding the marts it reads."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from ar_pipeline.lib.collections.queue import CUSTOMER_SCHEMA, INVOICE_SCHEMA, QueueInputs, build_queue
from ar_pipeline.lib.collections.render import export_queue, render_queue, template_env
from ar_pipeline.lib.collections.send import (
    SmtpTransport,
    Transports,
    WebhookTransport,
    send_queue,
)
from ar_pipeline.lib.collections.store import read_log
from tests.conftest import INGEST_CONFIGS
from tests.test_collections_scenarios import policy

AS_OF = date(2026, 3, 2)
TEMPLATES = INGEST_CONFIGS / "reminder_templates"


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    class Collect(Message):
        def __init__(self) -> None:
            super().__init__()
            self.received: list = []

        def handle_message(self, message) -> None:
            self.received.append(message)

    import socket

    with socket.socket() as probe:  # a free port (aiosmtpd's start-up self-check cannot use port 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = Collect()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def queue_for(customers: list[tuple[str, str, str | None]]) -> pl.DataFrame:
    """A rendered queue with one overdue invoice per customer (id, name, email)."""
    invoices = pl.DataFrame([
        {"invoice_key": f"inv_{c}", "invoice_number": f"N-{c}", "customer_id": c, "due_date": date(2026, 2, 20),
         "currency": "USD", "open_amount": 120.5, "home_open_amount": 120.5, "collection_method": None}
        for c, _, _ in customers], schema=INVOICE_SCHEMA)
    cust = pl.DataFrame([{"customer_id": c, "customer_name": n, "email": e, "segment": "smb", "collector": "Ann"}
                         for c, n, e in customers], schema=CUSTOMER_SCHEMA)
    result = build_queue(QueueInputs(invoices=invoices, customers=cust), policy(), AS_OF)
    return render_queue(result.queue, TEMPLATES)


def test_smtp_delivery_to_a_real_local_server(smtp_server) -> None:
    handler, port = smtp_server
    queue = queue_for([("c1", "Acme Ltd", "ap@acme.test"), ("c2", "No Mail Inc", None)])
    smtp = SmtpTransport(host="127.0.0.1", port=port, sender="ar@example.test", security="none")
    conn = duckdb.connect()
    report = send_queue(conn, queue, Transports(email=smtp), dry_run=False)
    assert len(handler.received) == 1
    msg = handler.received[0]
    assert msg["To"] == "ap@acme.test" and msg["From"] == "ar@example.test"
    assert msg["X-AR-Reminder-Id"] == queue.filter(pl.col("customer_id") == "c1")["reminder_id"][0]
    assert "N-c1" in msg.get_payload() and "USD 120.50" in msg.get_payload()
    assert len(report.delivered) == 1 and len(report.skipped) == 1
    log = read_log(conn)
    last = log.group_by("reminder_id", maintain_order=True).last()
    assert sorted(last["status"].to_list()) == ["sent", "skipped"]
    assert "no e-mail address" in last.filter(pl.col("status") == "skipped")["outcome"][0]


def test_dry_run_sends_and_logs_nothing(smtp_server) -> None:
    handler, port = smtp_server
    queue = queue_for([("c1", "Acme Ltd", "ap@acme.test")])
    smtp = SmtpTransport(host="127.0.0.1", port=port, sender="ar@example.test", security="none")
    conn = duckdb.connect()
    report = send_queue(conn, queue, Transports(email=smtp))  # dry run is the default
    assert handler.received == [] and read_log(conn).height == 0 and len(report.would_send) == 1


def test_a_crash_between_sending_and_logging_never_sends_twice(smtp_server) -> None:
    handler, port = smtp_server
    queue = queue_for([("c1", "Acme Ltd", "ap@acme.test"), ("c2", "Beta", "ap@beta.test")])
    smtp = SmtpTransport(host="127.0.0.1", port=port, sender="ar@example.test", security="none")

    class DiesAfterDelivering:
        """The process is killed right after the mail server accepted the first message."""

        name = "smtp"

        def deliver(self, message):
            smtp.deliver(message)
            raise SystemExit("killed")

    conn = duckdb.connect()
    with pytest.raises(SystemExit):
        send_queue(conn, queue, Transports(email=DiesAfterDelivering()), dry_run=False)
    assert len(handler.received) == 1
    first_id = handler.received[0]["X-AR-Reminder-Id"]
    # re-run with a healthy process: the first reminder stays 'sending' (not resent), the second goes
    report = send_queue(conn, queue, Transports(email=smtp), dry_run=False)
    assert [m["X-AR-Reminder-Id"] for m in handler.received].count(first_id) == 1
    assert len(handler.received) == 2 and report.already_done == [first_id]
    # and a third run sends nothing
    send_queue(conn, queue, Transports(email=smtp), dry_run=False)
    assert len(handler.received) == 2


def test_a_failed_delivery_is_logged_and_retried() -> None:
    queue = queue_for([("c1", "Acme Ltd", "ap@acme.test")])
    conn = duckdb.connect()
    dead = SmtpTransport(host="127.0.0.1", port=1, sender="ar@example.test", security="none", timeout=2)
    report = send_queue(conn, queue, Transports(email=dead), dry_run=False)
    assert len(report.failed) == 1
    assert read_log(conn)["status"].to_list() == ["queued", "sending", "failed"]


def test_webhook_posts_call_tasks_with_an_idempotency_key(httpserver) -> None:
    queue = queue_for([("c1", "Acme Ltd", "ap@acme.test")])
    queue = queue.with_columns(channel=pl.lit("call_task"))
    httpserver.expect_request("/tasks", method="POST", headers={"Authorization": "Bearer s3cret"}).respond_with_json(
        {"ok": True}, status=201)
    transports = Transports.from_env({"AR_REMINDER_WEBHOOK_URL": httpserver.url_for("/tasks"),
                                      "AR_REMINDER_WEBHOOK_TOKEN": "s3cret"})
    assert transports.email is None and "s3cret" not in repr(transports)
    conn = duckdb.connect()
    report = send_queue(conn, queue, transports, dry_run=False)
    assert len(report.delivered) == 1
    (request, _), = httpserver.log
    body = json.loads(request.data)
    assert body["channel"] == "call_task" and body["customer_id"] == "c1" and "N-c1" in body["invoice_numbers"]
    assert request.headers["Idempotency-Key"] == queue["reminder_id"][0]
    send_queue(conn, queue, transports, dry_run=False)
    assert len(httpserver.log) == 1


def test_webhook_error_is_failed_not_sent(httpserver) -> None:
    queue = queue_for([("c1", "Acme Ltd", "ap@acme.test")])
    httpserver.expect_request("/hook").respond_with_data("nope", status=500)
    conn = duckdb.connect()
    report = send_queue(conn, queue, Transports(webhook=WebhookTransport(httpserver.url_for("/hook"))), dry_run=False)
    assert len(report.failed) == 1 and "HTTP 500" in read_log(conn)["outcome"][-1]


def test_smtp_settings_from_env_never_show_the_password() -> None:
    smtp = SmtpTransport.from_env({"AR_SMTP_HOST": "mail.test", "AR_SMTP_USER": "u", "AR_SMTP_PASSWORD": "pw-XYZ",
                                   "AR_SMTP_FROM": "ar@x.test"})
    assert smtp is not None and smtp.port == 587 and smtp.security == "starttls"
    assert "pw-XYZ" not in repr(smtp) and "pw-XYZ" not in repr(Transports(email=smtp))
    assert SmtpTransport.from_env({}) is None


# --------------------------------------------------------------------------------------------------
# templates and export


@pytest.mark.parametrize("attack", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ invoices.__class__.__init__.__globals__ }}",
    "{{ customer_name.format.__globals__ }}",
])
def test_a_template_cannot_reach_python_objects(tmp_path: Path, attack: str) -> None:
    from jinja2.exceptions import SecurityError, UndefinedError

    (tmp_path / "evil.subject.j2").write_text(attack)
    (tmp_path / "evil.body.j2").write_text("x")
    env = template_env(tmp_path)
    with pytest.raises((SecurityError, UndefinedError)):
        env.get_template("evil.subject.j2").render({"customer_name": "A", "invoices": []})


def test_customer_data_cannot_break_the_subject_line(smtp_server) -> None:
    handler, port = smtp_server
    queue = queue_for([("c1", "Evil\r\nBcc: victim@x.test", "ap@acme.test")])
    queue = queue.with_columns(template=pl.lit("escalate_call"))
    queue = render_queue(queue, TEMPLATES)
    assert "\n" not in queue["subject"][0]
    smtp = SmtpTransport(host="127.0.0.1", port=port, sender="ar@example.test", security="none")
    send_queue(duckdb.connect(), queue, Transports(email=smtp), dry_run=False)
    assert handler.received[0]["Bcc"] is None


def test_export_neutralises_formulas_in_csv_and_xlsx(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    names = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+2", "-3", "@SUM(A1)", "\tTab", "\rCR", "Plain Co"]
    queue = queue_for([(f"c{i}", n, f"c{i}@x.test") for i, n in enumerate(names)])
    csv_path, xlsx_path = tmp_path / "q.csv", tmp_path / "q.xlsx"
    assert export_queue(queue, csv_path, "csv") == len(names)
    export_queue(queue, xlsx_path, "xlsx")
    got = pl.read_csv(csv_path)["customer_name"].to_list()
    assert sorted(got) == sorted(["'" + n if n[0] in "=+-@\t\r" else n for n in names])
    ws = load_workbook(xlsx_path).active
    header = [c.value for c in ws[1]]
    col = header.index("customer_name")
    cells = [row[col] for row in ws.iter_rows(min_row=2)]
    assert all(c.data_type == "s" for c in cells)
    # (the XLSX XML stores a carriage return as a line feed)
    assert sorted(c.value for c in cells) == sorted(v.replace("\r", "\n") for v in got)
    # numbers stay numbers
    money = header.index("open_amount_home")
    assert all(isinstance(row[money].value, float) for row in ws.iter_rows(min_row=2))


# --------------------------------------------------------------------------------------------------
# warehouse reader and CLI over a small DuckDB holding the marts the queue reads


def make_warehouse(path: Path) -> None:
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE SCHEMA marts")
        conn.execute("""CREATE TABLE marts.fct_invoices AS SELECT * FROM (VALUES
            ('quickbooks:1', '1001', 'quickbooks:7', DATE '2026-02-01', DATE '2026-02-20', 'USD', 300.00, 300.00,
             300.00, 'open', NULL, NULL, DATE '2026-03-02'),
            ('stripe:in_1', 'S-1', 'stripe:cus_1', DATE '2026-02-01', DATE '2026-02-25', 'USD', 80.00, 80.00,
             80.00, 'open', 'charge_automatically', NULL, DATE '2026-03-02'),
            ('quickbooks:0', '1000', 'quickbooks:7', DATE '2025-12-01', DATE '2025-12-31', 'USD', 100.00, 0.00,
             0.00, 'paid', NULL, DATE '2026-02-20', DATE '2026-03-02'))
            AS t(invoice_key, invoice_number, customer_id, invoice_date, due_date, currency, total_amount,
                 open_amount, home_open_amount, status, collection_method, paid_date, as_of_date)""")
        conn.execute("""CREATE TABLE marts.dim_customers AS SELECT * FROM (VALUES
            ('quickbooks:7', 'Gamma GmbH', 'ap@gamma.test', 'mid_market', 'Ann', DATE '2026-03-02'),
            ('stripe:cus_1', 'Delta', 'd@delta.test', 'smb', 'Bob', DATE '2026-03-02'))
            AS t(customer_id, customer_name, email, segment, collector, as_of_date)""")
        conn.execute("""CREATE TABLE marts.fct_disputes (invoice_key VARCHAR, customer_id VARCHAR,
            opened_date DATE, is_open BOOLEAN)""")
        conn.execute("""CREATE TABLE marts.fct_payments AS SELECT * FROM (VALUES
            ('quickbooks:7', 'quickbooks', 'p1', DATE '2026-02-20', 100.00))
            AS t(customer_id, source, source_payment_id, payment_date, amount)""")


def test_cli_builds_exports_records_a_promise_and_sends(tmp_path: Path, monkeypatch, smtp_server) -> None:
    from ar_pipeline.cli import main

    handler, port = smtp_server
    db = tmp_path / "ar.duckdb"
    make_warehouse(db)
    monkeypatch.setenv("AR_DUCKDB_PATH", str(db))
    monkeypatch.setenv("AR_INGEST_CONFIG_DIR", str(INGEST_CONFIGS))
    runner = CliRunner()
    built = runner.invoke(main, ["reminders", "build"])
    assert built.exit_code == 0, built.output
    with duckdb.connect(str(db)) as conn:
        queue = conn.sql("SELECT * FROM analytics.reminder_queue").pl()
        skipped = conn.sql("SELECT * FROM analytics.reminder_queue_skipped").pl()
    # 10 days late, never reminded: due notice (firm_reminder does not skip levels); the autopay
    # invoice is within the policy's 21-day grace for Stripe's retries
    assert queue.select("customer_id", "level", "invoice_numbers", "as_of_date").to_dicts() == [
        {"customer_id": "quickbooks:7", "level": "due_notice", "invoice_numbers": "1001",
         "as_of_date": date(2026, 3, 2)}]
    assert "not available" in queue["priority_reason"][0]  # no analytics.invoice_risk_scores here
    assert skipped.select("customer_id", "reason").to_dicts() == [{"customer_id": "stripe:cus_1",
                                                                   "reason": "card_autopay"}]
    out = tmp_path / "worklist.xlsx"
    assert runner.invoke(main, ["reminders", "export", "--format", "xlsx", str(out)]).exit_code == 0
    assert out.stat().st_size > 0
    dry = runner.invoke(main, ["reminders", "send"])
    assert dry.exit_code == 0 and "Dry run" in dry.output and handler.received == []
    monkeypatch.setenv("AR_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("AR_SMTP_PORT", str(port))
    monkeypatch.setenv("AR_SMTP_SECURITY", "none")
    monkeypatch.setenv("AR_SMTP_FROM", "ar@example.test")
    monkeypatch.setenv("AR_SMTP_PASSWORD", "hunter2")
    sent = runner.invoke(main, ["reminders", "send", "--send"])
    assert sent.exit_code == 0, sent.output
    assert len(handler.received) == 1 and "hunter2" not in sent.output
    # a promise recorded today takes the customer out of a rebuilt queue
    promised = runner.invoke(main, ["reminders", "promise", "--customer", "quickbooks:7", "--until", "2026-03-09",
                                    "--on", "2026-03-02"])
    assert promised.exit_code == 0, promised.output
    assert runner.invoke(main, ["reminders", "build"]).exit_code == 0
    with duckdb.connect(str(db)) as conn:
        assert conn.sql("SELECT count(*) FROM analytics.reminder_queue").fetchall()[0][0] == 0
        reasons = conn.sql("SELECT reason FROM analytics.reminder_queue_skipped ORDER BY customer_id").fetchall()
    assert [r[0] for r in reasons] == ["promise_to_pay", "card_autopay"]
    bad = runner.invoke(main, ["reminders", "hold", "--customer", "nobody:1"])
    assert bad.exit_code != 0 and "no customer" in bad.output


def test_risk_scores_are_used_when_the_table_exists(tmp_path: Path) -> None:
    from ar_pipeline.lib.collections.warehouse import read_inputs

    db = tmp_path / "ar.duckdb"
    make_warehouse(db)
    with duckdb.connect(str(db)) as conn:
        conn.execute("CREATE SCHEMA analytics")
        conn.execute("CREATE TABLE analytics.invoice_risk_scores AS SELECT 'quickbooks:1' AS invoice_key, "
                     "0.25 AS p_late_30, DATE '2026-03-02' AS as_of_date")
        inputs = read_inputs(conn, date(2026, 3, 2))
    queue = build_queue(inputs, policy(), date(2026, 3, 2)).queue
    row = queue.filter(pl.col("customer_id") == "quickbooks:7").row(0, named=True)
    assert row["money_at_risk"] == 75.0 and "analytics.invoice_risk_scores" in row["priority_reason"]


def test_notes_from_the_clock_are_never_read_by_the_queue() -> None:
    """The queue for a past date ignores notes recorded after it (reproducible as of any date)."""
    from ar_pipeline.lib.collections.queue import NOTE_SCHEMA

    queue = queue_for([("c1", "Acme Ltd", "ap@acme.test")])
    assert queue.height == 1
    notes = pl.DataFrame([{"customer_id": "c1", "note_type": "hold", "noted_on": date(2026, 3, 3), "until": None,
                           "amount": None}], schema=NOTE_SCHEMA)
    invoices = pl.DataFrame([{"invoice_key": "inv_c1", "invoice_number": "N", "customer_id": "c1",
                              "due_date": date(2026, 2, 20), "currency": "USD", "open_amount": 120.5,
                              "home_open_amount": 120.5, "collection_method": None}], schema=INVOICE_SCHEMA)
    cust = pl.DataFrame([{"customer_id": "c1", "customer_name": "A", "email": "a@x", "segment": None,
                          "collector": None}], schema=CUSTOMER_SCHEMA)
    assert build_queue(QueueInputs(invoices=invoices, customers=cust, notes=notes), policy(), AS_OF).queue.height == 1
    assert build_queue(QueueInputs(invoices=invoices, customers=cust, notes=notes), policy(),
                       date(2026, 3, 3)).queue.height == 0
