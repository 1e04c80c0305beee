"""One materialising command per C360_HOME at a time (`run`, `demo`, `dev`).

Two runs on one home write the same Delta tables and the same Dagster instance; the loser used
to die with a Delta `CommitFailedError` traceback. An advisory `flock` on `C360_HOME/.lock` (held
for the command's life, released by the kernel even when the process is killed) lets the second
command wait or stop with the holder's pid and command line, which the holder writes into the
lock file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

LOCK_FILE = ".lock"


class HomeInUse(RuntimeError):
    """Another customer360 command holds the lock on this C360_HOME."""


def describe_holder(path: Path) -> str:
    """`pid N (command, since T)` from the lock file, as far as it can be read."""
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    if not holder.get("pid"):
        return "another process (holder not recorded yet)"
    return f"pid {holder['pid']} ({holder.get('command', '?')}, since {holder.get('since', '?')})"


@contextlib.contextmanager
def home_lock(
    home: str | Path, *, wait: bool = False, notify: Callable[[str], None] = print
) -> Iterator[Path]:
    """Hold the lock on `home` for the block. Busy: wait (telling `notify` who holds it) when
    `wait`, otherwise raise HomeInUse naming the holder."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    path = home / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(path)
            if not wait:
                raise HomeInUse(
                    f"C360_HOME {home} is in use by {holder}: wait for it to finish, run again "
                    "with --wait, or use another C360_HOME"
                ) from None
            notify(f"C360_HOME {home} is in use by {holder}; waiting for it to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        record = {
            "pid": os.getpid(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing releases the flock
