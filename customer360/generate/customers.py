"""Realistic landing data for the customer graph (Dagster-free).

From customer.csv it writes a Synapse Link export over several incremental folders: the initial
sync, then updates (new versions), deletes (`IsDelete` rows), re-creates of deleted customers and,
from the third change folder on, a column added mid-stream. It also drops finance files: the
sample's `customer_spend.csv` (CR-only line endings, as shipped) and a richer monthly file with
income and spend. Everything is deterministic for a given seed and base time, so tests can assert
exact counts.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from customer360.generate.seed_table import (
    CUSTOMER_TABLE,
    crc33_customer_model,
    customer_rows_from_csv,
)
from customer360.synapse_link import Attribute, SynapseLinkWriter

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"
DEFAULT_BASE_TIME = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)
ADDED_COLUMN = Attribute("crc33_loyaltytier", "string", max_length=20)
_CITIES = ("Seattle", "Austin", "Denver", "Boston", "Phoenix", "Nashville", "Portland")


@dataclass
class GeneratedLanding:
    """What was written, with the counts a correct pipeline must end with."""

    folders: list[str] = field(default_factory=list)
    finance_files: list[str] = field(default_factory=list)
    customers: int = 0
    updated_ids: set[str] = field(default_factory=set)
    deleted_ids: set[str] = field(default_factory=set)
    recreated_ids: set[str] = field(default_factory=set)
    versions: int = 0  # rows written to the export, including delete markers
    live_rows: dict[str, dict] = field(default_factory=dict)  # Id → latest live row

    @property
    def live_customers(self) -> int:
        return self.customers - len(self.deleted_ids) + len(self.recreated_ids)


def _set_mtime(path: Path, when: datetime) -> None:
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))


#: The second CRM system's export (its landing area is in customer360/unify/match_rules.yaml).
RESIDENTS_CSV = SAMPLE_DATA / "residents_adls.csv"
TRUTH_PAIRS_CSV = SAMPLE_DATA / "unify_truth_pairs.csv"


def write_second_source(landing_root: str | Path, source: str = "residents") -> Path:
    """Drop the second system's export (residents_adls.csv) in the landing area that `source`
    reads in the unify configuration (landing/crm2/ by default)."""
    from customer360.unify import unify_config

    mapping = unify_config().source(source).csv
    if mapping is None:
        raise ValueError(f"unify source {source!r} has no csv: block (no landing area)")
    target = Path(landing_root) / mapping.landing_area / RESIDENTS_CSV.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(RESIDENTS_CSV.read_bytes())
    return target


def generate_customer_landing(
    landing_root: str | Path,
    *,
    customer_csv: str | Path = SAMPLE_DATA / "customer.csv",
    spend_csv: str | Path = SAMPLE_DATA / "customer_spend.csv",
    change_folders: int = 3,
    update_fraction: float = 0.1,
    delete_fraction: float = 0.02,
    seed: int = 7,
    base_time: datetime = DEFAULT_BASE_TIME,
    finance_months: int = 12,
) -> GeneratedLanding:
    """Write `landing/dataverse/` (Synapse Link layout) and `landing/finance/` under
    `landing_root`. Existing export folders are kept (exports are append-only), so call it on
    an empty landing zone for a fresh demo."""
    rng = random.Random(seed)
    landing_root = Path(landing_root)
    writer = SynapseLinkWriter(landing_root / "dataverse", incremental=True)
    model = crc33_customer_model()
    rows = customer_rows_from_csv(customer_csv)
    out = GeneratedLanding(customers=len(rows))
    current = {r["Id"]: dict(r) for r in rows}

    out.folders.append(writer.write({CUSTOMER_TABLE: (model, rows)}, export_time=base_time))
    out.versions += len(rows)
    deleted: dict[str, dict] = {}
    for step in range(1, change_folders + 1):
        when = base_time + timedelta(hours=step)
        deleted_earlier = set(deleted)
        if step == 3:  # a column appears mid-stream: newer rows only carry it
            model = model.with_added_attributes(ADDED_COLUMN)
        changes: list[dict] = []
        live = sorted(current)
        for customer_id in rng.sample(live, int(len(live) * update_fraction)):
            row = dict(current[customer_id])
            row["crc33_city"] = rng.choice(_CITIES)
            row["crc33_email"] = f"  {str(row['crc33_email'] or '').upper()} "  # needs cleaning
            row["versionnumber"] = int(row["versionnumber"]) + 10_000 * step
            row["modifiedon"] = when
            if model.has_attribute(ADDED_COLUMN.name):
                row[ADDED_COLUMN.name] = rng.choice(("bronze", "silver", "gold"))
            current[customer_id] = row
            changes.append(row)
            out.updated_ids.add(customer_id)
        touched = {r["Id"] for r in changes}
        candidates = [i for i in sorted(current) if i not in touched]
        for customer_id in rng.sample(candidates, int(len(live) * delete_fraction)):
            row = current.pop(customer_id)
            version = int(row["versionnumber"]) + 10_000 * step + 1
            changes.append(SynapseLinkWriter.delete_row(model, customer_id, version, when))
            deleted[customer_id] = row
            out.deleted_ids.add(customer_id)
        if step >= 2 and deleted:  # re-create a few customers deleted in an earlier folder
            earlier = sorted(deleted_earlier & set(deleted))
            for customer_id in earlier[: max(1, len(earlier) // 4)]:
                row = dict(deleted.pop(customer_id))
                row["versionnumber"] = int(row["versionnumber"]) + 10_000 * step + 2
                row["modifiedon"] = when
                current[customer_id] = row
                changes.append(row)
                out.recreated_ids.add(customer_id)
        out.folders.append(writer.write({CUSTOMER_TABLE: (model, changes)}, export_time=when))
        out.versions += len(changes)

    out.live_rows = current
    finance = landing_root / "finance"
    finance.mkdir(parents=True, exist_ok=True)
    spend_target = finance / "customer_spend.csv"
    shutil.copyfile(spend_csv, spend_target)  # byte-for-byte: CR-only line endings
    _set_mtime(spend_target, base_time - timedelta(days=1))
    monthly = finance / f"customer_finance_{base_time:%Y%m%d}.csv"
    _write_monthly_finance(monthly, rows, rng, base_time, finance_months)
    _set_mtime(monthly, base_time)
    out.finance_files = [spend_target.name, monthly.name]
    return out


def _write_monthly_finance(
    path: Path, rows: list[dict], rng: random.Random, base_time: datetime, months: int
) -> None:
    """Income and spend per customer and month for the `months` months before `base_time`."""
    first = (base_time.replace(day=1) - timedelta(days=1)).replace(day=1)
    month_keys = []
    cursor = first
    for _ in range(months):
        month_keys.append(f"{cursor:%Y-%m}")
        cursor = (cursor - timedelta(days=1)).replace(day=1)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["cid", "month", "income", "spend"])
        for row in rows:
            income = rng.randrange(2_500, 12_000)
            for month in sorted(month_keys):
                if rng.random() < 0.08:
                    continue  # some customers skip a month
                spend = round(income * rng.uniform(0.2, 0.95), 2)
                out.writerow([row["crc33_cid"], month, f"{income:.2f}", f"{spend:.2f}"])
