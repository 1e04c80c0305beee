"""The `customer360` command: demo, run, generate, dataverse serve."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

import click

from customer360.cli.instance import write_instance_config
from customer360.settings import get_settings

#: Exit status when another command holds C360_HOME (EX_TEMPFAIL: try again later).
EXIT_HOME_IN_USE = 75


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


def _state_paths() -> list[Path]:
    """Where the command writes: measured when an error looks like a full disk."""
    settings = get_settings()
    paths = [settings.home, settings.dagster_home, settings.dataverse_dir]
    if "://" not in settings.lake_root:
        paths.insert(1, Path(settings.lake_root))
    return [*paths, Path(tempfile.gettempdir())]


def _explained(error: BaseException | str) -> str | None:
    from customer360.cli.diagnose import disk_full_message

    return disk_full_message(error, _state_paths())


@contextlib.contextmanager
def _exclusive_home(wait: bool = False):
    """The C360_HOME lock for a command that materialises (see cli/home_lock.py); a busy home
    or a full disk ends the command with one line naming the cause instead of a traceback."""
    from customer360.cli.home_lock import HomeInUse, home_lock

    try:
        with home_lock(get_settings().home, wait=wait, notify=lambda m: click.echo(m, err=True)):
            yield
    except HomeInUse as exc:
        click.echo(f"customer360: {exc}", err=True)
        sys.exit(EXIT_HOME_IN_USE)
    except Exception as exc:  # re-raised unless it is a full disk
        message = _explained(exc)
        if message is None:
            raise
        click.echo(f"customer360: {message}", err=True)
        sys.exit(1)


def _print_summary(summary) -> None:
    from customer360.cli.runner import enrichment_lines, set_aside_lines

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
        if "skipped" in meta:  # materialised without a source: why
            where = f"skipped: {meta['skipped']}"
        if "dashboard_path" in meta:
            where = f"dashboard: {meta['dashboard_path']}"
        if "scoring_month" in meta:  # churn/periods: the months found in the data
            where = f"churn periods: {meta['periods']}"
        if "coverage" in meta and "candidates" in meta:  # churn/predictions
            where = (
                f"{meta['scoring_period']}: {meta['candidates']:,} candidates, coverage "
                f"{meta['coverage']}, {meta['members_above_threshold']:,} above the threshold"
            )
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
    for line in set_aside_lines(summary) + enrichment_lines(summary):
        click.echo(line)
    for failure in summary.failed:
        click.echo(f"  FAILED: {_explained(failure) or failure}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """customer360: Dynamics 365 customer data on a Dagster asset graph.

    State lives under C360_HOME (default ./.c360); C360_ENV selects local (default) or azure.
    """


def _run_graph() -> bool:
    from customer360.cli.runner import materialize_graph
    from customer360.definitions import build_definitions
    from sensors.landing import register_landing_partitions, remember_landing_scan

    defs = build_definitions()
    instance = _instance()
    landing = defs.resources["landing"]
    # What the landing sensors would do with a daemon running: register new partitions.
    scan = register_landing_partitions(instance, landing)
    summary = materialize_graph(defs, instance, changed_partitions=scan.changed)
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


_WAIT_OPTION = click.option(
    "--wait/--no-wait",
    default=False,
    show_default=True,
    help="when another command holds C360_HOME: wait for it (default: stop, naming it)",
)


@main.command()
@_WAIT_OPTION
@click.option("--churn-train-months", default=None, help="e.g. 2016-12,2017-01 (default: detect)")
@click.option("--churn-validation-month", default=None, help="e.g. 2017-02 (default: detect)")
@click.option("--churn-scoring-month", default=None, help="e.g. 2017-03 (default: detect)")
def run(wait, churn_train_months, churn_validation_month, churn_scoring_month) -> None:
    """Materialise the whole asset graph on whatever is in landing."""
    # The churn periods are found in the data; these set C360_CHURN_* to override them.
    for env, value in (
        ("C360_CHURN_TRAIN_MONTHS", churn_train_months),
        ("C360_CHURN_VALIDATION_MONTH", churn_validation_month),
        ("C360_CHURN_SCORING_MONTH", churn_scoring_month),
    ):
        if value:
            os.environ[env] = value
    with _exclusive_home(wait), _dataverse_for_local_runs():
        ok = _run_graph()
    sys.exit(0 if ok else 1)


@main.command()
@_WAIT_OPTION
@click.option(
    "--port",
    envvar=["C360_UI_PORT", "DAGSTER_CLI_DEV_PORT"],
    default=3000,
    show_default=True,
    help="port of the Dagster UI (also C360_UI_PORT)",
)
@click.option(
    "--host",
    envvar=["C360_UI_HOST", "DAGSTER_CLI_DEV_HOST"],
    default="127.0.0.1",
    show_default=True,
    help="address the Dagster UI listens on (also C360_UI_HOST)",
)
def dev(wait: bool, port: int, host: str) -> None:
    """The Dagster UI and daemon (`dg dev -w workspace.yaml`) with the local Dataverse beside
    it, loaded with the sample customers like `demo` (so the publish targets find them)."""
    import subprocess

    _dagster_home()
    with (
        _exclusive_home(wait),
        _dataverse_for_local_runs(seed_customers=True),
        _lake_file_server(),
    ):
        # `dg dev` is what Dagster recommends over the superseded `dagster dev`; with `-w` it
        # serves this workspace.yaml. Port and host go through dg's own environment options.
        os.environ["DAGSTER_DG_DEV_PORT"] = str(port)
        os.environ["DAGSTER_DG_DEV_HOST"] = host
        click.echo(f"Dagster UI: http://{host}:{port}")
        sys.exit(subprocess.call([_dg_command(), "dev", "-w", "workspace.yaml"]))


def _dg_command() -> str:
    """The `dg` script installed beside this interpreter (dagster-dg-cli)."""
    import shutil
    import sysconfig

    beside = Path(sysconfig.get_path("scripts")) / "dg"
    found = str(beside) if beside.exists() else shutil.which("dg")
    if found is None:
        raise click.ClickException("`dg` (dagster-dg-cli) is not installed: run `make setup`")
    return found


@contextlib.contextmanager
def _lake_file_server():
    """Serve the churn dashboard and plots on 127.0.0.1 (a local lake only); the runs that
    `dg dev` starts inherit C360_DASHBOARD_URL and link to it."""
    from customer360.cli.dashboard_server import URL_ENV, serve_lake_files

    lake_root = get_settings().lake_root
    if "://" in lake_root:
        yield None
        return
    with serve_lake_files(lake_root) as served:
        os.environ[URL_ENV] = served.url
        click.echo(f"churn dashboard and plots: {served.url}")
        yield served


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
@click.option(
    "--layout",
    type=click.Choice(["v2", "v1", "label-less"]),
    default="v2",
    show_default=True,
    help="Kaggle's second release, its first, or no label files",
)
@click.option(
    "--truth/--no-truth",
    default=False,
    show_default=True,
    help="write the scoring month's true churn probabilities to C360_HOME/truth/kkbox/",
)
@click.option(
    "--drivers",
    default="default",
    show_default=True,
    help="the simulated world's churn drivers: default, engagement or billing (docs/churn.md)",
)
def generate_kkbox_files(
    members: int, seed: int, tie_to_customers: bool, layout: str, truth: bool, drivers: str
) -> None:
    """KKBox-format churn data (members, transactions, user logs, label files)."""
    _write_kkbox(members, seed, tie_to_customers, layout, truth, drivers)


def _write_kkbox(
    members: int,
    seed: int = 0,
    tie_to_customers: bool = True,
    layout: str = "v2",
    truth: bool = False,
    drivers: str = "default",
) -> None:
    # Imported here: the generator loads numpy and pandas, which `customer360 --help` must not.
    from customer360.churn import generate_kkbox
    from customer360.churn.generator import DRIVER_MIXES

    if drivers not in DRIVER_MIXES:
        raise click.BadParameter(
            f"{drivers!r} is not a driver mix; choose one of {', '.join(sorted(DRIVER_MIXES))}",
            param_hint="--drivers",
        )

    ids = None
    if tie_to_customers:
        sample = list(range(min(members, 1400)))  # the sample customers' cids are 0..1399
        ids = sample + list(range(100_000, 100_000 + members - len(sample)))
    out = Path(get_settings().landing_root) / "kkbox"
    # The truth sits beside landing, never in it: the pipeline must not see it.
    truth_dir = get_settings().home / "truth" / "kkbox" if truth else None
    files = generate_kkbox(
        out,
        members=members,
        seed=seed,
        customer_ids=ids,
        layout=layout,
        truth_dir=truth_dir,
        drivers=DRIVER_MIXES[drivers],
    )
    click.echo(f"wrote {len(files)} KKBox files ({layout}) for {members:,} members to {out}")
    if truth_dir is not None:
        click.echo(f"true churn probabilities of the scoring month: {files['truth']}")


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
@_WAIT_OPTION
def demo(wait: bool) -> None:
    """Make sample data, materialise the whole graph and print a summary."""
    with _exclusive_home(wait):
        _demo()


def _demo() -> None:
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


@main.command("explain-match")
@click.argument("left")
@click.argument("right")
def explain_match(left: str, right: str) -> None:
    """Why two records (each SOURCE/KEY, e.g. dataverse/17 residents/2017) merged or not."""
    from customer360.lakehouse import DeltaLake
    from customer360.unify import unify_config
    from customer360.unify.explain import explain_references
    from customer360.unify.lake_records import record_rows

    lake, config = DeltaLake(get_settings().lake_root), unify_config()
    click.echo(
        explain_references(left, right, lambda keys: record_rows(lake, config, keys), config)
    )
