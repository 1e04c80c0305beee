"""Microsoft's Dataverse SDK for Python (PowerPlatform-Dataverse-Client 1.1.0), unmodified,
against the local Dataverse: records, queries, `$batch` and error mapping."""

from __future__ import annotations

import pytest
from PowerPlatform.Dataverse.core.errors import HttpError
from PowerPlatform.Dataverse.models.filters import col
from PowerPlatform.Dataverse.models.upsert import UpsertItem


def test_create_retrieve_update_delete_one_record(sdk):
    record_id = sdk.records.create("contact", {"firstname": "Ada", "lastname": "Lovelace"})
    record = sdk.records.retrieve("contact", record_id, select=["firstname", "fullname"])
    assert record is not None
    assert (record["firstname"], record["fullname"]) == ("Ada", "Ada Lovelace")
    assert "lastname" not in record.data  # $select honoured
    sdk.records.update("contact", record_id, {"jobtitle": "Analyst"})
    assert sdk.records.retrieve("contact", record_id, select=["jobtitle"])["jobtitle"] == "Analyst"
    sdk.records.delete("contact", record_id)
    assert sdk.records.retrieve("contact", record_id) is None


def test_create_update_and_delete_many(sdk):
    ids = sdk.records.create("contact", [{"lastname": f"Many{i:02d}"} for i in range(25)])
    assert len(set(ids)) == 25
    sdk.records.update("contact", ids, {"jobtitle": "Bulk"})  # UpdateMultiple
    sdk.records.update("contact", ids[:2], [{"firstname": "A"}, {"firstname": "B"}])
    rows = sdk.records.list(
        "contact", filter="startswith(lastname,'Many')", select=["firstname", "jobtitle"]
    )
    assert len(rows) == 25 and {r["jobtitle"] for r in rows} == {"Bulk"}
    assert sorted(r["firstname"] for r in rows if r["firstname"]) == ["A", "B"]
    job = sdk.records.delete("contact", ids[:20])  # BulkDelete
    assert isinstance(job, str) and len(job) == 36
    sdk.records.delete("contact", ids[20:], use_bulk_delete=False)
    assert len(sdk.records.list("contact", filter="startswith(lastname,'Many')")) == 0


def test_upsert_by_alternate_key_creates_then_updates(sdk):
    key = {"accountnumber": "SDK-001"}
    sdk.records.upsert("account", [UpsertItem(alternate_key=key, record={"name": "First"})])
    sdk.records.upsert(
        "account",
        [
            UpsertItem(alternate_key=key, record={"name": "Second"}),
            UpsertItem(alternate_key={"accountnumber": "SDK-002"}, record={"name": "Other"}),
        ],
    )  # two items: UpsertMultiple
    rows = sdk.records.list(
        "account", filter="startswith(accountnumber,'SDK-')", select=["accountnumber", "name"]
    )
    assert sorted((r["accountnumber"], r["name"]) for r in rows) == [
        ("SDK-001", "Second"),
        ("SDK-002", "Other"),
    ]


def test_retrieve_and_list_with_expand(sdk):
    contact_id = sdk.records.create("contact", {"firstname": "Ex", "lastname": "Pand"})
    account_id = sdk.records.create(
        "account", {"name": "Expand SDK", "primarycontactid@odata.bind": f"/contacts({contact_id})"}
    )
    record = sdk.records.retrieve(
        "account", account_id, select=["name"], expand=["primarycontactid"]
    )
    assert record["primarycontactid"]["fullname"] == "Ex Pand"
    rows = sdk.records.list(
        "account", filter="name eq 'Expand SDK'", select=["name"], expand=["primarycontactid"]
    )
    assert rows[0]["primarycontactid"]["contactid"] == contact_id


