"""Run one publish in a separate process (the kill-half-way test kills this process)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dynamics_emulator import customer_rows, customer_spec, options

from customer360.dynamics import DataverseConnection, Principal, publish
from customer360.dynamics.transport import TransportOptions


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text("utf-8"))
    connection = DataverseConnection(
        api_url=config["api_url"],
        authority=config["authority"],
        principals=tuple(Principal(c, s) for c, s in config["principals"]),
        ca_file=config["ca_file"],
    )
    publish(
        customer_rows(config["rows"]),
        customer_spec(),
        connection,
        options=options(
            bulk_batch_size=config["batch_size"],
            transport=TransportOptions(max_concurrency=2),
        ),
    )


if __name__ == "__main__":
    main(sys.argv[1])
