"""Large synthetic Synapse Link exports of `crc33_customer` plus monthly finance (Dagster-free).

For benchmarks: values are drawn with numpy for all customers at once (no customer.csv), then the
rows go through `SynapseLinkWriter`, so the files are exactly what the real writer produces. The
Python writer formats ~30,000 rows/s: about half a minute per million rows, which is fine for a
benchmark that does not time generation.

Layout: an initial sync folder with every customer, then change folders one hour apart, each
updating (city changed, e-mail re-typed in upper case with blanks, new versionnumber) and deleting
customers not touched before (`IsDelete` rows), so every count is known. The finance file has one
row per customer and month (`cid,month,income,spend`), a month skipped now and then.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from customer360.generate.seed_table import CUSTOMER_TABLE, crc33_customer_model
from customer360.synapse_link import SynapseLinkWriter

DEFAULT_BASE_TIME = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)
_FIRST = np.array(
    ["Ann", "Ben", "Cara", "Dan", "Eve", "Finn", "Gia", "Hal", "Ivy", "Jon", "Kim", "Leo", "Mia",
     "Ned", "Ola", "Pat", "Quin", "Rae", "Sam", "Tia", "Uma", "Vic", "Wes", "Xia", "Yan", "Zoe"]
)  # fmt: skip
_LAST = np.array(
    ["Lee", "Smith", "Jones", "Brown", "Garcia", "Miller", "Davis", "Lopez", "Wilson", "Moore",
     "Taylor", "Clark", "Hall", "Young", "King", "Wright", "Scott", "Green", "Baker", "Adams"]
)  # fmt: skip
_CITIES = np.array(["Seattle", "Austin", "Denver", "Boston", "Phoenix", "Nashville", "Portland"])
_STATES = np.array(["WA", "TX", "CO", "MA", "AZ", "TN", "OR"])
_GENDERS = np.array(["Female", "Male", "Gender neutral", "F", "M"])
_SOURCES = np.array(["Web", "Store", "Partner", "Phone"])
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Every this-many-th customer has an e-mail without "@" (quarantined in silver).
INVALID_EMAIL_EVERY = 997
#: Every this-many-th customer shares the e-mail of the customer before it (gold flags both).
SHARED_EMAIL_EVERY = 1009


def _timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds.astype("int64") * 1_000_000, pa.timestamp("us", tz="UTC"))


def synthetic_customers(count: int, seed: int = 7, first_cid: int = 1) -> pa.Table:
    """`count` customers as `crc33_customer` columns (vectorised with numpy, deterministic for a
    seed). Ids are random version-4 GUIDs; `cid` runs from `first_cid`; `versionnumber = cid+1`."""
    rng = np.random.default_rng(seed)
    cid = np.arange(first_cid, first_cid + count, dtype=np.int64)
    first = _FIRST[rng.integers(0, len(_FIRST), count)]
    last = _LAST[rng.integers(0, len(_LAST), count)]
    city = rng.integers(0, len(_CITIES), count)
    raw_ids = rng.bytes(16 * count)
    ids = [str(uuid.UUID(bytes=raw_ids[i : i + 16], version=4)) for i in range(0, 16 * count, 16)]
    first_a, last_a, cid_s = pa.array(first), pa.array(last), pc.cast(pa.array(cid), pa.string())
    email = pc.utf8_lower(
        pc.binary_join_element_wise(first_a, ".", last_a, cid_s, "@example.com", "")
    )
    email = email.to_numpy(zero_copy_only=False)
    shared = np.flatnonzero(cid % SHARED_EMAIL_EVERY == 0)
    shared = shared[shared > 0]
    email[shared] = email[shared - 1]
    bad = cid % INVALID_EMAIL_EVERY == 0
    if bad.any():
        email[bad] = np.char.replace(email[bad].astype(str), "@", " at ")
    # Ten-digit NANP numbers, (practically) one per customer: a few thousand numbers shared by a
    # million people would make every phone block huge, which real CRM data does not do.
    phone = pc.binary_join_element_wise(
        pc.cast(pa.array(rng.integers(201, 990, count)), pa.string()),
        pc.cast(pa.array(rng.integers(200, 1_000, count)), pa.string()),
        pc.utf8_lpad(pc.cast(pa.array(rng.integers(0, 10_000, count)), pa.string()), 4, "0"),
        "-",
    )
    postcode = pc.utf8_lpad(
        pc.cast(pa.array(rng.integers(501, 99_950, count)), pa.string()), 5, "0"
    )
    street = pc.binary_join_element_wise(
        pc.cast(pa.array(rng.integers(1, 9_999, count)), pa.string()), " Main Street", ""
    )
    day = 86_400
    born = (datetime(1940, 1, 1, tzinfo=UTC) - _EPOCH).days + rng.integers(0, 65 * 365, count)
    created = (datetime(2012, 1, 1, tzinfo=UTC) - _EPOCH).days + rng.integers(0, 12 * 365, count)
    created_s = created * day + rng.integers(0, day, count)
    return pa.table(
        {
            "Id": pa.array(ids),
            "crc33_cid": pa.array(cid),
            "crc33_firstname": first_a,
            "crc33_lastname": last_a,
            "crc33_name": pc.binary_join_element_wise(first_a, last_a, " "),
            "crc33_gender": pa.array(_GENDERS[rng.integers(0, len(_GENDERS), count)]),
            "crc33_email": pa.array(email, pa.string()),
            "crc33_telephone": phone,
            "crc33_country": pa.array(np.full(count, "United States")),
            "crc33_city": pa.array(_CITIES[city]),
            "crc33_state": pa.array(_STATES[city]),
            "crc33_postcode": postcode,
            "crc33_streetaddress": street,
            "crc33_dateofbirth": _timestamps(born * day),
            "crc33_source": pa.array(_SOURCES[rng.integers(0, len(_SOURCES), count)]),
            "statecode": pa.array(np.zeros(count, np.int32)),
            "statuscode": pa.array(np.ones(count, np.int32)),
            "createdon": _timestamps(created_s),
            "modifiedon": _timestamps(created_s),
            "versionnumber": pa.array(cid + 1),
        }
    )


@dataclass
class SyntheticLanding:
    """A synthetic export in progress: what was written and the counts a pipeline must reach."""

    landing_root: Path
    customers: pa.Table
    seed: int = 7
    base_time: datetime = DEFAULT_BASE_TIME
    folders: list[str] = field(default_factory=list)
    finance_files: list[str] = field(default_factory=list)
    finance_rows: int = 0
    versions: int = 0  # rows written to the export, delete markers included
    updated: int = 0
    deleted: int = 0
    _untouched: np.ndarray = field(init=False, repr=False)  # row indices never changed yet
    _next: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed + 1)
        self._untouched = rng.permutation(self.customers.num_rows)
        self.landing_root = Path(self.landing_root)

    @property
    def live_customers(self) -> int:
        return self.customers.num_rows - self.deleted

    @property
    def writer(self) -> SynapseLinkWriter:
        return SynapseLinkWriter(self.landing_root / "dataverse", incremental=True)

    def resume(self, folders: list[str], touched: int) -> None:
        """Continue an export this generator wrote earlier (same customers and seed): its
        folder names, and how many customers its change folders updated or deleted."""
        if touched > len(self._untouched):
            raise ValueError(f"{touched} touched customers, only {len(self._untouched)} exist")
        self.folders = list(folders)
        self._next = touched

    def write_initial(self) -> str:
        """The initial sync: every customer in one folder at `base_time`."""
        folder = self.writer.write(
            {CUSTOMER_TABLE: (crc33_customer_model(), self.customers.to_pylist())},
            export_time=self.base_time,
        )
        self.folders.append(folder)
        self.versions += self.customers.num_rows
        return folder

    def write_changes(self, updates: int, deletes: int) -> str:
        """The next change folder (one hour after the previous one): `updates` new versions and
        `deletes` delete markers, each of a different customer that no earlier folder touched."""
        if self._next + updates + deletes > len(self._untouched):
            raise ValueError(f"only {len(self._untouched) - self._next} untouched customers left")
        when = self.base_time + timedelta(hours=len(self.folders))
        picked = self._untouched[self._next : self._next + updates + deletes]
        self._next += updates + deletes
        step = len(self.folders)
        rng = np.random.default_rng(self.seed + 100 + step)
        changed = self.customers.take(pa.array(picked[:updates]))
        city = rng.integers(0, len(_CITIES), updates)
        email = pc.binary_join_element_wise("  ", pc.utf8_upper(changed["crc33_email"]), " ", "")
        stamp = pa.array(np.full(updates, int((when - _EPOCH).total_seconds() * 1e6)))
        changed = (
            changed.set_column(changed.schema.get_field_index("crc33_city"), "crc33_city",
                               pa.array(_CITIES[city]))
            .set_column(changed.schema.get_field_index("crc33_state"), "crc33_state",
                        pa.array(_STATES[city]))
            .set_column(changed.schema.get_field_index("crc33_email"), "crc33_email", email)
            .set_column(changed.schema.get_field_index("modifiedon"), "modifiedon",
                        stamp.cast(pa.timestamp("us", tz="UTC")))
            .set_column(changed.schema.get_field_index("versionnumber"), "versionnumber",
                        pc.add(changed["versionnumber"], 10_000_000 * step))
        )  # fmt: skip
        model = crc33_customer_model()
        rows = changed.to_pylist()
        gone = self.customers.take(pa.array(picked[updates:])).select(["Id", "versionnumber"])
        rows += [
            SynapseLinkWriter.delete_row(
                model, r["Id"], r["versionnumber"] + 10_000_000 * step, when
            )
            for r in gone.to_pylist()
        ]
        folder = self.writer.write({CUSTOMER_TABLE: (model, rows)}, export_time=when)
        self.folders.append(folder)
        self.versions += len(rows)
        self.updated += updates
        self.deleted += deletes
        return folder

    def write_finance(self, months: int = 12) -> Path:
        """`landing/finance/customer_finance_<day>.csv`: income and spend per customer for the
        `months` months before `base_time` (about 8 % of customer-months skipped), dropped on the
        base day. Written with pyarrow's CSV writer, no per-row Python."""
        rng = np.random.default_rng(self.seed + 2)
        count = self.customers.num_rows
        first = (self.base_time.replace(day=1) - timedelta(days=1)).replace(day=1)
        keys, cursor = [], first
        for _ in range(months):
            keys.append(f"{cursor:%Y-%m}")
            cursor = (cursor - timedelta(days=1)).replace(day=1)
        keys.sort()
        income = np.repeat(rng.integers(2_500, 12_000, count) * 100, months)
        keep = rng.random(count * months) >= 0.08
        spend = np.round(income * rng.uniform(0.2, 0.95, count * months)).astype(np.int64)
        table = pa.table(
            {
                "cid": pa.array(np.repeat(self.customers["crc33_cid"].to_numpy(), months)[keep]),
                "month": pa.array(np.tile(np.array(keys), count)[keep]),
                "income": _money(income[keep]),
                "spend": _money(spend[keep]),
            }
        )
        folder = self.landing_root / "finance"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"customer_finance_{self.base_time:%Y%m%d}.csv"
        with path.open("wb") as handle:
            handle.write(b"cid,month,income,spend\n")
            options = pacsv.WriteOptions(include_header=False, quoting_style="none")
            pacsv.write_csv(table, handle, options)
        stamp = self.base_time.timestamp()
        os.utime(path, (stamp, stamp))
        self.finance_files.append(path.name)
        self.finance_rows += table.num_rows
        return path


