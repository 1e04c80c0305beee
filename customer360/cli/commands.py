"""The `customer360` command: demo, run, generate, dataverse serve."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import click

from customer360.cli.instance import write_instance_config
from customer360.settings import get_settings


def _dagster_home() -> Path:
    """DAGSTER_HOME under C360_HOME, with a dagster.yaml: telemetry off, run queue and pool
    limits (customer360/cli/instance.py)."""
    os.environ.setdefault("DAGSTER_HOME", str(get_settings().dagster_home))
    home = Path(os.environ["DAGSTER_HOME"])
    write_instance_config(home)
    return home


def _instance():
    import dagster as dg

    _dagster_home()
    return dg.DagsterInstance.get()


def _print_summary(summary) -> None:
    click.echo(
        f"\n{len(summary.materialized)} assets materialised in {summary.runs} run(s), "
        f"{summary.seconds:.1f} s"
    )
    for key, meta in sorted(summary.materialized.items()):
        rows = meta.get("dagster/row_count")
        where = meta.get("table_uri") or meta.get("dagster/uri") or ""
        rows_text = f"{rows:>10,} rows" if isinstance(rows, int) else " " * 15
        if "published" in meta:  # a Dynamics publish: outcome counts instead of a table
            where = (
                f"published {meta['published']:,}, unchanged {meta['unchanged']:,}, "
                f"failed {meta['failed']:,}, deferred {meta['deferred']:,} "
                f"({meta['records_per_second']:,.0f} rows/s)"
            )
        if "roc_auc" in meta:  # the churn model: its scores
            where = (
                f"ROC AUC {meta['roc_auc']:.3f}, average precision "
                f"{meta['average_precision']:.3f} (base rate {meta['base_rate']:.3f})"
            )
        if "dashboard_path" in meta:
            where = f"dashboard: {meta['dashboard_path']}"
        if "merge_rate" in meta:  # identity resolution: records → people
            where = (
                f"{meta['records']:,} records → {meta['profiles']:,} people "
                f"(merge rate {meta['merge_rate'] or 0:.3f}, "
                f"{meta['review_candidates']:,} pairs for review)"
            )
            if meta.get("precision") is not None:
                where += f", precision {meta['precision']:.3f} recall {meta['recall']:.3f}"
        click.echo(f"  {key:<40} {rows_text}  {where}")
    for check in summary.failed_checks:
        click.echo(f"  check failed: {check}")
    for failure in summary.failed:
        click.echo(f"  FAILED: {failure}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """customer360: Dynamics 365 customer data on a Dagster asset graph.

    State lives under C360_HOME (default ./.c360); C360_ENV selects local (default) or azure.
    """


def _run_graph() -> bool:
    from customer360.cli.runner import materialize_graph, selection_for_landing
    from customer360.definitions import build_definitions
    from sensors.landing import register_landing_partitions, remember_landing_scan

    defs = build_definitions()
    instance = _instance()
    landing = defs.resources["landing"]
    # What the landing sensors would do with a daemon running: register new partitions.
    scan = register_landing_partitions(instance, landing)
    selection = selection_for_landing(landing)
    if selection is not None:
        click.echo("no KKBox files in landing/kkbox/: the churn assets are left out of this run")
    summary = materialize_graph(defs, instance, selection, scan.changed)
    if summary.success:
        remember_landing_scan(instance, scan)
    _print_summary(summary)
    return summary.success


@contextlib.contextmanager
def _dataverse_for_local_runs(seed_customers: bool = False):
    """In local mode without a configured Dataverse, run the project's own for the block."""
    from customer360.cli.local_dataverse import URL_ENV, local_dataverse
    from customer360.settings import Environment

    settings = get_settings()
    if settings.env is not Environment.LOCAL or os.environ.get(URL_ENV):
        yield None
        return
    with local_dataverse(settings.home) as handle:
        click.echo(f"local Dataverse on {handle.base_url} (CA {handle.ca_file})")
        if seed_customers:
            from customer360.generate.customers import SAMPLE_DATA

            loaded = handle.admin(
                "POST",
                "load",
                {"table": "crc33_customer", "path": str(SAMPLE_DATA / "customer.csv")},
            )
            click.echo(f"loaded the sample customers into Dataverse: {loaded}")
        yield handle


