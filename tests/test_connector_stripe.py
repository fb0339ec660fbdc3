"""Stripe connector against a fake Stripe (pytest-httpserver) serving the real OpenAPI fixture objects."""

from __future__ import annotations

import copy
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import requests
from pydantic import SecretStr, ValidationError
from werkzeug import Request, Response

from ar_pipeline.lib.connectors.http import ApiError
from ar_pipeline.lib.connectors.state import JsonState
from ar_pipeline.lib.connectors.stripe import (
    EVENT_TYPES,
    MAX_EVENT_TYPES,
    OBJECTS,
    ConnectorConfigError,
    StripeApiError,
    StripeSettings,
    api_version_date,
    chunks,
    event_object_ref,
    event_types,
    events_cursor_expired,
    is_deletion_event,
    list_params,
    objects_to_sync,
    should_retry,
    sync_stripe,
    uses_invoice_payments,
)
from ar_pipeline.lib.ingest import load_entity
from ar_pipeline.lib.ingest_config import load_source_spec

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
STRIPE_YAML = Path(__file__).resolve().parents[1] / "ingest_configs" / "stripe.yaml"
KEY = "sk_test_51SECRETkeyNEVERtoBEseen0123456789"
T0 = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
FOLDER_OF = {"customer": "customers", "invoice": "invoices", "invoice_payment": "invoice_payments",
             "charge": "charges", "refund": "refunds", "dispute": "disputes", "credit_note": "credit_notes",
             "balance_transaction": "balance_transactions", "payout": "payouts"}
PREFIX = {"customer": "cus", "invoice": "in", "invoice_payment": "inpay", "charge": "ch", "refund": "re",
          "dispute": "dp", "credit_note": "cn", "balance_transaction": "txn", "payout": "po"}


def resources(version: str = "latest") -> dict[str, dict]:
    name = "ar_objects_latest.json" if version == "latest" else "ar_objects_2025-02-14_pre_basil.json"
    return json.loads((FIXTURES / name).read_text())["resources"]


def make(kind: str, n: int, created: int, version: str = "latest", **changes) -> dict:
    """A copy of the real fixture object with its own id and created time."""
    obj = copy.deepcopy(resources(version)[kind])
    obj["id"] = f"{PREFIX[kind]}_{n:04d}"
    obj["created"] = created
    obj.update(changes)
    return obj


def ts(when: datetime) -> int:
    return int(when.timestamp())


def event(n: int, etype: str, obj: dict, created: int, api_version: str = "2024-06-20") -> dict:
    evt = copy.deepcopy(resources()["event"])
    evt.update(id=f"evt_{n:04d}", type=etype, created=created, api_version=api_version)
    evt["data"] = {"object": copy.deepcopy(obj), "previous_attributes": {}}
    return evt


