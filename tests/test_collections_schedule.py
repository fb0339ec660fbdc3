"""Collections: sending honours each reminder's recommended send time (company time zone), a rebuilt
queue keeps a reminder that was scheduled and not sent yet, the send hour comes from the customer's
payment times where sources record them, and the hourly Dagster job that sends (off by default).

Expected days and hours are worked out by hand from the policy in test_collections_scenarios.py
(send_hour 9, send the day before the usual payment weekday, business days only)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

import tests.test_collections_send as send_tests
from ar_pipeline.lib.collections.queue import PAYMENT_TIME_SCHEMA, QueueInputs, build_queue, usual_hour
from ar_pipeline.lib.collections.render import render_queue
from ar_pipeline.lib.collections.send import Transports, send_queue
from ar_pipeline.lib.collections.store import read_log
from tests.conftest import INGEST_CONFIGS
from tests.test_collections_scenarios import D0, POLICY, Outbox, World, d, policy

TEMPLATES = INGEST_CONFIGS / "reminder_templates"
smtp_server = send_tests.smtp_server  # the real local SMTP server fixture
MON, TUE, WED, THU = D0, d(1), d(2), d(3)  # D0 = Monday 2026-03-02


def at(day: date, hour: int, minute: int = 0, tz: str = "UTC") -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(tz))


def pays_on(world: World, weekday_first: date, n: int = 4, customer: str = "c1") -> None:
    """n weekly payments on the weekday of `weekday_first` (before D0)."""
    world.payments += [{"customer_id": customer, "payment_date": weekday_first + timedelta(weeks=k), "amount": 10.0}
                       for k in range(n)]


def send_at(world: World, day: date, now: datetime, **kwargs) -> tuple[pl.DataFrame, object]:
    """Build the queue as of `day` and run the sender once at `now`."""
    queue = render_queue(build_queue(world.inputs(day), world.policy, day).queue, TEMPLATES)
    report = send_queue(world.conn, queue, Transports(email=world.outbox, webhook=world.outbox), dry_run=False,
                        now=now, clock=lambda: now, timezone=world.policy.timing.timezone, **kwargs)
    return queue, report


def test_a_reminder_waits_for_its_time_and_a_later_run_sends_it_once() -> None:
    world = World(policy())
    world.invoice("inv1", d(-10), 500)
    pays_on(world, date(2026, 1, 1))  # Thursdays -> send on Wednesdays at 09:00
    queue, report = send_at(world, MON, at(MON, 10))
    row = queue.row(0, named=True)
    assert (row["recommended_send_date"], row["recommended_send_hour"]) == (WED, 9)
    assert row["recommended_send_at"] == at(WED, 9)
    assert report.delivered == [] and report.scheduled == [row["reminder_id"]]
    assert any(line.startswith("scheduled for 2026-03-04 09:00 UTC") for line in report.lines)
    log = read_log(world.conn)
    assert log["status"].to_list() == ["queued"] and log["scheduled_for"][0] == at(WED, 9)
    # hourly runs on Monday do not log it again
    send_at(world, MON, at(MON, 11))
    assert read_log(world.conn).height == 1
    # Tuesday's rebuilt queue still has it, for Wednesday 09:00
    queue_tue, report = send_at(world, TUE, at(TUE, 9))
    assert queue_tue["recommended_send_at"].to_list() == [at(WED, 9)] and report.delivered == []
    # Wednesday: queue rebuilt at 06:00; 08:59 too early, 09:00 sends, 10:00 sends nothing more
    assert send_at(world, WED, at(WED, 8, 59))[1].delivered == []
    assert len(send_at(world, WED, at(WED, 9))[1].delivered) == 1
    assert send_at(world, WED, at(WED, 10))[1].delivered == []
    assert len(world.outbox.messages) == 1


def test_a_rebuilt_queue_keeps_a_time_that_passed_before_it_was_sent() -> None:
    """Customer pays on Tuesdays: send Monday 09:00. The sender only ran at 08:00 on Monday (too
    early); Tuesday's rebuild would compute next Monday, but keeps Monday 09:00: due at once."""
    world = World(policy())
    world.invoice("inv1", d(-10), 500)
    pays_on(world, date(2026, 1, 6))  # Tuesdays
    queue, report = send_at(world, MON, at(MON, 8))
    assert queue["recommended_send_at"].to_list() == [at(MON, 9)] and report.delivered == []
    # without the log of Monday's run, Tuesday's queue would wait for next Monday
    fresh = build_queue(QueueInputs(**{**world.inputs(TUE).__dict__, "log": read_log(duckdb.connect())}),
                        world.policy, TUE).queue
    assert fresh["recommended_send_at"].to_list() == [at(d(7), 9)]
    queue_tue, report = send_at(world, TUE, at(TUE, 8))
    row = queue_tue.row(0, named=True)
    assert row["recommended_send_at"] == at(MON, 9)
    assert f"kept from the queue of {MON}" in row["timing_reason"]
    assert len(report.delivered) == 1 and len(world.outbox.messages) == 1
    # once sent, the kept time is gone: the next level follows the normal rules
    assert build_queue(world.inputs(d(2)), world.policy, d(2)).queue.height == 0


