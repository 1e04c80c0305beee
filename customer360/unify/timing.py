"""Seconds per phase of a resolution run, for its metadata (where a run spends its time)."""

import time


class PhaseClock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        """Record the seconds since the previous lap (or the start) as phase `name`."""
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 2)
        self._last = now
