"""The members' disengagement: one latent process per member that the world's churn reads.

Real disengagement precedes the renewal decision and belongs to the member, not to a term: a
member who starts to drift away listens less and less, and the next billing finds the fall
already under way. Each member is engaged or disengaging:

- disengagement starts with a daily hazard that rises with the member's risk trait;
- while it lasts the listening level decays smoothly from its onset,
  ``level = max(FLOOR, exp(-(t - onset) / TAU))``;
- a small daily re-engagement hazard ends it (the level is back to 1);
- a member who churns and comes back starts engaged.

At each billing the world reads ``D = 1 - level`` on the billing day (`depth`): a term's churn
odds depend on a fall the logs show *before* the decision and keep showing after it. Days are
integers (days since 1970-01-01); the onset day itself is still level 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Days for the level to fall to 1/e after the onset, and the level it never goes below.
TAU = 20.0
FLOOR = 0.05
#: Daily onset hazard at risk 0, and how the member's risk trait (logit units) scales it.
ONSET_RATE = 1 / 250
ONSET_RISK = 0.8
#: Daily re-engagement hazard while disengaging (a mean episode of ~4 months).
RECOVER_RATE = 1 / 120


@dataclass
class Disengagement:
    """Each member's current (or next) episode, [onset, recover), and the episodes closed so far."""

    onset: np.ndarray
    recover: np.ndarray
    rate: np.ndarray
    closed: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    @classmethod
    def start(cls, rng: np.random.Generator, risk: np.ndarray, first_day: np.ndarray):
        """Every member engaged on `first_day` (their join), the first onset still to come."""
        rate = ONSET_RATE * np.exp(ONSET_RISK * np.asarray(risk, dtype=float))
        process = cls(
            onset=np.zeros(len(rate), np.int64), recover=np.zeros(len(rate), np.int64), rate=rate
        )
        process._draw(rng, np.arange(len(rate)), np.asarray(first_day, dtype=np.int64))
        return process

    def _draw(self, rng: np.random.Generator, idx: np.ndarray, after: np.ndarray) -> None:
        """The next episode of members `idx`, its onset after day `after`."""
        wait = np.ceil(rng.exponential(1.0 / self.rate[idx]))
        self.onset[idx] = after + np.maximum(wait, 1).astype(np.int64)
        length = np.ceil(rng.exponential(1.0 / RECOVER_RATE, idx.size))
        self.recover[idx] = self.onset[idx] + np.maximum(length, 1).astype(np.int64)

    def advance(self, rng: np.random.Generator, idx: np.ndarray, day: np.ndarray) -> None:
        """Bring members `idx` to `day`: episodes over by then are closed, the next ones drawn
        (a whole dip-and-recovery between two billings shows in the logs, not in churn)."""
        pending = idx[self.recover[idx] <= day]
        upto = np.zeros(self.onset.size, np.int64)
        upto[idx] = day
        while pending.size:
            self._close(pending, self.recover[pending])
            self._draw(rng, pending, self.recover[pending])
            pending = pending[self.recover[pending] <= upto[pending]]

    def restart(self, rng: np.random.Generator, idx: np.ndarray, day: np.ndarray) -> None:
        """Members `idx` come back on `day` after churning: engaged again, whatever they were."""
        self._close(idx, np.minimum(self.recover[idx], day))
        self._draw(rng, idx, np.asarray(day, dtype=np.int64))

    def depth(self, idx: np.ndarray, day: np.ndarray) -> np.ndarray:
        """D = 1 − level of members `idx` on `day` (0 when engaged); call `advance` first."""
        return 1.0 - level_on(day, self.onset[idx], self.recover[idx])

    def _close(self, idx: np.ndarray, end: np.ndarray) -> None:
        started = self.onset[idx] < end
        if started.any():
            self.closed.append((idx[started], self.onset[idx][started], end[started]))

    def episodes(self, last_day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(member, onset, end) of every episode begun by `last_day`, by member; end exclusive."""
        open_ = np.nonzero(self.onset <= last_day)[0]
        parts = [*self.closed, (open_, self.onset[open_], self.recover[open_])]
        member = np.concatenate([p[0] for p in parts])
        order = np.argsort(member, kind="stable")
        return (
            member[order],
            np.concatenate([p[1] for p in parts])[order],
            np.concatenate([p[2] for p in parts])[order],
        )


def level_on(day, onset, recover) -> np.ndarray:
    """The listening level on `day` of an episode [onset, recover) (1 outside it); broadcasts."""
    since = np.asarray(day) - np.asarray(onset)
    inside = (since >= 0) & (np.asarray(day) < np.asarray(recover))
    decayed = np.maximum(FLOOR, np.exp(-np.maximum(since, 0) / TAU))
    return np.where(inside, decayed, 1.0)
