"""Shared test helpers: landing folders built from the real public fixtures in tests/fixtures."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
INGEST_CONFIGS = PROJECT_ROOT / "ingest_configs"

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
# dbt runs as a subprocess by name; make it this interpreter's dbt.
_bin = str(Path(sys.executable).parent)
if _bin not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")

QBO_FOLDERS = {"Invoice": "invoice", "Payment": "payment", "CreditMemo": "creditmemo", "Customer": "customer"}
QBO_STREAMS = {"invoices": "Invoice", "payments": "Payment", "credit_memos": "CreditMemo", "customers": "Customer"}
STRIPE_FOLDERS = {
    "invoice": "invoices", "customer": "customers", "invoice_payment": "invoice_payments",
    "charge": "charges", "refund": "refunds", "dispute": "disputes", "credit_note": "credit_notes",
}


def qbo_records() -> dict[str, list[dict]]:
    """Real QuickBooks Online sandbox records (Airbyte's expected records), by entity."""
    lines = (FIXTURES / "quickbooks" / "airbyte_source_quickbooks_expected_records_ar_subset.jsonl").read_text()
    out: dict[str, list[dict]] = {e: [] for e in QBO_FOLDERS}
    for line in lines.splitlines():
        rec = json.loads(line)
        if rec["stream"] in QBO_STREAMS:
            out[QBO_STREAMS[rec["stream"]]].append(rec["data"])
    return out


def write_qbo_page(landing: Path, entity: str, records: list[dict], page: int = 1) -> Path:
    folder = landing / "quickbooks" / QBO_FOLDERS[entity]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"page_{page:05d}.json"
    body = {"QueryResponse": {entity: records, "startPosition": 1, "maxResults": len(records)},
            "time": "2023-02-18T13:16:17-08:00"}
    path.write_text(json.dumps(body))
    return path


def write_stripe_page(landing: Path, obj: str, records: list[dict], page: int = 1) -> Path:
    folder = landing / "stripe" / STRIPE_FOLDERS[obj]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"page_{page:05d}.json"
    path.write_text(json.dumps({"object": "list", "url": f"/v1/{STRIPE_FOLDERS[obj]}",
                                "has_more": False, "data": records}))
    return path


def stripe_objects(version: str = "latest") -> dict[str, dict]:
    name = "ar_objects_latest.json" if version == "latest" else "ar_objects_2025-02-14_pre_basil.json"
    return json.loads((FIXTURES / "stripe" / name).read_text())["resources"]


@pytest.fixture
def fixture_landing(tmp_path: Path) -> Path:
    """A landing folder holding every real fixture record in the API page envelopes."""
    landing = tmp_path / "landing"
    for entity, records in qbo_records().items():
        write_qbo_page(landing, entity, records)
    objects = stripe_objects()
    # The OpenAPI sample's invoice_payment carries the placeholder currency "currency", which the
    # loader rightly quarantines (see test_ingest); give it a real code here.
    objects["invoice_payment"] = dict(objects["invoice_payment"], currency="usd")
    for obj in STRIPE_FOLDERS:
        if obj in objects:
            write_stripe_page(landing, obj, [objects[obj]])
    return landing


@pytest.fixture(scope="session", autouse=True)
def _outputs_outside_the_repo(tmp_path_factory: pytest.TempPathFactory):
    """Runs publish read-only copies and keep connector state: never into the repo's data/ folder."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AR_PUBLISH_DIR", str(tmp_path_factory.mktemp("published")))
    mp.setenv("AR_STATE_DIR", str(tmp_path_factory.mktemp("state")))
    yield
    mp.undo()
