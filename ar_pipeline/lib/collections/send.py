"""Deliver the queue's reminders (SMTP e-mail or a webhook) and log every step, at most once.

Delivery guarantee: **at most once per reminder id** (customer + level + as-of date). Before a
reminder is handed to SMTP or the webhook, a `sending` row is written to `analytics.reminder_log`
(each row its own committed transaction); after delivery a `sent` row. A reminder whose latest row
is `sending`, `sent` or `called` is never delivered again, by this run or a re-run. So a crash
between delivery and the `sent` row leaves `sending`: the reminder is not repeated (a customer is
never chased twice by mistake); `ar-pipeline reminders log --unsettled` lists such rows and
`ar-pipeline reminders record ID --status sent|failed` settles them. A delivery that raises an error
is logged `failed` with the error and is tried again by the next `send`.

Settings come from the environment and are never logged: AR_SMTP_HOST, AR_SMTP_PORT (587),
AR_SMTP_USER, AR_SMTP_PASSWORD, AR_SMTP_FROM, AR_SMTP_SECURITY (starttls | ssl | none; starttls),
AR_SMTP_CA_FILE (a private CA's certificate to verify the server against; verification is never
turned off), AR_REMINDER_WEBHOOK_URL and AR_REMINDER_WEBHOOK_TOKEN (sent as a Bearer token).

Schedule: `send_queue` delivers only rows that are due (recommended send time <= now); the others
are logged `queued` once with `scheduled_for` and sent by a later run (see `due_at`).
"""

from __future__ import annotations

import os
import smtplib
import ssl
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Literal, Protocol

import duckdb
import polars as pl
import requests

from ar_pipeline.lib.collections.queue import CONTACT_STATUSES, local_instant
from ar_pipeline.lib.collections.store import LogEntry, append_log, ensure_tables, latest_status
from ar_pipeline.lib.warehouse import table_exists


class DeliveryError(RuntimeError):
    """A reminder could not be delivered (the message says why, without secrets)."""


class SettingsError(ValueError):
    """Delivery settings in the environment are incomplete or invalid."""


@dataclass(frozen=True)
class Outgoing:
    reminder_id: str
    channel: str
    recipient: str | None
    subject: str
    body: str
    payload: dict


class Transport(Protocol):
    name: str

    def deliver(self, message: Outgoing) -> str:  # returns an outcome text
        ...


@dataclass(frozen=True, repr=False)
class SmtpTransport:
    host: str
    port: int
    sender: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    timeout: float = 30.0
    ca_file: str | None = None
    name: str = "smtp"

    def __repr__(self) -> str:  # never show the password
        return f"SmtpTransport(host={self.host!r}, port={self.port}, sender={self.sender!r}, security={self.security})"

    def tls_context(self) -> ssl.SSLContext:
        """Verifies the server's certificate and host name: against AR_SMTP_CA_FILE (a private CA's
        certificate, PEM) when set, else the system's trusted CAs. Verification is never turned off."""
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SmtpTransport | None:
        host = env.get("AR_SMTP_HOST")
        if not host:
            return None
        sender = env.get("AR_SMTP_FROM") or env.get("AR_SMTP_USER")
        if not sender:
            raise SettingsError("AR_SMTP_FROM (the From address) is not set")
        security = env.get("AR_SMTP_SECURITY", "starttls")
        if security not in ("starttls", "ssl", "none"):
            raise SettingsError(f"AR_SMTP_SECURITY={security!r} must be starttls, ssl or none")
        try:
            port = int(env.get("AR_SMTP_PORT") or (465 if security == "ssl" else 587))
        except ValueError:
            raise SettingsError("AR_SMTP_PORT must be a number") from None
        ca_file = env.get("AR_SMTP_CA_FILE") or None
        if ca_file and not os.path.isfile(ca_file):
            raise SettingsError(f"AR_SMTP_CA_FILE={ca_file!r} is not a file")
        return cls(host=host, port=port, sender=sender, user=env.get("AR_SMTP_USER") or None,
                   password=env.get("AR_SMTP_PASSWORD") or None, security=security,  # type: ignore[arg-type]
                   ca_file=ca_file)

    def deliver(self, message: Outgoing) -> str:
        if not message.recipient:
            raise DeliveryError("no e-mail address")
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = message.recipient
        email["Subject"] = message.subject
        email["Message-ID"] = make_msgid(idstring=message.reminder_id)
        email["X-AR-Reminder-Id"] = message.reminder_id
        email.set_content(message.body)
        try:
            if self.security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                       context=self.tls_context())
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with client:
                if self.security == "starttls":
                    client.starttls(context=self.tls_context())
                if self.user and self.password:
                    client.login(self.user, self.password)
                refused = client.send_message(email)
        except ssl.SSLCertVerificationError as exc:
            trust = f"the CA in AR_SMTP_CA_FILE ({self.ca_file})" if self.ca_file else "the system's trusted CAs"
            raise DeliveryError(
                f"SMTP {self.host}:{self.port}: the server's TLS certificate is not trusted "
                f"({exc.verify_message}); it was checked against {trust}. For a server with a private CA "
                "set AR_SMTP_CA_FILE to that CA's certificate (PEM). Nothing was sent.") from None
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP {self.host}:{self.port}: login as {self.user!r} refused "
                                f"(code {exc.smtp_code}); check AR_SMTP_USER / AR_SMTP_PASSWORD") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}") from None
        if refused:
            raise DeliveryError(f"recipient refused: {sorted(refused)}")
        return f"e-mailed {message.recipient} via {self.host}"


