"""A self-contained HTML churn dashboard: inline SVG charts, no server, no CDN, opens from disk.

Every chart is `<figure class="chart" id="chart-…">` holding one inline `<svg>` drawn by
matplotlib's object API (no pyplot state, no GUI backend). Chart ids (stable, tests and users
rely on them): chart-by-city, chart-by-age-band, chart-by-gender,
chart-by-registration-channel, chart-churn-trend, chart-precision-recall, chart-profit; the
table of the members most at risk is `<table id="top-at-risk">`.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from customer360.churn.enrichment import risk_band
from customer360.churn.model import PROBABILITY_COLUMN
from customer360.churn.targeting import RetentionEconomics

CHART_IDS = (
    "chart-by-city",
    "chart-by-age-band",
    "chart-by-gender",
    "chart-by-registration-channel",
    "chart-churn-trend",
    "chart-precision-recall",
    "chart-profit",
)
AGE_BANDS = ((10, 19, "10–19"), (20, 29, "20–29"), (30, 39, "30–39"), (40, 49, "40–49"),
             (50, 70, "50–70"))  # fmt: skip
_BAR = "#c0392b"
_LINE = "#2c3e50"


@dataclass(frozen=True)
class DashboardCurves:
    """What the model and the targeting step produced, for the curve charts and the summary.

    precision_recall: {"precision": [...], "recall": [...]} (e.g. ModelBundle.metrics
    ["precision_recall_curve"]); profit: `profit_curve(...)`; threshold: the chosen one.
    """

    precision_recall: Mapping[str, Sequence[float]]
    profit: pd.DataFrame
    threshold: float
    economics: RetentionEconomics | None = None
    period_label: str = ""
    #: {"training": "2016-12, 2017-01", "validation": "2017-02", "scoring": "2017-03"}
    months: Mapping[str, str] | None = None


def render_dashboard(
    predictions_pdf: pd.DataFrame,
    members_pdf: pd.DataFrame,
    history: pd.DataFrame,
    curves: DashboardCurves,
    out_path: str | Path,
    *,
    title: str = "Churn risk",
    top_n: int = 50,
) -> Path:
    """Write the dashboard to `out_path` (parent created) and return the path.

    predictions_pdf: msno, churn_probability (one row per scored member).
    members_pdf: msno, city, bd, gender, registered_via (members without a row show as unknown;
    pass only the scored members for big data).
    history: period_start, churn_rate (observed, per labelled period; `churn_history`), and
    optionally predicted_rate.
    """
    for column in ("msno", PROBABILITY_COLUMN):
        if column not in predictions_pdf.columns:
            raise ValueError(f"predictions_pdf has no {column!r} column")
    for column in ("period_start", "churn_rate"):
        if column not in history.columns:
            raise ValueError(f"history has no {column!r} column")
    scored = _scored_members(predictions_pdf, members_pdf, curves.threshold)
    churners = scored[scored["predicted_churner"]]

    figures = {
        "chart-by-city": _bar_chart(
            _count_by(churners, "city_label"), "Predicted churners by city", "city"
        ),
        "chart-by-age-band": _bar_chart(
            _count_by(churners, "age_band", order=[b[2] for b in AGE_BANDS] + ["unknown"]),
            "Predicted churners by age band",
            "age band",
        ),
        "chart-by-gender": _bar_chart(
            _count_by(churners, "gender_label", order=["female", "male", "unknown"]),
            "Predicted churners by gender",
            "gender",
        ),
        "chart-by-registration-channel": _bar_chart(
            _count_by(churners, "channel_label"),
            "Predicted churners by registration channel",
            "registered_via",
        ),
        "chart-churn-trend": _trend_chart(history),
        "chart-precision-recall": _pr_chart(curves.precision_recall),
        "chart-profit": _profit_chart(curves.profit, curves.threshold),
    }
    svgs = {chart_id: _svg(figure, chart_id) for chart_id, figure in figures.items()}
    page = _page(title, scored, churners, curves, svgs, top_n)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


def age_band(bd: float | None) -> str:
    """The dashboard's age band of a `bd` value ('unknown' outside 10–70 or missing)."""
    if bd is None or pd.isna(bd):
        return "unknown"
    for low, high, label in AGE_BANDS:
        if low <= bd <= high:
            return label
    return "unknown"


