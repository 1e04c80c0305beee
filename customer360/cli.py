"""The `customer360` command: demo, run, generate, dataverse serve."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from customer360.settings import get_settings


def _instance():
    import dagster as dg

    settings = get_settings()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
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


@main.command()
def run() -> None:
    """Materialise the whole asset graph on whatever is in landing."""
    from customer360.definitions import defs
    from customer360.runner import materialize_graph

    summary = materialize_graph(defs, _instance())
    _print_summary(summary)
    sys.exit(0 if summary.success else 1)


@main.command()
def demo() -> None:
    """Make sample data, materialise the whole graph and print a summary."""
    settings = get_settings()
    click.echo(f"customer360 demo — C360_HOME={settings.home}")
    from customer360.definitions import defs
    from customer360.runner import materialize_graph

    summary = materialize_graph(defs, _instance())
    _print_summary(summary)
    sys.exit(0 if summary.success else 1)


if __name__ == "__main__":
    main()
