"""The seed landing zone both unified-graph tests start from, and the graph they run."""

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg

from customer360.generate import write_second_source
from customer360.generate.customers import SAMPLE_DATA
from customer360.generate.seed_table import (
    CUSTOMER_TABLE,
    crc33_customer_model,
    customer_rows_from_csv,
)
from customer360.synapse_link import SynapseLinkWriter

#: Every medallion asset except churn (no KKBox data here).
GRAPH = dg.AssetSelection.groups("bronze", "silver", "gold", "lakedb") - dg.AssetSelection.assets(
    ["gold", "customer_churn_risk"]
)
EXPORTED = dt.datetime(2024, 3, 1, 8, tzinfo=dt.UTC)


def write_seed_landing(landing: Path) -> SynapseLinkWriter:
    """customer.csv exported by the Synapse Link writer (root layout) into landing/dataverse/,
    customer_spend.csv into landing/finance/, residents_adls.csv into landing/crm2/. Returns the
    writer, for later exports."""
    writer = SynapseLinkWriter(landing / "dataverse")
    rows = customer_rows_from_csv(SAMPLE_DATA / "customer.csv")
    writer.write({CUSTOMER_TABLE: (crc33_customer_model(), rows)}, export_time=EXPORTED)
    (landing / "finance").mkdir(parents=True)
    shutil.copy(SAMPLE_DATA / "customer_spend.csv", landing / "finance")
    write_second_source(landing)
    return writer
