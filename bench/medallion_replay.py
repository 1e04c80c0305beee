"""Benchmark: one more incremental run on a copy of a kept `bench/medallion.py` lake (A/B of code).

    .venv/bin/python bench/medallion.py --customers 200000 --folders 10 --months 12 --home BASE
    .venv/bin/python bench/medallion_replay.py BASE WORK --customers 200000 --folders 10

Copies BASE (a `--home` that bench/medallion.py left: full build plus one incremental folder) to
WORK, writes the next change folder of the same size (2 % updates, 0.2 % deletes, customers no
earlier folder touched) and runs the incremental graph run `customer360 run` would, in this
process. Prints per layer the wall seconds (step events) and the process CPU seconds spent
between each step's start and end (the Python side: Arrow, DuckDB, delta-rs; Spark's JVM is
another process), the whole run's wall and CPU, the incremental paths and the identity and
profile phases. Every replay starts from the same BASE, so two code versions compare on the same
change; run the other version with its tree first on PYTHONPATH. The JVM is cold (no full build
before), so silver's Spark steps take longer than in bench/medallion.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _next_folder(work: Path, customers: int, folders: int) -> None:
    """The next change folder, continuing the generator where the kept lake's folders end."""
    from customer360.generate.synthetic import SyntheticLanding, change_sizes, synthetic_customers

    landing = SyntheticLanding(work / "landing", synthetic_customers(customers, 7))
    written = sorted(p.name for p in (work / "landing" / "dataverse").iterdir()
                     if p.is_dir() and p.name[:2].isdigit())  # fmt: skip
    updates, deletes = change_sizes(customers, folders, 0.2, 0.02)
    # Each change folder after the initial sync used updates + deletes untouched customers.
    landing.resume(written, (len(written) - 1) * (updates + deletes))
    print(f"new folder {landing.write_changes(updates, deletes)}: {updates:,} updates, "
          f"{deletes:,} deletes")  # fmt: skip


def _step_cpu(instance, into: dict[str, float]) -> None:
    """Process CPU seconds per step: the clock read at each step's start and success events
    (the in-process executor handles them on the thread that runs the step)."""
    import medallion

    original = instance.handle_new_event

    def handle(event, *args, **kwargs):
        step = event.dagster_event
        if step is not None and step.step_key and step.event_type_value in (
            "STEP_START", "STEP_SUCCESS",
        ):  # fmt: skip
            key = medallion.LAYERS.get(step.step_key, step.step_key)
            sign = -1 if step.event_type_value == "STEP_START" else 1
            into[key] = into.get(key, 0.0) + sign * time.process_time()
        return original(event, *args, **kwargs)

    instance.handle_new_event = handle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="a --home bench/medallion.py kept")
    parser.add_argument("work", type=Path, help="where the copy goes (replaced)")
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--folders", type=int, required=True)
    parser.add_argument("--driver-memory", default=os.environ.get("C360_SPARK_DRIVER_MEMORY", "6g"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=Warning, module="dagster")
    shutil.rmtree(args.work, ignore_errors=True)
    shutil.copytree(args.base, args.work, symlinks=True)
    os.environ.update(C360_HOME=str(args.work), C360_ENV="local",
                      C360_SPARK_DRIVER_MEMORY=args.driver_memory)  # fmt: skip
    import dagster as dg
    import medallion

    from customer360.definitions import build_definitions
    from customer360.sparkconf import build_session
    from resources.spark import spark_config_from_env

    _next_folder(args.work, args.customers, args.folders)
    session = build_session(spark_config_from_env(), app_name="customer360")  # not timed
    session.sparkContext.setLogLevel("ERROR")
    defs = build_definitions()
    cpu: dict[str, float] = {}
    with dg.DagsterInstance.local_temp(tempdir=str(args.work / "dagster")) as instance:
        _step_cpu(instance, cpu)
        load = os.getloadavg()[0]
        started = time.process_time()
        measured = medallion._run(defs, instance)
        total_cpu = time.process_time() - started
    print(f"{'layer':<16}{'wall s':>9}{'cpu s':>9}")
    for layer in medallion.LAYER_ORDER:
        print(f"{layer:<16}{measured.seconds.get(layer, 0.0):>9.1f}{cpu.get(layer, 0.0):>9.2f}")
    print(f"{'run':<16}{measured.wall:>9.1f}{total_cpu:>9.2f}")
    print("incremental paths: " + ", ".join(f"{k}={v}" for k, v in measured.paths.items()))
    medallion._print_identity("incremental", measured)
    if measured.profile_phases:
        shown = ", ".join(f"{k} {v:.2f}" for k, v in measured.profile_phases.items())
        print(f"gold profile incremental phases (s): {shown}")
    print(f"load average before {load:.1f}, after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
