"""Stripe connector: list the AR objects page by page and land each page verbatim for the loader.

The only output is landing files read by `ingest_configs/stripe.yaml`:

- `<landing>/stripe/<folder>/sync_<UTC yyyymmddTHHMMSSffffff>_<n:05d>.json`: list pages exactly as the
  API sent them (`{"object": "list", "url", "has_more", "data"}`), plus list envelopes holding objects
  re-fetched after events (and open invoices re-listed after a gap in the events history).
- `<landing>/stripe/deleted/sync_<ts>_<n>.json`: `{"id", "object", "deleted": true}` entries.

File names sort in fetch order (a sync's timestamp is always later than any name already landed), so
the newest copy of an object is in the lexically latest file.

Incremental sync (state in `<state_dir>/stripe_cursor.json`):

- Lists are newest-first, so a created-time window is only complete when paging ends. After every
  committed page the object's `in_progress` (`window_start`, `window_end`, `starting_after`) is saved;
  an interrupted sync resumes at the next page of the same window, bounded by `created[lte]=window_end`
  (every page after a window's first carries that bound, so a resumed request equals the one an
  uninterrupted sync would have sent). The first page sends only `created[gte]` (nothing on a first sync).
  A finished window sets `created_gte = window_end - overlap`.
- Updates to old objects (an old invoice paid, voided, ...) do not change `created`: they are found
  through `/v1/events` (kept 30 days), and each affected object is re-fetched at the connector's API
  version (event payloads are frozen at their own version and are never landed). If the events cursor
  is older than the retention, all open invoices are re-listed.

API versions before 2025-03-31.basil have no InvoicePayment object: `/v1/invoice_payments` is
skipped and payments link through `invoice.charge` / `charge.invoice`, which the loader keeps.

The API key is sent only as `Authorization: Bearer ...`; it is kept in a `SecretStr` and redacted
from every error text.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ar_pipeline.lib.connectors.http import ApiError, RetryPolicy, safe_url, send
from ar_pipeline.lib.connectors.state import JsonState, write_atomic

logger = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.stripe.com"
DEFAULT_API_VERSION = "2025-03-31.basil"
#: First API version with the InvoicePayment object (and without invoice.charge / charge.invoice).
INVOICE_PAYMENTS_SINCE = "2025-03-31"
#: Listable objects, by landing folder (= URL path segment), in sync order.
OBJECTS: tuple[str, ...] = (
    "customers", "invoices", "invoice_payments", "charges", "refunds", "disputes", "credit_notes",
    "balance_transactions", "payouts",
)
#: Stripe `object` type → landing folder / URL path segment.
OBJECT_FOLDERS: dict[str, str] = {
    "customer": "customers",
    "invoice": "invoices",
    "invoice_payment": "invoice_payments",
    "charge": "charges",
    "refund": "refunds",
    "dispute": "disputes",
    "credit_note": "credit_notes",
    "balance_transaction": "balance_transactions",
    "payout": "payouts",
}
DELETED_FOLDER = "deleted"
#: Includable fields Stripe leaves out unless expanded, by folder: customers' tax ids feed customer
#: linking (a list call expands `data.<field>`, a retrieve `<field>`).
EXPAND: dict[str, tuple[str, ...]] = {"customers": ("tax_ids",)}
#: Event types that mean an object of this folder changed (or was deleted).
EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "invoices": ("invoice.created", "invoice.finalized", "invoice.paid", "invoice.payment_succeeded",
                 "invoice.voided", "invoice.marked_uncollectible", "invoice.updated", "invoice.deleted"),
    "invoice_payments": ("invoice_payment.paid",),
    "charges": ("charge.succeeded", "charge.refunded", "charge.updated"),
    "disputes": ("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed"),
    "credit_notes": ("credit_note.created", "credit_note.updated", "credit_note.voided"),
    "customers": ("customer.created", "customer.updated", "customer.deleted"),
    "refunds": ("refund.created", "refund.updated"),
    # balance transactions never change once created (no events); a payout's status does
    "balance_transactions": (),
    "payouts": ("payout.updated", "payout.paid", "payout.failed", "payout.canceled"),
}
#: Event-type prefixes whose object type is not the prefix itself.
_EVENT_PREFIX_OBJECT = {"charge.dispute": "dispute"}
#: `GET /v1/events` accepts at most this many `types[]`.
MAX_EVENT_TYPES = 20
EVENT_RETENTION_SECONDS = 30 * 86400
DEFAULT_OVERLAP_SECONDS = 300
#: Deletable objects whose retrieve answers 404 resource_missing once deleted.
_DELETABLE_404 = frozenset({"invoice", "customer"})
CURSOR_FILE = "stripe_cursor.json"
EVENTS_KEY = "events"
_TS_FORMAT = "%Y%m%dT%H%M%S%f"
_FILE_RE = re.compile(r"^sync_(\d{8}T\d{12})_(\d+)\.json$")
_MAX_FILE_SEQ = 99999


class ConnectorConfigError(ValueError):
    """The connector is not configured (or is misconfigured). Never carries the API key."""


class StripeSettings(BaseModel):
    """How to reach Stripe. `api_key` is a SecretStr: it prints as '**********'."""

    model_config = ConfigDict(frozen=True)

    api_base: str = DEFAULT_API_BASE
    api_key: SecretStr
    api_version: str = DEFAULT_API_VERSION
    page_size: int = Field(default=100, ge=1, le=100)
    objects: tuple[str, ...] = OBJECTS
    overlap_seconds: int = Field(default=DEFAULT_OVERLAP_SECONDS, ge=0)
    max_attempts: int = Field(default=6, ge=1)
    base_delay: float = Field(default=1.0, ge=0)
    max_delay: float = Field(default=60.0, ge=0)
    timeout: float = Field(default=60.0, gt=0)

    @field_validator("api_base")
    @classmethod
    def _base(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("api_base must be an http(s) URL")
        return value

    @field_validator("api_key")
    @classmethod
    def _key(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("api_key is empty")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        value = value.strip()
        api_version_date(value)  # raises ValueError when there is no leading YYYY-MM-DD
        return value

    @field_validator("objects")
    @classmethod
    def _objects(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(OBJECTS))
        if unknown:
            raise ValueError(f"unknown Stripe objects {unknown}; known: {list(OBJECTS)}")
        return tuple(o for o in OBJECTS if o in value)  # canonical order, no duplicates

    @classmethod
    def is_configured(cls, env: Mapping[str, str] | None = None) -> bool:
        env = os.environ if env is None else env
        return bool((env.get("STRIPE_API_KEY") or "").strip())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> StripeSettings:
        """Settings from STRIPE_API_KEY (required), STRIPE_API_BASE and STRIPE_API_VERSION."""
        env = os.environ if env is None else env
        if not cls.is_configured(env):
            raise ConnectorConfigError(
                "Stripe connector is not configured: set STRIPE_API_KEY (a secret or restricted key with "
                "read access); optional STRIPE_API_BASE and STRIPE_API_VERSION")
        values: dict[str, Any] = {"api_key": SecretStr(env["STRIPE_API_KEY"])}
        if env.get("STRIPE_API_BASE"):
            values["api_base"] = env["STRIPE_API_BASE"]
        if env.get("STRIPE_API_VERSION"):
            values["api_version"] = env["STRIPE_API_VERSION"]
        values.update(overrides)
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConnectorConfigError(f"invalid Stripe settings: {problems}") from None

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts, base_delay=self.base_delay,
                           max_delay=self.max_delay, timeout=self.timeout)

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key.get_secret_value()}",
            "Stripe-Version": self.api_version,
            "Accept": "application/json",
        }


@dataclass
class SyncResult:
    """What a sync did. `cursors` is the cursor state after the sync."""

    api_version: str
    pages: dict[str, int] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    refetched: dict[str, int] = field(default_factory=dict)
    deletions: int = 0
    events: int = 0
    files_written: list[Path] = field(default_factory=list)
    skipped_objects: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    open_invoices_relisted: bool = False
    open_invoices: int = 0
    cursors: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- pure helpers


def api_version_date(api_version: str) -> str:
    """The date part of an API version ('2025-03-31.basil' → '2025-03-31')."""
    match = re.match(r"^(\d{4}-\d{2}-\d{2})", api_version.strip())
    if not match:
        raise ValueError(f"not a Stripe API version (expected YYYY-MM-DD[.name]): {api_version!r}")
    datetime.strptime(match.group(1), "%Y-%m-%d")
    return match.group(1)


def uses_invoice_payments(api_version: str) -> bool:
    """True when the version has InvoicePayment objects (2025-03-31.basil and later)."""
    return api_version_date(api_version) >= INVOICE_PAYMENTS_SINCE


def objects_to_sync(objects: Iterable[str], api_version: str) -> tuple[list[str], list[str]]:
    """(objects to list, objects skipped because the API version does not have them)."""
    keep, skipped = [], []
    for obj in objects:
        if obj == "invoice_payments" and not uses_invoice_payments(api_version):
            skipped.append(obj)
        else:
            keep.append(obj)
    return keep, skipped


def list_params(
    limit: int,
    *,
    created_gte: int | None = None,
    created_lte: int | None = None,
    starting_after: str | None = None,
    extra: Iterable[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """Query parameters of one list request, in a stable order (repeated keys allowed)."""
    params: list[tuple[str, str]] = [("limit", str(limit))]
    if created_gte is not None:
        params.append(("created[gte]", str(int(created_gte))))
    if created_lte is not None:
        params.append(("created[lte]", str(int(created_lte))))
    params.extend(extra)
    if starting_after:
        params.append(("starting_after", starting_after))
    return params


def event_types(objects: Iterable[str], api_version: str) -> list[str]:
    """Event types that signal a change to one of `objects` at this API version."""
    wanted = set(objects_to_sync(objects, api_version)[0])
    return [t for obj in OBJECTS if obj in wanted for t in EVENT_TYPES[obj]]


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def event_object_ref(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """(object type, id) of the object an event is about, or None if it is not an AR object."""
    obj = (event.get("data") or {}).get("object") or {}
    oid = obj.get("id")
    otype = obj.get("object")
    if otype not in OBJECT_FOLDERS:
        prefix = str(event.get("type", "")).rsplit(".", 1)[0]
        otype = _EVENT_PREFIX_OBJECT.get(prefix, prefix)
    if otype not in OBJECT_FOLDERS or not isinstance(oid, str) or not oid:
        return None
    return otype, oid


def is_deletion_event(event: Mapping[str, Any]) -> bool:
    return str(event.get("type", "")).endswith(".deleted")


def deleted_entry(object_type: str, object_id: str) -> dict[str, Any]:
    return {"id": object_id, "object": object_type, "deleted": True}


def should_retry(status: int, headers: Mapping[str, str], error_code: str | None = None) -> bool:
    """Stripe's retry rule: `Stripe-Should-Retry` wins when present; else 429, 5xx and a
    400 `rate_limit` are retried, nothing else."""
    hint = (headers.get("Stripe-Should-Retry") or "").strip().lower()
    if hint == "true":
        return True
    if hint == "false":
        return False
    if status == 429 or status >= 500:
        return True
    return status == 400 and error_code == "rate_limit"


def error_fields(body: Any) -> dict[str, str | None]:
    """type/code/message/param of a Stripe error body (all None when it is not one)."""
    err = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(err, Mapping):
        err = {}
    return {k: (str(err[k]) if err.get(k) is not None else None) for k in ("type", "code", "message", "param")}


def redact(text: str, secret: str) -> str:
    return text.replace(secret, "[REDACTED]") if secret else text


def format_ts(when: datetime) -> str:
    return when.astimezone(UTC).strftime(_TS_FORMAT)


def window_complete_cursor(window_end: int, overlap: int) -> int:
    return max(0, int(window_end) - int(overlap))


def events_cursor_expired(cursor: int, now_s: int, retention: int = EVENT_RETENTION_SECONDS) -> bool:
    return now_s - int(cursor) > retention


# ---------------------------------------------------------------- errors


class StripeApiError(ApiError):
    """A Stripe request failed for good, with the API's error fields."""

    def __init__(self, message: str, status: int | None, *, error_type: str | None = None,
                 code: str | None = None, param: str | None = None, request_id: str | None = None,
                 retryable: bool = False) -> None:
        super().__init__(message, status=status, retryable=retryable)
        self.error_type = error_type
        self.code = code
        self.param = param
        self.request_id = request_id


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _api_error(method: str, url: str, response: requests.Response, secret: str) -> StripeApiError:
    fields = error_fields(_json_or_none(response))
    parts = [f"{method} {safe_url(url)}: HTTP {response.status_code}"]
    if fields["type"]:
        parts.append(f"type={fields['type']}")
    if fields["code"]:
        parts.append(f"code={fields['code']}")
    if fields["param"]:
        parts.append(f"param={fields['param']}")
    if fields["message"]:
        parts.append(f"message={fields['message']}")
    elif not fields["type"]:
        parts.append(f"body={response.text[:200]!r}")
    request_id = response.headers.get("Request-Id")
    if request_id:
        parts.append(f"request_id={request_id}")
    message = redact(" ".join(parts), secret)
    return StripeApiError(message, response.status_code, error_type=fields["type"], code=fields["code"],
                          param=fields["param"], request_id=request_id,
                          retryable=response.status_code == 429 or response.status_code >= 500)


