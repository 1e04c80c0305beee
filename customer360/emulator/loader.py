"""Load a CSV file into a table (admin `POST /_emulator/load`), e.g. the sample's customer.csv.

Rows are upserted by the table's alternate key when every key column is mapped (so a reload
updates instead of duplicating), otherwise created. The load is all-or-nothing; a bad value is
reported with the file, row number and column.
"""

from __future__ import annotations

import csv
from pathlib import Path

from customer360.emulator import errors
from customer360.emulator.operations import DataService, Locator, RequestContext
from customer360.emulator.schema import DECIMAL_TYPES, INTEGER_TYPES, Table
from customer360.emulator.values import coerce_payload_value
from customer360.generate.seed_table import CUSTOMER_TEXT_COLUMNS

# customer.csv of the sample (reference/customer360_sample.md) → crc33_customer: the text columns
# as the Synapse Link sample maps them, plus the columns the Web API takes directly.
CUSTOMER_CSV_MAPPING = {
    **CUSTOMER_TEXT_COLUMNS,
    "DateOfBirth": "crc33_dateofbirth",
    "Created_date": "overriddencreatedon",
    "cid": "crc33_cid",
}


class LoadError(ValueError):
    """A CSV could not be loaded; the message names the file, row and column."""


def default_mapping(table: Table, header: list[str]) -> dict[str, str]:
    if table.logical_name == "crc33_customer" and set(CUSTOMER_CSV_MAPPING) <= set(header):
        return dict(CUSTOMER_CSV_MAPPING)
    mapping: dict[str, str] = {}
    for name in header:
        lowered = name.strip().lower()
        for candidate in (lowered, f"crc33_{lowered}"):
            if candidate in table.columns:
                mapping[name] = candidate
                break
    return mapping


def _sample_ids():
    """The data generator's Ids for crc33_customer (uuid5 of the cid): a customer loaded here
    and the same customer in generated Synapse Link files share one Id."""
    from customer360.generate.seed_table import customer_id_for_cid

    return lambda cid: customer_id_for_cid(int(cid))


def _typed(table: Table, column_name: str, text: str) -> object:
    column = table.columns[column_name]
    if text == "":
        return None
    kind = column.type
    if kind in INTEGER_TYPES or kind in ("Picklist", "State", "Status"):
        return int(text)
    if kind in DECIMAL_TYPES or kind == "Double":
        number = float(text)
        return int(number) if number.is_integer() and "." not in text else number
    if kind == "Boolean":
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError(f"'{text}' is not a boolean")
    return text


def load_csv(
    service: DataService,
    ctx: RequestContext,
    table: Table,
    path: Path,
    mapping: dict[str, str] | None = None,
) -> dict:
    if not path.is_file():
        raise LoadError(f"{path}: no such file")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise LoadError(f"{path}: the file is empty") from None
        mapping = mapping or default_mapping(table, header)
        unknown = [c for c in mapping.values() if c not in table.columns]
        if unknown:
            raise LoadError(
                f"{path}: mapping targets unknown columns {unknown} of {table.logical_name}"
            )
        missing = [h for h in mapping if h not in header]
        if missing:
            raise LoadError(f"{path}: mapped CSV columns {missing} are not in the header")
        if not mapping:
            raise LoadError(f"{path}: no CSV column maps to a column of {table.logical_name}")
        positions = [(header.index(h), c) for h, c in mapping.items()]
        key = next(
            (k for k in table.keys if all(a in mapping.values() for a in k.attributes)), None
        )
        created = updated = 0
        record_id_for = _sample_ids() if table.logical_name == "crc33_customer" else None
        with service.store.transaction():
            for line_number, record in enumerate(reader, start=2):
                if not record:
                    continue
                if len(record) != len(header):
                    raise LoadError(
                        f"{path} row {line_number}: {len(record)} fields, header has {len(header)}"
                    )
                body: dict[str, object] = {}
                for index, column_name in positions:
                    try:
                        value = _typed(table, column_name, record[index])
                        if value is not None:
                            coerce_payload_value(table, table.columns[column_name], value)
                    except (ValueError, errors.DataverseError) as exc:
                        detail = exc.message if isinstance(exc, errors.DataverseError) else exc
                        raise LoadError(
                            f"{path} row {line_number} column {header[index]!r}: {detail}"
                        ) from None
                    body[column_name] = value
                try:
                    changes = service.prepare(table, body, for_create=True)
                    if record_id_for is not None and changes.get("crc33_cid") is not None:
                        changes.setdefault(table.primary_id, record_id_for(changes["crc33_cid"]))
                    if key is not None:
                        values = tuple(changes.get(a) for a in key.attributes)
                        locator = Locator(table, key=key, key_values=values)
                        _, was_created = service.upsert(ctx, locator, changes)
                    else:
                        service.create(ctx, table, changes)
                        was_created = True
                except errors.DataverseError as exc:
                    raise LoadError(f"{path} row {line_number}: {exc.message}") from None
                created += was_created
                updated += not was_created
    return {"table": table.logical_name, "created": created, "updated": updated}
