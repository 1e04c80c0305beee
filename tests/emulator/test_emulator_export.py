"""Synapse Link export: changes made through the Web API land in the append-only layout and are
read back with the project's Synapse Link reader (reference §8)."""

from __future__ import annotations

import time

from customer360.generate.seed_table import crc33_customer_model
from customer360.synapse_link import (
    LocalFileSystem,
    list_export_folders,
    read_entity,
)


def rows_of(emulator, folder_name: str, table: str) -> list[dict]:
    fs = LocalFileSystem(emulator.home / "landing" / "dataverse")
    folder = next(f for f in list_export_folders(fs) if f.name == folder_name)
    result = read_entity(fs, folder, table)
    assert result.rejected == []
    return result.table.to_pylist()


def test_exports_contain_only_changes_since_the_previous_export(emulator, api):
    ids = {}
    for cid in (8001, 8002, 8003):
        response = api.post(
            "crc33_customers",
            json={
                "crc33_cid": cid,
                "crc33_name": f"Export {cid}",
                "crc33_totalspend": 12.5,
                "crc33_dateofbirth": "1980-05-09",
                "overriddencreatedon": "2021-03-04T05:06:07Z",
            },
        )
        ids[cid] = response.headers["OData-EntityId"][-37:-1]
    first = emulator.admin("POST", "export", {"tables": ["crc33_customer"]})
    assert first["tables"] == {"crc33_customer": {"rows": 3, "deletes": 0}}
    rows = rows_of(emulator, first["folder"], "crc33_customer")
    # The sample model (written by the data generator) is a prefix of the exported one.
    fs = LocalFileSystem(emulator.home / "landing" / "dataverse")
    folder = next(f for f in list_export_folders(fs) if f.name == first["folder"])
    base = crc33_customer_model()
    exported = folder.entities["crc33_customer"]
    assert base.is_prefix_of(exported)
    assert exported.column_names[len(base.column_names)] == "crc33_customerid"
    by_cid = {row["crc33_cid"]: row for row in rows}
    assert sorted(by_cid) == [8001, 8002, 8003]
    row = by_cid[8001]
    assert row["Id"] == ids[8001]
    assert row["crc33_customerid"] == ids[8001]
    assert row["crc33_name"] == "Export 8001"
    assert str(row["crc33_totalspend"]) == "12.50"
    assert row["IsDelete"] is None
    assert row["createdon"].year == 2021
    assert row["ownerid_entitytype"] == "systemuser"
    assert row["statecode"] == 0
    assert isinstance(row["versionnumber"], int)
    assert (
        emulator.home / "landing" / "dataverse" / first["folder"] / "crc33_customer" / "2021.csv"
    ).is_file()

    nothing = emulator.admin("POST", "export", {"tables": ["crc33_customer"]})
    assert nothing == {
        "folder": None,
        "tables": {},
        "landing_dir": str(emulator.home / "landing" / "dataverse"),
    }

    api.patch("crc33_customers(crc33_cid=8002)", json={"crc33_name": "Renamed"})
    api.delete(f"crc33_customers({ids[8003]})")
    time.sleep(1.0)  # incremental folders are named by the second
    second = emulator.admin("POST", "export", {"tables": ["crc33_customer"]})
    assert second["tables"] == {"crc33_customer": {"rows": 1, "deletes": 1}}
    assert second["folder"] > first["folder"]
    rows = rows_of(emulator, second["folder"], "crc33_customer")
    assert len(rows) == 2
    updated = next(r for r in rows if r["IsDelete"] is None)
    deleted = next(r for r in rows if r["IsDelete"] is True)
    assert (updated["crc33_cid"], updated["crc33_name"]) == (8002, "Renamed")
    assert deleted["Id"] == ids[8003]
    assert deleted["crc33_name"] is None
    assert deleted["versionnumber"] > updated["versionnumber"]


def test_export_of_unknown_table_is_a_clear_error(emulator):
    import pytest

    from customer360.emulator.launcher import EmulatorAdminError

    with pytest.raises(EmulatorAdminError, match=r"cannot export unknown tables \['nope'\]"):
        emulator.admin("POST", "export", {"tables": ["nope"]})


def test_periodic_export_on_an_interval(emulator, api):
    api.post("accounts", json={"name": "Periodic", "accountnumber": "PER-1"})
    emulator.admin("PATCH", "config", {"export": {"interval_seconds": 0.5, "tables": ["account"]}})
    try:
        fs = LocalFileSystem(emulator.home / "landing" / "dataverse")
        deadline = time.monotonic() + 10
        found = []
        while time.monotonic() < deadline and not found:
            time.sleep(0.3)
            for folder in list_export_folders(fs, include_incomplete=True):
                if "account" in folder.entities:
                    rows = read_entity(fs, folder, "account").table.to_pylist()
                    found = [r for r in rows if r["accountnumber"] == "PER-1"]
        assert [r["name"] for r in found] == ["Periodic"]
    finally:
        emulator.admin("PATCH", "config", {"export": {"interval_seconds": 0.0}})
