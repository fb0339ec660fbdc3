"""Sending reminders unattended: the `send_reminders` job and its `send_reminders_hourly` schedule.

The job delivers the reminders of `analytics.reminder_queue` that are due (recommended send date and
hour in the policy's `timing.timezone` at or before now), exactly like `ar-pipeline reminders send
--send`: at most once per reminder, the rest left for a later hour. Sending e-mail to customers is
opt-in: the schedule always starts STOPPED (whatever AR_AUTOMATION_OFF says) and is turned on in the
Dagster UI (Automation -> send_reminders_hourly), with the daemon running. The job can also be
launched by hand; its config `dry_run: true` only reports.
"""

import os
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from ar_pipeline.defs.resources import LandingResource

SEND_JOB = "send_reminders"
SEND_SCHEDULE = "send_reminders_hourly"


class SendRemindersConfig(dg.Config):
    dry_run: bool = Field(default=False, description="Only report what is due; send and log nothing.")


@dg.op(pool="duckdb", description="Deliver the reminder queue's due reminders (SMTP / webhook), at most once each.")
def send_due_reminders(context: dg.OpExecutionContext, config: SendRemindersConfig, duckdb: DuckDBResource,
                       landing: LandingResource) -> dg.Output:
    from ar_pipeline.lib.collections.policy import find_policy, load_policy
    from ar_pipeline.lib.collections.send import Transports, send_queue
    from ar_pipeline.lib.collections.warehouse import read_queue

    policy_path = find_policy(Path(landing.ingest_config_dir))
    if policy_path is None:
        raise dg.Failure(f"No kind: collections_policy file in {landing.ingest_config_dir}")
    policy = load_policy(policy_path)
    transports = Transports.from_env()
    with duckdb.get_connection() as conn:
        report = send_queue(conn, read_queue(conn), transports, dry_run=config.dry_run,
                            timezone=policy.timing.timezone)
    for line in report.lines:
        context.log.info(line)
    counts = {"sent": len(report.delivered), "would_send": len(report.would_send), "failed": len(report.failed),
              "scheduled": len(report.scheduled), "skipped": len(report.skipped),
              "already_done": len(report.already_done)}
    if report.failed:
        raise dg.Failure(f"{len(report.failed)} reminder(s) failed; they are retried by the next run",
                         metadata={**counts, "failed_ids": ", ".join(report.failed)})
    return dg.Output(None, metadata=counts)


@dg.job(name=SEND_JOB, description="Send the reminders that are due now (see README 'Collections worklist').")
def send_reminders_job() -> None:
    send_due_reminders()


def _timezone(config_dir: Path) -> str:
    """The policy's time zone for the schedule's cron (AR_TIMEZONE when the policy cannot be read:
    `ar-pipeline reminders` reports such errors)."""
    from ar_pipeline.lib.collections.policy import PolicyError, find_policy, load_policy

    try:
        path = find_policy(config_dir)
        return load_policy(path).timing.timezone if path else os.environ.get("AR_TIMEZONE", "UTC")
    except PolicyError:
        return os.environ.get("AR_TIMEZONE", "UTC")


@dg.definitions
def defs() -> dg.Definitions:
    from ar_pipeline.lib.settings import Paths

    schedule = dg.ScheduleDefinition(
        name=SEND_SCHEDULE,
        job=send_reminders_job,
        cron_schedule="0 * * * *",
        execution_timezone=_timezone(Paths.from_env().ingest_config_dir),
        default_status=dg.DefaultScheduleStatus.STOPPED,  # e-mailing customers is opt-in
        description="Every hour on the hour: send the reminders whose recommended time has come. Starts "
        "stopped; turn it on to send unattended.",
    )
    return dg.Definitions(jobs=[send_reminders_job], schedules=[schedule])
