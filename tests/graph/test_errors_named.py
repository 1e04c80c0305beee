"""Errors that name their cause: the CA file of the Dataverse connection, and a full disk.

The wrong-CA case is real: the local Dataverse (HTTPS, its own CA) and a client trusting another
CA. The full disk is real where the machine allows it: `customer360 run` in its own user and mount
namespace (`unshare -rm`) with C360_HOME on a 256 KiB tmpfs, so the Dagster instance's SQLite
fails with "disk I/O error" as it would on a full disk. Where namespaces are not allowed, the same
error is simulated (an OperationalError and a filesystem reporting no free space) — the test says
which one ran in its output.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from customer360.cli.diagnose import disk_full_message
from customer360.dynamics.auth import DataverseConnection, Principal, TokenProvider
from customer360.dynamics.errors import AuthenticationError, PublishConfigError
from customer360.emulator.certs import ensure_certificates
from customer360.emulator.launcher import run_emulator

CLI = str(Path(sys.executable).with_name("customer360"))


def _connection(emu, ca_file: str) -> DataverseConnection:
    client_id, secret = emu.principals[0]
    return DataverseConnection(
        api_url=emu.api_url, authority=emu.authority,
        principals=(Principal(client_id, secret),), ca_file=ca_file,
    )  # fmt: skip


def test_wrong_ca_file_names_host_url_and_ca_file(tmp_path):
    other_ca = ensure_certificates(tmp_path / "other").ca_file  # a CA that signed nothing here
    with run_emulator(tmp_path / "home", in_process=True) as emu:
        connection = _connection(emu, str(other_ca))
        with pytest.raises(AuthenticationError) as caught:  # MSAL reads the authority first
            TokenProvider(connection.principals[0], connection, max_attempts=4).token()
    message = str(caught.value)
    assert f"TLS certificate of 127.0.0.1 not trusted for {emu.authority}" in message
    assert "(unable to get local issuer certificate)" in message
    assert f"CA file: {other_ca}" in message
    assert emu.principals[0][1] not in message  # never the secret


def test_missing_ca_file_names_the_path_and_the_url(tmp_path):
    missing = tmp_path / "nowhere" / "ca.pem"
    connection = DataverseConnection(
        api_url="https://org.example.com/api/data/v9.2/",
        authority="https://login.example.com/tenant",
        principals=(Principal("app", "secret"),),
        ca_file=str(missing),
    )
    with pytest.raises(PublishConfigError) as caught:
        connection.ssl_context()
    assert f"CA file {missing} for https://org.example.com/api/data/v9.2/" in str(caught.value)
    assert "No such file" in str(caught.value)


def _namespaces_allowed() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


def test_full_disk_says_no_space_left_on_the_path(tmp_path, capsys):
    home = tmp_path / "home"
    home.mkdir()
    if _namespaces_allowed():
        script = (
            f"mount -t tmpfs -o size=256k tmpfs {home} && "
            f"C360_HOME={home} C360_ENV=local C360_DATAVERSE_URL=https://127.0.0.1:9 "
            f"DAGSTER_HOME={home}/dagster {CLI} run"
        )
        env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
        done = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        with capsys.disabled():
            print("\nreal full disk: a 256 KiB tmpfs in a private mount namespace")
        assert done.returncode == 1, done.stderr[-3000:]
        line = done.stderr.strip().splitlines()[-1]
        assert line.startswith(f"customer360: no space left on {home} ")
        assert "disk I/O error" in line or "disk is full" in line
        assert "Traceback" not in done.stderr
        return
    with capsys.disabled():
        print("\nsimulated full disk: user namespaces are not allowed on this machine")
    error = sqlite3.OperationalError("disk I/O error")
    real = shutil.disk_usage
    full = shutil.disk_usage(home)._replace(free=0)
    shutil.disk_usage = lambda p: full if Path(p) == home else real(p)
    try:
        message = disk_full_message(error, [home])
    finally:
        shutil.disk_usage = real
    assert message is not None and "no space left on" in message and str(home) in message


def test_errors_that_are_not_a_full_disk_are_left_alone(tmp_path):
    assert disk_full_message(ValueError("bad value"), [tmp_path]) is None
    # A disk I/O error on a disk with space: not claimed to be a full disk.
    assert disk_full_message(sqlite3.OperationalError("disk I/O error"), [tmp_path]) is None