def _money(cents: np.ndarray) -> pa.Array:
    """Cents → `1234.50` text (exact; no float formatting)."""
    whole = pc.cast(pa.array(cents // 100), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(cents % 100), pa.string()), 2, "0")
    return pc.binary_join_element_wise(whole, frac, ".")


def generate_synthetic_landing(
    landing_root: str | Path,
    *,
    customers: int = 1_000_000,
    folders: int = 10,
    update_fraction: float = 0.2,
    delete_fraction: float = 0.02,
    finance_months: int = 12,
    seed: int = 7,
    base_time: datetime = DEFAULT_BASE_TIME,
) -> SyntheticLanding:
    """Initial sync of `customers`, then `folders` change folders that together update
    `update_fraction` and delete `delete_fraction` of the customers (evenly spread), plus the
    monthly finance file. Returns the state, whose `write_changes` adds further folders."""
    landing = SyntheticLanding(
        Path(landing_root), synthetic_customers(customers, seed), seed=seed, base_time=base_time
    )
    landing.write_initial()
    updates, deletes = change_sizes(customers, folders, update_fraction, delete_fraction)
    for _ in range(folders):
        landing.write_changes(updates, deletes)
    landing.write_finance(finance_months)
    return landing


def change_sizes(
    customers: int, folders: int, update_fraction: float, delete_fraction: float
) -> tuple[int, int]:
    """Updates and deletes per change folder so that `folders` folders reach the fractions."""
    folders = max(folders, 1)
    return int(customers * update_fraction) // folders, int(customers * delete_fraction) // folders
