"""The `customer360` command and what only it does: start the local Dataverse, run the graph
in-process. With customer360/definitions.py this is the Dagster-facing part of the package; every
other subpackage of customer360/ is a library that never imports Dagster."""

from customer360.cli.commands import main

__all__ = ["main"]
