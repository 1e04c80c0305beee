"""Bulk messages: Create/Update/UpsertMultiple and their all-or-nothing rule (§3)."""

from __future__ import annotations

import re

TYPE = "Microsoft.Dynamics.CRM.crc33_customer"
GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def target(cid: int, **extra) -> dict:
    return {"@odata.type": TYPE, "crc33_cid": cid, "crc33_name": f"bulk {cid}", **extra}


def names(api, first: int, last: int) -> dict[int, str]:
    rows = api.get(
        f"crc33_customers?$select=crc33_cid,crc33_name&$filter=crc33_cid ge {first} and "
        f"crc33_cid le {last}"
    ).json()["value"]
    return {row["crc33_cid"]: row["crc33_name"] for row in rows}


def test_create_multiple_returns_ids_in_target_order(api, emulator):
    response = api.post(
        "crc33_customers/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [target(5001), target(5002), target(5003)]},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"] == (
        f"{emulator.api_url}$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse"
    )
    assert len(body["Ids"]) == 3
    assert all(re.fullmatch(GUID, i) for i in body["Ids"])
    for cid, record_id in zip((5001, 5002, 5003), body["Ids"], strict=True):
        assert api.get(f"crc33_customers({record_id})?$select=crc33_cid").json()["crc33_cid"] == cid


def test_create_multiple_is_all_or_nothing(api, dataverse_error):
    response = api.post(
        "crc33_customers/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [target(5010), target(5011, crc33_email="x" * 101), target(5012)]},
    )
    status, code, _ = dataverse_error(response)
    assert (status, code) == (400, "0x80044331")
    assert names(api, 5010, 5012) == {}


def test_odata_type_is_required_on_every_target(api, dataverse_error):
    missing = {"crc33_cid": 5020}
    response = api.post(
        "crc33_customers/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [target(5019), missing]},
    )
    status, code, message = dataverse_error(response)
    assert (status, code) == (400, "0x80048d19")
    assert "Targets[1] has no '@odata.type' annotation" in message
    other = api.post(
        "crc33_customers/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.account", "name": "x"}]},
    )
    assert dataverse_error(other)[:2] == (400, "0x80040203")
    assert names(api, 5019, 5020) == {}


def test_update_multiple_needs_existing_records_and_answers_204(api, dataverse_error):
    ids = api.post(
        "crc33_customers/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [target(5030), target(5031)]},
    ).json()["Ids"]
    response = api.post(
        "crc33_customers/Microsoft.Dynamics.CRM.UpdateMultiple",
        json={
            "Targets": [
                {"@odata.type": TYPE, "crc33_customerid": ids[0], "crc33_name": "u0"},
                {"@odata.type": TYPE, "crc33_customerid": ids[1], "crc33_name": "u1"},
            ]
        },
    )
    assert response.status_code == 204
    assert response.content == b""
    assert names(api, 5030, 5031) == {5030: "u0", 5031: "u1"}
    missing = "00000000-0000-4000-8000-0000000000aa"
    failed = api.post(
        "crc33_customers/Microsoft.Dynamics.CRM.UpdateMultiple",
        json={
            "Targets": [
                {"@odata.type": TYPE, "crc33_customerid": ids[0], "crc33_name": "never"},
                {"@odata.type": TYPE, "crc33_customerid": missing, "crc33_name": "x"},
            ]
        },
    )
    assert dataverse_error(failed) == (
        404,
        "0x80040217",
        f"crc33_customer With Ids = {missing} Do Not Exist",
    )
    assert names(api, 5030, 5030) == {5030: "u0"}  # rolled back


def test_upsert_multiple_by_odata_id_and_by_key_columns(api):
    first = api.post(
        "crc33_customers/Microsoft.Dynamics.CRM.UpsertMultiple",
        json={
            "Targets": [
                {
                    "@odata.type": TYPE,
                    "@odata.id": "crc33_customers(crc33_cid=5040)",
                    "crc33_name": "a",
                },
                target(5041),
            ]
        },
    )
    assert first.status_code == 204
    assert first.content == b""
    second = api.post(
        "crc33_customers/Microsoft.Dynamics.CRM.UpsertMultiple",
        json={
            "Targets": [
                {
                    "@odata.type": TYPE,
                    "@odata.id": "crc33_customers(crc33_cid=5040)",
                    "crc33_name": "b",
                },
                target(5041, crc33_name="c"),
                target(5042),
            ]
        },
    )
    assert second.status_code == 204
    assert names(api, 5040, 5042) == {5040: "b", 5041: "c", 5042: "bulk 5042"}
    count = api.get("crc33_customers/$count?$filter=crc33_cid ge 5040 and crc33_cid le 5042")
    assert count.text == "3"


def test_table_without_bulk_support_and_delete_multiple(api, emulator, dataverse_error):
    response = api.post(
        "teams/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.team", "name": "x"}]},
    )
    assert dataverse_error(response) == (
        400,
        "0x80040800",
        "The 'CreateMultiple' method does not support entities of type 'team'. "
        "MessageProcessorCache returned MessageProcessor.Empty.",
    )
    emulator.admin("PATCH", "config", {"bulk_messages": {"crc33_customer": False}})
    try:
        switched = api.post(
            "crc33_customers/Microsoft.Dynamics.CRM.UpsertMultiple",
            json={"Targets": [target(5050)]},
        )
        assert dataverse_error(switched)[:2] == (400, "0x80040800")
    finally:
        emulator.admin("PATCH", "config", {"bulk_messages": {"crc33_customer": True}})
    delete = api.post("crc33_customers/Microsoft.Dynamics.CRM.DeleteMultiple", json={"Targets": []})
    assert dataverse_error(delete) == (
        400,
        "0x80040800",
        "DeleteMultiple has not yet been implemented.",
    )
