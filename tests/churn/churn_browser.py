"""Render an HTML file in headless Chromium and read back the DOM (for the dashboard tests)."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_binary() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "headless Chromium is needed to check the dashboard renders, but none of "
        f"{CHROMIUM_NAMES} is on PATH: install it with `apt-get install -y chromium` "
        "(`make` does this)"
    )


def dump_dom(html_file: Path, profile_dir: Path, timeout: float = 60.0) -> str:
    """The DOM Chromium built from `html_file` (a file:// URL, network off)."""
    command = [
        chromium_binary(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile_dir}",
        "--dump-dom",
        html_file.resolve().as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0 or "<html" not in result.stdout:
        pytest.fail(f"chromium exited {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


class ChartCensus(HTMLParser):
    """Per `<figure class="chart">`: its id, how many <svg> and <path> elements it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict[str, int]] = {}
        self._current: str | None = None
        self._depth = 0
        self.tables: set[str] = set()
        self.table_rows: dict[str, int] = {}
        self._table: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "figure" and "chart" in (attributes.get("class") or "").split():
            self._current = attributes.get("id") or ""
            self.charts[self._current] = {"svg": 0, "path": 0, "text": 0}
            self._depth = 1
            return
        if tag == "table" and attributes.get("id"):
            self._table = attributes["id"]
            self.tables.add(self._table)
            self.table_rows[self._table] = 0
        if tag == "tr" and self._table:
            self.table_rows[self._table] += 1
        if self._current is not None:
            if tag == "figure":
                self._depth += 1
            if tag in ("svg", "path", "text"):
                self.charts[self._current][tag] += 1

    def handle_startendtag(self, tag, attrs):
        if self._current is not None and tag in ("svg", "path", "text"):
            self.charts[self._current][tag] += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        if self._current is not None and tag == "figure":
            self._depth -= 1
            if self._depth == 0:
                self._current = None


def chart_census(dom: str) -> ChartCensus:
    census = ChartCensus()
    census.feed(dom)
    return census