# ---------------------------------------------------------------- landing


class _Lander:
    """Writes landing files whose names sort in fetch order, also after earlier syncs."""

    def __init__(self, root: Path, started: datetime) -> None:
        self.root = root
        latest = _latest_landed(root)
        ts = started.astimezone(UTC).replace(tzinfo=None)
        if latest is not None and ts <= latest:
            ts = latest + timedelta(microseconds=1)
        self._ts: dict[str, datetime] = {}
        self._seq: dict[str, int] = {}
        self._start = ts
        self.written: list[Path] = []

    def path(self, folder: str) -> Path:
        ts = self._ts.setdefault(folder, self._start)
        seq = self._seq.get(folder, 0) + 1
        if seq > _MAX_FILE_SEQ:  # keep the fixed-width sequence sortable: move to the next microsecond
            ts = ts + timedelta(microseconds=1)
            self._ts[folder] = ts
            seq = 1
        self._seq[folder] = seq
        return self.root / folder / f"sync_{ts.strftime(_TS_FORMAT)}_{seq:05d}.json"

    def write(self, folder: str, text: str) -> Path:
        path = self.path(folder)
        write_atomic(path, text, mode=0o644)
        self.written.append(path)
        return path

    def write_list(self, folder: str, url: str, records: list[dict[str, Any]]) -> Path:
        body = {"object": "list", "url": url, "has_more": False, "data": records}
        return self.write(folder, json.dumps(body, ensure_ascii=False))


