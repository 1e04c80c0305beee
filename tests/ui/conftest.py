"""Fixtures of the browser test: `customer360 dev` on a fresh C360_HOME and headless Chromium
(the system one that `make test` installs; Playwright downloads no browser). A screenshot of the
page and the server's log are kept in the artifacts folder when a test fails."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from customer360.generate.customers import GeneratedLanding
from tests.ui.dev_server import DevServer, stage_sample_data

CHROMIUM = os.environ.get("C360_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    """Screenshots and logs: C360_UI_ARTIFACTS (CI keeps it) or a pytest temporary folder."""
    chosen = os.environ.get("C360_UI_ARTIFACTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("ui-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def dev(tmp_path_factory, artifacts) -> Iterator[tuple[DevServer, list[Path], GeneratedLanding]]:
    """`customer360 dev` on small sample data; yields the server, the export folder held back
    for the test to drop, and what was generated (live customers once every folder is in,
    deleted Ids)."""
    base = tmp_path_factory.mktemp("ui-dev")
    home, staging = base / "c360", base / "staging"
    home.mkdir()
    staging.mkdir()
    held, generated = stage_sample_data(home, staging)
    server = DevServer(home, artifacts / "customer360-dev.log")
    try:
        server.start()
        yield server, held, generated
    finally:
        with contextlib.suppress(Exception):  # a report of the runs, whatever happened
            (artifacts / "runs.txt").write_text(server.run_report() + "\n")
        server.stop()


@pytest.fixture
def page(request, artifacts):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make chromium` (apt-get install chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        context.set_default_timeout(120_000)  # a loaded 2-core CI machine renders slowly
        page = context.new_page()

        try:
            yield page
        finally:
            report = getattr(request.node, "report_call", None)
            if report is not None and report.failed:
                shot = artifacts / f"FAILED-{request.node.name}.png"
                page.screenshot(path=str(shot), full_page=True)
                print(f"screenshot of the failure: {shot}")
            browser.close()