def _scored_members(predictions: pd.DataFrame, members: pd.DataFrame, threshold: float):
    wanted = ["msno", "city", "bd", "gender", "registered_via"]
    missing = [c for c in wanted if c not in members.columns]
    if missing:
        raise ValueError(f"members_pdf lacks columns {missing}")
    merged = predictions[["msno", PROBABILITY_COLUMN]].merge(
        members[wanted].drop_duplicates("msno"), on="msno", how="left"
    )
    merged["predicted_churner"] = merged[PROBABILITY_COLUMN] >= threshold
    merged["risk_band"] = [risk_band(float(p), threshold) for p in merged[PROBABILITY_COLUMN]]
    merged["city_label"] = _code_label(merged["city"])
    merged["channel_label"] = _code_label(merged["registered_via"])
    merged["age_band"] = [age_band(v) for v in merged["bd"]]
    gender = merged["gender"].where(merged["gender"].isin(["female", "male"]))
    merged["gender_label"] = gender.fillna("unknown")
    return merged


def _code_label(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    return pd.Series(
        ["unknown" if pd.isna(v) else str(int(v)) for v in numbers], index=values.index
    )


def _count_by(frame: pd.DataFrame, column: str, order: Sequence[str] | None = None) -> pd.Series:
    counts = frame[column].value_counts()
    if order is not None:
        return counts.reindex(order, fill_value=0)
    # Codes: largest first, at most 15 bars (the rest would be unreadable slivers).
    return counts.sort_values(ascending=False, kind="stable").head(15)


def _figure() -> Figure:
    return Figure(figsize=(6.4, 3.4), dpi=100, layout="constrained")


def _bar_chart(counts: pd.Series, title: str, xlabel: str) -> Figure:
    figure = _figure()
    ax = figure.add_subplot()
    labels = [str(v) for v in counts.index]
    ax.bar(labels, counts.to_numpy(), color=_BAR)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("members")
    ax.grid(axis="y", alpha=0.3)
    if not len(labels):
        ax.text(0.5, 0.5, "no predicted churners", ha="center", transform=ax.transAxes)
    return figure


def _trend_chart(history: pd.DataFrame) -> Figure:
    figure = _figure()
    ax = figure.add_subplot()
    frame = history.sort_values("period_start")
    labels = [_period_label(v) for v in frame["period_start"]]
    observed = frame["churn_rate"].to_numpy(dtype=float)
    ax.plot(labels, observed, marker="o", color=_LINE, label="observed churn rate")
    if "predicted_rate" in frame.columns:
        predicted = frame["predicted_rate"].to_numpy(dtype=float)
        ax.plot(labels, predicted, marker="s", linestyle="--", color=_BAR, label="predicted")
    ax.set_title("Churn rate by period")
    ax.set_ylabel("churn rate")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return figure


def _pr_chart(curve: Mapping[str, Sequence[float]]) -> Figure:
    figure = _figure()
    ax = figure.add_subplot()
    ax.plot(list(curve["recall"]), list(curve["precision"]), color=_LINE)
    ap = curve.get("average_precision")
    ax.set_title("Precision-recall" + (f" (AP {ap:.3f})" if ap is not None else ""))
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    return figure


def _profit_chart(profit: pd.DataFrame, threshold: float) -> Figure:
    figure = _figure()
    ax = figure.add_subplot()
    ax.plot(profit["threshold"], profit["expected_profit"], color=_LINE, label="expected")
    if "realised_profit" in profit.columns:
        ax.plot(
            profit["threshold"], profit["realised_profit"], color=_BAR, linestyle="--",
            label="realised",
        )  # fmt: skip
    ax.axvline(threshold, color="#7f8c8d", linestyle=":", label=f"threshold {threshold:.3f}")
    ax.axhline(0, color="#bdc3c7", linewidth=0.8)
    ax.set_title("Profit of targeting members with p ≥ threshold")
    ax.set_xlabel("threshold (churn probability)")
    ax.set_ylabel("profit")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return figure


_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.DOTALL)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)


