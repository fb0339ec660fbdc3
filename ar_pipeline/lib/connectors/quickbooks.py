"""QuickBooks Online Accounting API v3 connector: lands query pages and CDC deletions for the loader.

The only output is landing files that `ingest_configs/quickbooks.yaml` reads:

* `<landing>/quickbooks/<entity lower-case>/sync_<UTC stamp>_<page>.json` — each query response page
  written verbatim (the bytes QuickBooks returned), atomically;
* `<landing>/quickbooks/deleted/sync_<UTC stamp>_00001.json` — records the CDC endpoint reports as
  `status: "Deleted"`, as `{"QueryResponse": {"Deleted": [...]}, "time": ...}` with `EntityType` added.

State lives in `<state_dir>`: `quickbooks_cursor.json` (per-entity `Metadata.LastUpdatedTime` cursors
and the CDC cursor, advanced only after the page they describe is on disk) and `quickbooks_token.json`
(the newest OAuth refresh token — QuickBooks rotates it on every refresh — mode 0600). The access
token is kept in memory only. No token or secret is ever logged, raised or returned.

QBO behaviour relied on (see research/formats.md §1): 1-based STARTPOSITION, MAXRESULTS <= 1000, the
filter field is spelled `Metadata.LastUpdatedTime` while the JSON key is `MetaData`, filter
timestamps need a colon in the UTC offset, list entities need `Active IN (true, false)` to include
inactive rows, a `Fault` can arrive inside HTTP 200, throttling is 429 or code 3001 in a 403/429 body,
CDC only reaches back 30 days and returns at most 1000 objects per response.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from ar_pipeline.lib.connectors.http import RETRY_STATUSES, ApiError, RetryPolicy, safe_url, send
from ar_pipeline.lib.connectors.state import JsonState, write_atomic

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://quickbooks.api.intuit.com"
DEFAULT_TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
DEFAULT_ENTITIES = ("Customer", "Invoice", "Payment", "CreditMemo", "RefundReceipt")
#: Entity → landing folder (the loader's `files:` globs in ingest_configs/quickbooks.yaml).
FOLDERS = {e: e.lower() for e in DEFAULT_ENTITIES}
DELETED_FOLDER = "deleted"
#: Name-list entities: the query endpoint hides inactive rows unless asked for them.
LIST_ENTITIES = frozenset({"Customer"})
#: Order of entities in the CDC request.
CDC_ENTITY_ORDER = ("Invoice", "Payment", "CreditMemo", "Customer", "RefundReceipt")
CDC_MAX_OBJECTS = 1000
CDC_MAX_AGE = timedelta(days=30)
TOKEN_FILE = "quickbooks_token.json"
CURSOR_FILE = "quickbooks_cursor.json"
CDC_CURSOR_KEY = "cdc"
#: Refresh the access token this long before QuickBooks says it expires.
ACCESS_TOKEN_MARGIN = timedelta(seconds=60)
LANDING_FILE_MODE = 0o640

ENV_VARS = {
    "base_url": "QBO_BASE_URL",
    "token_url": "QBO_TOKEN_URL",
    "client_id": "QBO_CLIENT_ID",
    "client_secret": "QBO_CLIENT_SECRET",
    "refresh_token": "QBO_REFRESH_TOKEN",
    "realm_id": "QBO_REALM_ID",
}
REQUIRED_ENV_VARS = ("QBO_CLIENT_ID", "QBO_CLIENT_SECRET", "QBO_REFRESH_TOKEN", "QBO_REALM_ID")


class ConnectorConfigError(ValueError):
    """The connector is not configured (missing or invalid settings)."""


class QuickBooksFault(ApiError):
    """QuickBooks answered with a `Fault` body (possibly inside HTTP 200)."""

    def __init__(self, message: str, status: int | None, fault_type: str | None,
                 errors: list[dict[str, str]]) -> None:
        super().__init__(message, status=status, retryable=False)
        self.fault_type = fault_type
        self.errors = errors

    @property
    def codes(self) -> list[str]:
        return [e.get("code", "") for e in self.errors]


class QuickBooksSyncError(RuntimeError):
    """A sync cannot be completed safely (e.g. CDC capped for a single entity)."""


# --------------------------------------------------------------------------------------------------
# Settings


class QuickBooksSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = DEFAULT_BASE_URL
    token_url: str = DEFAULT_TOKEN_URL
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    #: The initial refresh token; once rotated, the newest one lives in the token file.
    refresh_token: SecretStr
    realm_id: str = Field(min_length=1)
    minor_version: int = Field(75, ge=75)
    page_size: int = Field(1000, ge=1, le=1000)
    entities: tuple[str, ...] = DEFAULT_ENTITIES
    #: Per-request timeout (Intuit cuts requests off at 120 s).
    timeout_seconds: float = Field(60.0, gt=0)
    max_attempts: int = Field(6, ge=1)
    backoff_base_seconds: float = Field(1.0, ge=0)
    backoff_max_seconds: float = Field(60.0, ge=0)

    @field_validator("base_url", "token_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("entities")
    @classmethod
    def _known_entities(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [e for e in value if e not in FOLDERS]
        if unknown:
            raise ValueError(f"unsupported entities {unknown}; supported: {list(FOLDERS)}")
        if not value:
            raise ValueError("at least one entity is needed")
        return tuple(dict.fromkeys(value))

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts, base_delay=self.backoff_base_seconds,
                           max_delay=self.backoff_max_seconds, timeout=self.timeout_seconds)

    @staticmethod
    def missing_env(env: Mapping[str, str] | None = None) -> list[str]:
        env = os.environ if env is None else env
        return [name for name in REQUIRED_ENV_VARS if not (env.get(name) or "").strip()]

    @classmethod
    def is_configured(cls, env: Mapping[str, str] | None = None) -> bool:
        """True when every credential variable is set (non-empty)."""
        return not cls.missing_env(env)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> QuickBooksSettings:
        env = os.environ if env is None else env
        missing = cls.missing_env(env)
        if missing:
            raise ConnectorConfigError(
                "QuickBooks connector is not configured: set " + ", ".join(missing)
                + " (see the QuickBooks section of the README)")
        values: dict[str, Any] = {}
        for fld, name in ENV_VARS.items():
            raw = (env.get(name) or "").strip()
            if raw:
                values[fld] = raw
        values.update(overrides)
        try:
            return cls(**values)
        except ValueError as exc:  # pydantic ValidationError; SecretStr values are never echoed
            raise ConnectorConfigError(f"invalid QuickBooks settings: {_validation_summary(exc)}") from None


def is_configured(env: Mapping[str, str] | None = None) -> bool:
    return QuickBooksSettings.is_configured(env)


def _validation_summary(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        # Only field names and messages: never the input values (they may be secrets).
        return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in errors())
    return type(exc).__name__


# --------------------------------------------------------------------------------------------------
# Pure helpers


def parse_timestamp(value: str | datetime) -> datetime:
    """An ISO-8601 timestamp as an aware datetime (naive values are taken as UTC)."""
    if isinstance(value, datetime):
        dt = value
    else:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def format_cursor(value: str | datetime) -> str:
    """A timestamp for a QBO filter: ISO-8601 to the second, UTC offset with a colon (`-08:00`).

    The instant's own offset is kept; fractions of a second are dropped (rounding down, which with a
    `>=` filter only ever re-reads, never skips)."""
    dt = parse_timestamp(value).replace(microsecond=0)
    return dt.isoformat(timespec="seconds")


def build_query(entity: str, cursor: str | datetime | None, start_position: int, max_results: int) -> str:
    """The query-endpoint SQL for one page of `entity` changed at or after `cursor`."""
    if start_position < 1:
        raise ValueError("STARTPOSITION is 1-based")
    if not 1 <= max_results <= 1000:
        raise ValueError("MAXRESULTS must be between 1 and 1000")
    conditions = []
    if cursor is not None:
        conditions.append(f"Metadata.LastUpdatedTime >= '{format_cursor(cursor)}'")
    if entity in LIST_ENTITIES:
        conditions.append("Active IN (true, false)")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return (f"SELECT * FROM {entity}{where} ORDERBY Metadata.LastUpdatedTime "
            f"STARTPOSITION {start_position} MAXRESULTS {max_results}")


def find_fault(body: Any) -> dict[str, Any] | None:
    """The `Fault` (or auth-style lowercase `fault`) object of a response body, if any."""
    if not isinstance(body, dict):
        return None
    fault = body.get("Fault", body.get("fault"))
    return fault if isinstance(fault, dict) else None


def fault_errors(fault: Mapping[str, Any]) -> list[dict[str, str]]:
    """Normalised error list of a fault: dicts with code, message, detail (either casing in)."""
    raw = fault.get("Error", fault.get("error")) or []
    if isinstance(raw, dict):
        raw = [raw]
    out = []
    for err in raw:
        if not isinstance(err, dict):
            continue
        out.append({
            "code": str(err.get("code", err.get("Code", "")) or ""),
            "message": str(err.get("Message", err.get("message", "")) or ""),
            "detail": str(err.get("Detail", err.get("detail", "")) or ""),
        })
    return out


def describe_fault(fault: Mapping[str, Any]) -> str:
    fault_type = fault.get("type", fault.get("Type")) or "Fault"
    parts = []
    for err in fault_errors(fault):
        text = f"code {err['code']}: {err['message']}" if err["code"] else err["message"]
        if err["detail"]:
            text += f" ({err['detail']})"
        parts.append(text)
    return f"QuickBooks {fault_type}: " + ("; ".join(parts) if parts else "no error details")


def is_throttle_fault(body: Any) -> bool:
    fault = find_fault(body)
    if fault is None:
        return False
    return any(e["code"].lstrip("0") == "3001" or "ThrottleExceeded" in e["message"]
               for e in fault_errors(fault))


def extract_cdc_deletions(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Deleted records of a CDC response, as landed, and the number of objects per entity.

    A CDC response holds one `QueryResponse` per requested entity (empty ones included); deleted
    records carry `status: "Deleted"` and only `Id` and `MetaData.LastUpdatedTime`."""
    deleted: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for cdc in body.get("CDCResponse") or []:
        if not isinstance(cdc, dict):
            continue
        query_responses = cdc.get("QueryResponse") or []
        if isinstance(query_responses, dict):
            query_responses = [query_responses]
        for qr in query_responses:
            if not isinstance(qr, dict):
                continue
            for entity, records in qr.items():
                if not isinstance(records, list):
                    continue  # startPosition, maxResults, totalCount
                counts[entity] = counts.get(entity, 0) + len(records)
                for rec in records:
                    if isinstance(rec, dict) and rec.get("status") == "Deleted":
                        deleted.append({
                            "Id": rec.get("Id"),
                            "EntityType": entity,
                            "status": "Deleted",
                            "MetaData": {"LastUpdatedTime": (rec.get("MetaData") or {}).get("LastUpdatedTime")},
                        })
    return deleted, counts