def _latest_landed(root: Path) -> datetime | None:
    latest: datetime | None = None
    if not root.is_dir():
        return None
    for folder in root.iterdir():
        if not folder.is_dir():
            continue
        for path in folder.glob("sync_*.json"):
            match = _FILE_RE.match(path.name)
            if match:
                ts = datetime.strptime(match.group(1), _TS_FORMAT)
                latest = ts if latest is None or ts > latest else latest
    return latest


# ---------------------------------------------------------------- the sync


class _Client:
    def __init__(self, settings: StripeSettings, session: requests.Session,
                 sleep: Callable[[float], None], log: logging.Logger) -> None:
        self.settings = settings
        self.session = session
        self.sleep = sleep
        self.log = log
        self.policy = settings.retry_policy()
        self.secret = settings.api_key.get_secret_value()

    def url(self, path: str) -> str:
        return f"{self.settings.api_base}{path}"

    def get(self, path: str, params: list[tuple[str, str]] | None = None) -> requests.Response:
        url = self.url(path)

        def retry(response: requests.Response) -> bool:
            code = None
            if response.status_code == 400:
                code = error_fields(_json_or_none(response))["code"]
            return should_retry(response.status_code, response.headers, code)

        try:
            return send(self.session, "GET", url, policy=self.policy, should_retry=retry, sleep=self.sleep,
                        params=params, headers=self.settings.headers())
        except ApiError as exc:
            raise ApiError(redact(str(exc), self.secret), status=exc.status, retryable=exc.retryable) from None

    def get_ok(self, path: str, params: list[tuple[str, str]] | None = None) -> requests.Response:
        response = self.get(path, params)
        if response.status_code >= 300:
            raise _api_error("GET", self.url(path), response, self.secret)
        return response


