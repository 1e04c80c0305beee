"""The dashboard is one self-contained HTML file whose SVG charts Chromium renders."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
from churn_browser import chart_census, dump_dom

from customer360.churn.dashboard import CHART_IDS, DashboardCurves, age_band, render_dashboard
from customer360.churn.targeting import RetentionEconomics, choose_threshold, profit_curve


def _inputs(rows: int = 400):
    rng = np.random.default_rng(7)
    msno = [f"member<{i}>&" for i in range(rows)]  # markup in ids must be escaped
    p = rng.beta(1.2, 6, rows)
    predictions = pd.DataFrame({"msno": msno, "churn_probability": p})
    members = pd.DataFrame(
        {
            "msno": msno,
            "city": rng.choice([1, 5, 13, 22], rows),
            "bd": rng.choice([0, 18, 25, 34, 45, 61, 2015], rows),
            "gender": rng.choice(["male", "female", None], rows),
            "registered_via": rng.choice([3, 4, 7, 9], rows),
        }
    )
    history = pd.DataFrame(
        {
            "period_start": [dt.date(2016, 12, 1), dt.date(2017, 1, 1), dt.date(2017, 2, 1)],
            "churn_rate": [0.11, 0.13, 0.12],
        }
    )
    economics = RetentionEconomics()
    labels = rng.random(rows) < p
    curve = profit_curve(p, economics, labels=labels)
    threshold = choose_threshold(curve).threshold
    recall = np.linspace(0, 1, 50)
    curves = DashboardCurves(
        precision_recall={"precision": list(1 - 0.8 * recall), "recall": list(recall)},
        profit=curve,
        threshold=threshold,
        economics=economics,
        period_label="2017-03",
    )
    return predictions, members, history, curves


def test_dashboard_is_self_contained_html_with_every_chart(tmp_path):
    predictions, members, history, curves = _inputs()
    out = render_dashboard(predictions, members, history, curves, tmp_path / "out" / "d.html")
    text = out.read_text(encoding="utf-8")
    for chart_id in CHART_IDS:
        assert f"<figure class='chart' id='{chart_id}'><svg" in text
    # Nothing fetched from anywhere: no scripts, stylesheets, images or fonts by URL.
    assert not re.search(r"<(script|link|img|iframe)\b", text)
    assert "http://" not in text.replace("http://www.w3.org/", "")
    assert "https://" not in text
    assert "member&lt;" in text and "member<" not in text  # escaped
    churners = int((predictions["churn_probability"] >= curves.threshold).sum())
    assert f"{churners:,} (" in text
    assert [age_band(v) for v in (0, 10, 19, 20, 70, 71, None)] == [
        "unknown", "10–19", "10–19", "20–29", "50–70", "unknown", "unknown",
    ]  # fmt: skip


def test_chromium_renders_the_svg_charts(tmp_path):
    predictions, members, history, curves = _inputs()
    out = render_dashboard(predictions, members, history, curves, tmp_path / "dashboard.html")
    census = chart_census(dump_dom(out, tmp_path / "chromium-profile"))
    assert sorted(census.charts) == sorted(CHART_IDS)
    for chart_id, counts in census.charts.items():
        assert counts["svg"] == 1, chart_id
        # Axes, ticks, bars and lines are <path>s; an empty chart has far fewer.
        assert counts["path"] > 10, (chart_id, counts)
        assert counts["text"] > 3, (chart_id, counts)
    assert "top-at-risk" in census.tables
    assert census.table_rows["top-at-risk"] == 51  # header + top 50
