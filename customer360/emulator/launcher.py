"""Start the local Dataverse (a subprocess, or a thread) and get what a client needs to reach it.

    with run_emulator(tmp_path, config={"limits": {"enabled": False}}) as emu:
        app = msal.ConfidentialClientApplication(emu.principals[0][0], ...)

Default: a subprocess `python -m customer360.emulator.serve --home HOME --port 0` (so the
client's CPU is separate, as in production); `in_process=True` runs uvicorn in a thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from customer360.emulator.config import CONFIG_FILE_NAME

START_TIMEOUT_SECONDS = 60.0


class EmulatorAdminError(RuntimeError):
    """An admin call failed; the message has the status and the server's error text."""


def ssl_context(ca_file: str | Path) -> ssl.SSLContext:
    """A verifying TLS context that trusts only the emulator's CA."""
    return ssl.create_default_context(cafile=str(ca_file))


@dataclass
class EmulatorHandle:
    base_url: str  # "https://127.0.0.1:<port>"
    api_url: str  # base_url + "/api/data/v9.2/"
    tenant_id: str
    authority: str  # f"{base_url}/{tenant_id}"
    ca_file: Path
    principals: list[tuple[str, str]]  # (client_id, client_secret) per application user
    home: Path = field(default=Path("."))
    pid: int | None = None  # server process id (None when in_process)
    _client: httpx.Client | None = field(default=None, repr=False)

    @property
    def scope(self) -> str:
        """The client-credentials scope for this environment (`<base_url>/.default`)."""
        return f"{self.base_url}/.default"

    def http_client(self, **kwargs) -> httpx.Client:
        """An httpx client that verifies TLS against the emulator's CA (environment ignored)."""
        return httpx.Client(verify=ssl_context(self.ca_file), trust_env=False, **kwargs)

    def admin(self, method: str, path: str, json: dict | None = None) -> dict:
        """Call `/_emulator/<path>` over HTTPS; return the JSON body (raises on HTTP errors)."""
        if self._client is None:
            self._client = self.http_client(timeout=120.0)
        relative = path.lstrip("/")
        if relative.startswith("_emulator/"):
            relative = relative[len("_emulator/") :]
        response = self._client.request(
            method.upper(), f"{self.base_url}/_emulator/{relative}", json=json
        )
        if response.status_code >= 400:
            raise EmulatorAdminError(
                f"{method.upper()} /_emulator/{relative} → {response.status_code}: {response.text}"
            )
        return response.json()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _handle(home: Path, port: int) -> EmulatorHandle:
    stored = json.loads((home / "dataverse" / CONFIG_FILE_NAME).read_text("utf-8"))
    base_url = f"https://127.0.0.1:{port}"
    tenant = stored["tenant_id"]
    return EmulatorHandle(
        base_url=base_url,
        api_url=f"{base_url}/api/data/v9.2/",
        tenant_id=tenant,
        authority=f"{base_url}/{tenant}",
        ca_file=home / "dataverse" / "ca.pem",
        principals=[(u["client_id"], u["client_secret"]) for u in stored["application_users"]],
        home=home,
    )


def _wait_healthy(handle: EmulatorHandle, deadline: float, alive) -> None:
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the emulator stopped while starting")
        try:
            handle.admin("GET", "health")
            return
        except (httpx.HTTPError, EmulatorAdminError, OSError) as exc:
            last_error = exc
            time.sleep(0.05)
    raise TimeoutError(f"the emulator did not answer within the start timeout ({last_error})")


def _child_environment() -> dict[str, str]:
    """The caller's environment, with this source tree first on PYTHONPATH so the server runs
    the same code as the caller (also from a fresh clone that is not installed)."""
    env = dict(os.environ)
    source_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH")) if p)
    return env


@contextlib.contextmanager
def _subprocess(home: Path, config: dict | None) -> Iterator[EmulatorHandle]:
    with tempfile.TemporaryDirectory(prefix="c360-emulator-") as tmp:
        port_file = Path(tmp) / "port.json"
        command = [
            sys.executable,
            "-m",
            "customer360.emulator.serve",
            "--home",
            str(home),
            "--port",
            "0",
            "--port-file",
            str(port_file),
        ]
        if config:
            config_file = Path(tmp) / "config.json"
            config_file.write_text(json.dumps(config), encoding="utf-8")
            command += ["--config-file", str(config_file)]
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=_child_environment()
            )
            handle: EmulatorHandle | None = None
            try:
                deadline = time.monotonic() + START_TIMEOUT_SECONDS
                while not port_file.exists():
                    if process.poll() is not None:
                        raise RuntimeError(
                            f"the emulator exited with {process.returncode}:\n"
                            f"{log_path.read_text('utf-8', 'replace')[-4000:]}"
                        )
                    if time.monotonic() > deadline:
                        raise TimeoutError("the emulator did not report its port in time")
                    time.sleep(0.05)
                port = json.loads(port_file.read_text("utf-8"))["port"]
                handle = _handle(home, port)
                handle.pid = process.pid
                _wait_healthy(handle, deadline, lambda: process.poll() is None)
                yield handle
            finally:
                if handle is not None:
                    handle.close()
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait(timeout=5)


@contextlib.contextmanager
def _in_process(home: Path, config: dict | None) -> Iterator[EmulatorHandle]:
    from customer360.emulator.app import Emulator
    from customer360.emulator.serve import bind_socket, make_server

    emulator = Emulator(home, config)
    sock = bind_socket(0)
    port = sock.getsockname()[1]
    emulator.bind(port)
    started = threading.Event()
    server = make_server(emulator, sock, started.set, threaded=True)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="c360-emulator", daemon=True
    )
    thread.start()
    handle: EmulatorHandle | None = None
    try:
        if not started.wait(START_TIMEOUT_SECONDS):
            raise TimeoutError("the in-process emulator did not start in time")
        handle = _handle(home, port)
        handle.emulator = emulator  # type: ignore[attr-defined]  # for white-box tests
        _wait_healthy(handle, time.monotonic() + START_TIMEOUT_SECONDS, thread.is_alive)
        yield handle
    finally:
        if handle is not None:
            handle.close()
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        emulator.close()


@contextlib.contextmanager
def run_emulator(
    home: str | Path, *, config: dict | None = None, in_process: bool = False
) -> Iterator[EmulatorHandle]:
    """Start the emulator on a free 127.0.0.1 port under `home`, yield its handle, stop it."""
    home_path = Path(home).expanduser().resolve()
    home_path.mkdir(parents=True, exist_ok=True)
    runner = _in_process if in_process else _subprocess
    with runner(home_path, config) as handle:
        yield handle
