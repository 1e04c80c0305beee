"""What the UI shows besides the tables themselves: column descriptions and a row preview in
every lake write's metadata, plots inline, http:// links to served files, and the asset checks
an operator can execute on their own. Real delta-rs tables in tmp_path, a real HTTP server."""

from __future__ import annotations

import base64
import re

import dagster as dg
import httpx
import pyarrow as pa
import pytest

from assets.checks import one_current_row_per_id, one_row_per_id
from customer360.cli.dashboard_server import URL_ENV, serve_lake_files
from resources.lakehouse import LakehouseResource, write_metadata
from resources.ui_metadata import PREVIEW_ROWS_ENV, SERVER_ENV


@pytest.fixture
def lakehouse(tmp_path) -> LakehouseResource:
    return LakehouseResource(root_uri=str(tmp_path / "lake"))


def _png(path, width=40, height=20):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / 10, height / 10), dpi=10)
    fig.add_subplot().plot([0, 1], [1, 0])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def test_write_metadata_has_column_descriptions_and_a_preview(lakehouse, monkeypatch):
    monkeypatch.delenv(PREVIEW_ROWS_ENV, raising=False)
    data = pa.table(
        {
            "unified_customer_id": [f"u{i}" for i in range(8)],
            "email": ["a@x.org"] * 8,
            "sources": [["dataverse", "crm"]] * 8,
            "undocumented_col": list(range(8)),
        }
    )
    meta = write_metadata(lakehouse.write_arrow(data, "gold", "customer_profile"))
    columns = {c.name: c for c in meta["dagster/column_schema"].columns}
    assert columns["unified_customer_id"].description.startswith("the person's stable id")
    assert columns["email"].description == "e-mail, trimmed and lower-cased"
    assert columns["undocumented_col"].description is None
    preview = meta["preview"]
    assert isinstance(preview, dg.TableMetadataValue)
    assert len(preview.records) == 5
    first = preview.records[0].data
    assert first["unified_customer_id"] == "u0" and first["undocumented_col"] == 0
    assert first["sources"] == '["dataverse", "crm"]'  # lists as short text the UI can show
    assert [c.name for c in preview.schema.columns] == data.column_names


def test_preview_rows_can_be_turned_off(lakehouse, monkeypatch):
    monkeypatch.setenv(PREVIEW_ROWS_ENV, "0")
    meta = write_metadata(lakehouse.write_arrow(pa.table({"a": [1]}), "silver", "t"))
    assert "preview" not in meta
    monkeypatch.setenv(PREVIEW_ROWS_ENV, "many")
    with pytest.raises(ValueError, match="C360_PREVIEW_ROWS='many'"):
        write_metadata(lakehouse.write_arrow(pa.table({"a": [1]}), "silver", "t"))


def test_plot_is_inline_markdown_with_a_served_link(lakehouse, monkeypatch):
    plot = _png(lakehouse.plot_path("segments-run1"))
    monkeypatch.delenv(SERVER_ENV, raising=False)
    text = lakehouse.plot_metadata(plot, "segments").value
    encoded = re.search(r"!\[segments\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", text)
    assert encoded and base64.b64decode(encoded.group(1)) == plot.read_bytes()
    assert f"file: `{plot}`" in text and "http" not in text
    assert lakehouse.link_metadata(plot) == dg.MetadataValue.path(str(plot))
    monkeypatch.setenv(SERVER_ENV, "http://127.0.0.1:9")
    url = "http://127.0.0.1:9/files/ops/plots/segments-run1.png"
    assert f"[open full size]({url})" in lakehouse.plot_metadata(plot, "segments").value
    assert lakehouse.link_metadata(plot) == dg.MetadataValue.url(url)