def test_picklist_labels_are_resolved_and_formatted_values_returned(sdk):
    record_id = sdk.records.create("contact", {"lastname": "Label", "gendercode": "Female"})
    record = sdk.records.retrieve(
        "contact",
        record_id,
        select=["gendercode"],
        include_annotations="OData.Community.Display.V1.FormattedValue",
    )
    assert record["gendercode"] == 2
    assert record["gendercode@OData.Community.Display.V1.FormattedValue"] == "Female"


def test_list_with_filter_order_and_paging(sdk):
    sdk.records.create("contact", [{"lastname": f"Page{i:02d}"} for i in range(12)])
    rows = sdk.records.list(
        "contact",
        filter="startswith(lastname,'Page')",
        select=["lastname"],
        orderby=["lastname desc"],
        page_size=5,
    )
    assert [r["lastname"] for r in rows] == [f"Page{i:02d}" for i in reversed(range(12))]
    pages = list(
        sdk.records.list_pages(
            "contact", filter="startswith(lastname,'Page')", select=["lastname"], page_size=5
        )
    )
    assert [len(p) for p in pages] == [5, 5, 2]


def test_query_builder_filters_paging_and_count(sdk):
    sdk.records.create(
        "contact",
        [{"lastname": f"Qb{i:02d}", "gendercode": 1 + i % 2, "firstname": "Q"} for i in range(9)],
    )
    query = (
        sdk.query.builder("contact")
        .select("lastname", "gendercode")
        .where((col("lastname").startswith("Qb")) & (col("gendercode") == 2))
        .order_by("lastname", descending=True)
        .page_size(2)
    )
    rows = query.execute()
    assert [r["lastname"] for r in rows] == ["Qb07", "Qb05", "Qb03", "Qb01"]
    pages = list(
        sdk.query.builder("contact")
        .select("lastname")
        .where(col("lastname").startswith("Qb"))
        .page_size(4)
        .execute_pages()
    )
    assert [len(p) for p in pages] == [4, 4, 1]


def test_batch_with_a_change_set_and_a_read(sdk):
    account_id = sdk.records.create("account", {"name": "Batch Co"})
    batch = sdk.batch.new()
    batch.records.create("contact", {"lastname": "Outside"})
    with batch.changeset() as change_set:
        ref = change_set.records.create("contact", {"lastname": "Inside"})
        change_set.records.update("account", account_id, {"primarycontactid@odata.bind": ref})
    batch.records.get("account", account_id, select=["name"])
    result = batch.execute()
    assert not result.has_errors, [r.__dict__ for r in result.failed]
    assert len(result.succeeded) == 4
    account = sdk.records.retrieve("account", account_id, select=["_primarycontactid_value"])
    contact = sdk.records.retrieve("contact", account["_primarycontactid_value"])
    assert contact["lastname"] == "Inside"


def test_a_failing_change_set_rolls_back_and_reports(sdk):
    batch = sdk.batch.new()
    with batch.changeset() as change_set:
        change_set.records.create("contact", {"lastname": "Rolled back"})
        change_set.records.create("contact", {"lastname": "x" * 51})  # MaxLength 50
    result = batch.execute()
    assert result.has_errors
    assert len(sdk.records.list("contact", filter="lastname eq 'Rolled back'")) == 0


def test_errors_map_to_http_error_with_dataverse_codes(sdk):
    missing = "00000000-0000-0000-0000-000000000001"
    with pytest.raises(HttpError) as not_found:
        sdk.records.update("contact", missing, {"lastname": "x"})
    assert not_found.value.status_code == 404
    with pytest.raises(HttpError) as too_long:
        sdk.records.create("contact", {"lastname": "x" * 51})
    assert too_long.value.status_code == 400
    assert too_long.value.details["service_error_code"] == "0x80044331"
    with pytest.raises(HttpError) as unknown:  # collection-valued navigation: not served
        sdk.records.list("account", select=["name"], expand=["contact_customer_accounts"])
    assert unknown.value.status_code == 400
    assert "contact_customer_accounts" in str(unknown.value)
