"""A picture of the gold profile's segments: value × life stage counts (headless matplotlib)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure


def plot_segments(counts: dict[tuple[str, str], int], path: str | Path) -> Path:
    """PNG heat map of profiles per (value_segment, life_stage_segment), numbers in the cells."""
    values = sorted({v for v, _ in counts})
    stages = sorted({s for _, s in counts})
    grid = [[counts.get((v, s), 0) for s in stages] for v in values]
    fig = Figure(figsize=(1.6 * max(len(stages), 3) + 2, 0.6 * max(len(values), 2) + 1.6), dpi=100)
    ax = fig.subplots()
    if not grid:  # no customers yet (no Synapse Link export, no other source): say so
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no customers yet", ha="center", va="center")
    else:
        ax.imshow(grid, cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(stages)), stages, rotation=20, ha="right")
    ax.set_yticks(range(len(values)), values)
    peak = max((max(row) for row in grid), default=0)
    for i, row in enumerate(grid):
        for j, n in enumerate(row):
            colour = "white" if n > peak / 2 else "black"
            ax.text(j, i, f"{n:,}", ha="center", va="center", color=colour, fontsize=9)
    ax.set_title("unified customers per value and life-stage segment")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
