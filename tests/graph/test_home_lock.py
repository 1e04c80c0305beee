"""Two commands on one C360_HOME: the second stops naming the holder, or waits with --wait.

Real processes: the holder is a Python process that takes the lock exactly as `customer360 run`
does (cli/home_lock.py, with `customer360 run` as its command line), so it can hold it as long as
the test needs; the second is the real `customer360 run` command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).with_name("customer360"))
HOLDER = """
import sys
sys.argv = ["customer360", "run"]
from customer360.cli.home_lock import home_lock
with home_lock(HOME):
    print("locked", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


@pytest.fixture
def holder(tmp_path):
    home = tmp_path / "home"
    code = HOLDER.replace("HOME", repr(str(home)))
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "locked"
    yield home, proc
    if proc.poll() is None:
        proc.stdin.close()
        proc.wait(timeout=30)


def _env(home: Path) -> dict[str, str]:
    # A configured Dataverse URL: the command does not start the local one.
    return {**os.environ, "C360_HOME": str(home), "C360_ENV": "local",
            "C360_DATAVERSE_URL": "https://127.0.0.1:9"}  # fmt: skip


def test_second_run_exits_naming_the_holder(holder):
    home, proc = holder
    started = time.monotonic()
    done = subprocess.run([CLI, "run"], env=_env(home), capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 75, done.stderr[-2000:]
    assert f"C360_HOME {home} is in use by pid {proc.pid} (customer360 run, since" in done.stderr
    assert "Traceback" not in done.stderr and "CommitFailedError" not in done.stderr
    assert time.monotonic() - started < 60  # it did not wait


def test_second_run_with_wait_waits_for_the_holder(holder):
    home, proc = holder
    waiting = subprocess.Popen([CLI, "run", "--wait"], env=_env(home), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = ""
        deadline = time.monotonic() + 90
        while "waiting" not in line and time.monotonic() < deadline:
            line = waiting.stderr.readline()
        assert f"is in use by pid {proc.pid} (customer360 run" in line and "waiting" in line
        time.sleep(1)
        assert waiting.poll() is None  # still waiting while the holder runs
        proc.stdin.close()
        proc.wait(timeout=30)
        # Now it has the lock: it goes on (an empty landing zone: nothing much to do) and ends.
        assert waiting.wait(timeout=300) != 75
        lock = (home / ".lock").read_text()
        assert lock == ""  # released (the holder record is cleared on the way out)
    finally:
        if waiting.poll() is None:
            waiting.kill()