def test_large_plots_are_shrunk_for_the_event_log(lakehouse):
    import numpy as np
    from PIL import Image

    plot = lakehouse.plot_path("big")
    noise = np.random.default_rng(0).integers(0, 255, (600, 1200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(plot)  # ~2 MB of incompressible pixels
    text = lakehouse.plot_metadata(plot, "big").value
    encoded = re.search(r"base64,([A-Za-z0-9+/=]+)\)", text).group(1)
    assert len(base64.b64decode(encoded)) < plot.stat().st_size


def test_file_server_serves_dashboard_and_plots_only(tmp_path):
    lake = tmp_path / "lake"
    dashboard = lake / "churn" / "dashboard" / "churn-2017-03.html"
    dashboard.parent.mkdir(parents=True)
    dashboard.write_text("<html><body>churn dashboard</body></html>")
    plot = _png(lake / "ops" / "plots" / "unify-r1.png")
    secret = lake / "silver" / "customer" / "part-0.parquet"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(b"PAR1")
    with serve_lake_files(lake, port=0) as served, httpx.Client(base_url=served.url) as http:
        assert served.url.startswith("http://127.0.0.1:")
        index = http.get("/")
        assert index.status_code == 200 and "churn-2017-03.html" in index.text
        assert 'img src="/files/ops/plots/unify-r1.png"' in index.text
        got = http.get("/dashboard", follow_redirects=True)
        assert got.status_code == 200 and "churn dashboard" in got.text
        image = http.get("/files/ops/plots/unify-r1.png")
        assert image.headers["content-type"] == "image/png"
        assert image.content == plot.read_bytes()
        assert http.get("/files/silver/customer/part-0.parquet").status_code == 404
        assert http.get("/files/ops/plots/../../silver/customer/part-0.parquet").status_code == 404
        assert (
            http.get("/files/ops/plots/%2e%2e/%2e%2e/silver/customer/part-0.parquet").status_code
            == 404
        )


def test_server_and_links_agree_on_the_variable():
    """`customer360 dev` sets what the assets read (two modules: resources never import the
    CLI)."""
    assert URL_ENV == SERVER_ENV


def test_file_server_says_when_there_is_no_dashboard(tmp_path):
    with serve_lake_files(tmp_path, port=0) as served:
        response = httpx.get(f"{served.url}/dashboard")
        assert response.status_code == 404 and "no churn dashboard yet" in response.text
        assert "none yet" in httpx.get(served.url).text


def _history(ids: list[str], current: list[bool]) -> pa.Table:
    return pa.table({"Id": ids, "is_current": current})


def test_history_check_finds_two_current_rows_for_one_id(lakehouse):
    missing = one_current_row_per_id(lakehouse=lakehouse)
    assert not missing.passed and "no Delta table" in missing.metadata["problem"].value
    lakehouse.write_arrow(
        _history(["a", "a", "b"], [False, True, True]), "silver", "customer_history"
    )
    assert one_current_row_per_id(lakehouse=lakehouse).passed
    lakehouse.write_arrow(
        _history(["a", "a", "b"], [True, True, True]), "silver", "customer_history"
    )
    failed = one_current_row_per_id(lakehouse=lakehouse)
    assert not failed.passed
    assert failed.metadata["ids_with_several_current"].value == 1
    assert failed.metadata["sample"].value == ["a"]


def test_current_state_check_finds_repeats_and_ids_also_quarantined(lakehouse):
    lakehouse.write_arrow(pa.table({"Id": ["a", "b"]}), "silver", "customer")
    lakehouse.write_arrow(pa.table({"Id": ["c"]}), "silver", "customer_quarantine")
    assert one_row_per_id(lakehouse=lakehouse).passed
    lakehouse.write_arrow(pa.table({"Id": ["a", "b", "b"]}), "silver", "customer")
    lakehouse.write_arrow(pa.table({"Id": ["a"]}), "silver", "customer_quarantine")
    failed = one_row_per_id(lakehouse=lakehouse)
    assert not failed.passed
    assert failed.metadata["repeated_ids"].value == 1
    assert failed.metadata["ids_also_quarantined"].value == 1


def test_checks_are_executable_on_their_own():
    """Stand-alone check definitions, not check specs inside an asset's step: the UI can
    execute each one without materialising its asset."""
    from customer360.definitions import build_definitions

    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    for check in (one_current_row_per_id, one_row_per_id):
        (key,) = check.check_keys
        assert key in graph.asset_check_keys
        assert key not in defs.resolve_assets_def(key.asset_key).check_keys
