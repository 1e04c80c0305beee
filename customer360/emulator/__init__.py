"""The local Dataverse emulator: Web API, Entra token endpoint, Synapse Link exporter.

Start it with `customer360.emulator.serve.main(argv)` (the `customer360 dataverse serve` CLI) or,
in tests and benchmarks, with `customer360.emulator.launcher.run_emulator`. See docs/emulator.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from customer360.emulator.launcher import EmulatorHandle, run_emulator

__all__ = ["EmulatorHandle", "run_emulator"]


def __getattr__(name: str):
    # Lazy: the server process must not pay for httpx, which only the testing helper needs.
    if name in __all__:
        from customer360.emulator import testing

        return getattr(testing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
