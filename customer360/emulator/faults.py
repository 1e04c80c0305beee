"""Deterministic fault injection: the same seed and request order give the same faults.

Web API requests are numbered from 1 in arrival order; each draws one number from a seeded
generator (whether or not a fault fires, so the sequence never shifts). A `schedule` entry
forces a fault on a given request number. Token requests have their own counter and schedule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FAULT_KINDS = ("500", "503", "drop", "slow")


@dataclass(frozen=True)
class Fault:
    kind: str  # "500" | "503" | "drop" | "slow"
    request_number: int


class FaultInjector:
    def __init__(self, raw: dict) -> None:
        self.configure(raw)

    def configure(self, raw: dict) -> None:
        self.seed = raw["seed"]
        self.error_rate = float(raw["error_rate"])
        self.error_statuses = [int(s) for s in raw["error_statuses"]] or [503]
        self.drop_rate = float(raw["drop_rate"])
        self.slow_rate = float(raw["slow_rate"])
        self.slow_seconds = float(raw["slow_seconds"])
        self.token_error_rate = float(raw["token_error_rate"])
        self.deadlock_on_conflict = bool(raw["deadlock_on_conflict"])
        self.schedule: dict[int, str] = {}
        for entry in raw["schedule"]:
            kind = str(entry["fault"])
            if kind not in FAULT_KINDS:
                raise ValueError(f"faults.schedule: unknown fault {kind!r} (use {FAULT_KINDS})")
            self.schedule[int(entry["request"])] = kind
        self.token_schedule = {int(n) for n in raw["token_schedule"]}
        self._rng = random.Random(f"api:{self.seed}")
        self._token_rng = random.Random(f"token:{self.seed}")
        self.api_requests = 0
        self.token_requests = 0

    @property
    def active(self) -> bool:
        return bool(self.error_rate or self.drop_rate or self.slow_rate or self.schedule)

    def next_api_fault(self) -> Fault | None:
        self.api_requests += 1
        number = self.api_requests
        draw = self._rng.random()
        pick = self._rng.random()
        scheduled = self.schedule.get(number)
        if scheduled is not None:
            return Fault(scheduled, number)
        threshold = self.error_rate
        if draw < threshold:
            status = self.error_statuses[int(pick * len(self.error_statuses))]
            return Fault(str(status), number)
        threshold += self.drop_rate
        if draw < threshold:
            return Fault("drop", number)
        threshold += self.slow_rate
        if draw < threshold:
            return Fault("slow", number)
        return None

    def next_token_fault(self) -> bool:
        self.token_requests += 1
        draw = self._token_rng.random()
        return self.token_requests in self.token_schedule or draw < self.token_error_rate