def _parse_list(response: requests.Response, where: str) -> dict[str, Any]:
    body = _json_or_none(response)
    if not isinstance(body, dict) or body.get("object") != "list" or not isinstance(body.get("data"), list):
        raise ApiError(f"GET {where}: expected a Stripe list object", status=response.status_code)
    return body


def _now_fn(now: Callable[[], datetime] | datetime | None) -> Callable[[], datetime]:
    if now is None:
        return lambda: datetime.now(UTC)
    if isinstance(now, datetime):
        fixed = now if now.tzinfo else now.replace(tzinfo=UTC)
        return lambda: fixed
    return now


def _unix(when: datetime) -> int:
    return int(when.timestamp())


class _LineLogger(logging.LoggerAdapter):
    """Logger that also hands each formatted line to a callable (progress in Dagster or the CLI)."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        super().__init__(logger, {})
        self._emit = emit

    def log(self, level: int, msg: object, *args: object, **kwargs: object) -> None:
        super().log(level, msg, *args, **kwargs)
        if level >= logging.INFO:
            self._emit(str(msg) % args if args else str(msg))


def _as_logger(log: logging.Logger | Callable[[str], None] | None) -> logging.Logger | logging.LoggerAdapter:
    if log is None:
        return logger
    if isinstance(log, (logging.Logger, logging.LoggerAdapter)):
        return log
    return _LineLogger(log)


def sync_stripe(
    settings: StripeSettings,
    landing_dir: Path,
    state_dir: Path,
    *,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] | datetime | None = None,
    log: logging.Logger | Callable[[str], None] | None = None,
) -> SyncResult:
    """List new objects, re-fetch objects changed since the last sync, land everything as pages.

    `log` is a logger, or a callable taking one line (e.g. Dagster's `context.log.info`): progress
    lines then go there as well as to this module's logger."""
    log = _as_logger(log)
    clock = _now_fn(now)
    own_session = session is None
    session = session or requests.Session()
    client = _Client(settings, session, sleep, log)
    state = JsonState(Path(state_dir) / CURSOR_FILE)
    lander = _Lander(Path(landing_dir) / "stripe", clock())
    result = SyncResult(api_version=settings.api_version)
    try:
        objects, skipped = objects_to_sync(settings.objects, settings.api_version)
        result.skipped_objects = skipped
        if skipped:
            log.info("Stripe API version %s predates %s: skipping %s (payments link through invoice.charge "
                     "and charge.invoice)", settings.api_version, INVOICE_PAYMENTS_SINCE, ", ".join(skipped))
        # The events cursor starts before the first listing, so changes made while listing are caught.
        if not (state.get(EVENTS_KEY) or {}).get("created_gte"):
            state.update(**{EVENTS_KEY: {"created_gte": window_complete_cursor(_unix(clock()),
                                                                               settings.overlap_seconds)}})
        for obj in objects:
            _sync_object(client, obj, state, lander, result, clock)
        _sync_events(client, objects, state, lander, result, clock)
    finally:
        result.files_written = list(lander.written)
        result.cursors = state.load()
        if own_session:
            session.close()
    log.info("Stripe sync done: %d files, records %s, refetched %s, %d deletions", len(result.files_written),
             result.records, result.refetched, result.deletions)
    return result


def _sync_object(client: _Client, obj: str, state: JsonState, lander: _Lander, result: SyncResult,
                 clock: Callable[[], datetime]) -> None:
    settings, log = client.settings, client.log
    entry = dict(state.get(obj) or {})
    progress = entry.get("in_progress")
    if progress:
        window_start, window_end = progress.get("window_start"), int(progress["window_end"])
        starting_after = progress.get("starting_after")
        created_lte: int | None = window_end
        result.resumed.append(obj)
        log.info("Stripe %s: resuming window %s..%s after %s", obj, window_start, window_end, starting_after)
    else:
        window_start = entry.get("created_gte")
        window_end = _unix(clock())
        starting_after = None
        created_lte = None
    result.pages.setdefault(obj, 0)
    result.records.setdefault(obj, 0)
    path = f"/v1/{obj}"
    while True:
        params = list_params(settings.page_size, created_gte=window_start, created_lte=created_lte,
                             starting_after=starting_after,
                             extra=[("expand[]", f"data.{f}") for f in EXPAND.get(obj, ())])
        response = client.get_ok(path, params)
        body = _parse_list(response, path)
        lander.write(obj, response.content.decode("utf-8"))
        data = body["data"]
        result.pages[obj] += 1
        result.records[obj] += len(data)
        last_id = data[-1].get("id") if data else None
        if body.get("has_more") and last_id:
            starting_after = last_id
            created_lte = window_end  # a resumed page keeps the window's upper bound
            entry["in_progress"] = {"window_start": window_start, "window_end": window_end,
                                    "starting_after": starting_after}
            state.update(**{obj: entry})
            continue
        entry.pop("in_progress", None)
        entry["created_gte"] = window_complete_cursor(window_end, settings.overlap_seconds)
        state.update(**{obj: entry})
        log.info("Stripe %s: %d records in %d pages", obj, result.records[obj], result.pages[obj])
        return


def _list_all(client: _Client, path: str, extra: list[tuple[str, str]],
              created_gte: int | None = None) -> Iterator[tuple[requests.Response, dict[str, Any]]]:
    starting_after = None
    while True:
        params = list_params(client.settings.page_size, created_gte=created_gte, starting_after=starting_after,
                             extra=extra)
        response = client.get_ok(path, params)
        body = _parse_list(response, path)
        yield response, body
        data = body["data"]
        if not body.get("has_more") or not data or not data[-1].get("id"):
            return
        starting_after = data[-1]["id"]


def _sync_events(client: _Client, objects: list[str], state: JsonState, lander: _Lander, result: SyncResult,
                 clock: Callable[[], datetime]) -> None:
    settings, log = client.settings, client.log
    types = event_types(objects, settings.api_version)
    if not types:
        return
    started = _unix(clock())
    cursor = int((state.get(EVENTS_KEY) or {}).get("created_gte") or 0)
    if "invoices" in objects and events_cursor_expired(cursor, started):
        log.warning("Stripe events cursor %s is older than the 30-day event retention: events may be missing, "
                    "re-listing all open invoices", cursor)
        for response, body in _list_all(client, "/v1/invoices", [("status", "open")]):
            lander.write("invoices", response.content.decode("utf-8"))
            result.open_invoices += len(body["data"])
        result.open_invoices_relisted = True

    changed: dict[tuple[str, str], None] = {}  # insertion-ordered set
    deleted: dict[tuple[str, str], None] = {}
    for group in chunks(types, MAX_EVENT_TYPES):
        extra = [("types[]", t) for t in group]
        for _response, body in _list_all(client, "/v1/events", extra, created_gte=cursor):
            for event in body["data"]:
                result.events += 1
                ref = event_object_ref(event)
                if ref is None:
                    continue
                if is_deletion_event(event):
                    deleted[ref] = None
                else:
                    changed[ref] = None

    wanted = set(objects)
    fetched: dict[str, list[dict[str, Any]]] = {}
    for ref in changed:
        otype, oid = ref
        folder = OBJECT_FOLDERS[otype]
        if ref in deleted or folder not in wanted:
            continue
        path = f"/v1/{folder}/{quote(oid, safe='')}"
        response = client.get(path, [("expand[]", f) for f in EXPAND.get(folder, ())] or None)
        if response.status_code == 404:
            fields = error_fields(_json_or_none(response))
            if fields["code"] == "resource_missing" and otype in _DELETABLE_404:
                deleted[ref] = None
                continue
            if fields["code"] == "resource_missing":
                log.warning("Stripe %s %s from an event no longer exists; skipped", otype, oid)
                continue
        if response.status_code >= 300:
            raise _api_error("GET", client.url(path), response, client.secret)
        obj = _json_or_none(response)
        if not isinstance(obj, dict) or not obj.get("id"):
            raise ApiError(f"GET {path}: expected a Stripe object", status=response.status_code)
        if obj.get("deleted") is True:
            deleted[(str(obj.get("object") or otype), str(obj["id"]))] = None
            continue
        fetched.setdefault(OBJECT_FOLDERS.get(str(obj.get("object")), folder), []).append(obj)

    for folder in OBJECTS:
        records = fetched.get(folder)
        if not records:
            continue
        for group in chunks(records, settings.page_size):
            lander.write_list(folder, f"/v1/{folder}", group)
        result.refetched[folder] = len(records)
    if deleted:
        entries = [deleted_entry(otype, oid) for otype, oid in deleted]
        for group in chunks(entries, settings.page_size):
            lander.write_list(DELETED_FOLDER, "/v1/events", group)
        result.deletions = len(entries)
    # Everything the events pointed at is landed: move the cursor (with overlap) to when listing began.
    state.update(**{EVENTS_KEY: {"created_gte": window_complete_cursor(started, settings.overlap_seconds)}})
    log.info("Stripe events: %d events, refetched %s, %d deletions", result.events, result.refetched,
             result.deletions)
