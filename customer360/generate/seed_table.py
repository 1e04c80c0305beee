"""The seed Dataverse table ``crc33_customer`` built from sample_data/customer.csv.

The public Customer 360 sample loads customer.csv into a custom Dataverse table with publisher
prefix ``crc33_``. These helpers give that table's Synapse
Link model and its rows, with deterministic Ids, for the emulator, the generator and tests.
"""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

from customer360.synapse_link.model import Attribute, EntityModel
from customer360.tables import CUSTOMER_TABLE

# Ids are uuid5(CUSTOMER_ID_NAMESPACE, str(cid)): the same customer always gets the same Id.
CUSTOMER_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://customer360.local/crc33_customer")

STATECODE_ACTIVE = 0
STATUSCODE_ACTIVE = 1

# customer.csv header → Dataverse column (createdon/modifiedon come from Created_date).
CUSTOMER_TEXT_COLUMNS = {
    "FirstName": "crc33_firstname",
    "LastName": "crc33_lastname",
    "Name": "crc33_name",
    "Gender": "crc33_gender",
    "Email": "crc33_email",
    "Telephone": "crc33_telephone",
    "Country": "crc33_country",
    "City": "crc33_city",
    "State": "crc33_state",
    "PostCode": "crc33_postcode",
    "StreetAddress": "crc33_streetaddress",
    "Source": "crc33_source",
}


def crc33_customer_model() -> EntityModel:
    """The Synapse Link model of ``crc33_customer`` (Year partitions on ``createdon``).

    Types: ``crc33_cid`` int64 (Dataverse "big integer"; the sample's customer number);
    names, e-mail, telephone, address parts, gender and source are strings (``crc33_postcode``
    too, to keep leading zeros such as 06040); ``crc33_dateofbirth`` dateTime (a date-only
    column exports as midnight UTC); ``createdon`` dateTimeOffset and ``modifiedon`` dateTime as
    in Synapse Link exports; ``statecode``/``statuscode`` int32 (choice values).
    """
    business = [
        Attribute("crc33_cid", "int64"),
        Attribute("crc33_firstname", "string", max_length=100),
        Attribute("crc33_lastname", "string", max_length=100),
        Attribute("crc33_name", "string", max_length=200),
        Attribute("crc33_gender", "string", max_length=50),
        Attribute("crc33_email", "string", max_length=100),
        Attribute("crc33_telephone", "string", max_length=50),
        Attribute("crc33_country", "string", max_length=100),
        Attribute("crc33_city", "string", max_length=100),
        Attribute("crc33_state", "string", max_length=50),
        Attribute("crc33_postcode", "string", max_length=20),
        Attribute("crc33_streetaddress", "string", max_length=250),
        Attribute("crc33_dateofbirth", "dateTime"),
        Attribute("crc33_source", "string", max_length=100),
        Attribute("statecode", "int32"),
        Attribute("statuscode", "int32"),
        Attribute("createdon", "dateTimeOffset"),
        Attribute("modifiedon", "dateTime"),
    ]
    return EntityModel.for_dataverse_table(CUSTOMER_TABLE, business)


def customer_id_for_cid(cid: int) -> str:
    """The deterministic Dataverse Id of the customer with this ``cid``."""
    return str(uuid.uuid5(CUSTOMER_ID_NAMESPACE, str(cid)))


def customer_rows_from_csv(path: str | Path) -> list[dict[str, object]]:
    """customer.csv rows as Dataverse rows of ``crc33_customer`` (writer-ready dicts).

    Blank cells become None, dates become midnight-UTC datetimes, ``modifiedon`` equals
    ``createdon``, rows are Active (statecode 0 / statuscode 1), ``versionnumber`` is
    ``cid + 1``. ``SinkCreatedOn``/``SinkModifiedOn`` and ``IsDelete`` are left out: the writer
    fills the Sink timestamps with the export time and live rows carry an empty ``IsDelete``.
    """
    rows: list[dict[str, object]] = []
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for line, record in enumerate(csv.DictReader(handle), start=2):
            try:
                rows.append(_customer_row(record))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: {exc}") from None
    return rows


def _customer_row(record: dict[str, str]) -> dict[str, object]:
    cid = int(record["cid"])
    created = _midnight_utc(record["Created_date"])
    row: dict[str, object] = {
        "Id": customer_id_for_cid(cid),
        "crc33_cid": cid,
        **{column: (record[header] or None) for header, column in CUSTOMER_TEXT_COLUMNS.items()},
        "crc33_dateofbirth": _midnight_utc(record["DateOfBirth"]),
        "statecode": STATECODE_ACTIVE,
        "statuscode": STATUSCODE_ACTIVE,
        "createdon": created,
        "modifiedon": created,
        "versionnumber": cid + 1,
    }
    return row


def _midnight_utc(text: str) -> datetime | None:
    if not text:
        return None
    day = date.fromisoformat(text)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
