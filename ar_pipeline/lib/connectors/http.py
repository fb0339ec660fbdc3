"""HTTP with retries for the API connectors: backoff that honours Retry-After, secrets kept out of errors.

Both QuickBooks and Stripe throttle with HTTP 429 (QuickBooks also with code 3001 inside a 403 body),
fail transiently with 5xx and time out. `send` retries those with capped exponential backoff and
raises `ApiError` for everything else. Error messages carry the method, the URL path, the status and
the API's own error text — never request headers, tokens or query strings with credentials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class ApiError(RuntimeError):
    """A request failed for good. `status` is the HTTP status (None for network errors)."""

    def __init__(self, message: str, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    timeout: float = 60.0

    def backoff(self, attempt: int) -> float:
        """Delay before retry number `attempt` (1-based): base × 2^(attempt-1), capped."""
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1))


def retry_after_seconds(response: requests.Response, now: datetime | None = None) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or an HTTP date), if any."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def safe_url(url: str) -> str:
    """The URL without its query string (which may carry cursors or, for some APIs, credentials)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    should_retry: Callable[[requests.Response], bool] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs,
) -> requests.Response:
    """Send a request, retrying throttling, 5xx and timeouts; returns the first 2xx-4xx response
    that is not retryable (callers decide what a 4xx means)."""
    where = f"{method} {safe_url(url)}"
    for attempt in range(1, policy.max_attempts + 1):
        try:
            response = session.request(method, url, timeout=policy.timeout, **kwargs)
        except (requests.Timeout, requests.ConnectionError) as exc:
            if attempt == policy.max_attempts:
                raise ApiError(f"{where}: no answer after {attempt} attempts ({type(exc).__name__})",
                               retryable=True) from None
            delay = policy.backoff(attempt)
            log.warning("%s: %s, retrying in %.1fs (attempt %d/%d)", where, type(exc).__name__, delay,
                        attempt, policy.max_attempts)
            sleep(delay)
            continue
        retry = response.status_code in RETRY_STATUSES
        if should_retry is not None:
            retry = should_retry(response)
        if not retry:
            return response
        if attempt == policy.max_attempts:
            return response
        delay = retry_after_seconds(response)
        delay = policy.backoff(attempt) if delay is None else min(delay, policy.max_delay * 5)
        log.warning("%s: HTTP %d, retrying in %.1fs (attempt %d/%d)", where, response.status_code, delay,
                    attempt, policy.max_attempts)
        sleep(delay)
    raise AssertionError("unreachable")
