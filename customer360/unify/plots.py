"""A picture of one resolution run: what each rule compared, matched and sent to review, and
how large the profiles are (matplotlib object API, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure


def plot_match_quality(figures: dict[str, Any], path: str | Path) -> Path:
    """PNG of quality_figures(): per-rule decisions (log scale) and the profile-size histogram."""
    fig = Figure(figsize=(11, 4.5), dpi=100)
    rules_ax, sizes_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    decided: dict[str, dict[str, int]] = figures["decisions_per_rule"]
    rules = list(decided)
    width = 0.27
    for i, decision in enumerate(("match", "review", "no_match")):
        values = [decided[r].get(decision, 0) for r in rules]
        xs = [j + (i - 1) * width for j in range(len(rules))]
        rules_ax.bar(xs, values, width, label=decision)
    rules_ax.set_xticks(range(len(rules)), rules, rotation=20, ha="right", fontsize=8)
    rules_ax.set_yscale("symlog")
    rules_ax.set_ylabel("pairs compared")
    rules_ax.set_title("decisions per rule")
    rules_ax.legend(fontsize=8)
    sizes = {int(k): v for k, v in figures["profile_sizes"].items()}
    sizes_ax.bar([str(k) for k in sorted(sizes)], [sizes[k] for k in sorted(sizes)])
    sizes_ax.set_yscale("log")
    sizes_ax.set_xlabel("records per profile")
    sizes_ax.set_ylabel("profiles")
    sizes_ax.set_title(
        f"{figures['records']:,} records → {figures['profiles']:,} profiles "
        f"(merge rate {figures['merge_rate'] or 0:.3f})",
        fontsize=10,
    )
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
