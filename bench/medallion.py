"""Benchmark: the medallion graph on a large synthetic export, full build vs one incremental folder.

    .venv/bin/python bench/medallion.py [--customers 1000000] [--folders 10] [--months 12]
                                        [--home DIR] [--driver-memory 10g]

Generates (not timed) a Synapse Link export of N customers: the initial sync, then `--folders`
change folders that together update 20 % and delete 2 % of the customers, plus a monthly finance
file (cid,month,income,spend) for `--months` months. Then, on the real graph
(`build_definitions()` with C360_HOME in a temporary folder, partitions registered as the landing
sensors would, `materialize_graph` restricted to the medallion's assets):

1. the full build: every export partition, the finance drop, then silver, gold and the lake
   database;
2. one more change folder of the same size (2 % updates, 0.2 % deletes) and the incremental run
   that `customer360 run` does for it.

Prints seconds and rows/s per layer from the runs' step events, the wall time of both runs and
the incremental/full ratio. The Spark session is started before the clock starts (both runs use
the same warm JVM).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

#: Step (op) name → layer reported.
LAYERS = {
    "bronze__crc33_customer": "bronze",
    "bronze__customer_finance": "bronze",
    "silver__customer_history": "silver history",
    "silver__customer_and_quarantine": "silver current",
    "silver__customer_finance": "silver finance",
    "silver__crm_residents_and_quarantine": "silver crm",
    "gold__customer_source_link_pairs_and_candidates": "gold identity",
    "gold__customer_profile_and_segments": "gold profile",
    "lakedb__gold": "lakedb",
}
LAYER_ORDER = ("bronze", "silver history", "silver current", "silver finance", "silver crm",
               "gold identity", "gold profile", "lakedb")  # fmt: skip
#: Asset → layer, for the rows each layer wrote (`rows_written` metadata of its materialisations).
ASSET_LAYERS = {
    "bronze/crc33_customer": "bronze",
    "bronze/customer_finance": "bronze",
    "silver/customer_history": "silver history",
    "silver/customer": "silver current",
    "silver/customer_quarantine": "silver current",
    "silver/customer_finance": "silver finance",
    "silver/crm_residents": "silver crm",
    "gold/customer_source_link": "gold identity",
    "gold/customer_profile": "gold profile",
    "gold/customer_segments": "gold profile",
}


@dataclass
class Measured:
    wall: float = 0.0
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    paths: dict[str, str] = field(default_factory=dict)  # asset → full/incremental/unchanged
    #: gold identity's own figures: phases (s) and, for an incremental run, its counts
    identity: dict[str, dict] = field(default_factory=dict)
    #: gold profile's phases (s) of an incremental build (derive, flags and write, segments)
    profile_phases: dict[str, float] = field(default_factory=dict)


def _measure(instance, before: set[str], wall: float) -> Measured:
    import dagster as dg

    out = Measured(wall=wall)
    for run in instance.get_runs():
        if run.run_id in before:
            continue
        for stat in instance.get_run_step_stats(run.run_id):
            layer = LAYERS.get(stat.step_key, stat.step_key)
            if stat.start_time and stat.end_time:
                out.seconds[layer] += stat.end_time - stat.start_time
        records = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        for record in records:
            mat = record.event_log_entry.dagster_event.event_specific_data.materialization
            key = mat.asset_key.to_user_string()
            meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
            if key == "lakedb/gold":
                out.rows["lakedb"] += sum(meta.get("rows_by_table", {}).values())
            elif key in ASSET_LAYERS:
                out.rows[ASSET_LAYERS[key]] += int(meta.get("rows_written", 0) or 0)
            if "refresh" in meta:
                out.paths[key] = str(meta["refresh"])
            if key == "gold/customer_source_link":
                _identity_figures(meta, out.identity)
            if key == "gold/customer_profile" and isinstance(meta.get("phases"), dict):
                out.profile_phases = dict(meta["phases"])
    return out


def _identity_figures(meta: dict, into: dict[str, dict]) -> None:
    """The identity step's phases (full: `phases`; incremental: `incremental.phases`) and the
    incremental counts (changed, dirty, partners, partners_read, closure …)."""
    incremental = meta.get("incremental")
    if isinstance(incremental, dict):
        into["phases"] = dict(incremental.get("phases", {}))
        into["counts"] = {k: v for k, v in incremental.items() if isinstance(v, int | float)
                          and k != "seconds"}  # fmt: skip
    elif isinstance(meta.get("phases"), dict):
        into["phases"] = dict(meta["phases"])


def _print_identity(name: str, measured: Measured) -> None:
    phases = measured.identity.get("phases")
    if phases:
        shown = ", ".join(f"{k} {v:.1f}" for k, v in phases.items())
        print(f"gold identity {name} phases (s): {shown}")
    counts = measured.identity.get("counts")
    if counts:
        print(f"gold identity {name} counts: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))


def medallion_selection():
    """The medallion's own assets (other teams' assets in the same graph, e.g. the Dynamics
    publish or churn scores, need services and data this benchmark does not provide)."""
    import dagster as dg

    from assets.bronze import configured_tables

    keys = [["bronze", t.name] for t in configured_tables()] + [
        ["bronze", "customer_finance"],
        ["silver", "customer_history"],
        ["silver", "customer"],
        ["silver", "customer_quarantine"],
        ["silver", "customer_finance"],
        ["silver", "crm_residents"],  # empty here: the benchmark has one source
        ["silver", "crm_residents_quarantine"],
        ["gold", "customer_source_link"],
        ["gold", "customer_match_pairs"],
        ["gold", "match_candidates"],
        ["gold", "customer_profile"],
        ["gold", "customer_segments"],
        ["lakedb", "gold"],
    ]
    return dg.AssetSelection.assets(*keys)


def _run(defs, instance) -> Measured:
    from customer360.cli.runner import materialize_graph
    from sensors.landing import register_landing_partitions, remember_landing_scan

    scan = register_landing_partitions(instance, defs.resources["landing"])
    before = {r.run_id for r in instance.get_runs()}
    started = time.perf_counter()
    summary = materialize_graph(defs, instance, medallion_selection(), scan.changed)
    wall = time.perf_counter() - started
    errors = [c for c in summary.failed_checks if "(ERROR)" in c]
    if not summary.success or errors:
        raise SystemExit(f"run failed: {summary.failed} {errors}")
    remember_landing_scan(instance, scan)
    return _measure(instance, before, wall)


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:>12,.0f}" if seconds > 0 else f"{'-':>12}"


def _print(full: Measured, incremental: Measured) -> None:
    header = f"{'layer':<16}{'full s':>9}{'rows':>12}{'rows/s':>12}"
    print(header + f"{'incr s':>9}{'rows':>10}{'rows/s':>12}")
    for layer in LAYER_ORDER:
        f_s, i_s = full.seconds.get(layer, 0.0), incremental.seconds.get(layer, 0.0)
        f_r, i_r = full.rows.get(layer, 0), incremental.rows.get(layer, 0)
        full_part = f"{layer:<16}{f_s:>9.1f}{f_r:>12,}{_rate(f_r, f_s)}"
        print(f"{full_part}{i_s:>9.1f}{i_r:>10,}{_rate(i_r, i_s)}")
    f_steps, i_steps = sum(full.seconds.values()), sum(incremental.seconds.values())
    print(f"{'sum of steps':<16}{f_steps:>9.1f}{'':>24}{i_steps:>9.1f}")
    print(f"{'wall (graph)':<16}{full.wall:>9.1f}{'':>24}{incremental.wall:>9.1f}")
    if incremental.paths:
        print("incremental paths: " + ", ".join(f"{k}={v}" for k, v in incremental.paths.items()))
    _print_identity("full", full)
    _print_identity("incremental", incremental)
    if incremental.profile_phases:
        shown = ", ".join(f"{k} {v:.1f}" for k, v in incremental.profile_phases.items())
        print(f"gold profile incremental phases (s): {shown}")
    print(f"incremental/full ratio: {incremental.wall / full.wall:.3f} (wall), "
          f"{i_steps / f_steps:.3f} (sum of steps)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--folders", type=int, default=10, help="change folders after the sync")
    parser.add_argument("--months", type=int, default=12, help="months of finance per customer")
    parser.add_argument("--home", help="C360_HOME to use (kept); default a temporary folder")
    parser.add_argument("--driver-memory", default=os.environ.get("C360_SPARK_DRIVER_MEMORY", "6g"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=Warning, module="dagster")

    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="c360-bench-"))
    os.environ["C360_HOME"] = str(home)
    os.environ["C360_ENV"] = "local"
    os.environ["C360_SPARK_DRIVER_MEMORY"] = args.driver_memory
    import dagster as dg

    from customer360.definitions import build_definitions
    from customer360.generate.synthetic import change_sizes, generate_synthetic_landing
    from customer360.sparkconf import build_session
    from resources.spark import spark_config_from_env

    try:
        load_before = os.getloadavg()
        started = time.perf_counter()
        landing = generate_synthetic_landing(
            home / "landing", customers=args.customers, folders=args.folders,
            finance_months=args.months,
        )  # fmt: skip
        print(
            f"generated {args.customers:,} customers, {landing.versions:,} export rows in "
            f"{len(landing.folders)} folders, {landing.finance_rows:,} finance rows "
            f"in {time.perf_counter() - started:.0f} s (not timed)"
        )
        session = build_session(spark_config_from_env(), app_name="customer360")  # not timed
        session.sparkContext.setLogLevel("ERROR")
        defs = build_definitions()
        (home / "dagster").mkdir(parents=True, exist_ok=True)
        with dg.DagsterInstance.local_temp(tempdir=str(home / "dagster")) as instance:
            full = _run(defs, instance)
            updates, deletes = change_sizes(args.customers, args.folders, 0.2, 0.02)
            landing.write_changes(updates, deletes)
            print(f"new folder {landing.folders[-1]}: {updates:,} updates, {deletes:,} deletes")
            incremental = _run(defs, instance)
        lake = defs.resources["lakehouse"].lake
        silver = lake.table("silver", "customer").count()
        quarantine = lake.table("silver", "customer_quarantine").count()
        print(
            f"silver/customer {silver:,} + quarantine {quarantine:,} = "
            f"{silver + quarantine:,} live customers (expected {landing.live_customers:,})"
        )
        if silver + quarantine != landing.live_customers:
            raise SystemExit("wrong customer count")
        _print(full, incremental)
        print(
            f"machine: {os.cpu_count()} cores; load average before {load_before[0]:.1f}, "
            f"after {os.getloadavg()[0]:.1f} (shared with other engineers)"
        )
    finally:
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
