"""The AR dashboard as finance opens it: rendered from a published copy, checked in headless Chromium.

Chromium and ChromeDriver are Debian's packages (`apt-get install chromium chromium-driver`; `.ci/run`
installs them). Without them the browser test is skipped with that message; the HTML tests still run.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ar_pipeline.lib.dashboard import DashboardTargets, load_targets, write_dashboard

END_DATE = date(2026, 6, 30)
ARTIFACTS = Path(__file__).parent / "artifacts"
CHARTS = ["chart-aging", "chart-kpis", "chart-risk", "chart-queue", "chart-collections", "chart-forecast",
          "chart-scenarios"]


def _external_resources(page: str) -> list[str]:
    """src/href attributes of the page's own tags (scripts, styles, images) that point elsewhere."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(f"{tag} {name}={value}" for name, value in attrs if name in ("src", "href") and value)

    Collector().feed(page)
    return found


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated history through the real refresh_ar job; returns the publish folder."""
    from ar_pipeline.definitions import defs
    from ar_pipeline.defs.transform.project import prepare_dbt_manifest
    from ar_pipeline.lib.generator import GeneratorConfig, generate

    root = tmp_path_factory.mktemp("dashboard")
    generate(GeneratorConfig(landing_dir=root / "landing", seed=11, customers=30, years=1.2, invoices=900,
                             end_date=END_DATE, progress=False))
    mp = pytest.MonkeyPatch()
    mp.setenv("AR_DUCKDB_PATH", str(root / "ar.duckdb"))
    mp.setenv("AR_LANDING_DIR", str(root / "landing"))
    mp.setenv("AR_PUBLISH_DIR", str(root / "published"))
    prepare_dbt_manifest()
    result = defs().resolve_job_def("refresh_ar").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"ar_dbt_models": {"config": {"as_of_date": END_DATE.isoformat()}}}},
    )
    assert result.success
    mp.undo()
    return root / "published"


def test_the_run_writes_a_self_contained_dashboard(published: Path) -> None:
    page = (published / "ar_dashboard.html").read_text()
    assert "As of 30 June 2026" in page  # the as-of date and freshness note
    assert page.count("As of 30 June 2026") >= 2  # header and footer
    for chart in CHARTS:
        assert f'id="{chart}"' in page
    # offline: plotly.js is inlined, nothing is fetched from a CDN or the network
    assert _external_resources(page) == []
    with duckdb.connect(str(published / "ar.duckdb"), read_only=True) as conn:
        open_ar = conn.execute("SELECT sum(home_open_amount) FROM marts.fct_ar_aging").fetchall()[0][0]
    assert f"USD {float(open_ar):,.0f}" in page  # the headline tile, currency formatted


def test_targets_file_is_validated_with_clear_errors(tmp_path: Path) -> None:
    assert load_targets() == load_targets(Path(__file__).parents[1] / "ingest_configs/dashboard/targets.yaml")
    bad = tmp_path / "targets.yaml"
    bad.write_text("dso_days: -3\ncei: 80\n")
    with pytest.raises(ValueError, match=r"targets.yaml: invalid dashboard targets: dso_days: .*greater than 0.*cei"):
        load_targets(bad)


def test_tiles_follow_the_targets(published: Path, tmp_path: Path) -> None:
    strict = write_dashboard(published / "ar.duckdb", tmp_path / "strict.html",
                             DashboardTargets(dso_days=1, cei_percent=100, percent_current=100, percent_over_90=0))
    lenient = write_dashboard(published / "ar.duckdb", tmp_path / "lenient.html",
                              DashboardTargets(dso_days=1000, cei_percent=0, percent_current=0, percent_over_90=100))
    # DSO, CEI and % current miss impossible targets (% over 90 can be 0 and meet a 0 target)
    assert strict.read_text().count('class="tile bad"') >= 3
    assert lenient.read_text().count('class="tile good"') == 4


def test_every_chart_renders_in_headless_chromium(published: Path) -> None:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("headless Chromium not installed: `sudo apt-get install chromium chromium-driver` "
                    "(Debian/Ubuntu) to run the browser test")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1300,2600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get((published / "ar_dashboard.html").as_uri())
        WebDriverWait(driver, 30).until(
            lambda d: all(d.find_elements(By.CSS_SELECTOR, f"#{c} svg.main-svg") for c in CHARTS))
        for chart in CHARTS:
            marks = driver.find_elements(By.CSS_SELECTOR, f"#{chart} .point, #{chart} path.js-line")
            assert marks, f"{chart} rendered no bars or lines"
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
        ARTIFACTS.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "ar_dashboard.png"))
    finally:
        driver.quit()


def test_backtest_section_shows_the_model_against_the_customer_history(published: Path, tmp_path: Path) -> None:
    from ar_pipeline.lib.prediction.backtest import metrics_frame, write_metrics

    db = tmp_path / "ar.duckdb"
    shutil.copy(published / "ar.duckdb", db)
    before = write_dashboard(db, tmp_path / "before.html", load_targets()).read_text()
    assert 'id="chart-backtest"' not in before and "ar-pipeline backtest --cutoff" in before

    def result(version: str, cutoff: str, n_train: int, mae_model: float) -> dict:
        return {"model_version": version, "cutoff": cutoff, "test_end": "2026-06-29", "n_train": n_train,
                "n_test": 321, "vs_customer_history": {},
                "predictors": {"model": {"mae_days": mae_model, "late_auc": 0.912},
                               "customer_history": {"mae_days": 6.25, "late_auc": 0.876}}}

    with duckdb.connect(str(db)) as conn:
        # two runs on the same window: the one trained on more data is shown
        write_metrics(conn, metrics_frame([result("pm-old", "2026-03-01", 100, 9.99),
                                           result("pm-new", "2026-03-01", 200, 5.43)]))
    page = write_dashboard(db, tmp_path / "after.html", load_targets()).read_text()
    assert 'id="chart-backtest"' in page
    assert ("<td>01 Mar 2026 → 29 Jun 2026</td><td>5.43</td><td>6.25</td><td>0.912</td><td>0.876</td>"
            "<td>321</td>") in page
    assert "<td>9.99</td>" not in page and page.count("<td>01 Mar 2026 → 29 Jun 2026</td>") == 1
