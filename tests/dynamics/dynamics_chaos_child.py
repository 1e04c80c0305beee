"""One chaos publish in its own process, writing the Delta ops tables (the test SIGKILLs it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dynamics_chaos import chaos_options, chaos_rows, connection_from, delta_sink
from dynamics_emulator import customer_spec

from customer360.dynamics import publish


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text("utf-8"))
    sink = delta_sink(Path(config["lake"]))
    publish(
        chaos_rows(config["rows"]),
        customer_spec(),
        connection_from(config),
        sink=sink,
        options=chaos_options(),
        run_id="killed",
    )
    sink.close()


if __name__ == "__main__":
    main(sys.argv[1])
