"""Microsoft's Dataverse SDK for Python, unmodified, against the local Dataverse: table
definitions (tables.*), SQL and FetchXML queries, file columns."""

from __future__ import annotations

import pytest
from PowerPlatform.Dataverse.core.errors import HttpError, MetadataError


def test_get_and_list_tables(sdk):
    info = sdk.tables.get("account")
    assert (info.logical_name, info.entity_set_name, info.primary_id_attribute) == (
        "account",
        "accounts",
        "accountid",
    )
    assert sdk.tables.get("new_nosuchtable") is None
    names = {t["LogicalName"] for t in sdk.tables.list()}
    assert {"account", "contact", "crc33_customer"} <= names
    only = sdk.tables.list(filter="LogicalName eq 'contact'", select=["LogicalName"])
    assert [t["LogicalName"] for t in only] == ["contact"]


def test_get_column_and_list_columns_typed_and_untyped(sdk):
    column = sdk.tables.get_column("contact", "lastname")
    assert column["LogicalName"] == "lastname" and column["MaxLength"] == 50
    assert sdk.tables.get_column("contact", "nosuchcolumn") is None
    strings = sdk.tables.list_columns("contact", filter="AttributeType eq 'String'")
    assert "lastname" in {c["LogicalName"] for c in strings}
    assert all(c["AttributeType"] == "String" for c in strings)
    typed = sdk.tables.list_columns("contact", typed=True)
    by_name = {c["LogicalName"]: c for c in typed}
    assert by_name["lastname"]["MaxLength"] == 50
    assert by_name["gendercode"]["AttributeType"] == "Picklist"
    one = sdk.tables.get_column("crc33_customer", "crc33_cid", typed=True)
    assert (one["MinValue"], one["MaxValue"]) == (-2147483648, 2147483647)


def test_create_table_columns_and_keys_then_load_and_read(sdk):
    info = sdk.tables.create(
        "new_Product", {"new_Price": "decimal", "new_Code": "string", "new_Stock": "int"}
    )
    assert info.entity_set_name == "new_products"
    assert sdk.tables.add_columns("new_Product", {"new_Notes": "memo", "new_Active": "bool"}) == [
        "new_Notes",
        "new_Active",
    ]
    key = sdk.tables.create_alternate_key("new_Product", "new_codekey", ["new_code"])
    assert key.schema_name == "new_codekey"
    keys = sdk.tables.get_alternate_keys("new_Product")
    assert [(k.schema_name, k.key_attributes) for k in keys] == [("new_codekey", ["new_code"])]
    ids = sdk.records.create(
        "new_Product",
        [
            {"new_name": f"P{i}", "new_code": f"C{i}", "new_price": i * 1.5, "new_active": True}
            for i in range(5)
        ],
    )
    assert len(ids) == 5
    rows = sdk.records.list(
        "new_Product",
        select=["new_code", "new_price"],
        filter="new_price gt 3",
        orderby=["new_code"],
    )
    assert [(r["new_code"], r["new_price"]) for r in rows] == [("C3", 4.5), ("C4", 6.0)]
    assert sdk.tables.remove_columns("new_Product", ["new_Notes"]) == ["new_Notes"]
    with pytest.raises(HttpError) as gone:
        sdk.records.list("new_Product", select=["new_notes"])
    assert gone.value.status_code == 400
    sdk.tables.delete_alternate_key("new_Product", keys[0].metadata_id)
    assert sdk.tables.get_alternate_keys("new_Product") == []
    sdk.tables.delete("new_Product")
    assert sdk.tables.get("new_Product") is None


def test_creating_an_existing_table_is_refused(sdk):
    with pytest.raises(MetadataError):
        sdk.tables.create("account", {"new_x": "string"})


def test_sql_query(sdk):
    sdk.records.create("contact", [{"lastname": f"Sql{i:02d}", "firstname": "S"} for i in range(6)])
    rows = sdk.query.sql(
        "SELECT TOP 3 lastname, firstname FROM contact WHERE lastname LIKE 'Sql%' "
        "ORDER BY lastname DESC"
    )
    assert [(r["lastname"], r["firstname"]) for r in rows] == [
        ("Sql05", "S"),
        ("Sql04", "S"),
        ("Sql03", "S"),
    ]
    with pytest.raises(HttpError) as join:
        sdk.query.sql(
            "SELECT c.lastname FROM contact c JOIN account a ON a.primarycontactid = c.contactid"
        )
    assert join.value.status_code == 400


def test_fetchxml_query_with_paging_and_link_entity(sdk):
    contact_ids = sdk.records.create("contact", [{"lastname": f"Fx{i:02d}"} for i in range(7)])
    sdk.records.create(
        "account",
        [
            {"name": f"FxCo{i}", "primarycontactid@odata.bind": f"/contacts({contact_ids[i]})"}
            for i in range(3)
        ],
    )
    paged = sdk.query.fetchxml(
        "<fetch count='3'><entity name='contact'><attribute name='lastname'/>"
        "<filter><condition attribute='lastname' operator='begins-with' value='Fx'/></filter>"
        "<order attribute='lastname'/></entity></fetch>"
    )
    pages = list(paged.execute_pages())
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [r["lastname"] for p in pages for r in p] == [f"Fx{i:02d}" for i in range(7)]
    joined = sdk.query.fetchxml(
        "<fetch><entity name='account'><attribute name='name'/>"
        "<filter><condition attribute='name' operator='like' value='FxCo%'/></filter>"
        "<order attribute='name'/>"
        "<link-entity name='contact' from='contactid' to='primarycontactid' alias='pc'>"
        "<attribute name='lastname'/></link-entity></entity></fetch>"
    ).execute()
    assert [(r["name"], r["pc.lastname"]) for r in joined] == [
        ("FxCo0", "Fx00"),
        ("FxCo1", "Fx01"),
        ("FxCo2", "Fx02"),
    ]


def test_file_upload_small_and_chunked_then_download(sdk, emulator, tmp_path):
    account_id = sdk.records.create("account", {"name": "Files"})
    small = tmp_path / "note.txt"
    small.write_bytes(b"a small file")
    # The column does not exist yet: the SDK creates it (a FileAttributeMetadata POST).
    sdk.files.upload("account", account_id, "new_Attachment", str(small))
    big = tmp_path / "big.bin"
    payload = bytes(range(256)) * 40_000  # 10 MB: three 4 MB chunks
    big.write_bytes(payload)
    sdk.files.upload(
        "account", account_id, "new_Attachment", str(big), mode="chunk", if_none_match=False
    )
    # The SDK has no download call: read it back as any HTTP client would.
    from tests.emulator.conftest import ApiClient

    api = ApiClient(emulator)
    try:
        download = api.get(f"accounts({account_id})/new_attachment/$value")
    finally:
        api.close()
    assert download.status_code == 200
    assert download.headers["x-ms-file-name"] == "big.bin"
    assert download.content == payload


def test_what_is_not_emulated_gets_dataverse_errors_not_wrong_data(sdk):
    with pytest.raises(HttpError) as update:  # PUT …/Attributes(id): definitions are not changed
        sdk.tables.update_column("contact", "jobtitle", {"max_length": 200})
    assert update.value.status_code == 400
    assert update.value.details["service_error_code"] == "0x80040800"
    assert sdk.tables.get_column("contact", "jobtitle")["MaxLength"] == 100
    with pytest.raises(HttpError) as relationship:  # RelationshipDefinitions is not served
        sdk.tables.create_lookup_field("contact", "new_AccountRef", "account")
    assert relationship.value.status_code == 404
