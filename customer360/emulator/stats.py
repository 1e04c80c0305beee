"""Per-user counters for `GET /_emulator/stats`: requests, records, 429s by reason, faults."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class UserStats:
    requests: int = 0
    records_written: int = 0
    records_read: int = 0
    execution_seconds: float = 0.0
    throttled: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "records_written": self.records_written,
            "records_read": self.records_read,
            "execution_seconds": round(self.execution_seconds, 6),
            "throttled": {
                "requests": self.throttled["requests"],
                "execution_time": self.throttled["execution_time"],
                "concurrency": self.throttled["concurrency"],
                "total": sum(self.throttled.values()),
            },
            "faults": dict(self.faults),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


class Stats:
    def __init__(self) -> None:
        self.users: dict[str, UserStats] = {}
        self.token_requests = 0
        self.token_failures: Counter = Counter()

    def user(self, name: str) -> UserStats:
        found = self.users.get(name)
        if found is None:
            found = self.users[name] = UserStats()
        return found

    def as_dict(self) -> dict:
        users = {name: s.as_dict() for name, s in sorted(self.users.items())}
        totals = UserStats()
        for s in self.users.values():
            totals.requests += s.requests
            totals.records_written += s.records_written
            totals.records_read += s.records_read
            totals.execution_seconds += s.execution_seconds
            totals.throttled.update(s.throttled)
            totals.faults.update(s.faults)
            totals.statuses.update(s.statuses)
        return {
            "users": users,
            "totals": totals.as_dict(),
            "token": {"requests": self.token_requests, "failures": dict(self.token_failures)},
        }