def test_a_failed_reminder_keeps_its_time_too() -> None:
    world = World(policy())
    world.invoice("inv1", d(-10), 500)
    pays_on(world, date(2026, 1, 6))  # Tuesdays -> Monday 09:00

    class Down:
        name = "smtp"

        def deliver(self, message):
            from ar_pipeline.lib.collections.send import DeliveryError

            raise DeliveryError("connection refused")

    queue = render_queue(build_queue(world.inputs(MON), world.policy, MON).queue, TEMPLATES)
    report = send_queue(world.conn, queue, Transports(email=Down()), dry_run=False, now=at(MON, 9),
                        clock=lambda: at(MON, 9))
    assert len(report.failed) == 1
    queue_tue, report = send_at(world, TUE, at(TUE, 7))
    assert queue_tue["recommended_send_at"].to_list() == [at(MON, 9)] and len(report.delivered) == 1


def test_a_changed_level_is_scheduled_afresh() -> None:
    """A reminder scheduled at one level and superseded by another level is not carried over."""
    world = World(policy())
    world.invoice("inv1", d(-20), 500)  # due notice today (Monday); final notice (21 days) tomorrow
    pays_on(world, date(2026, 1, 1))  # Thursdays -> Wednesday
    queue, _ = send_at(world, MON, at(MON, 10))
    assert queue["level"].to_list() == ["due_notice"]
    queue_tue = build_queue(world.inputs(TUE), world.policy, TUE).queue
    assert queue_tue["level"].to_list() == ["final_notice"] and "kept from" not in queue_tue["timing_reason"][0]


def test_company_time_zone_and_ignore_schedule() -> None:
    tz = "America/New_York"  # UTC-5 in early March 2026 (DST starts 8 March)
    world = World(policy(timing={"timezone": tz, "send_hour": 15}))
    world.invoice("inv1", d(-10), 500)
    queue = build_queue(world.inputs(MON), world.policy, MON).queue
    assert queue["recommended_send_at"].to_list() == [datetime(2026, 3, 2, 20, tzinfo=UTC)]
    rendered = render_queue(queue, TEMPLATES)
    conn, outbox = duckdb.connect(), Outbox()
    early = send_queue(conn, rendered, Transports(email=outbox), now=datetime(2026, 3, 2, 19, 59, tzinfo=UTC),
                       timezone=tz)
    assert early.would_send == [] and early.scheduled and "2026-03-02 15:00 America/New_York" in early.lines[0]
    on_time = send_queue(conn, rendered, Transports(email=outbox), now=datetime(2026, 3, 2, 20, tzinfo=UTC),
                         timezone=tz)
    assert len(on_time.would_send) == 1
    # --ignore-schedule: everything recommended for today (company date) goes now, later days wait;
    # 03:00 UTC on 3 March is still 2 March in New York
    forced = send_queue(conn, rendered, Transports(email=outbox), now=datetime(2026, 3, 2, 8, tzinfo=UTC),
                        timezone=tz, ignore_schedule=True)
    assert len(forced.would_send) == 1
    tomorrow = rendered.with_columns(recommended_send_at=pl.lit(datetime(2026, 3, 3, 20, tzinfo=UTC)))
    forced = send_queue(conn, tomorrow, Transports(email=outbox), now=datetime(2026, 3, 3, 3, tzinfo=UTC),
                        timezone=tz, ignore_schedule=True)
    assert forced.would_send == [] and len(forced.scheduled) == 1