@main.command()
def run() -> None:
    """Materialise the whole asset graph on whatever is in landing."""
    with _dataverse_for_local_runs():
        ok = _run_graph()
    sys.exit(0 if ok else 1)


@main.command()
def dev() -> None:
    """The Dagster UI (dagster dev -w workspace.yaml) with the local Dataverse beside it."""
    import subprocess

    _dagster_home()
    with _dataverse_for_local_runs():
        command = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml"]
        sys.exit(subprocess.call(command))


@main.group()
def generate() -> None:
    """Write sample data into landing (under C360_HOME)."""


@generate.command("customers")
@click.option("--change-folders", default=3, show_default=True, help="export folders after sync")
@click.option("--seed", default=7, show_default=True)
@click.option(
    "--second-source/--no-second-source",
    default=True,
    show_default=True,
    help="also drop the second CRM system's export (residents_adls.csv) in landing/crm2/",
)
def generate_customers(change_folders: int, seed: int, second_source: bool) -> None:
    """Synapse Link export of the sample customers (updates, deletes, re-creates, a column
    added mid-stream), finance files, and the second CRM source."""
    _write_customers(change_folders, seed, second_source)


def _write_customers(change_folders: int = 3, seed: int = 7, second_source: bool = True) -> None:
    from customer360.generate import generate_customer_landing, write_second_source

    landing = Path(get_settings().landing_root)
    out = generate_customer_landing(landing, change_folders=change_folders, seed=seed)
    click.echo(
        f"wrote {len(out.folders)} export folders ({out.versions:,} rows) to {landing}/dataverse "
        f"and {len(out.finance_files)} finance files to {landing}/finance; expect "
        f"{out.live_customers:,} live customers"
    )
    if second_source:
        click.echo(f"wrote {write_second_source(landing)} (the second CRM source)")


@generate.command("kkbox")
@click.option("--members", default=3000, show_default=True, help="KKBox members to simulate")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--tie-to-customers/--no-tie-to-customers",
    default=True,
    show_default=True,
    help="give the sample customers' cids KKBox member ids (msno) so churn risk enriches them",
)
def generate_kkbox_files(members: int, seed: int, tie_to_customers: bool) -> None:
    """KKBox-format churn data (members, transactions, user logs, train labels)."""
    _write_kkbox(members, seed, tie_to_customers)


def _write_kkbox(members: int, seed: int = 0, tie_to_customers: bool = True) -> None:
    from customer360.churn import generate_kkbox

    ids = None
    if tie_to_customers:
        sample = list(range(min(members, 1400)))  # the sample customers' cids are 0..1399
        ids = sample + list(range(100_000, 100_000 + members - len(sample)))
    out = Path(get_settings().landing_root) / "kkbox"
    files = generate_kkbox(out, members=members, seed=seed, customer_ids=ids)
    click.echo(f"wrote {len(files)} KKBox files for {members:,} members to {out}")


@main.group()
def dataverse() -> None:
    """The local Dataverse (Web API + Entra token endpoint + Synapse Link exporter)."""


@dataverse.command(
    "serve",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.pass_context
def dataverse_serve(ctx: click.Context) -> None:
    """Start the local Dataverse over HTTPS on 127.0.0.1 (see docs/emulator.md; --help)."""
    from customer360.emulator.serve import main as serve

    sys.exit(serve(ctx.args))


@main.command()
def demo() -> None:
    """Make sample data, materialise the whole graph and print a summary."""
    settings = get_settings()
    click.echo(f"customer360 demo — C360_HOME={settings.home}")
    landing = Path(settings.landing_root)
    if not (landing / "dataverse").exists():
        _write_customers()
    # The sample's known true pairs: the link asset reports match precision and recall.
    from customer360.generate import TRUTH_PAIRS_CSV

    os.environ.setdefault("C360_UNIFY_TRUTH", str(TRUTH_PAIRS_CSV))
    if not (landing / "kkbox").exists():
        _write_kkbox(members=2500)
    with _dataverse_for_local_runs(seed_customers=True):
        ok = _run_graph()
    sys.exit(0 if ok else 1)