def _svg(figure: Figure, chart_id: str) -> str:
    """The figure as inline SVG: text kept as <text>, ids salted per chart so they never clash."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": chart_id}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    svg = _PROLOGUE.sub("", buffer.getvalue(), count=1)
    return _METADATA.sub("", svg, count=1).strip()  # RDF boilerplate, not needed inline


def _period_label(value: object) -> str:
    if isinstance(value, (dt.date, pd.Timestamp)):
        return value.strftime("%Y-%m")
    return str(value)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
dl.summary { display: flex; flex-wrap: wrap; gap: .75rem; }
.fact { background: #f4f6f7; padding: .5rem .75rem; border-radius: 6px; }
.fact dt { font-size: .8rem; color: #555; } .fact dd { margin: 0; font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr));
  gap: 1rem; }
figure.chart { margin: 0; } figure.chart svg { width: 100%; height: auto; }
table { border-collapse: collapse; font-size: .85rem; }
th, td { border-bottom: 1px solid #ddd; padding: .25rem .5rem; text-align: left; }
"""


def _facts(scored: pd.DataFrame, churners: pd.DataFrame, curves: DashboardCurves) -> list:
    """(label, value) pairs of the summary: months, counts, threshold, profit, economics."""
    total = len(scored)
    share = len(churners) / total if total else 0.0
    at_threshold = curves.profit[curves.profit["threshold"] >= curves.threshold]
    expected = float(at_threshold["expected_profit"].iloc[0]) if len(at_threshold) else float("nan")
    months = curves.months or {}
    facts = [("Scoring month", months.get("scoring") or curves.period_label or "—")]
    if months.get("training"):
        facts.append(("Training months", months["training"]))
    if months.get("validation"):
        facts.append(("Validation month", months["validation"]))
    facts += [
        ("Members scored", f"{total:,}"),
        ("Predicted churners (p ≥ threshold)", f"{len(churners):,} ({share:.1%})"),
        ("Threshold", f"{curves.threshold:.4f}"),
        ("Expected profit at threshold", f"{expected:,.0f}"),
        ("Mean churn probability", f"{scored[PROBABILITY_COLUMN].mean():.3f}" if total else "—"),
    ]
    if curves.economics is not None:
        econ = curves.economics
        facts.append(
            (
                "Economics (examples unless configured)",
                f"value {econ.customer_value:,.0f} · offer {econ.offer_cost:,.0f} · "
                f"acceptance {econ.acceptance_rate:.0%}",
            )
        )
    return facts


def _top_table(scored: pd.DataFrame, top_n: int) -> tuple[int, str]:
    """(rows shown, `<table id="top-at-risk">` html) of the members most at risk."""
    e = html.escape
    top = scored.sort_values(PROBABILITY_COLUMN, ascending=False, kind="stable").head(top_n)
    columns = ("msno", "churn probability", "risk band", "city", "age band", "gender", "channel")
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{e(str(v))}</td>"
            for v in (
                row.msno,
                f"{getattr(row, PROBABILITY_COLUMN):.3f}",
                row.risk_band,
                row.city_label,
                row.age_band,
                row.gender_label,
                row.channel_label,
            )
        )
        + "</tr>"
        for row in top.itertuples(index=False)
    )
    table = f'<table id="top-at-risk"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return len(top), table


def _page(
    title: str,
    scored: pd.DataFrame,
    churners: pd.DataFrame,
    curves: DashboardCurves,
    svgs: Mapping[str, str],
    top_n: int,
) -> str:
    e = html.escape
    summary = "".join(
        f"<div class='fact'><dt>{e(k)}</dt><dd>{e(v)}</dd></div>"
        for k, v in _facts(scored, churners, curves)
    )
    figures = "\n".join(
        f"<figure class='chart' id='{chart_id}'>{svgs[chart_id]}</figure>" for chart_id in CHART_IDS
    )
    shown, table = _top_table(scored, top_n)
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{e(title)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>{e(title)}</h1>
<p>Generated {e(generated)}. Probabilities are calibrated; a member is a predicted churner when
p ≥ the profit-maximising threshold.</p>
<dl class="summary" id="summary">{summary}</dl>
<section class="charts">
{figures}
</section>
<h2>Top {shown} members at risk</h2>
{table}
</body></html>
"""