def test_policy_time_zone_is_validated(tmp_path: Path) -> None:
    import yaml

    from ar_pipeline.lib.collections.policy import PolicyError, load_policy

    path = tmp_path / "collections_policy.yaml"
    path.write_text(yaml.safe_dump({**POLICY, "templates_dir": str(TEMPLATES),
                                    "timing": {"timezone": "Mars/Olympus_Mons"}}))
    with pytest.raises(PolicyError, match=r"timing\.timezone: 'Mars/Olympus_Mons' is not an IANA time zone"):
        load_policy(path)
    assert policy().timing.timezone == "UTC"


# --------------------------------------------------------------------------------------------------
# the send hour from payment times


def times(customer: str, stamps: list[datetime], source: str = "stripe_payment") -> pl.DataFrame:
    return pl.DataFrame({"customer_id": [customer] * len(stamps), "paid_at": stamps,
                         "time_source": [source] * len(stamps)}, schema=PAYMENT_TIME_SCHEMA)


def test_usual_hour_is_the_most_frequent_hour_in_company_time() -> None:
    # 14:xx UTC is 15:xx in Berlin (CET, winter): three of five; ties would go to the earlier hour
    stamps = [datetime(2026, 1, 5 + k, 14, 10 * k, tzinfo=UTC) for k in range(3)]
    stamps += [datetime(2026, 1, 12, 8, 0, tzinfo=UTC), datetime(2026, 1, 13, 20, 30, tzinfo=UTC)]
    assert usual_hour(times("c1", stamps), "Europe/Berlin", 5).hour == 15
    assert usual_hour(times("c1", stamps), "UTC", 5).hour == 14
    assert usual_hour(times("c1", stamps[:4]), "UTC", 5).hour is None


def test_send_hour_comes_from_payment_times_with_enough_observations() -> None:
    tz = "Europe/Berlin"
    world = World(policy(timing={"timezone": tz, "send_hour": 9, "min_hour_observations": 5}))
    world.customers.append({"customer_id": "c2", "customer_name": "Beta", "email": "b@beta.test",
                            "segment": "smb", "collector": "Bob"})
    world.invoice("inv1", d(-10), 500)
    world.invoice("inv2", d(-10), 500, customer="c2")
    c1 = [datetime(2026, 1, 5 + k, 14, 5, tzinfo=UTC) for k in range(5)]  # 15:05 in Berlin, five times
    c2 = [datetime(2026, 1, 5 + k, 14, 5, tzinfo=UTC) for k in range(4)]  # only four
    inputs = QueueInputs(**{**world.inputs(MON).__dict__, "payment_times": pl.concat(
        [times("c1", c1), times("c2", c2, "quickbooks_entry")])})
    queue = build_queue(inputs, world.policy, MON).queue
    rows = {r["customer_id"]: r for r in queue.iter_rows(named=True)}
    assert rows["c1"]["usual_payment_hour"] == 15 and rows["c1"]["recommended_send_hour"] == 14
    assert rows["c1"]["recommended_send_at"] == at(MON, 14, tz=tz)
    assert "usually pays around 15:00 (5 Stripe payment times)" in rows["c1"]["timing_reason"]
    assert rows["c2"]["usual_payment_hour"] is None and rows["c2"]["recommended_send_hour"] == 9
    assert "only 4 timestamped payments, 5 needed" in rows["c2"]["timing_reason"]
    # payments after the as-of date are not known yet
    later = [datetime(2026, 3, 10 + k, 14, tzinfo=UTC) for k in range(5)]
    inputs = QueueInputs(**{**world.inputs(MON).__dict__, "payment_times": times("c1", later)})
    row = build_queue(inputs, world.policy, MON).queue.filter(pl.col("customer_id") == "c1").row(0, named=True)
    assert row["recommended_send_hour"] == 9 and "no payment times recorded" in row["timing_reason"]