def max_last_updated(records: list[dict[str, Any]]) -> str | None:
    """The latest `MetaData.LastUpdatedTime` of a page (as QuickBooks wrote it)."""
    best: tuple[datetime, str] | None = None
    for rec in records:
        value = (rec.get("MetaData") or {}).get("LastUpdatedTime") if isinstance(rec, dict) else None
        if not value:
            continue
        dt = parse_timestamp(value)
        if best is None or dt > best[0]:
            best = (dt, value)
    return best[1] if best else None


def later_cursor(old: str | None, new: str | None) -> str | None:
    if old is None:
        return new
    if new is None:
        return old
    return new if parse_timestamp(new) > parse_timestamp(old) else old


def landing_name(stamp: str, page: int) -> str:
    return f"sync_{stamp}_{page:05d}.json"


# --------------------------------------------------------------------------------------------------
# HTTP: retries, faults, OAuth


def should_retry(response: requests.Response) -> bool:
    """429 and 5xx, plus a throttle fault (code 3001) whatever the status (403 historically)."""
    if response.status_code in RETRY_STATUSES:
        return True
    if response.status_code in (200, 403, 400) and len(response.content) < 65536:
        head = response.content[:4096]
        if b"3001" in head or b"ThrottleExceeded" in head:
            try:
                return is_throttle_fault(response.json())
            except ValueError:
                return b"ThrottleExceeded" in head  # XML fault
    return False


