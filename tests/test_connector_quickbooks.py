"""QuickBooks Online connector against a fake QBO (pytest-httpserver) serving real public payloads.

Records come from `fixtures/quickbooks/airbyte_source_quickbooks_expected_records_ar_subset.jsonl`
(real sandbox records) and the Fault body from `fault_validation_6240_duplicate_name.json`. Throttle
and CDC-deleted bodies are the content of the real XML fixtures in `fixtures/quickbooks/api_xml/`
(ruckus/quickbooks-ruby) reproduced as JSON: QBO sends the same fields as JSON when asked with
`Accept: application/json`, so the helpers below read the XML and rebuild the JSON shape.
No test sleeps: `sleep` is a recorder.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import re
import stat
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import requests
from pydantic import ValidationError
from werkzeug import Request, Response

from ar_pipeline.lib.connectors.http import ApiError
from ar_pipeline.lib.connectors.quickbooks import (
    ConnectorConfigError,
    QuickBooksFault,
    QuickBooksSettings,
    QuickBooksSyncError,
    build_query,
    describe_fault,
    extract_cdc_deletions,
    find_fault,
    format_cursor,
    is_configured,
    is_throttle_fault,
    max_last_updated,
    sync_quickbooks,
)
from ar_pipeline.lib.ingest import load_entity
from ar_pipeline.lib.ingest_config import load_source_spec
from tests.conftest import FIXTURES, PROJECT_ROOT

QBO = FIXTURES / "quickbooks"
XML = QBO / "api_xml"
NS = "{http://schema.intuit.com/finance/v3}"
REALM = "9130355377123456"
SECRET_MARK = "SHHH"  # every secret/token in these tests contains it
CLIENT_ID = "ABclientid"
CLIENT_SECRET = "cs-SHHH-client-secret"
STREAMS = {"invoices": "Invoice", "payments": "Payment", "credit_memos": "CreditMemo", "customers": "Customer"}
NOW = datetime(2023, 3, 1, 12, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------- fixtures


def real_records() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {e: [] for e in STREAMS.values()}
    for line in (QBO / "airbyte_source_quickbooks_expected_records_ar_subset.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["stream"] in STREAMS:
            data = dict(rec["data"])
            data.pop("airbyte_cursor", None)  # added by Airbyte, not part of the QBO payload
            out[STREAMS[rec["stream"]]].append(data)
    out["RefundReceipt"] = refund_receipts()
    return out


def refund_receipts() -> list[dict]:
    """RefundReceipt-shaped records (no public JSON sample was found); refs point at real fixture ids."""
    def one(id_: str, doc: str, customer: tuple[str, str], amount: float, updated: str) -> dict:
        return {
            "domain": "QBO", "sparse": False, "Id": id_, "SyncToken": "0",
            "MetaData": {"CreateTime": updated, "LastUpdatedTime": updated},
            "DocNumber": doc, "TxnDate": updated[:10],
            "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
            "PrivateNote": "Refund for returned pump",
            "Line": [{"Id": "1", "LineNum": 1, "Amount": amount, "DetailType": "SalesItemLineDetail",
                      "SalesItemLineDetail": {"ItemRef": {"value": "11", "name": "Pump"},
                                              "UnitPrice": amount, "Qty": 1, "TaxCodeRef": {"value": "NON"}}},
                     {"Amount": amount, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}],
            "CustomerRef": {"value": customer[0], "name": customer[1]},
            "TotalAmt": amount, "DepositToAccountRef": {"value": "35", "name": "Checking"},
        }
    return [one("150", "1038", ("3", "Cool Cars"), 15.0, "2023-02-18T13:20:05-08:00"),
            one("151", "1039", ("24", "Sonnenschein Family Store"), 22.5, "2023-02-18T13:21:40-08:00")]


def fault_json_from_xml(name: str) -> dict:
    """A real XML Fault (e.g. throttle 3001) as the JSON body QBO sends for `Accept: application/json`."""
    root = ET.parse(XML / name).getroot()
    fault = root.find(f"{NS}Fault")
    errors = [{"Message": e.findtext(f"{NS}Message"), "Detail": e.findtext(f"{NS}Detail"),
               "code": e.get("code"), "element": ""} for e in fault.findall(f"{NS}Error")]
    return {"Fault": {"Error": errors, "type": fault.get("type")}, "time": root.get("time")}


def cdc_deleted_from_xml(name: str) -> tuple[str, dict]:
    """(entity, record) of a real CDC `status="Deleted"` XML sample, as JSON."""
    root = ET.parse(XML / name).getroot()
    node = root.find(f"{NS}CDCResponse/{NS}QueryResponse")[0]
    entity = node.tag.removeprefix(NS)
    return entity, {"domain": node.get("domain"), "status": node.get("status"), "Id": node.findtext(f"{NS}Id"),
                    "MetaData": {"LastUpdatedTime": node.findtext(f"{NS}MetaData/{NS}LastUpdatedTime")}}


def cdc_body_with_deletions() -> dict:
    """A CDC response: one QueryResponse per entity (empty ones included), a live invoice plus the
    deleted Invoice/Payment/CreditMemo/Customer of the real XML samples."""
    deleted = dict(cdc_deleted_from_xml(n) for n in ("invoice_changes.xml", "payment_changes.xml",
                                                     "credit_memo_changes.xml", "customer_changes.xml"))
    live = real_records()["Invoice"][0]
    time_ = ET.parse(XML / "invoice_changes.xml").getroot().get("time")
    qrs = [{"Invoice": [live, deleted["Invoice"]], "startPosition": 1, "maxResults": 2},
           {"Payment": [deleted["Payment"]], "startPosition": 1, "maxResults": 1},
           {"CreditMemo": [deleted["CreditMemo"]], "startPosition": 1, "maxResults": 1},
           {"Customer": [deleted["Customer"]], "startPosition": 1, "maxResults": 1},
           {}]
    return {"CDCResponse": [{"QueryResponse": qrs}], "time": time_}


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


class FakeQbo:
    """Token endpoint + query + CDC endpoints behaving like QBO (rotating refresh tokens, 1-based
    paging, `>=` filter on LastUpdatedTime, Bearer check)."""

    SQL = re.compile(r"^SELECT \* FROM (\w+)(?: WHERE (.+?))? ORDERBY Metadata\.LastUpdatedTime "
                     r"STARTPOSITION (\d+) MAXRESULTS (\d+)$")

    def __init__(self, httpserver) -> None:
        self.server = httpserver
        self.data = {e: sorted(r, key=lambda x: ts(x["MetaData"]["LastUpdatedTime"]))
                     for e, r in real_records().items()}
        self.refresh_token = "rt-SHHH-0"
        self.issued = 0
        self.valid_access: set[str] = set()
        self.token_requests: list[dict] = []
        self.queries: list[str] = []
        self.query_auth: list[str] = []
        self.cdc_requests: list[dict] = []
        self.cdc_bodies: list[dict] | None = None
        self.cdc_time = "2023-03-01T04:00:00.123-08:00"
        self.injected: dict[str, list[Response]] = {"query": [], "cdc": [], "token": []}
        self.fail_when = None  # callable(sql) -> Response | None
        self.revoke_after_queries: int | None = None
        self.always_401 = False
        self.expires_in = 3600
        self.served: list[bytes] = []
        httpserver.expect_request("/oauth2/v1/tokens/bearer", method="POST").respond_with_handler(self.token)
        httpserver.expect_request(f"/v3/company/{REALM}/query", method="GET").respond_with_handler(self.query)
        httpserver.expect_request(f"/v3/company/{REALM}/cdc", method="GET").respond_with_handler(self.cdc)

    def settings(self, **kw) -> QuickBooksSettings:
        base = self.server.url_for("/").rstrip("/")
        values = dict(base_url=base, token_url=f"{base}/oauth2/v1/tokens/bearer", client_id=CLIENT_ID,
                      client_secret=CLIENT_SECRET, refresh_token="rt-SHHH-0", realm_id=REALM,
                      max_attempts=4)
        values.update(kw)
        return QuickBooksSettings(**values)

    def token(self, request: Request) -> Response:
        if self.injected["token"]:
            return self.injected["token"].pop(0)
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        form = request.form.to_dict()
        self.token_requests.append(form)
        if request.headers.get("Authorization") != expected or form.get("grant_type") != "refresh_token":
            return Response(json.dumps({"error": "invalid_client"}), 401, content_type="application/json")
        if form.get("refresh_token") != self.refresh_token:
            return Response(json.dumps({"error": "invalid_grant", "error_description": "bad token " +
                                        str(form.get("refresh_token"))}), 400, content_type="application/json")
        self.issued += 1
        access, self.refresh_token = f"at-SHHH-{self.issued}", f"rt-SHHH-{self.issued}"
        self.valid_access.add(access)
        return Response(json.dumps({"token_type": "bearer", "access_token": access, "expires_in": self.expires_in,
                                    "refresh_token": self.refresh_token,
                                    "x_refresh_token_expires_in": 8726400}), 200,
                        content_type="application/json")

    def _authorised(self, request: Request) -> bool:
        auth = request.headers.get("Authorization", "")
        return (not self.always_401 and auth.startswith("Bearer ")
                and auth.removeprefix("Bearer ") in self.valid_access)

    def _unauthorised(self) -> Response:
        # Auth failures use lowercase keys (formats.md §1.8, code 3200).
        body = {"fault": {"error": [{"message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                                     "detail": "Token expired", "code": "3200"}], "type": "AUTHENTICATION"},
                "time": "2023-03-01T04:00:00.000-08:00"}
        return Response(json.dumps(body), 401, content_type="application/json")

    def query(self, request: Request) -> Response:
        assert request.headers.get("Accept") == "application/json"
        assert request.args.get("minorversion") == "75"
        sql = request.args["query"]
        self.queries.append(sql)
        self.query_auth.append(request.headers.get("Authorization", ""))
        if not self._authorised(request):
            return self._unauthorised()
        if self.revoke_after_queries is not None and len(self.queries) >= self.revoke_after_queries:
            self.valid_access.clear()
            self.revoke_after_queries = None
        if self.injected["query"]:
            return self.injected["query"].pop(0)
        if self.fail_when and (resp := self.fail_when(sql)) is not None:
            return resp
        m = self.SQL.match(sql)
        assert m, sql
        entity, where, start, size = m.group(1), m.group(2) or "", int(m.group(3)), int(m.group(4))
        rows = self.data.get(entity, [])
        if cur := re.search(r"Metadata\.LastUpdatedTime >= '([^']+)'", where):
            rows = [r for r in rows if ts(r["MetaData"]["LastUpdatedTime"]) >= ts(cur.group(1))]
        page = rows[start - 1:start - 1 + size]
        qr = {entity: page, "startPosition": start, "maxResults": len(page)} if page else {}
        # indent=1 makes the served bytes distinctive, so "landed verbatim" is checked byte for byte
        raw = json.dumps({"QueryResponse": qr, "time": "2023-03-01T04:00:00.000-08:00"}, indent=1).encode()
        self.served.append(raw)
        return Response(raw, 200, content_type="application/json;charset=UTF-8")

    def cdc(self, request: Request) -> Response:
        assert request.args.get("minorversion") == "75"
        self.cdc_requests.append(request.args.to_dict())
        if not self._authorised(request):
            return self._unauthorised()
        if self.injected["cdc"]:
            return self.injected["cdc"].pop(0)
        if self.cdc_bodies:
            return Response(json.dumps(self.cdc_bodies.pop(0)), 200, content_type="application/json")
        empty = [{} for _ in request.args["entities"].split(",")]
        return Response(json.dumps({"CDCResponse": [{"QueryResponse": empty}], "time": self.cdc_time}), 200,
                        content_type="application/json")


@pytest.fixture
def fake(httpserver) -> FakeQbo:
    fq = FakeQbo(httpserver)
    yield fq
    httpserver.check_handler_errors()


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "landing", tmp_path / "state"


def files(landing: Path, folder: str) -> list[Path]:
    return sorted((landing / "quickbooks" / folder).glob("*.json"))


def cursor_state(state: Path) -> dict:
    p = state / "quickbooks_cursor.json"
    return json.loads(p.read_text()) if p.exists() else {}


def json_response(body: dict, status: int, **headers) -> Response:
    return Response(json.dumps(body), status, headers=headers, content_type="application/json")


def run(fake: FakeQbo, dirs, sleeps: list | None = None, now: datetime = NOW, **settings_kw):
    landing, state = dirs
    sleeps = [] if sleeps is None else sleeps
    return sync_quickbooks(fake.settings(**settings_kw), landing, state, sleep=sleeps.append, now=now)


# ------------------------------------------------------------------------------------ pure helpers


def test_build_query_exact_strings() -> None:
    assert build_query("Invoice", None, 1, 1000) == (
        "SELECT * FROM Invoice ORDERBY Metadata.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 1000")
    assert build_query("Invoice", "2023-02-18T13:16:17-08:00", 3, 2) == (
        "SELECT * FROM Invoice WHERE Metadata.LastUpdatedTime >= '2023-02-18T13:16:17-08:00' "
        "ORDERBY Metadata.LastUpdatedTime STARTPOSITION 3 MAXRESULTS 2")
    assert build_query("Customer", None, 1, 50) == (
        "SELECT * FROM Customer WHERE Active IN (true, false) ORDERBY Metadata.LastUpdatedTime "
        "STARTPOSITION 1 MAXRESULTS 50")
    assert build_query("Customer", datetime(2023, 2, 1, tzinfo=UTC), 1, 50) == (
        "SELECT * FROM Customer WHERE Metadata.LastUpdatedTime >= '2023-02-01T00:00:00+00:00' "
        "AND Active IN (true, false) ORDERBY Metadata.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 50")
    with pytest.raises(ValueError, match="1-based"):
        build_query("Invoice", None, 0, 10)
    with pytest.raises(ValueError):
        build_query("Invoice", None, 1, 1001)


def test_format_cursor_has_colon_offsets() -> None:
    assert format_cursor("2023-02-18T13:16:17-08:00") == "2023-02-18T13:16:17-08:00"
    assert format_cursor("2023-02-18T13:16:17-0800") == "2023-02-18T13:16:17-08:00"
    assert format_cursor("2023-02-18T21:16:17Z") == "2023-02-18T21:16:17+00:00"
    assert format_cursor("2016-04-13T07:52:34.949-07:00") == "2016-04-13T07:52:34-07:00"  # floor, never later
    assert format_cursor(datetime(2023, 2, 18, 21, 16, 17)) == "2023-02-18T21:16:17+00:00"  # naive = UTC
    assert max_last_updated(real_records()["Invoice"]) == "2023-02-18T13:16:17-08:00"


def test_fault_detection_real_bodies() -> None:
    body = json.loads((QBO / "fault_validation_6240_duplicate_name.json").read_text())
    fault = find_fault(body)
    assert fault is not None and "6240" in describe_fault(fault)
    assert "ValidationFault" in describe_fault(fault) and "Duplicate Name Exists Error" in describe_fault(fault)
    assert find_fault({"fault": {"error": [{"message": "x", "code": "3200"}], "type": "AUTHENTICATION"}})
    assert find_fault({"QueryResponse": {}}) is None and find_fault([1]) is None
    assert is_throttle_fault(fault_json_from_xml("throttle_exceeded_error.xml"))
    assert is_throttle_fault(fault_json_from_xml("too_many_requests_error.xml"))
    assert not is_throttle_fault(body)


def test_extract_cdc_deletions() -> None:
    deleted, counts = extract_cdc_deletions(cdc_body_with_deletions())
    assert counts == {"Invoice": 2, "Payment": 1, "CreditMemo": 1, "Customer": 1}
    assert [d["EntityType"] for d in deleted] == ["Invoice", "Payment", "CreditMemo", "Customer"]
    assert deleted[0] == {"Id": "39", "EntityType": "Invoice", "status": "Deleted",
                          "MetaData": {"LastUpdatedTime": "2014-12-08T19:36:24-08:00"}}
    assert extract_cdc_deletions({"CDCResponse": [{"QueryResponse": [{}, {}]}], "time": "x"}) == ([], {})


def test_settings_env_and_validation() -> None:
    env = {"QBO_CLIENT_ID": CLIENT_ID, "QBO_CLIENT_SECRET": CLIENT_SECRET, "QBO_REFRESH_TOKEN": "rt-SHHH-0",
           "QBO_REALM_ID": REALM}
    assert is_configured(env) and QuickBooksSettings.is_configured(env)
    s = QuickBooksSettings.from_env(env)
    assert s.base_url == "https://quickbooks.api.intuit.com"
    assert s.token_url == "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
    assert (s.minor_version, s.page_size) == (75, 1000)
    assert s.entities == ("Customer", "Invoice", "Payment", "CreditMemo", "RefundReceipt")
    assert SECRET_MARK not in repr(s) and SECRET_MARK not in str(s.model_dump())
    sandbox = QuickBooksSettings.from_env({**env, "QBO_BASE_URL": "https://sandbox-quickbooks.api.intuit.com/"})
    assert sandbox.base_url == "https://sandbox-quickbooks.api.intuit.com"
    with pytest.raises(ValidationError, match="frozen"):
        s.page_size = 5
    partial = {"QBO_CLIENT_ID": CLIENT_ID, "QBO_REFRESH_TOKEN": "", "QBO_REALM_ID": REALM}
    assert not is_configured(partial)
    with pytest.raises(ConnectorConfigError, match="QBO_CLIENT_SECRET, QBO_REFRESH_TOKEN") as err:
        QuickBooksSettings.from_env(partial)
    assert "QBO_CLIENT_ID" not in str(err.value)
    for bad in (0, 1001):
        with pytest.raises(ValueError):
            QuickBooksSettings(client_id="a", client_secret="b", refresh_token="c", realm_id="1", page_size=bad)
    with pytest.raises(ValueError):
        QuickBooksSettings(client_id="a", client_secret="b", refresh_token="c", realm_id="1", entities=("Bill",))


# ------------------------------------------------------------------------------------------ paging


def test_paging_first_sync_exact_queries_and_verbatim_pages(fake: FakeQbo, dirs) -> None:
    landing, state = dirs
    result = run(fake, dirs, page_size=2)
    invoice_queries = [q for q in fake.queries if "FROM Invoice" in q]
    assert invoice_queries == [
        f"SELECT * FROM Invoice ORDERBY Metadata.LastUpdatedTime STARTPOSITION {n} MAXRESULTS 2"
        for n in (1, 3, 5)]
    assert [q for q in fake.queries if "FROM Customer" in q][0] == (
        "SELECT * FROM Customer WHERE Active IN (true, false) ORDERBY Metadata.LastUpdatedTime "
        "STARTPOSITION 1 MAXRESULTS 2")
    # 2 refund receipts = a full page, so a third query finds no entity key and paging stops
    assert [q for q in fake.queries if "FROM RefundReceipt" in q][-1].endswith("STARTPOSITION 3 MAXRESULTS 2")
    assert result.pages == {"Customer": 3, "Invoice": 3, "Payment": 3, "CreditMemo": 1, "RefundReceipt": 1}
    assert result.records == {"Customer": 5, "Invoice": 5, "Payment": 5, "CreditMemo": 1, "RefundReceipt": 2}
    inv = files(landing, "invoice")
    assert [p.name for p in inv] == [f"sync_20230301T120000000000_{n:05d}.json" for n in (1, 2, 3)]
    # verbatim: the landed bytes are exactly the bytes served
    assert all(p.read_bytes() in fake.served for p in result.files)
    assert [r["Id"] for r in json.loads(inv[0].read_text())["QueryResponse"]["Invoice"]] == ["119", "12"]
    assert result.cursors["Invoice"] == "2023-02-18T13:16:17-08:00"
    assert result.cursors["RefundReceipt"] == "2023-02-18T13:21:40-08:00"
    assert cursor_state(state)["Customer"] == "2023-02-18T13:16:17-08:00"
    assert len(result.files) == 11 and result.deletions == 0
    assert not (landing / "quickbooks" / "deleted").exists()  # no deletions, no file


def test_incremental_second_sync_uses_cursor_with_colon(fake: FakeQbo, dirs) -> None:
    landing, state = dirs
    run(fake, dirs, page_size=2)
    first_files = set((landing / "quickbooks").rglob("*.json"))
    edited = copy.deepcopy(next(r for r in fake.data["Invoice"] if r["Id"] == "12"))
    edited["SyncToken"] = "4"
    edited["MetaData"]["LastUpdatedTime"] = "2023-02-20T09:00:00-08:00"
    fake.data["Invoice"].append(edited)
    fake.queries.clear()
    result = run(fake, dirs, now=NOW + timedelta(days=1), page_size=2, entities=("Invoice",))
    assert fake.queries == [
        "SELECT * FROM Invoice WHERE Metadata.LastUpdatedTime >= '2023-02-18T13:16:17-08:00' "
        "ORDERBY Metadata.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 2",
        "SELECT * FROM Invoice WHERE Metadata.LastUpdatedTime >= '2023-02-18T13:16:17-08:00' "
        "ORDERBY Metadata.LastUpdatedTime STARTPOSITION 3 MAXRESULTS 2"]
    new_files = set((landing / "quickbooks").rglob("*.json")) - first_files
    assert new_files == set(result.files) and len(new_files) == 1
    page = json.loads(next(iter(new_files)).read_text())["QueryResponse"]["Invoice"]
    assert [(r["Id"], r["SyncToken"]) for r in page] == [("130", "0"), ("12", "4")]  # same-timestamp 130 again
    assert cursor_state(state)["Invoice"] == "2023-02-20T09:00:00-08:00"


# ------------------------------------------------------------------------------------------- OAuth


def test_refresh_token_rotation_persisted_and_reused(fake: FakeQbo, dirs) -> None:
    landing, state = dirs
    run(fake, dirs, entities=("Invoice",))
    token_file = state / "quickbooks_token.json"
    assert fake.token_requests[0]["refresh_token"] == "rt-SHHH-0"
    assert json.loads(token_file.read_text())["refresh_token"] == "rt-SHHH-1"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert fake.query_auth[0] == "Bearer at-SHHH-1"
    # next run: same settings (env still holds the old token), the stored newest token is used
    run(fake, dirs, now=NOW + timedelta(hours=1), entities=("Invoice",))
    assert [t["refresh_token"] for t in fake.token_requests] == ["rt-SHHH-0", "rt-SHHH-1"]
    assert json.loads(token_file.read_text())["refresh_token"] == "rt-SHHH-2"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_token_saved_before_access_token_is_used(fake: FakeQbo, dirs) -> None:
    _, state = dirs
    seen = []
    orig = fake.query

    def spy(request):
        seen.append(json.loads((state / "quickbooks_token.json").read_text())["refresh_token"])
        return orig(request)
    fake.server.clear_all_handlers()
    fake.server.expect_request("/oauth2/v1/tokens/bearer", method="POST").respond_with_handler(fake.token)
    fake.server.expect_request(f"/v3/company/{REALM}/query").respond_with_handler(spy)
    fake.server.expect_request(f"/v3/company/{REALM}/cdc").respond_with_handler(fake.cdc)
    run(fake, dirs, entities=("Invoice",))
    assert seen and seen[0] == "rt-SHHH-1"


def test_401_refreshes_once_and_retries(fake: FakeQbo, dirs) -> None:
    fake.revoke_after_queries = 1  # the access token stops working after the first query
    result = run(fake, dirs, page_size=2, entities=("Invoice",))
    assert result.pages["Invoice"] == 3
    assert len(fake.token_requests) == 2
    assert fake.query_auth == ["Bearer at-SHHH-1", "Bearer at-SHHH-1", "Bearer at-SHHH-2", "Bearer at-SHHH-2"]


def test_expired_access_token_is_refreshed_before_use(fake: FakeQbo, dirs) -> None:
    fake.expires_in = 30  # inside the 60 s safety margin: already "expired" when the next request goes out
    run(fake, dirs, page_size=2, entities=("Invoice",))
    assert fake.query_auth == ["Bearer at-SHHH-1", "Bearer at-SHHH-2", "Bearer at-SHHH-3"]
    assert [t["refresh_token"] for t in fake.token_requests][:3] == ["rt-SHHH-0", "rt-SHHH-1", "rt-SHHH-2"]


def test_second_401_tells_user_to_reconnect(fake: FakeQbo, dirs) -> None:
    fake.always_401 = True
    with pytest.raises(ApiError, match="reconnect") as err:
        run(fake, dirs, entities=("Invoice",))
    assert err.value.status == 401
    assert len(fake.token_requests) == 2 and len(fake.queries) == 2


def test_rejected_refresh_token_is_a_clear_error(fake: FakeQbo, dirs) -> None:
    fake.refresh_token = "rt-SHHH-someone-else"
    with pytest.raises(ApiError, match="invalid_grant.*reconnect") as err:
        run(fake, dirs, entities=("Invoice",))
    assert SECRET_MARK not in str(err.value)
    assert fake.queries == []


# ---------------------------------------------------------------------------------- retries/errors


def test_429_honours_retry_after(fake: FakeQbo, dirs) -> None:
    fake.injected["query"].append(json_response(fault_json_from_xml("too_many_requests_error.xml"), 429,
                                                **{"Retry-After": "7"}))
    sleeps: list[float] = []
    result = run(fake, dirs, sleeps, entities=("Invoice",))
    assert sleeps == [7.0]
    assert result.records["Invoice"] == 5
    assert fake.queries[0] == fake.queries[1]


def test_403_with_throttle_code_3001_is_retried(fake: FakeQbo, dirs) -> None:
    fake.injected["query"].append(json_response(fault_json_from_xml("throttle_exceeded_error.xml"), 403))
    sleeps: list[float] = []
    result = run(fake, dirs, sleeps, entities=("Invoice",))
    assert len(sleeps) == 1 and result.records["Invoice"] == 5


def test_403_without_throttle_code_is_an_error(fake: FakeQbo, dirs) -> None:
    body = {"Fault": {"Error": [{"Message": "message=AuthorizationFailure; errorCode=003100; statusCode=403",
                                 "Detail": "Check the sandbox setting", "code": "3100"}], "type": "AUTHORIZATION"}}
    fake.injected["query"].append(json_response(body, 403))
    sleeps: list[float] = []
    with pytest.raises(QuickBooksFault, match="3100") as err:
        run(fake, dirs, sleeps, entities=("Invoice",))
    assert err.value.status == 403 and sleeps == []


def test_500_then_success(fake: FakeQbo, dirs) -> None:
    fake.injected["query"].append(Response("upstream error", 503))
    fake.injected["query"].append(Response("oops", 500))
    sleeps: list[float] = []
    result = run(fake, dirs, sleeps, entities=("Invoice",))
    assert sleeps == [1.0, 2.0]  # capped exponential backoff, injected sleep
    assert result.records["Invoice"] == 5


def test_timeout_then_success(fake: FakeQbo, dirs) -> None:
    class FlakySession(requests.Session):
        calls = 0

        def request(self, method, url, *args, **kwargs):
            assert kwargs["timeout"] == 0.5
            if "/query" in url and FlakySession.calls == 0:
                FlakySession.calls += 1
                raise requests.ReadTimeout("read timed out")
            return super().request(method, url, *args, **kwargs)

    landing, state = dirs
    sleeps: list[float] = []
    result = sync_quickbooks(fake.settings(entities=("Invoice",), timeout_seconds=0.5), landing, state,
                             session=FlakySession(), sleep=sleeps.append, now=NOW)
    assert sleeps == [1.0] and result.records["Invoice"] == 5


def test_fault_inside_http_200_is_an_error_not_data(fake: FakeQbo, dirs) -> None:
    landing, state = dirs
    fault = (QBO / "fault_validation_6240_duplicate_name.json").read_bytes()
    fake.injected["query"].append(Response(fault, 200, content_type="application/json"))
    with pytest.raises(QuickBooksFault, match="6240.*Duplicate Name Exists Error") as err:
        run(fake, dirs, entities=("Invoice",))
    assert isinstance(err.value, ApiError) and err.value.fault_type == "ValidationFault"
    assert err.value.codes == ["6240"]
    assert files(landing, "invoice") == []
    assert "Invoice" not in cursor_state(state)


def test_interrupted_sync_keeps_pages_and_resumes(fake: FakeQbo, dirs) -> None:
    landing, state = dirs
    fake.fail_when = lambda sql: Response("down", 500) if "STARTPOSITION 5" in sql else None
    with pytest.raises(ApiError, match="HTTP 500"):
        run(fake, dirs, page_size=2, entities=("Invoice",))
    kept = files(landing, "invoice")
    assert [p.name[-10:] for p in kept] == ["00001.json", "00002.json"]
    assert cursor_state(state)["Invoice"] == "2023-02-18T13:15:36-08:00"  # max of page 2 (96, 129)
    fake.fail_when = None
    fake.queries.clear()
    result = run(fake, dirs, now=NOW + timedelta(minutes=5), page_size=2, entities=("Invoice",))
    assert fake.queries[0] == (
        "SELECT * FROM Invoice WHERE Metadata.LastUpdatedTime >= '2023-02-18T13:15:36-08:00' "
        "ORDERBY Metadata.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 2")
    assert result.records["Invoice"] == 2  # 129 again (at the cursor), then 130
    assert cursor_state(state)["Invoice"] == "2023-02-18T13:16:17-08:00"


# --------------------------------------------------------------------------------------------- CDC


def test_cdc_deletions_land_and_cursor_advances(fake: FakeQbo, dirs) -> None:
    landing, state = dirs
    fake.cdc_bodies = [cdc_body_with_deletions()]
    result = run(fake, dirs, entities=("Invoice",))
    assert fake.cdc_requests[0] == {"entities": "Invoice", "changedSince": "2023-01-30T12:00:00+00:00",
                                    "minorversion": "75"}
    deleted = files(landing, "deleted")
    assert [p.name for p in deleted] == ["sync_20230301T120000000000_00001.json"]
    body = json.loads(deleted[0].read_text())
    assert body["time"] == "2014-12-08T19:36:36.977-08:00"
    assert [(d["EntityType"], d["Id"], d["status"]) for d in body["QueryResponse"]["Deleted"]] == [
        ("Invoice", "39", "Deleted"), ("Payment", "39", "Deleted"), ("CreditMemo", "39", "Deleted"),
        ("Customer", "39", "Deleted")]
    assert result.deletions == 4
    assert cursor_state(state)["cdc"] == "2014-12-08T19:36:36.977-08:00"


def test_cdc_uses_stored_cursor_and_all_entities(fake: FakeQbo, dirs) -> None:
    run(fake, dirs)
    assert fake.cdc_requests[0]["entities"] == "Invoice,Payment,CreditMemo,Customer,RefundReceipt"
    run(fake, dirs, now=NOW + timedelta(days=1))
    assert fake.cdc_requests[1]["changedSince"] == "2023-03-01T04:00:00-08:00"


def test_cdc_cursor_older_than_30_days_warns(fake: FakeQbo, dirs, caplog) -> None:
    _, state = dirs
    state.mkdir(parents=True)
    (state / "quickbooks_cursor.json").write_text(json.dumps({"cdc": "2023-01-01T00:00:00-08:00"}))
    lines: list[str] = []
    with caplog.at_level(logging.WARNING):
        result = sync_quickbooks(fake.settings(entities=("Invoice",)), *dirs, sleep=lambda s: None,
                                 now=NOW, log=lines.append)
    assert any("older than 30 days" in w for w in result.warnings)
    assert any("older than 30 days" in line for line in lines) and "older than 30 days" in caplog.text
    assert fake.cdc_requests[0]["changedSince"] == "2023-01-30T12:00:00+00:00"


def _cdc_many(entity: str, n: int, time_: str) -> dict:
    recs = [{"Id": str(i), "status": "Deleted", "domain": "QBO",
             "MetaData": {"LastUpdatedTime": "2023-02-20T10:00:00-08:00"}} for i in range(n)]
    return {"CDCResponse": [{"QueryResponse": [{entity: recs}]}], "time": time_}


def test_cdc_at_cap_requeries_entity_by_entity(fake: FakeQbo, dirs) -> None:
    landing, state = dirs
    combined = _cdc_many("Invoice", 600, "2023-03-01T04:00:00-08:00")
    payments = _cdc_many("Payment", 400, "x")["CDCResponse"][0]["QueryResponse"][0]
    combined["CDCResponse"][0]["QueryResponse"].append(payments)
    fake.cdc_bodies = [combined, _cdc_many("Invoice", 600, "2023-03-01T04:00:01-08:00"),
                       _cdc_many("Payment", 400, "2023-03-01T04:00:02-08:00")]
    result = run(fake, dirs, entities=("Invoice", "Payment"))
    assert [r["entities"] for r in fake.cdc_requests] == ["Invoice,Payment", "Invoice", "Payment"]
    assert result.deletions == 1000
    assert cursor_state(state)["cdc"] == "2023-03-01T04:00:01-08:00"  # earliest of the re-queries


def test_cdc_single_entity_at_cap_raises(fake: FakeQbo, dirs) -> None:
    landing, state = dirs
    fake.cdc_bodies = [_cdc_many("Invoice", 1000, "t1"), _cdc_many("Invoice", 1000, "t2")]
    with pytest.raises(QuickBooksSyncError, match="sync more often"):
        run(fake, dirs, entities=("Invoice", "Payment"))
    assert "cdc" not in cursor_state(state)
    assert files(landing, "deleted") == []


# ------------------------------------------------------------------------------ loader round-trip


def test_landed_files_load_with_zero_quarantine(fake: FakeQbo, dirs, tmp_path: Path) -> None:
    landing, _ = dirs
    fake.cdc_bodies = [cdc_body_with_deletions()]
    run(fake, dirs, page_size=2)
    source = load_source_spec(PROJECT_ROOT / "ingest_configs" / "quickbooks.yaml")
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    results = {e.table: load_entity(conn, source, e, landing) for e in source.entities}
    assert all(r.rows_quarantined == 0 and r.reconciles for r in results.values()), \
        {t: r.quarantine_samples for t, r in results.items()}
    loaded = {t: r.rows_loaded for t, r in results.items()}
    assert loaded == {"raw_customers": 5, "raw_invoices": 5, "raw_payments": 5, "raw_credit_memos": 1,
                      "raw_refund_receipts": 2, "raw_deleted_objects": 4}
    assert conn.execute("SELECT total_amount, customer_id, json_array_length(lines) FROM "
                        "raw_quickbooks.raw_refund_receipts WHERE id = '151'").fetchone() == (
        pytest.approx(22.5), "24", 2)
    assert sorted(r[0] for r in conn.execute(
        "SELECT entity_type FROM raw_quickbooks.raw_deleted_objects").fetchall()) == [
        "CreditMemo", "Customer", "Invoice", "Payment"]


# ---------------------------------------------------------------------------------------- secrets


def test_no_secret_in_logs_exceptions_or_files(fake: FakeQbo, dirs, caplog) -> None:
    landing, state = dirs
    lines: list[str] = []
    texts: list[str] = []
    caplog.set_level(logging.DEBUG)

    def attempt(**kw) -> None:
        try:
            sync_quickbooks(fake.settings(entities=("Invoice", "Customer"), page_size=2, **kw), landing, state,
                            sleep=lambda s: None, now=NOW, log=lines.append)
        except Exception as exc:  # noqa: BLE001 - collecting the texts of every failure
            texts.extend([str(exc), repr(exc), str(exc.__cause__), str(exc.__context__)])

    fake.revoke_after_queries = 2
    fake.cdc_bodies = [cdc_body_with_deletions()]
    attempt()                                                      # success with a 401 + refresh
    fake.injected["query"].append(Response((QBO / "fault_validation_6240_duplicate_name.json").read_bytes(),
                                           200, content_type="application/json"))
    attempt()                                                      # fault in 200
    fake.always_401 = True
    attempt()                                                      # 401 twice
    fake.always_401 = False
    fake.injected["token"].append(json_response({"error": "invalid_grant",
                                                 "error_description": "token rt-SHHH-9 is expired"}, 400))
    attempt()                                                      # refresh rejected
    fake.injected["token"].append(Response("rt-SHHH-echo", 500))
    attempt(max_attempts=1)                                        # token endpoint down
    assert len(texts) >= 4*4
    haystack = [caplog.text, "\n".join(lines), "\n".join(texts)]
    for path in list(landing.rglob("*")) + [state / "quickbooks_cursor.json"]:
        if path.is_file():
            haystack.append(path.read_text())
    for text in haystack:
        assert SECRET_MARK not in text
        assert CLIENT_SECRET not in text
    assert SECRET_MARK in (state / "quickbooks_token.json").read_text()  # the only place a token lives