def test_payment_times_are_read_from_stripe_and_quickbooks_staging(tmp_path: Path) -> None:
    from ar_pipeline.lib.collections.warehouse import read_payment_times

    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    conn.execute("SET TimeZone = 'Asia/Tokyo'")  # the session zone must not shift the instants
    conn.execute("CREATE SCHEMA staging")
    conn.execute("""CREATE TABLE staging.stg_stripe__invoices AS SELECT * FROM (VALUES
        ('in_1', 'cus_A', 'send_invoice'), ('in_2', 'cus_A', 'charge_automatically'), ('in_3', 'cus_B', NULL))
        AS t(invoice_id, customer_id, collection_method)""")
    conn.execute("""CREATE TABLE staging.stg_stripe__invoice_payments AS SELECT * FROM (VALUES
        ('in_1', 'paid', TIMESTAMP '2026-02-10 16:20:00'),
        ('in_2', 'paid', TIMESTAMP '2026-02-11 03:00:00'),
        ('in_1', 'open', NULL),
        ('in_1', 'paid', TIMESTAMP '2026-03-05 10:00:00'))
        AS t(invoice_id, status, paid_at)""")
    conn.execute("""CREATE TABLE staging.stg_stripe__charges AS SELECT * FROM (VALUES
        ('in_3', 'cus_B', 'succeeded', TIMESTAMP '2026-02-12 09:15:00'),
        ('in_1', 'cus_A', 'succeeded', TIMESTAMP '2026-02-10 16:19:00'),
        ('in_3', 'cus_B', 'failed', TIMESTAMP '2026-02-11 09:15:00'))
        AS t(invoice_id, customer_id, status, created_at)""")
    conn.execute("""CREATE TABLE staging.stg_quickbooks__payments AS SELECT * FROM (VALUES
        ('58', TIMESTAMPTZ '2026-02-20 10:33:39-08:00', DATE '2026-02-20', false, 120.00),
        ('58', TIMESTAMPTZ '2026-02-21 10:33:39-08:00', DATE '2026-02-21', true, 0.00))
        AS t(customer_id, created_at, payment_date, is_voided, total_amount)""")
    got = read_payment_times(conn, date(2026, 3, 2)).sort("paid_at")
    assert got.to_dicts() == [
        # Stripe invoice payment (send_invoice); the autopay one, the unpaid one and the one after
        # the as-of date are left out; the charge of in_1 is covered by its invoice payment
        {"customer_id": "stripe:cus_A", "paid_at": datetime(2026, 2, 10, 16, 20, tzinfo=UTC),
         "time_source": "stripe_payment"},
        # pre-basil: a succeeded charge naming an invoice without invoice payments
        {"customer_id": "stripe:cus_B", "paid_at": datetime(2026, 2, 12, 9, 15, tzinfo=UTC),
         "time_source": "stripe_payment"},
        # QuickBooks MetaData.CreateTime with its offset (18:33 UTC); the voided payment is left out
        {"customer_id": "quickbooks:58", "paid_at": datetime(2026, 2, 20, 18, 33, 39, tzinfo=UTC),
         "time_source": "quickbooks_entry"},
    ]
    # no staging views at all: nothing, no error
    assert read_payment_times(duckdb.connect(), date(2026, 3, 2)).height == 0


# --------------------------------------------------------------------------------------------------
# CLI and the hourly Dagster job