class FakeStripe:
    """Enough of the Stripe API: list paging (newest first), created/status filters, retrieve, events."""

    def __init__(self, httpserver) -> None:
        self.server = httpserver
        self.store: dict[str, list[dict]] = {f: [] for f in OBJECTS}
        self.events: list[dict] = []
        self.deleted: dict[str, dict] = {}
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        self.failures: list[tuple] = []  # (predicate(path, args), Response)
        httpserver.expect_request(re.compile(r"^/v1/.*")).respond_with_handler(self.handle)

    @property
    def base(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def add(self, *objs: dict) -> None:
        for obj in objs:
            folder = FOLDER_OF[obj["object"]]
            self.store[folder] = [o for o in self.store[folder] if o["id"] != obj["id"]] + [obj]

    def fail(self, predicate, status: int, body: dict | None = None, headers: dict | None = None,
             times: int = 1) -> None:
        for _ in range(times):
            self.failures.append((predicate, status, body or {}, headers or {}))

    def calls(self, path: str) -> list[dict[str, list[str]]]:
        return [args for p, args, _h in self.requests if p == path]

    def handle(self, request: Request) -> Response:
        args = {k: request.args.getlist(k) for k in request.args}
        self.requests.append((request.path, args, dict(request.headers)))
        for i, (pred, status, body, headers) in enumerate(self.failures):
            if pred(request.path, args):
                del self.failures[i]
                return self.json(body, status, headers)
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return self.json({"error": {"type": "invalid_request_error", "message": "Invalid API Key"}}, 401)
        parts = request.path.strip("/").split("/")
        if len(parts) == 2 and parts[1] == "events":
            return self.list_response(request.path, self.events, args, types=args.get("types[]"))
        if len(parts) == 2 and parts[1] in self.store:
            return self.list_response(request.path, self.store[parts[1]], args)
        if len(parts) == 3 and parts[1] in self.store:
            if parts[2] in self.deleted:
                return self.json(self.deleted[parts[2]])
            for obj in self.store[parts[1]]:
                if obj["id"] == parts[2]:
                    return self.json(obj)
            return self.json({"error": {"type": "invalid_request_error", "code": "resource_missing",
                                        "message": f"No such object: '{parts[2]}'", "param": "id"}}, 404)
        return self.json({"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}}, 404)

    @staticmethod
    def json(body: dict, status: int = 200, headers: dict | None = None) -> Response:
        return Response(json.dumps(body), status=status, headers=headers or {}, content_type="application/json")

    def list_response(self, path: str, items: list[dict], args: dict, types: list[str] | None = None) -> Response:
        one = {k: v[0] for k, v in args.items()}
        rows = sorted(items, key=lambda o: (o["created"], o["id"]), reverse=True)
        if "created[gte]" in one:
            rows = [o for o in rows if o["created"] >= int(one["created[gte]"])]
        if "created[lte]" in one:
            rows = [o for o in rows if o["created"] <= int(one["created[lte]"])]
        if "status" in one:
            rows = [o for o in rows if o.get("status") == one["status"]]
        if types is not None:
            rows = [o for o in rows if o["type"] in types]
        if "starting_after" in one:
            ids = [o["id"] for o in rows]
            rows = rows[ids.index(one["starting_after"]) + 1:]
        limit = int(one.get("limit", 10))
        return self.json({"object": "list", "url": path, "has_more": len(rows) > limit, "data": rows[:limit]})


@pytest.fixture
def fake(httpserver) -> FakeStripe:
    return FakeStripe(httpserver)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def settings(fake: FakeStripe, **kw) -> StripeSettings:
    return StripeSettings(api_base=fake.base, api_key=SecretStr(KEY), **kw)


def run(fake: FakeStripe, tmp_path: Path, now: datetime = T0, sleep=None, session=None, log=None, **kw):
    return sync_stripe(settings(fake, **kw), tmp_path / "landing", tmp_path / "state", session=session,
                       sleep=sleep if sleep is not None else Sleeps(), now=now, log=log)


def landed(tmp_path: Path, folder: str) -> list[Path]:
    return sorted((tmp_path / "landing" / "stripe" / folder).glob("*.json"))


def records(tmp_path: Path, folder: str) -> list[dict]:
    return [r for p in landed(tmp_path, folder) for r in json.loads(p.read_text())["data"]]


def cursor_state(tmp_path: Path) -> dict:
    return JsonState(tmp_path / "state" / "stripe_cursor.json").load()


def invoices(n: int, start: int = 1, created0: int | None = None, **changes) -> list[dict]:
    created0 = created0 if created0 is not None else ts(T0) - 10_000
    return [make("invoice", start + i, created0 + i * 10, **changes) for i in range(n)]


# ---------------------------------------------------------------- pure helpers


@pytest.mark.parametrize("version,expected", [
    ("2025-03-31.basil", True), ("2025-04-30.basil", True), ("2026-01-28.clover", True),
    ("2025-03-31", True), ("2025-02-24.acacia", False), ("2024-06-20", False), ("2020-08-27", False),
])
def test_uses_invoice_payments(version, expected):
    assert uses_invoice_payments(version) is expected


def test_api_version_date_rejects_garbage():
    assert api_version_date("2025-03-31.basil") == "2025-03-31"
    with pytest.raises(ValueError):
        api_version_date("basil")
    with pytest.raises(ValueError):
        api_version_date("2025-13-45")


def test_objects_to_sync_skips_invoice_payments_before_basil():
    assert objects_to_sync(OBJECTS, "2024-06-20") == ([o for o in OBJECTS if o != "invoice_payments"],
                                                      ["invoice_payments"])
    assert objects_to_sync(OBJECTS, "2025-03-31.basil") == (list(OBJECTS), [])


def test_list_params():
    assert list_params(100) == [("limit", "100")]
    assert list_params(50, created_gte=10, created_lte=20, starting_after="in_1",
                       extra=[("types[]", "a"), ("types[]", "b")]) == [
        ("limit", "50"), ("created[gte]", "10"), ("created[lte]", "20"), ("types[]", "a"), ("types[]", "b"),
        ("starting_after", "in_1")]


def test_event_object_ref_and_deletion():
    inv = make("invoice", 1, 1)
    assert event_object_ref(event(1, "invoice.paid", inv, 1)) == ("invoice", "in_0001")
    assert event_object_ref(event(2, "charge.dispute.closed", {"id": "dp_9"}, 1)) == ("dispute", "dp_9")
    assert event_object_ref(event(3, "plan.created", {"id": "plan_1", "object": "plan"}, 1)) is None
    assert event_object_ref(event(4, "invoice.paid", {"object": "invoice"}, 1)) is None
    assert is_deletion_event({"type": "invoice.deleted"}) and not is_deletion_event({"type": "invoice.voided"})


def test_event_types_by_version_and_chunks():
    basil = event_types(OBJECTS, "2025-03-31.basil")
    old = event_types(OBJECTS, "2024-06-20")
    assert "invoice_payment.paid" in basil and "invoice_payment.paid" not in old
    assert set(basil) == {t for ts_ in EVENT_TYPES.values() for t in ts_}
    assert event_types(("invoices",), "2025-03-31.basil") == list(EVENT_TYPES["invoices"])
    groups = list(chunks(basil, MAX_EVENT_TYPES))
    assert len(groups) == 2 and all(len(g) <= 20 for g in groups) and sum(groups, []) == basil


@pytest.mark.parametrize("status,headers,code,expected", [
    (429, {}, None, True), (500, {}, None, True), (503, {}, None, True), (400, {}, None, False),
    (404, {}, None, False), (409, {}, None, False), (400, {}, "rate_limit", True),
    (500, {"Stripe-Should-Retry": "false"}, None, False), (429, {"Stripe-Should-Retry": "false"}, None, False),
    (409, {"Stripe-Should-Retry": "true"}, "lock_timeout", True), (200, {}, None, False),
])
def test_should_retry(status, headers, code, expected):
    assert should_retry(status, headers, code) is expected


def test_events_cursor_expired():
    now = ts(T0)
    assert events_cursor_expired(now - 31 * 86400, now)
    assert not events_cursor_expired(now - 29 * 86400, now)


def test_settings_from_env_and_validation():
    assert not StripeSettings.is_configured({})
    assert not StripeSettings.is_configured({"STRIPE_API_KEY": "  "})
    assert StripeSettings.is_configured({"STRIPE_API_KEY": KEY})
    with pytest.raises(ConnectorConfigError, match="STRIPE_API_KEY"):
        StripeSettings.from_env({})
    s = StripeSettings.from_env({"STRIPE_API_KEY": KEY, "STRIPE_API_BASE": "http://localhost:1/",
                                 "STRIPE_API_VERSION": "2024-06-20"})
    assert (s.api_base, s.api_version, s.page_size, s.objects) == ("http://localhost:1", "2024-06-20", 100, OBJECTS)
    default = StripeSettings.from_env({"STRIPE_API_KEY": KEY})
    assert (default.api_base, default.api_version) == ("https://api.stripe.com", "2025-03-31.basil")
    assert s.headers()["Authorization"] == f"Bearer {KEY}" and s.headers()["Stripe-Version"] == "2024-06-20"
    with pytest.raises(ConnectorConfigError) as bad:
        StripeSettings.from_env({"STRIPE_API_KEY": KEY, "STRIPE_API_VERSION": "basil"})
    assert KEY not in str(bad.value)
    for page_size in (0, 101):
        with pytest.raises(ValidationError):
            StripeSettings(api_key=SecretStr(KEY), page_size=page_size)
    with pytest.raises(ValidationError):
        StripeSettings(api_key=SecretStr(KEY), objects=("invoices", "transfers"))
    with pytest.raises(ValidationError):  # frozen
        s.page_size = 5  # type: ignore[misc]
    assert KEY not in repr(s) and KEY not in str(s)


# ---------------------------------------------------------------- listing and cursors


def test_paging_three_pages_exact_query_and_headers(fake, tmp_path):
    fake.add(*invoices(5))
    result = run(fake, tmp_path, objects=("invoices",), page_size=2)
    calls = fake.calls("/v1/invoices")
    assert calls == [
        {"limit": ["2"]},
        {"limit": ["2"], "created[lte]": [str(ts(T0))], "starting_after": ["in_0004"]},
        {"limit": ["2"], "created[lte]": [str(ts(T0))], "starting_after": ["in_0002"]},
    ]
    for _path, _args, headers in fake.requests:
        assert headers["Stripe-Version"] == "2025-03-31.basil"
        assert headers["Authorization"] == f"Bearer {KEY}"
    files = landed(tmp_path, "invoices")
    assert [p.name for p in files] == sorted(p.name for p in files)
    assert len(files) == 3 and all(re.fullmatch(r"sync_\d{8}T\d{12}_\d{5}\.json", p.name) for p in files)
    assert [r["id"] for r in records(tmp_path, "invoices")] == ["in_0005", "in_0004", "in_0003", "in_0002",
                                                                 "in_0001"]
    # pages are landed verbatim (the server's exact bytes)
    assert json.loads(files[0].read_text())["has_more"] is True
    assert result.pages["invoices"] == 3 and result.records["invoices"] == 5
    state = cursor_state(tmp_path)
    assert state["invoices"] == {"created_gte": ts(T0) - 300}
    assert "in_progress" not in state["invoices"]


def test_default_page_size_is_100(fake, tmp_path):
    fake.add(*invoices(3))
    run(fake, tmp_path, objects=("invoices",))
    assert fake.calls("/v1/invoices") == [{"limit": ["100"]}]


def test_balance_transactions_and_payouts_are_paged_and_payout_updates_refetched(fake, tmp_path):
    base = ts(T0) - 10_000
    fake.add(*[make("balance_transaction", i, base + i, source=f"ch_{i:04d}") for i in range(1, 6)],
             *[make("payout", i, base + 100 + i, status="in_transit") for i in range(1, 4)])
    result = run(fake, tmp_path, page_size=2, objects=("balance_transactions", "payouts"))
    assert result.records == {"balance_transactions": 5, "payouts": 3}
    assert len(landed(tmp_path, "balance_transactions")) == 3 and len(landed(tmp_path, "payouts")) == 2
    assert [a.get("starting_after") for a in fake.calls("/v1/balance_transactions")] == [None, ["txn_0004"],
                                                                                         ["txn_0002"]]
    assert sorted(r["id"] for r in records(tmp_path, "balance_transactions")) == [f"txn_{i:04d}" for i in range(1, 6)]
    # a payout that arrives changes status: the payout.paid event re-fetches it (balance transactions never change)
    paid = dict(fake.store["payouts"][0], status="paid")
    fake.add(paid)
    fake.events.append(event(1, "payout.paid", paid, ts(T0) + 5))
    again = run(fake, tmp_path, now=T0 + timedelta(hours=1), page_size=2, objects=("balance_transactions", "payouts"))
    assert again.refetched == {"payouts": 1}
    assert records(tmp_path, "payouts")[-1] == paid
    assert "payout.paid" in sum((a["types[]"] for a in fake.calls("/v1/events")), [])


def test_customers_are_listed_with_their_tax_ids_expanded(fake, tmp_path):
    fake.add(make("customer", 1, ts(T0) - 50), make("customer", 2, ts(T0) - 40))
    run(fake, tmp_path, objects=("customers",), page_size=1)
    calls = fake.calls("/v1/customers")
    assert len(calls) == 2 and all(c["expand[]"] == ["data.tax_ids"] for c in calls)
    assert calls[1]["starting_after"] == ["cus_0002"]


def test_incremental_second_sync_sends_created_gte(fake, tmp_path):
    fake.add(*invoices(2))
    run(fake, tmp_path, objects=("invoices",))
    new = make("invoice", 50, ts(T0) + 100)
    fake.add(new)
    later = T0 + timedelta(hours=1)
    result = run(fake, tmp_path, now=later, objects=("invoices",))
    assert fake.calls("/v1/invoices")[-1] == {"limit": ["100"], "created[gte]": [str(ts(T0) - 300)]}
    assert result.records["invoices"] == 1
    assert cursor_state(tmp_path)["invoices"]["created_gte"] == ts(later) - 300
    # the second sync's files sort after the first's
    names = [p.name for p in landed(tmp_path, "invoices")]
    assert json.loads(landed(tmp_path, "invoices")[-1].read_text())["data"][0]["id"] == "in_0050"
    assert names == sorted(names)


def test_interrupted_window_resumes_at_stored_page(fake, tmp_path):
    fake.add(*invoices(2))
    run(fake, tmp_path, objects=("invoices",), page_size=2)  # cursor = T0 - 300
    fake.add(*invoices(5, start=10, created0=ts(T0) + 10))
    t1 = T0 + timedelta(hours=1)
    fake.fail(lambda path, args: path == "/v1/invoices" and args.get("starting_after") == ["in_0011"], 400,
              {"error": {"type": "invalid_request_error", "code": "simulated", "message": "boom"}})
    with pytest.raises(ApiError):
        run(fake, tmp_path, now=t1, objects=("invoices",), page_size=2)
    state = cursor_state(tmp_path)["invoices"]
    assert state["created_gte"] == ts(T0) - 300  # window not complete: cursor unchanged
    assert state["in_progress"] == {"window_start": ts(T0) - 300, "window_end": ts(t1),
                                    "starting_after": "in_0011"}
    committed = [r["id"] for r in records(tmp_path, "invoices")]
    assert committed[-4:] == ["in_0014", "in_0013", "in_0012", "in_0011"]  # two committed pages
    n_before = len(fake.requests)
    t2 = T0 + timedelta(hours=2)
    result = run(fake, tmp_path, now=t2, objects=("invoices",), page_size=2)
    resumed = [args for p, args, _ in fake.requests[n_before:] if p == "/v1/invoices"]
    assert resumed == [{"limit": ["2"], "created[gte]": [str(ts(T0) - 300)], "created[lte]": [str(ts(t1))],
                        "starting_after": ["in_0011"]}]
    assert result.resumed == ["invoices"] and result.records["invoices"] == 1
    assert records(tmp_path, "invoices")[-1]["id"] == "in_0010"
    assert cursor_state(tmp_path)["invoices"] == {"created_gte": ts(t1) - 300}
    # every invoice landed exactly once across the interrupted and the resumed run (no refetch)
    new_ids = [r["id"] for r in records(tmp_path, "invoices") if r["id"] >= "in_0010"]
    assert sorted(new_ids) == [f"in_{i:04d}" for i in range(10, 15)]


# ---------------------------------------------------------------- events


def test_events_refetch_updated_invoice(fake, tmp_path):
    inv = make("invoice", 1, ts(T0) - 1000, status="open", amount_remaining=1000, amount_paid=0)
    fake.add(inv)
    run(fake, tmp_path, objects=("invoices",))
    events_cursor = cursor_state(tmp_path)["events"]["created_gte"]
    assert events_cursor == ts(T0) - 300
    stale = copy.deepcopy(inv) | {"status": "paid", "amount_remaining": 0, "amount_paid": 1000,
                                  "description": "FROZEN EVENT SNAPSHOT"}
    paid = copy.deepcopy(inv) | {"status": "paid", "amount_remaining": 0, "amount_paid": 1000}
    fake.add(paid)
    fake.events.append(event(1, "invoice.paid", stale, ts(T0) + 60))
    fake.events.append(event(2, "invoice.payment_succeeded", stale, ts(T0) + 61))
    fake.events.append(event(3, "invoice.created", stale, ts(T0) - 5000))  # before the cursor
    later = T0 + timedelta(hours=1)
    result = run(fake, tmp_path, now=later, objects=("invoices",))
    ev_calls = fake.calls("/v1/events")
    assert ev_calls[-1] == {"limit": ["100"], "created[gte]": [str(events_cursor)],
                            "types[]": list(EVENT_TYPES["invoices"])}
    assert fake.calls("/v1/invoices/in_0001")  # re-fetched at our API version
    assert result.refetched == {"invoices": 1} and result.events == 2
    newest = landed(tmp_path, "invoices")[-1]
    body = json.loads(newest.read_text())
    assert body == {"object": "list", "url": "/v1/invoices", "has_more": False, "data": [paid]}
    assert all("FROZEN EVENT SNAPSHOT" not in p.read_text() for p in landed(tmp_path, "invoices"))
    assert cursor_state(tmp_path)["events"]["created_gte"] == ts(later) - 300


def test_event_types_split_into_groups_of_20(fake, tmp_path):
    run(fake, tmp_path)
    ev = fake.calls("/v1/events")
    assert len(ev) == 2 and all(len(a["types[]"]) <= 20 for a in ev)
    assert sum((a["types[]"] for a in ev), []) == event_types(OBJECTS, "2025-03-31.basil")


def test_deletions_land_in_deleted_folder(fake, tmp_path):
    run(fake, tmp_path)
    deleted_inv = resources()["deleted_invoice"]
    fake.events.append(event(1, "invoice.deleted", make("invoice", 7, ts(T0) - 50, id=deleted_inv["id"]),
                             ts(T0) + 10))
    # a customer event whose re-fetch answers {"deleted": true}
    gone_customer = resources()["deleted_customer"]
    fake.deleted[gone_customer["id"]] = gone_customer
    fake.events.append(event(2, "customer.updated", make("customer", 1, 5, id=gone_customer["id"]), ts(T0) + 11))
    # an invoice event whose re-fetch answers 404 resource_missing
    fake.events.append(event(3, "invoice.updated", make("invoice", 8, 5), ts(T0) + 12))
    result = run(fake, tmp_path, now=T0 + timedelta(hours=1))
    entries = records(tmp_path, "deleted")
    assert sorted(entries, key=lambda e: e["id"]) == sorted([
        {"id": deleted_inv["id"], "object": "invoice", "deleted": True},
        {"id": gone_customer["id"], "object": "customer", "deleted": True},
        {"id": "in_0008", "object": "invoice", "deleted": True},
    ], key=lambda e: e["id"])
    assert result.deletions == 3
    assert not fake.calls(f"/v1/invoices/{deleted_inv['id']}")  # *.deleted needs no re-fetch
    body = json.loads(landed(tmp_path, "deleted")[0].read_text())
    assert body["object"] == "list" and body["has_more"] is False


def test_old_events_cursor_relists_open_invoices(fake, tmp_path, caplog):
    fake.add(*invoices(3, status="open"), *invoices(2, start=20, status="paid"))
    state = JsonState(tmp_path / "state" / "stripe_cursor.json")
    state.update(invoices={"created_gte": ts(T0) - 40 * 86400}, events={"created_gte": ts(T0) - 31 * 86400})
    with caplog.at_level(logging.WARNING):
        result = run(fake, tmp_path, objects=("invoices",), page_size=2)
    assert "30-day" in caplog.text and "open invoices" in caplog.text
    open_calls = [a for a in fake.calls("/v1/invoices") if a.get("status") == ["open"]]
    assert open_calls == [{"limit": ["2"], "status": ["open"]},
                          {"limit": ["2"], "status": ["open"], "starting_after": ["in_0002"]}]
    assert result.open_invoices_relisted and result.open_invoices == 3
    assert cursor_state(tmp_path)["events"]["created_gte"] == ts(T0) - 300


def test_fresh_events_cursor_does_not_relist(fake, tmp_path):
    fake.add(*invoices(2, status="open"))
    run(fake, tmp_path, objects=("invoices",))
    run(fake, tmp_path, now=T0 + timedelta(days=29), objects=("invoices",))
    assert not [a for a in fake.calls("/v1/invoices") if "status" in a]


# ---------------------------------------------------------------- API versions


def test_pre_basil_skips_invoice_payments_and_lands_invoice_charge(fake, tmp_path, caplog):
    charge = make("charge", 1, ts(T0) - 500, version="pre_basil")
    inv = make("invoice", 1, ts(T0) - 600, version="pre_basil", status="paid", charge=charge["id"], paid=True)
    charge["invoice"] = inv["id"]
    fake.add(inv, charge, make("customer", 1, ts(T0) - 700, version="pre_basil"))
    with caplog.at_level(logging.INFO):
        result = run(fake, tmp_path, api_version="2024-06-20")
    assert "skipping invoice_payments" in caplog.text
    assert result.skipped_objects == ["invoice_payments"]
    assert not fake.calls("/v1/invoice_payments")
    assert all(h["Stripe-Version"] == "2024-06-20" for _p, _a, h in fake.requests)
    assert all("invoice_payment.paid" not in a["types[]"] for a in fake.calls("/v1/events"))
    assert "invoice_payments" not in cursor_state(tmp_path)
    assert records(tmp_path, "invoices")[0]["charge"] == charge["id"]
    conn = duckdb.connect(str(tmp_path / "db.duckdb"))
    source = load_source_spec(STRIPE_YAML)
    ent = {e.table: e for e in source.entities}
    res = load_entity(conn, source, ent["raw_invoices"], tmp_path / "landing")
    assert res.rows_quarantined == 0
    assert conn.execute("SELECT charge FROM raw_stripe.raw_invoices").fetchall() == [(charge["id"],)]
    load_entity(conn, source, ent["raw_charges"], tmp_path / "landing")
    assert conn.execute("SELECT invoice FROM raw_stripe.raw_charges").fetchall() == [(inv["id"],)]


# ---------------------------------------------------------------- errors and retries


def is_list(path):
    return lambda p, a: p == path


def test_429_honours_retry_after(fake, tmp_path):
    fake.add(*invoices(1))
    fake.fail(is_list("/v1/invoices"), 429, {"error": {"type": "invalid_request_error", "code": "rate_limit",
                                                       "message": "Too many requests"}}, {"Retry-After": "7"})
    sleeps = Sleeps()
    result = run(fake, tmp_path, sleep=sleeps, objects=("invoices",))
    assert sleeps == [7.0] and result.records["invoices"] == 1
    assert len(fake.calls("/v1/invoices")) == 2


def test_500_then_success_backs_off(fake, tmp_path):
    fake.add(*invoices(1))
    fake.fail(is_list("/v1/invoices"), 500, {"error": {"type": "api_error", "message": "oops"}}, times=2)
    sleeps = Sleeps()
    result = run(fake, tmp_path, sleep=sleeps, objects=("invoices",))
    assert sleeps == [1.0, 2.0] and result.records["invoices"] == 1


def test_should_retry_false_on_500_does_not_retry(fake, tmp_path):
    fake.add(*invoices(1))
    fake.fail(is_list("/v1/invoices"), 500, {"error": {"type": "api_error", "message": "do not retry"}},
              {"Stripe-Should-Retry": "false"})
    sleeps = Sleeps()
    with pytest.raises(ApiError) as err:
        run(fake, tmp_path, sleep=sleeps, objects=("invoices",))
    assert err.value.status == 500 and "do not retry" in str(err.value)
    assert sleeps == [] and len(fake.calls("/v1/invoices")) == 1
    assert not landed(tmp_path, "invoices")


def test_should_retry_true_on_409_lock_timeout_retries(fake, tmp_path):
    fake.add(*invoices(1))
    fake.fail(is_list("/v1/invoices"), 409, {"error": {"type": "invalid_request_error", "code": "lock_timeout",
                                                       "message": "locked"}}, {"Stripe-Should-Retry": "true"})
    sleeps = Sleeps()
    result = run(fake, tmp_path, sleep=sleeps, objects=("invoices",))
    assert sleeps == [1.0] and result.records["invoices"] == 1


def test_error_body_surfaced_without_retry(fake, tmp_path):
    fake.fail(is_list("/v1/customers"), 400, {"error": {
        "type": "invalid_request_error", "code": "parameter_unknown",
        "message": "Received unknown parameter: foo", "param": "foo"}}, {"Request-Id": "req_123"})
    sleeps = Sleeps()
    with pytest.raises(StripeApiError) as err:
        run(fake, tmp_path, sleep=sleeps)
    text = str(err.value)
    for part in ("GET", "/v1/customers", "HTTP 400", "invalid_request_error", "parameter_unknown",
                 "Received unknown parameter: foo", "param=foo", "req_123"):
        assert part in text
    assert "limit=" not in text  # no query string in errors
    assert (err.value.status, err.value.error_type, err.value.code, err.value.param) == (
        400, "invalid_request_error", "parameter_unknown", "foo")
    assert sleeps == []


class TimeoutOnce(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.timeouts = 0

    def request(self, method, url, *args, **kwargs):
        if self.timeouts == 0:
            self.timeouts += 1
            raise requests.Timeout(f"read timed out ({url})")
        return super().request(method, url, *args, **kwargs)


class AlwaysTimeout(requests.Session):
    def request(self, method, url, *args, **kwargs):
        raise requests.Timeout(f"timed out with {KEY}")


def test_timeout_then_success(fake, tmp_path):
    fake.add(*invoices(2))
    sleeps = Sleeps()
    session = TimeoutOnce()
    result = run(fake, tmp_path, sleep=sleeps, session=session, objects=("invoices",))
    assert session.timeouts == 1 and sleeps == [1.0] and result.records["invoices"] == 2


# ---------------------------------------------------------------- the landing files load


def test_landed_files_load_with_zero_quarantined(fake, tmp_path):
    base = ts(T0) - 10_000
    fake.add(
        make("customer", 1, base), make("customer", 2, base + 1),
        *invoices(3, created0=base + 10),
        make("invoice_payment", 1, base + 20, invoice="in_0001", currency="usd"),  # sample says "currency"
        make("charge", 1, base + 30), make("refund", 1, base + 40, charge="ch_0001"),
        make("dispute", 1, base + 50, charge="ch_0001"), make("credit_note", 1, base + 60, invoice="in_0001"),
        make("balance_transaction", 1, base + 70, source="ch_0001"), make("payout", 1, base + 80),
    )
    run(fake, tmp_path, page_size=2)
    fake.events.append(event(1, "invoice.deleted", resources()["deleted_invoice"], ts(T0) + 1))
    fake.events.append(event(2, "invoice.voided", fake.store["invoices"][0], ts(T0) + 2))
    fake.events.append(event(3, "charge.dispute.updated", fake.store["disputes"][0], ts(T0) + 3))
    result = run(fake, tmp_path, now=T0 + timedelta(hours=1), page_size=2)
    assert result.refetched == {"invoices": 1, "disputes": 1} and result.deletions == 1

    source = load_source_spec(STRIPE_YAML)
    conn = duckdb.connect(str(tmp_path / "ar.duckdb"))
    expected = {"raw_customers": 2, "raw_invoices": 3, "raw_invoice_payments": 1, "raw_charges": 1,
                "raw_refunds": 1, "raw_disputes": 1, "raw_credit_notes": 1, "raw_deleted_objects": 1,
                "raw_balance_transactions": 1, "raw_payouts": 1}
    for entity in source.entities:
        res = load_entity(conn, source, entity, tmp_path / "landing")
        assert res.rows_quarantined == 0, (entity.table, res.quarantine_samples)
        assert res.reconciles and res.files_seen > 0
        distinct = conn.execute(f"SELECT count(DISTINCT id) FROM raw_stripe.{entity.table}").fetchone()[0]
        assert distinct == expected[entity.table], entity.table


# ---------------------------------------------------------------- secrets


def test_api_key_never_leaks(fake, tmp_path, caplog):
    fake.add(*invoices(2))
    caplog.set_level(logging.DEBUG)
    errors = []
    result = run(fake, tmp_path, objects=("invoices",), log=logging.getLogger("test.stripe"))
    fake.events.append(event(1, "invoice.updated", fake.store["invoices"][0], ts(T0) + 5))
    # the API echoes the key in an error message; it must be redacted
    fake.fail(lambda p, a: p.startswith("/v1/invoices/"), 401, {"error": {
        "type": "invalid_request_error", "message": f"Invalid API Key provided: {KEY}"}})
    with pytest.raises(ApiError) as err:
        run(fake, tmp_path, now=T0 + timedelta(hours=1), objects=("invoices",))
    errors.append(err.value)
    fake.fail(lambda p, a: True, 500, {"error": {"type": "api_error", "message": KEY}}, times=10)
    with pytest.raises(ApiError) as err2:
        run(fake, tmp_path, now=T0 + timedelta(hours=2), objects=("invoices",), max_attempts=2)
    errors.append(err2.value)
    session = AlwaysTimeout()
    with pytest.raises(ApiError) as err3:
        run(fake, tmp_path, now=T0 + timedelta(hours=3), objects=("invoices",), max_attempts=2, session=session)
    errors.append(err3.value)
    with pytest.raises(ConnectorConfigError) as err4:
        StripeSettings.from_env({"STRIPE_API_KEY": KEY, "STRIPE_API_BASE": "ftp://nope"})
    errors.append(err4.value)
    for exc in errors:
        assert KEY not in str(exc) and KEY not in repr(exc) and KEY not in repr(exc.args)
        assert exc.__cause__ is None or KEY not in str(exc.__cause__)
    assert "Invalid API Key provided: [REDACTED]" in str(errors[0])
    assert KEY not in caplog.text
    assert KEY not in repr(result) and KEY not in repr(settings(fake))
    for path in (tmp_path / "landing").rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text()
    assert KEY not in (tmp_path / "state" / "stripe_cursor.json").read_text()