@dataclass(frozen=True, repr=False)
class WebhookTransport:
    url: str
    token: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    name: str = "webhook"

    def __repr__(self) -> str:
        return "WebhookTransport(url=<AR_REMINDER_WEBHOOK_URL>)"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> WebhookTransport | None:
        url = env.get("AR_REMINDER_WEBHOOK_URL")
        if not url:
            return None
        if not url.startswith(("https://", "http://")):
            raise SettingsError("AR_REMINDER_WEBHOOK_URL must be an http(s) URL")
        return cls(url=url, token=env.get("AR_REMINDER_WEBHOOK_TOKEN") or None)

    def deliver(self, message: Outgoing) -> str:
        headers = {"Idempotency-Key": message.reminder_id}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            resp = requests.post(self.url, json=message.payload, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            # the URL may hold a secret: name the error type only
            raise DeliveryError(f"webhook: {type(exc).__name__}") from None
        if resp.status_code >= 300:
            raise DeliveryError(f"webhook answered HTTP {resp.status_code}")
        return f"posted to webhook (HTTP {resp.status_code})"


@dataclass(frozen=True)
class Transports:
    email: Transport | None = None
    webhook: Transport | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Transports:
        return cls(email=SmtpTransport.from_env(env), webhook=WebhookTransport.from_env(env))

    def for_channel(self, channel: str) -> Transport | None:
        """E-mail goes by SMTP (or the webhook when no SMTP is set); call tasks and letters are posted
        to the webhook (a task system or print service)."""
        if channel == "email":
            return self.email or self.webhook
        return self.webhook


@dataclass
class SendReport:
    as_of_date: date | None = None
    dry_run: bool = True
    delivered: list[str] = field(default_factory=list)
    would_send: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    scheduled: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def outgoing(row: Mapping) -> Outgoing:
    payload = {
        "reminder_id": row["reminder_id"], "as_of_date": str(row["as_of_date"]), "channel": row["channel"],
        "customer_id": row["customer_id"], "customer_name": row["customer_name"], "email": row["email"],
        "assigned_to": row["assigned_to"], "level": row["level"], "tone": row["tone"],
        "escalated": row["escalated"], "escalation_reasons": row["escalation_reasons"],
        "invoice_numbers": row["invoice_numbers"], "open_amount_home": row["open_amount_home"],
        "money_at_risk": row["money_at_risk"], "recommended_send_date": str(row["recommended_send_date"]),
        "recommended_send_hour": row["recommended_send_hour"],
        "recommended_send_at": _iso(row.get("recommended_send_at")), "subject": row["subject"], "body": row["body"],
    }
    return Outgoing(reminder_id=row["reminder_id"], channel=row["channel"], recipient=row["email"],
                    subject=row["subject"], body=row["body"], payload=payload)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _utc_now() -> datetime:
    return datetime.now(UTC)


def due_at(row: Mapping, timezone: str) -> datetime:
    """When a queue row is due: its recommended_send_at, or (queues built before that column) its
    recommended send date and hour in the company time zone."""
    if row.get("recommended_send_at") is not None:
        at = row["recommended_send_at"]
        return at if at.tzinfo else at.replace(tzinfo=UTC)
    return local_instant(row["recommended_send_date"], row["recommended_send_hour"], timezone)


def send_queue(conn: duckdb.DuckDBPyConnection, queue: pl.DataFrame, transports: Transports, *,
               dry_run: bool = True, clock: Callable[[], datetime] = _utc_now, now: datetime | None = None,
               timezone: str = "UTC", ignore_schedule: bool = False) -> SendReport:
    """Deliver each queue row that is due (in priority order) at most once; see the module docstring.

    A row is due when its recommended send time is at or before `now` (default: the clock), or with
    `ignore_schedule` when its recommended send date (company time) is today or earlier. A row not
    due yet is reported as scheduled and, when not a dry run, logged `queued` once with its
    `scheduled_for` time, which the next days' queues keep until it is sent."""
    from zoneinfo import ZoneInfo

    report = SendReport(as_of_date=queue["as_of_date"][0] if queue.height else None, dry_run=dry_run)
    if not dry_run:
        ensure_tables(conn)
    status = latest_status(conn) if table_exists(conn, "analytics", "reminder_log") else {}
    attempt = f"att_{uuid.uuid4().hex[:12]}"
    zone = ZoneInfo(timezone)
    now = (now or clock()).astimezone(UTC)
    today = now.astimezone(zone).date()
    for row in queue.iter_rows(named=True):
        rid = row["reminder_id"]
        label = f"{rid} {row['customer_name']} [{row['level']}, {row['channel']}]"
        if status.get(rid) in CONTACT_STATUSES:
            report.already_done.append(rid)
            report.lines.append(f"already {status[rid]}: {label}")
            continue
        when = due_at(row, timezone)
        is_due = when.astimezone(zone).date() <= today if ignore_schedule else when <= now
        if not is_due:
            report.scheduled.append(rid)
            report.lines.append(f"scheduled for {when.astimezone(zone):%Y-%m-%d %H:%M} {timezone}: {label}")
            if not dry_run and rid not in status:
                _log_row(conn, row, "queued", f"scheduled for {when.astimezone(zone):%Y-%m-%d %H:%M} {timezone}",
                         clock, attempt, when)
                status[rid] = "queued"
            continue
        transport = transports.for_channel(row["channel"])
        reason = None
        if transport is None:
            reason = ("no SMTP or webhook configured" if row["channel"] == "email"
                      else f"no webhook configured for {row['channel']}: work it from the export")
        elif row["channel"] == "email" and transport.name == "smtp" and not row["email"]:
            reason = "customer has no e-mail address"
        if dry_run:
            (report.skipped if reason else report.would_send).append(rid)
            report.lines.append(f"{'would skip' if reason else 'would send'}: {label}"
                                + (f" ({reason})" if reason else f" via {transport.name}: {row['subject']}"))
            continue

        def log(state: str, outcome: str | None, row=row) -> None:
            _log_row(conn, row, state, outcome, clock, attempt)

        if rid not in status:
            _log_row(conn, row, "queued", None, clock, attempt, when)
        if reason:
            log("skipped", reason)
            report.skipped.append(rid)
            report.lines.append(f"skipped: {label} ({reason})")
            continue
        log("sending", f"handing to {transport.name}")  # intent first: a crash after this never resends
        try:
            outcome = transport.deliver(outgoing(row))
        except DeliveryError as exc:
            log("failed", str(exc))
            report.failed.append(rid)
            report.lines.append(f"FAILED: {label}: {exc}")
            continue
        log("sent", outcome)
        report.delivered.append(rid)
        report.lines.append(f"sent: {label}: {outcome}")
    return report


def _log_row(conn: duckdb.DuckDBPyConnection, row: Mapping, state: str, outcome: str | None,
             clock: Callable[[], datetime], attempt: str, scheduled_for: datetime | None = None) -> None:
    append_log(conn, LogEntry(
        reminder_id=row["reminder_id"], as_of_date=row["as_of_date"], customer_id=row["customer_id"],
        level=row["level"], channel=row["channel"], status=state, status_at=clock(), outcome=outcome,
        recipient=row["email"], invoice_keys=row["invoice_keys"], open_amount_home=row["open_amount_home"],
        risk_band=row["risk_band"], escalated=row["escalated"], attempt_id=attempt, scheduled_for=scheduled_for))


def record_outcome(conn: duckdb.DuckDBPyConnection, reminder_id: str, status: str, outcome: str | None,
                   clock: Callable[[], datetime] = _utc_now) -> None:
    """A collector's record of what happened to a reminder (a call made, a 'sending' row settled)."""
    ensure_tables(conn)
    rows = conn.sql("SELECT * FROM analytics.reminder_log WHERE reminder_id = ? ORDER BY status_at, rowid",
                    params=[reminder_id]).pl()
    if rows.height == 0:
        raise ValueError(f"no reminder {reminder_id!r} in analytics.reminder_log (send it first)")
    last = rows.row(-1, named=True)
    append_log(conn, LogEntry(
        reminder_id=reminder_id, as_of_date=last["as_of_date"], customer_id=last["customer_id"], level=last["level"],
        channel=last["channel"], status=status, status_at=clock(), outcome=outcome, recipient=last["recipient"],
        invoice_keys=last["invoice_keys"], open_amount_home=last["open_amount_home"], risk_band=last["risk_band"],
        escalated=last["escalated"], attempt_id="manual"))