def test_cli_send_honours_the_schedule_and_now(tmp_path: Path, monkeypatch, smtp_server) -> None:
    from ar_pipeline.cli import main
    from tests.test_collections_send import make_warehouse

    handler, port = smtp_server
    db = tmp_path / "ar.duckdb"
    make_warehouse(db)  # one customer to remind on Monday 2026-03-02; policy send_hour 9 UTC
    for key, value in {"AR_DUCKDB_PATH": str(db), "AR_INGEST_CONFIG_DIR": str(INGEST_CONFIGS),
                       "AR_SMTP_HOST": "127.0.0.1", "AR_SMTP_PORT": str(port), "AR_SMTP_SECURITY": "none",
                       "AR_SMTP_FROM": "ar@example.test"}.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    assert runner.invoke(main, ["reminders", "build"]).exit_code == 0
    early = runner.invoke(main, ["reminders", "send", "--send", "--now", "2026-03-02T08:00"])
    assert early.exit_code == 0, early.output
    assert "scheduled for 2026-03-02 09:00 UTC" in early.output and "0 sent" in early.output
    assert handler.received == []
    forced = runner.invoke(main, ["reminders", "send", "--send", "--now", "2026-03-02T08:00", "--ignore-schedule"])
    assert forced.exit_code == 0 and "1 sent" in forced.output and len(handler.received) == 1
    bad = runner.invoke(main, ["reminders", "send", "--now", "Monday morning"])
    assert bad.exit_code != 0 and "ISO date-time" in bad.output


def test_hourly_send_job_is_off_by_default_and_sends_when_run(tmp_path: Path, monkeypatch, smtp_server) -> None:
    import dagster as dg
    from dagster_duckdb import DuckDBResource

    from ar_pipeline.defs.automation.reminders import SEND_SCHEDULE, defs, send_reminders_job
    from ar_pipeline.defs.resources import LandingResource
    from tests.test_collections_send import make_warehouse

    monkeypatch.delenv("AR_AUTOMATION_OFF", raising=False)  # even with the other automation on
    monkeypatch.setenv("AR_INGEST_CONFIG_DIR", str(INGEST_CONFIGS))
    schedule = next(s for s in defs().schedules if s.name == SEND_SCHEDULE)
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.cron_schedule == "0 * * * *"

    handler, port = smtp_server
    db = tmp_path / "ar.duckdb"
    make_warehouse(db)
    with duckdb.connect(str(db)) as conn:
        from ar_pipeline.lib.collections.policy import find_policy, load_policy
        from ar_pipeline.lib.collections.warehouse import build_and_store

        path = find_policy(INGEST_CONFIGS)
        build_and_store(conn, load_policy(path), path)
    for key, value in {"AR_SMTP_HOST": "127.0.0.1", "AR_SMTP_PORT": str(port), "AR_SMTP_SECURITY": "none",
                       "AR_SMTP_FROM": "ar@example.test"}.items():
        monkeypatch.setenv(key, value)
    resources = {"duckdb": DuckDBResource(database=str(db)),
                 "landing": LandingResource(landing_dir=str(tmp_path), ingest_config_dir=str(INGEST_CONFIGS),
                                            state_dir=str(tmp_path))}
    result = send_reminders_job.execute_in_process(resources=resources)  # the clock is past 2026-03-02 09:00
    assert result.success and len(handler.received) == 1
    again = send_reminders_job.execute_in_process(resources=resources)
    assert again.success and len(handler.received) == 1


def test_policy_risk_bands_are_the_bands_the_risk_scores_use() -> None:
    """risk_band_jump compares positions in policy.risk_bands: they must be the scores' own bands."""
    from ar_pipeline.lib.collections.policy import CollectionsPolicy, find_policy, load_policy
    from ar_pipeline.lib.prediction.score import DEFAULT_BANDS

    bands = DEFAULT_BANDS.order()  # best to worst, as ingest_configs/analytics/risk_bands.yaml ships them
    assert load_policy(find_policy(INGEST_CONFIGS)).risk_bands == bands
    assert CollectionsPolicy.model_validate({"kind": "collections_policy", "levels": POLICY["levels"]}).risk_bands \
        == bands
