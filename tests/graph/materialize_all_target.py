"""The code location the "Materialize all" backfill test loads in-process: the project's
definitions, built when Dagster loads them (so with the test's C360_HOME, not the one of
whichever test first imported customer360.definitions)."""

import dagster as dg

from customer360.definitions import build_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
