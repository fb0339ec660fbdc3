"""The Dagster UI as data engineers use it: a real webserver on a loopback port, read over GraphQL.

Every asset, check, schedule and sensor of the project's definitions must be served, and the asset
graph must be one lineage from the ingest assets to the published copy for BI tools.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import requests

QUERY = """
query ProjectGraph {
  assetNodes {
    assetKey { path }
    dependencyKeys { path }
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } }
  }
  workspaceOrError {
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { repositories { name schedules { name } sensors { name } } }
          ... on PythonError { message }
        }
      }
    }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ar_pipeline.defs.transform.project import prepare_dbt_manifest

    prepare_dbt_manifest()
    root = tmp_path_factory.mktemp("webserver")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(root / "dagster_home"), "AR_DUCKDB_PATH": str(root / "ar.duckdb"),
           "AR_LANDING_DIR": str(root / "landing"), "AR_AUTOMATION_OFF": "1"}
    (root / "dagster_home").mkdir()
    log = (root / "webserver.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
         "-m", "ar_pipeline.definitions"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"dagster-webserver exited: {(root / 'webserver.log').read_text()[-2000:]}")
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("dagster-webserver did not answer within 120 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _graphql(url: str) -> dict:
    response = requests.post(f"{url}/graphql", json={"query": QUERY}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body.get("errors")
    return body["data"]


def test_the_ui_serves_every_definition_as_one_lineage(webserver: str) -> None:
    from ar_pipeline.definitions import defs

    definitions: dg.Definitions = defs()
    graph = definitions.resolve_asset_graph()
    data = _graphql(webserver)

    (location,) = data["workspaceOrError"]["locationEntries"]
    assert location["locationOrLoadError"]["__typename"] == "RepositoryLocation", location
    (repository,) = location["locationOrLoadError"]["repositories"]
    assert {s["name"] for s in repository["schedules"]} == {s.name for s in definitions.schedules or []}
    assert {s["name"] for s in repository["sensors"]} == {s.name for s in definitions.sensors or []}
    assert "daily_ar_refresh" in {s["name"] for s in repository["schedules"]}
    assert "quickbooks_files_sensor" in {s["name"] for s in repository["sensors"]}

    nodes = {tuple(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert set(nodes) == {tuple(k.path) for k in graph.get_all_asset_keys()}
    served_checks = {(key, c["name"]) for key, n in nodes.items()
                     for c in (n["assetChecksOrError"] or {}).get("checks", [])}
    defined_checks = {(tuple(k.asset_key.path), k.name) for k in graph.asset_check_keys}
    assert served_checks == defined_checks and len(defined_checks) > 50
    assert any(c["blocking"] for n in nodes.values() for c in (n["assetChecksOrError"] or {}).get("checks", []))

    # one lineage: from a raw ingest table, following dependencies either way, every asset is reached,
    # and the published copy is downstream of the raw tables
    edges: dict[tuple, set[tuple]] = {key: set() for key in nodes}
    for key, node in nodes.items():
        for dep in node["dependencyKeys"]:
            edges[key].add(tuple(dep["path"]))
            edges[tuple(dep["path"])].add(key)
    seen, frontier = set(), [("quickbooks", "raw_invoices")]
    while frontier:
        key = frontier.pop()
        if key not in seen:
            seen.add(key)
            frontier.extend(edges[key])
    exports_only = {k for k in nodes if k[0] == "exports"} - seen  # export tables may feed nothing yet
    assert seen | exports_only == set(nodes)
    upstream_of_published, frontier = set(), [("published", "ar_tables")]
    while frontier:
        key = frontier.pop()
        for dep in nodes[key]["dependencyKeys"]:
            path = tuple(dep["path"])
            if path not in upstream_of_published:
                upstream_of_published.add(path)
                frontier.append(path)
    assert ("quickbooks", "raw_invoices") in upstream_of_published
    assert ("stripe", "raw_invoices") in upstream_of_published