def _error_from_response(response: requests.Response, where: str) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    fault = find_fault(body)
    if fault is not None:
        return QuickBooksFault(f"{where}: HTTP {response.status_code}: {describe_fault(fault)}",
                               response.status_code, fault.get("type"), fault_errors(fault))
    text = " ".join(response.text.split())[:300] if response.text else "no body"
    return ApiError(f"{where}: HTTP {response.status_code}: {text}", status=response.status_code,
                    retryable=response.status_code in RETRY_STATUSES)


class _Tokens:
    """OAuth2 refresh-token flow. The newest refresh token is on disk before any access token is used."""

    def __init__(self, settings: QuickBooksSettings, session: requests.Session, state_dir: Path,
                 policy: RetryPolicy, sleep: Callable[[float], None], clock: Callable[[], datetime],
                 emit: Callable[[str], None]) -> None:
        self.settings = settings
        self.session = session
        self.store = JsonState(state_dir / TOKEN_FILE, mode=0o600)
        self.policy = policy
        self.sleep = sleep
        self.clock = clock
        self.emit = emit
        self._access: str | None = None
        self._expires_at: datetime | None = None
        self.refreshes = 0

    def _refresh_token(self) -> str:
        stored = self.store.get("refresh_token")
        if stored and self.store.get("realm_id", self.settings.realm_id) == self.settings.realm_id:
            return stored
        return self.settings.refresh_token.get_secret_value()

    def access_token(self) -> str:
        if self._access is None or self._expires_at is None or self.clock() >= self._expires_at:
            self.refresh()
        assert self._access is not None
        return self._access

    def refresh(self) -> None:
        where = f"POST {safe_url(self.settings.token_url)}"
        self._access = None
        response = send(
            self.session, "POST", self.settings.token_url, policy=self.policy, sleep=self.sleep,
            auth=(self.settings.client_id, self.settings.client_secret.get_secret_value()),
            data={"grant_type": "refresh_token", "refresh_token": self._refresh_token()},
            headers={"Accept": "application/json"},
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            code = body.get("error") if isinstance(body, dict) else None
            # The OAuth error code is a fixed word; the description is not echoed (it may quote input).
            hint = (" The refresh token is invalid or expired, or the client credentials are wrong: "
                    "reconnect the QuickBooks app and set QBO_REFRESH_TOKEN (delete "
                    f"{self.store.path.name} in the state folder so the new token is used)."
                    if response.status_code in (400, 401) else "")
            raise ApiError(f"{where}: token refresh failed: HTTP {response.status_code}"
                           + (f" ({code})" if isinstance(code, str) and code.isidentifier() else "") + "." + hint,
                           status=response.status_code)
        access, refresh = body.get("access_token"), body.get("refresh_token")
        if not access or not refresh:
            raise ApiError(f"{where}: token response lacks access_token or refresh_token",
                           status=response.status_code)
        now = self.clock()
        record: dict[str, Any] = {"refresh_token": refresh, "realm_id": self.settings.realm_id,
                                  "updated_at": now.astimezone(UTC).isoformat()}
        rt_life = body.get("x_refresh_token_expires_in")
        if isinstance(rt_life, (int, float)):
            record["refresh_token_expires_at"] = (now + timedelta(seconds=rt_life)).astimezone(UTC).isoformat()
            if rt_life < 7 * 86400:
                self.emit(f"QuickBooks refresh token expires in {rt_life / 86400:.1f} days: "
                          "reconnect the app soon")
        # Persist first: the old refresh token may stop working once this one is issued.
        self.store.update(**record)
        expires_in = body.get("expires_in", 3600)
        expires_in = expires_in if isinstance(expires_in, (int, float)) else 3600
        self._expires_at = now + timedelta(seconds=expires_in) - ACCESS_TOKEN_MARGIN
        self._access = access
        self.refreshes += 1
        logger.info("QuickBooks access token refreshed; rotated refresh token saved to %s", self.store.path)


class _Client:
    def __init__(self, settings: QuickBooksSettings, session: requests.Session, tokens: _Tokens,
                 policy: RetryPolicy, sleep: Callable[[float], None]) -> None:
        self.settings = settings
        self.session = session
        self.tokens = tokens
        self.policy = policy
        self.sleep = sleep

    def get(self, endpoint: str, params: dict[str, str]) -> tuple[requests.Response, dict[str, Any]]:
        """GET a company endpoint; returns the response and its parsed JSON, or raises ApiError."""
        url = f"{self.settings.base_url}/v3/company/{self.settings.realm_id}/{endpoint}"
        where = f"GET {safe_url(url)}"
        params = {**params, "minorversion": str(self.settings.minor_version)}
        for auth_try in (1, 2):
            response = send(
                self.session, "GET", url, policy=self.policy, should_retry=should_retry, sleep=self.sleep,
                params=params,
                headers={"Accept": "application/json",
                         "Authorization": f"Bearer {self.tokens.access_token()}"},
            )
            if response.status_code != 401:
                break
            if auth_try == 1:
                logger.info("%s: HTTP 401, refreshing the access token once", where)
                self.tokens.refresh()
                continue
            raise ApiError(f"{where}: still unauthorised (HTTP 401) after refreshing the access token: "
                           "reconnect the QuickBooks app (new refresh token) and check QBO_REALM_ID "
                           "and sandbox vs production QBO_BASE_URL", status=401)
        if response.status_code >= 300:
            raise _error_from_response(response, where)
        try:
            body = response.json()
        except ValueError:
            raise ApiError(f"{where}: HTTP {response.status_code} but the body is not JSON "
                           f"(Content-Type {response.headers.get('Content-Type')!r})",
                           status=response.status_code) from None
        fault = find_fault(body)
        if fault is not None:  # HTTP 200 can carry a Fault: an error, not data
            raise QuickBooksFault(f"{where}: HTTP {response.status_code}: {describe_fault(fault)}",
                                  response.status_code, fault.get("type"), fault_errors(fault))
        if not isinstance(body, dict):
            raise ApiError(f"{where}: unexpected JSON body ({type(body).__name__})", status=response.status_code)
        return response, body


# --------------------------------------------------------------------------------------------------
# Sync


@dataclass
class SyncResult:
    pages: dict[str, int] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    deletions: int = 0
    files: list[Path] = field(default_factory=list)
    cursors: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _clock(now: datetime | Callable[[], datetime] | None) -> Callable[[], datetime]:
    if now is None:
        return lambda: datetime.now(UTC)
    if callable(now):
        return lambda: parse_timestamp(now())
    fixed = parse_timestamp(now)
    return lambda: fixed


def _run_stamp(landing: Path, run_at: datetime) -> str:
    """UTC yyyymmddTHHMMSSffffff, bumped by a microsecond if a file with that stamp exists."""
    at = run_at.astimezone(UTC)
    while True:
        stamp = at.strftime("%Y%m%dT%H%M%S%f")
        if not any(landing.glob(f"*/sync_{stamp}_*.json")):
            return stamp
        at += timedelta(microseconds=1)


def sync_quickbooks(
    settings: QuickBooksSettings,
    landing_dir: Path,
    state_dir: Path,
    *,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: datetime | Callable[[], datetime] | None = None,
    log: Callable[[str], None] | None = None,
) -> SyncResult:
    """Land new/changed records of each entity (query pages) and recent deletions (CDC)."""
    landing = Path(landing_dir) / "quickbooks"
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    clock = _clock(now)
    result = SyncResult()

    def emit(message: str) -> None:
        logger.info("%s", message)
        if log is not None:
            log(message)

    def warn(message: str) -> None:
        logger.warning("%s", message)
        result.warnings.append(message)
        if log is not None:
            log("WARNING: " + message)

    own_session = session is None
    session = session or requests.Session()
    policy = settings.retry_policy
    try:
        tokens = _Tokens(settings, session, state_dir, policy, sleep, clock, emit)
        client = _Client(settings, session, tokens, policy, sleep)
        cursors = JsonState(state_dir / CURSOR_FILE, mode=0o600)
        stamp = _run_stamp(landing, clock())

        for entity in settings.entities:
            _sync_entity(entity, settings, client, cursors, landing, stamp, result, emit)
        _sync_deletions(settings, client, cursors, landing, stamp, clock, result, emit, warn)
        result.cursors = {k: v for k, v in cursors.load().items() if isinstance(v, str)}
        emit(f"QuickBooks sync done: {sum(result.records.values())} records in "
             f"{sum(result.pages.values())} pages, {result.deletions} deletions, "
             f"{len(result.files)} files")
        return result
    finally:
        if own_session:
            session.close()


def _sync_entity(entity: str, settings: QuickBooksSettings, client: _Client, cursors: JsonState,
                 landing: Path, stamp: str, result: SyncResult, emit: Callable[[str], None]) -> None:
    folder = landing / FOLDERS[entity]
    cursor = cursors.get(entity)
    result.pages[entity] = 0
    result.records[entity] = 0
    emit(f"QuickBooks {entity}: syncing " + (f"changes since {format_cursor(cursor)}" if cursor else "everything"))
    start = 1
    while True:
        sql = build_query(entity, cursor, start, settings.page_size)
        response, body = client.get("query", {"query": sql})
        query_response = body.get("QueryResponse")
        if not isinstance(query_response, dict):
            raise ApiError(f"QuickBooks {entity} query: response has no QueryResponse object",
                           status=response.status_code)
        records = query_response.get(entity)
        if not records:
            break
        if not isinstance(records, list):
            raise ApiError(f"QuickBooks {entity} query: QueryResponse.{entity} is not a list",
                           status=response.status_code)
        page = result.pages[entity] + 1
        path = folder / landing_name(stamp, page)
        # Verbatim: the exact body QuickBooks sent (UTF-8 JSON).
        write_atomic(path, response.content.decode("utf-8"), LANDING_FILE_MODE)
        result.files.append(path)
        result.pages[entity] = page
        result.records[entity] += len(records)
        new_cursor = later_cursor(cursors.get(entity), max_last_updated(records))
        if new_cursor is not None:
            cursors.update(**{entity: new_cursor})  # only after the page is on disk
        emit(f"QuickBooks {entity}: page {page} ({len(records)} records) -> {path.name}; cursor {new_cursor}")
        if len(records) < settings.page_size:
            break
        start += len(records)


def _cdc_request(client: _Client, entities: list[str], since: str) -> tuple[dict[str, Any], list, dict[str, int]]:
    _, body = client.get("cdc", {"entities": ",".join(entities), "changedSince": since})
    deleted, counts = extract_cdc_deletions(body)
    return body, deleted, counts


def _cdc_cap_error(entity: str, since_text: str) -> QuickBooksSyncError:
    return QuickBooksSyncError(
        f"QuickBooks CDC returned {CDC_MAX_OBJECTS}+ {entity} changes since {since_text}, the API's cap "
        "per response, so some deletions may be missing: sync more often so that fewer changes pile up "
        "between runs. The CDC cursor was not advanced and no deletions file was written.")


def _sync_deletions(settings: QuickBooksSettings, client: _Client, cursors: JsonState, landing: Path,
                    stamp: str, clock: Callable[[], datetime], result: SyncResult,
                    emit: Callable[[str], None], warn: Callable[[str], None]) -> None:
    entities = [e for e in CDC_ENTITY_ORDER if e in settings.entities]
    now = clock()
    oldest = now - CDC_MAX_AGE
    stored = cursors.get(CDC_CURSOR_KEY)
    if stored is None:
        since = oldest
    else:
        since = parse_timestamp(stored)
        if since < oldest:
            warn(f"QuickBooks CDC cursor {format_cursor(since)} is older than 30 days: deletions "
                 f"before {format_cursor(oldest)} are invisible to the API; reconcile open invoices "
                 "with a full re-sync")
            since = oldest
    since_text = format_cursor(since)
    emit(f"QuickBooks deletions: CDC since {since_text}")

    body, deleted, counts = _cdc_request(client, entities, since_text)
    times = [body.get("time")]
    if sum(counts.values()) >= CDC_MAX_OBJECTS and len(entities) == 1:
        raise _cdc_cap_error(entities[0], since_text)
    if sum(counts.values()) >= CDC_MAX_OBJECTS:
        emit(f"QuickBooks CDC returned {sum(counts.values())} objects (capped at {CDC_MAX_OBJECTS}): "
             "re-querying entity by entity")
        deleted, times = [], []
        for entity in entities:
            body, part, part_counts = _cdc_request(client, [entity], since_text)
            if sum(part_counts.values()) >= CDC_MAX_OBJECTS:
                raise _cdc_cap_error(entity, since_text)
            deleted.extend(part)
            times.append(body.get("time"))
    valid_times = [t for t in times if isinstance(t, str) and t]
    if not valid_times or len(valid_times) != len(times):
        raise ApiError("QuickBooks CDC response has no time; the CDC cursor was not advanced")
    new_cursor = min(valid_times, key=parse_timestamp)

    if deleted:
        path = landing / DELETED_FOLDER / landing_name(stamp, 1)
        text = json.dumps({"QueryResponse": {"Deleted": deleted}, "time": new_cursor}, ensure_ascii=False)
        write_atomic(path, text + "\n", LANDING_FILE_MODE)
        result.files.append(path)
        result.deletions = len(deleted)
        emit(f"QuickBooks deletions: {len(deleted)} -> {path.name}")
    cursors.update(**{CDC_CURSOR_KEY: new_cursor})
