"""API connectors: fetch source records over HTTP and land them as API pages for the ingest assets.

Each connector writes the pages it fetches, verbatim and atomically, into the landing folder, and
advances its cursor only after a page is on disk. Loading those pages into raw tables is the same
ingest step that file exports go through, so API data and exported files can never disagree.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

#: Sources with an API connector, and the environment variables that configure them.
API_SOURCES: dict[str, tuple[str, ...]] = {
    "quickbooks": ("QBO_CLIENT_ID", "QBO_CLIENT_SECRET", "QBO_REFRESH_TOKEN", "QBO_REALM_ID"),
    "stripe": ("STRIPE_API_KEY",),
}


def _connector(source: str):
    """(settings class, sync function) of a source; imported lazily (requests, pydantic models)."""
    if source == "quickbooks":
        from ar_pipeline.lib.connectors.quickbooks import QuickBooksSettings, sync_quickbooks

        return QuickBooksSettings, sync_quickbooks
    if source == "stripe":
        from ar_pipeline.lib.connectors.stripe import StripeSettings, sync_stripe

        return StripeSettings, sync_stripe
    raise ValueError(f"no API connector for source {source!r}; known: {sorted(API_SOURCES)}")


def is_configured(source: str, env: Mapping[str, str] | None = None) -> bool:
    settings_cls, _ = _connector(source)
    return settings_cls.is_configured(os.environ if env is None else env)


def run_sync(
    source: str,
    landing_dir: Path,
    state_dir: Path,
    log: Callable[[str], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run one source's API sync into the landing folder; returns a JSON-able summary.

    Raises the connector's ConnectorConfigError (naming the missing variables) when not configured.
    """
    settings_cls, sync = _connector(source)
    settings = settings_cls.from_env(os.environ if env is None else env)
    result = sync(settings, landing_dir, state_dir, log=log)
    summary = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else dict(result)
    # JSON-able (paths as strings) so it can go into Dagster metadata and be printed.
    return json.loads(json.dumps(summary, default=str))


def files_landed(summary: Mapping[str, Any]) -> list[str]:
    """The page files a sync wrote, from either connector's summary."""
    files = summary.get("files_written", summary.get("files", []))
    return list(files) if isinstance(files, list) else []
