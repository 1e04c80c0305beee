"""Profit-driven targeting: whom to offer a retention incentive, given calibrated probabilities.

Targeting member i costs `offer_cost` and, if i would otherwise churn (probability p_i), keeps
`customer_value` with probability `acceptance_rate`. The expected profit of targeting everyone
with p ≥ t is

    profit(t) = Σ_{p_i ≥ t} (p_i · acceptance_rate · customer_value − offer_cost)

which is only meaningful because the model's probabilities are calibrated. The chosen threshold
maximises it; analytically every member with p > offer_cost / (acceptance_rate · customer_value)
is worth an offer, and the curve's maximum sits there. With labels (a past period) the same
curve can be computed on outcomes instead of probabilities (`realised_profit`).

The default economics are EXAMPLES, not business facts (nothing in the reference material gives
KKBox's customer value, offer cost or acceptance rate); set your own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class RetentionEconomics:
    """What a retained member is worth and what an offer costs (same currency).

    Defaults are illustrative examples only:
    - customer_value 1788: the list price of KKBox's 410-day plan in the data (NTD), used as
      "about a year of revenue";
    - offer_cost 149: one month of the common 30-day plan, i.e. a free month;
    - acceptance_rate 0.3: an assumed share of would-be churners the offer keeps.
    """

    customer_value: float = 1788.0
    offer_cost: float = 149.0
    acceptance_rate: float = 0.3

    def __post_init__(self) -> None:
        if not (self.customer_value > 0 and math.isfinite(self.customer_value)):
            raise ValueError(f"customer_value must be positive, got {self.customer_value}")
        if not (self.offer_cost >= 0 and math.isfinite(self.offer_cost)):
            raise ValueError(f"offer_cost must be non-negative, got {self.offer_cost}")
        if not 0 < self.acceptance_rate <= 1:
            raise ValueError(f"acceptance_rate must be in (0, 1], got {self.acceptance_rate}")

    @property
    def break_even_probability(self) -> float:
        """The churn probability above which an offer has positive expected profit."""
        return self.offer_cost / (self.acceptance_rate * self.customer_value)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    profit: float  # on the `basis` curve
    targeted: int
    basis: str  # "expected" or "realised"

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def profit_curve(
    probabilities: Sequence[float] | np.ndarray,
    economics: RetentionEconomics,
    labels: Sequence[int] | np.ndarray | None = None,
    thresholds: Sequence[float] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Profit of targeting p ≥ threshold, for each threshold (ascending).

    Columns: threshold, targeted, expected_profit and, with `labels`, realised_profit.
    Default thresholds: every distinct probability (thinned to ≤ 2,001 points for large
    inputs) plus one just above the maximum, where nobody is targeted and the profit is 0.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError("probabilities must be a non-empty 1-D sequence")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("probabilities must lie in [0, 1]")
    y = None
    if labels is not None:
        y = np.asarray(labels, dtype=np.float64)
        if y.shape != p.shape:
            raise ValueError(f"labels has {y.size} values for {p.size} probabilities")
    if thresholds is None:
        t = np.unique(p)
        if t.size > 2000:
            t = np.unique(np.quantile(p, np.linspace(0, 1, 2001)))
        t = np.append(t, np.nextafter(p.max(), np.inf))
    else:
        t = np.unique(np.asarray(thresholds, dtype=np.float64))

    order = np.argsort(-p, kind="stable")
    p_desc = p[order]
    gain = economics.acceptance_rate * economics.customer_value
    # Members targeted at threshold t are the first k of the descending order, k = #(p ≥ t).
    targeted = np.searchsorted(-p_desc, -t, side="right")
    expected_cum = np.concatenate([[0.0], np.cumsum(p_desc * gain - economics.offer_cost)])
    frame = pd.DataFrame(
        {"threshold": t, "targeted": targeted, "expected_profit": expected_cum[targeted]}
    )
    if y is not None:
        realised_cum = np.concatenate([[0.0], np.cumsum(y[order] * gain - economics.offer_cost)])
        frame["realised_profit"] = realised_cum[targeted]
    return frame


def choose_threshold(curve: pd.DataFrame, basis: str = "expected") -> ThresholdChoice:
    """The threshold with the highest profit; on a tie the highest threshold (fewest offers)."""
    column = f"{basis}_profit"
    if column not in curve.columns:
        raise ValueError(f"the curve has no {column!r} column (basis must be expected/realised)")
    if curve.empty:
        raise ValueError("the profit curve is empty")
    best = curve[column].max()
    row = curve[curve[column] == best].sort_values("threshold").iloc[-1]
    return ThresholdChoice(
        threshold=float(row["threshold"]),
        profit=float(row[column]),
        targeted=int(row["targeted"]),
        basis=basis,
    )
