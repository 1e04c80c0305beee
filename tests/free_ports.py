"""A free TCP port on 127.0.0.1 for a server a test starts later (a Dagster UI, an SMTP server, a
Spark master).

Picked below the kernel's ephemeral range: a port from `bind(("127.0.0.1", 0))` comes from that
range, and between the test closing its probe socket and the server binding the port, any
process binding port 0 or opening a connection (the other worker's Spark driver, an emulator)
can be handed the same port. One browser walk failed so ("Address already in use" for the
dev server's file server). Below the range, only another test's explicit pick can collide.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    """A port nothing listens on now, below the ephemeral range (10000 up to its start)."""
    try:
        ephemeral_low = int(_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768  # Linux's default
    for _ in range(500):
        port = random.randint(10000, max(10001, ephemeral_low - 1))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")
