"""Run the local Dataverse emulator: `python -m customer360.emulator.serve --home DIR --port N`.

`main(argv)` is what `customer360 dataverse serve` calls. With `--port 0` a free port is chosen;
`--port-file` receives `{"port", "pid", "base_url"}` as JSON once the server accepts connections.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import uvicorn

from customer360.emulator.app import Emulator, build_app
from customer360.settings import get_settings

DEFAULT_PORT = 8443


def bind_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class EmulatorServer(uvicorn.Server):
    """uvicorn server that reports when it is listening."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_started()


def make_server(
    emulator: Emulator, sock: socket.socket, on_started: Callable[[], None], *, threaded: bool
) -> EmulatorServer:
    config = uvicorn.Config(
        build_app(emulator),
        ssl_certfile=str(emulator.certs.cert_file),
        ssl_keyfile=str(emulator.certs.key_file),
        loop="asyncio" if threaded else "uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
        # A client that keeps a connection half-used must not hold a stop for long.
        timeout_graceful_shutdown=3,
        proxy_headers=False,
        server_header=False,
        limit_concurrency=None,
        backlog=2048,
    )
    return EmulatorServer(config, on_started)


def _write_port_file(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload), encoding="utf-8")
    os.replace(tmp, path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="customer360 dataverse serve",
        description="Local Dataverse emulator (Web API, Entra token endpoint, Synapse Link "
        "export).",
    )
    parser.add_argument(
        "--home",
        default=None,
        help="C360_HOME (default: the C360_HOME setting); state goes to HOME/dataverse, "
        "exports to HOME/landing/dataverse",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--port-file", help="write {port, pid, base_url} JSON here once listening")
    parser.add_argument("--config-json", help="config overrides as a JSON object")
    parser.add_argument("--config-file", help="config overrides from a JSON file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    overrides: dict = {}
    if args.config_file:
        overrides.update(json.loads(Path(args.config_file).read_text("utf-8")))
    if args.config_json:
        overrides.update(json.loads(args.config_json))
    home = args.home if args.home is not None else get_settings().home
    emulator = Emulator(home, overrides or None)
    sock = bind_socket(args.port)
    port = sock.getsockname()[1]
    emulator.bind(port)

    def started() -> None:
        info = {"port": port, "pid": os.getpid(), "base_url": emulator.base_url}
        if args.port_file:
            _write_port_file(Path(args.port_file), info)
        print(
            f"customer360 local Dataverse on {emulator.base_url} "
            f"(tenant {emulator.config['tenant_id']}, CA {emulator.certs.ca_file})",
            flush=True,
        )

    server = make_server(emulator, sock, started, threaded=False)
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    try:
        server.run(sockets=[sock])
    finally:
        emulator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
