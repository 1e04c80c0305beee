"""The ten ways the local Dataverse answered Microsoft's SDK unlike Dataverse, pinned as raw
HTTP exchanges (httpx against the real emulator), independent of any client library."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from urllib.parse import quote, unquote

import pytest

from customer360.emulator.launcher import run_emulator

ANNOTATIONS = {"Prefer": 'odata.include-annotations="*"'}
FORMATTED = "@OData.Community.Display.V1.FormattedValue"


def contacts(api, prefix: str, count: int) -> list[str]:
    """Create `count` contacts named `<prefix>00…`; return their ids."""
    ids = []
    for i in range(count):
        response = api.post(
            "contacts",
            json={"firstname": f"F{i}", "lastname": f"{prefix}{i:02d}", "gendercode": 1 + i % 2},
            headers={"Prefer": "return=representation"},
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["contactid"])
    return ids


# ---- 1. query strings are form-decoded everywhere -----------------------------------------------
def test_1_plus_in_a_query_string_is_a_space_in_metadata_and_data_queries(api):
    response = api.get(
        "EntityDefinitions?$select=LogicalName,EntitySetName&$filter=LogicalName+eq+'contact'"
    )
    assert response.status_code == 200, response.text
    assert [t["EntitySetName"] for t in response.json()["value"]] == ["contacts"]
    contacts(api, "Plus Sign", 1)
    found = api.get("contacts?$select=lastname&$filter=lastname+eq+'Plus+Sign00'").json()
    assert [r["lastname"] for r in found["value"]] == ["Plus Sign00"]
    unsupported = api.get("EntityDefinitions?$top=1")
    assert unsupported.status_code == 400
    assert unsupported.json()["error"]["code"] == "0x80060888"


# ---- 2. picklist metadata through a type-cast segment -------------------------------------------
def test_2_picklist_attributes_with_expanded_option_set(api):
    response = api.get(
        "EntityDefinitions(LogicalName='contact')/Attributes/"
        "Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName"
        "&$expand=OptionSet($select=Options)"
    )
    assert response.status_code == 200, response.text
    items = {a["LogicalName"]: a for a in response.json()["value"]}
    assert set(items) == {"gendercode"}  # statecode/statuscode are not picklists
    options = {
        o["Label"]["LocalizedLabels"][0]["Label"]: o["Value"]
        for o in items["gendercode"]["OptionSet"]["Options"]
    }
    assert options == {"Male": 1, "Female": 2}
    assert items["gendercode"]["@odata.type"] == "#Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
    wrong = api.get(
        "EntityDefinitions(LogicalName='contact')/Attributes/Microsoft.Dynamics.CRM.NoSuchMetadata"
    )
    assert wrong.status_code == 404


# ---- 3. an attribute key selects one attribute --------------------------------------------------
def test_3_attribute_by_logical_name_key(api):
    response = api.get(
        "EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='lastname')"
        "?$select=LogicalName,MaxLength"
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["LogicalName"] == "lastname"
    assert body["MaxLength"] == 50
    assert "value" not in body
    missing = api.get("EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='nope')")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "0x80040217"


# ---- 4. sql and fetchXml are answered, never ignored --------------------------------------------
def test_4_fetchxml_returns_only_the_matching_rows_and_columns(api):
    contacts(api, "Fetch", 5)
    fetch = (
        "<fetch top='3'><entity name='contact'><attribute name='lastname'/>"
        "<filter><condition attribute='lastname' operator='like' value='Fetch%'/></filter>"
        "<order attribute='lastname' descending='true'/></entity></fetch>"
    )
    response = api.get(f"contacts?fetchXml={quote(fetch)}")
    assert response.status_code == 200, response.text
    rows = response.json()["value"]
    assert [r["lastname"] for r in rows] == ["Fetch04", "Fetch03", "Fetch02"]
    assert all(set(r) == {"@odata.etag", "lastname", "contactid"} for r in rows)


def test_4_fetchxml_pages_with_cookie_and_more_records(api):
    contacts(api, "Paged", 7)
    fetch = (
        "<fetch count='3'><entity name='contact'><attribute name='lastname'/>"
        "<filter><condition attribute='lastname' operator='begins-with' value='Paged'/></filter>"
        "<order attribute='lastname'/></entity></fetch>"
    )
    prefer = {
        "Prefer": 'odata.include-annotations="Microsoft.Dynamics.CRM.fetchxmlpagingcookie,'
        'Microsoft.Dynamics.CRM.morerecords"'
    }
    names: list[str] = []
    for _ in range(5):
        body = api.get(f"contacts?fetchXml={quote(fetch)}", headers=prefer).json()
        names += [r["lastname"] for r in body["value"]]
        if not body["@Microsoft.Dynamics.CRM.morerecords"]:
            break
        cookie = ET.fromstring(body["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"])
        element = ET.fromstring(fetch)
        element.set("page", cookie.get("pagenumber"))
        element.set("paging-cookie", unquote(unquote(cookie.get("pagingcookie"))))
        fetch = ET.tostring(element, encoding="unicode")
    assert names == [f"Paged{i:02d}" for i in range(7)]


def test_4_fetchxml_link_entity_inner_and_outer(api):
    contact_id = contacts(api, "Linked", 1)[0]
    for name, primary in (("Linked Co", contact_id), ("Lonely Co", None)):
        body = {"name": name}
        if primary:
            body["primarycontactid@odata.bind"] = f"/contacts({primary})"
        assert api.post("accounts", json=body).status_code == 204

    def run(link_type: str) -> list[dict]:
        fetch = (
            "<fetch><entity name='account'><attribute name='name'/>"
            "<filter><condition attribute='name' operator='in'><value>Linked Co</value>"
            "<value>Lonely Co</value></condition></filter><order attribute='name'/>"
            f"<link-entity name='contact' from='contactid' to='primarycontactid' alias='pc' "
            f"link-type='{link_type}'><attribute name='lastname'/></link-entity>"
            "</entity></fetch>"
        )
        response = api.get(f"accounts?fetchXml={quote(fetch)}")
        assert response.status_code == 200, response.text
        return [
            {k: v for k, v in r.items() if k in ("name", "pc.lastname")}
            for r in response.json()["value"]
        ]

    assert run("inner") == [{"name": "Linked Co", "pc.lastname": "Linked00"}]
    assert run("outer") == [{"name": "Linked Co", "pc.lastname": "Linked00"}, {"name": "Lonely Co"}]


def test_4_sql_select_where_order_top(api):
    contacts(api, "Sql", 6)
    sql = (
        "SELECT TOP 3 lastname, gendercode FROM contact WHERE lastname LIKE 'Sql%' "
        "ORDER BY lastname DESC"
    )
    response = api.get(f"contacts?sql={quote(sql, safe='')}")
    assert response.status_code == 200, response.text
    assert response.json()["value"] == [
        {"lastname": "Sql05", "gendercode": 2},
        {"lastname": "Sql04", "gendercode": 1},
        {"lastname": "Sql03", "gendercode": 2},
    ]


@pytest.mark.parametrize(
    "query",
    [
        "sql="
        + quote(
            "SELECT c.lastname FROM contact c JOIN account a ON a.primarycontactid = c.contactid"
        ),
        "sql=" + quote("SELECT COUNT(lastname) FROM contact"),
        "sql=" + quote("DELETE FROM contact"),
        "fetchXml=" + quote("<fetch aggregate='true'><entity name='contact'/></fetch>"),
        "fetchXml=" + quote("<fetch><entity name='account'/></fetch>"),
        # A fixed id: parallel test workers must collect the same test ids.
        "savedQuery=" + str(uuid.UUID(int=0x5A7ED)),
        "unknownOption=1",
        "$apply=groupby((lastname))",
        "$expand=primarycontactid($filter=lastname eq 'x')",
    ],
)
def test_4_unsupported_queries_get_dataverse_400(api, query):
    table = "accounts" if "primarycontactid" in query else "contacts"
    response = api.get(f"{table}?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "0x80060888"


# ---- 5. metadata the SDK reads and writes -------------------------------------------------------
def test_5_list_tables_with_is_private_filter(api):
    response = api.get(
        "EntityDefinitions?$filter=IsPrivate eq false and (LogicalName eq 'account')"
    )
    assert response.status_code == 200, response.text
    assert [t["LogicalName"] for t in response.json()["value"]] == ["account"]


def test_5_retrieve_metadata_changes_projects_typed_properties(api):
    query = {
        "Criteria": {
            "Conditions": [
                {
                    "PropertyName": "LogicalName",
                    "ConditionOperator": "Equals",
                    "Value": {"Type": "System.String", "Value": "contact"},
                }
            ]
        },
        "Properties": {"PropertyNames": ["LogicalName", "Attributes"]},
        "AttributeQuery": {
            "Properties": {"PropertyNames": ["LogicalName", "MaxLength"]},
            "Criteria": {
                "Conditions": [
                    {
                        "PropertyName": "LogicalName",
                        "ConditionOperator": "Equals",
                        "Value": {"Type": "System.String", "Value": "lastname"},
                    }
                ]
            },
        },
    }
    import json

    response = api.get(f"RetrieveMetadataChanges(Query=@p1)?@p1={quote(json.dumps(query))}")
    assert response.status_code == 200, response.text
    entities = response.json()["EntityMetadata"]
    assert [e["LogicalName"] for e in entities] == ["contact"]
    (attribute,) = entities[0]["Attributes"]
    assert attribute["LogicalName"] == "lastname" and attribute["MaxLength"] == 50


def label(text: str) -> dict:
    return {"LocalizedLabels": [{"Label": text, "LanguageCode": 1033}]}


def test_5_create_table_add_column_key_load_and_read(api):
    attribute = {
        "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
        "SchemaName": "new_Name",
        "DisplayName": label("Name"),
        "MaxLength": 100,
        "IsPrimaryName": True,
        "RequiredLevel": {"Value": "None"},
    }
    body = {
        "Entities": [
            {
                "@odata.type": "Microsoft.Dynamics.CRM.ComplexEntityMetadata",
                "SchemaName": "new_Gadget",
                "DisplayName": label("Gadget"),
                "OwnershipType": "UserOwned",
                "Attributes": [attribute],
            }
        ]
    }
    assert api.post("CreateEntities", json=body).status_code == 204
    table = api.get("EntityDefinitions(LogicalName='new_gadget')").json()
    assert table["EntitySetName"] == "new_gadgets"
    column = {
        "@odata.type": "Microsoft.Dynamics.CRM.IntegerAttributeMetadata",
        "SchemaName": "new_Size",
        "DisplayName": label("Size"),
        "MinValue": 0,
        "MaxValue": 100,
    }
    added = api.post(f"EntityDefinitions({table['MetadataId']})/Attributes", json=column)
    assert added.status_code == 204, added.text
    key = api.post(
        "EntityDefinitions(LogicalName='new_gadget')/Keys",
        json={"SchemaName": "new_sizekey", "KeyAttributes": ["new_size"]},
    )
    assert key.status_code == 204, key.text
    assert api.post("new_gadgets", json={"new_name": "a", "new_size": 3}).status_code == 204
    too_big = api.post("new_gadgets", json={"new_name": "b", "new_size": 300})
    assert too_big.status_code == 400
    by_key = api.get("new_gadgets(new_size=3)?$select=new_name")
    assert by_key.json()["new_name"] == "a"


def test_5_file_column_upload_chunked_and_download(api):
    column = {
        "@odata.type": "Microsoft.Dynamics.CRM.FileAttributeMetadata",
        "SchemaName": "new_Document",
        "DisplayName": label("Document"),
    }
    assert (
        api.post("EntityDefinitions(LogicalName='account')/Attributes", json=column).status_code
        == 204
    )
    api.post("accounts", json={"name": "With file"})
    account_id = api.get("accounts?$select=accountid&$filter=name eq 'With file'").json()["value"][
        0
    ]["accountid"]
    small = api.patch(
        f"accounts({account_id})/new_document",
        content=b"hello",
        headers={"Content-Type": "application/octet-stream", "x-ms-file-name": "a.txt"},
    )
    assert small.status_code == 204, small.text
    download = api.get(f"accounts({account_id})/new_document/$value")
    assert (download.status_code, download.content) == (200, b"hello")
    assert download.headers["x-ms-file-name"] == "a.txt"
    start = api.patch(
        f"accounts({account_id})/new_document?x-ms-file-name=b.bin",
        headers={"x-ms-transfer-mode": "chunked"},
    )
    assert start.status_code == 200, start.text
    payload = bytes(range(256)) * 10
    first = api.patch(
        start.headers["Location"],
        content=payload[:1000],
        headers={"Content-Range": f"bytes 0-999/{len(payload)}"},
    )
    assert first.status_code == 206
    last = api.patch(
        start.headers["Location"],
        content=payload[1000:],
        headers={"Content-Range": f"bytes 1000-{len(payload) - 1}/{len(payload)}"},
    )
    assert last.status_code == 204
    assert api.get(f"accounts({account_id})/new_document/$value").content == payload
    json_body = api.patch(f"accounts({account_id})", json={"new_document": "x"})
    assert json_body.status_code == 400


def test_5_bulk_delete_removes_the_matching_records(api):
    ids = contacts(api, "Doomed", 3)
    body = {
        "QuerySet": [
            {
                "EntityName": "contact",
                "Criteria": {
                    "FilterOperator": "And",
                    "Conditions": [
                        {
                            "AttributeName": "contactid",
                            "Operator": "In",
                            "Values": [{"Value": i, "Type": "System.Guid"} for i in ids[:2]],
                        }
                    ],
                },
            }
        ],
        "JobName": "test",
        "SendEmailNotification": False,
        "ToRecipients": [],
        "CCRecipients": [],
        "RecurrencePattern": "",
        "StartDateTime": "2024-01-01T00:00:00Z",
    }
    response = api.post("BulkDelete", json=body)
    assert response.status_code == 200, response.text
    assert uuid.UUID(response.json()["JobId"])
    left = api.get("contacts?$select=lastname&$filter=startswith(lastname,'Doomed')").json()
    assert [r["lastname"] for r in left["value"]] == ["Doomed02"]


# ---- 6. paging positions do not depend on the next request's page size --------------------------
@pytest.mark.parametrize("second_size", [None, 3, 7])
def test_6_ordered_paging_follows_next_link_at_any_page_size(api, second_size):
    prefix = f"Order{second_size}x"
    contacts(api, prefix, 12)
    query = (
        f"contacts?$select=lastname&$filter=startswith(lastname,'{prefix}')&$orderby=lastname desc"
    )
    first = api.get(query, headers={"Prefer": "odata.maxpagesize=5"}).json()
    names = [r["lastname"] for r in first["value"]]
    link = first["@odata.nextLink"]
    while link:
        headers = {"Prefer": f"odata.maxpagesize={second_size}"} if second_size else {}
        page = api.get(link, headers=headers).json()
        names += [r["lastname"] for r in page["value"]]
        link = page.get("@odata.nextLink")
    assert names == [f"{prefix}{i:02d}" for i in reversed(range(12))]


# ---- 7. Retry-After in whole seconds ------------------------------------------------------------
def test_7_retry_after_is_whole_seconds_with_a_scaled_window(tmp_path, api_client_class):
    config = {"limits": {"enabled": True, "time_scale": 0.01, "max_requests": 2}}
    with run_emulator(tmp_path, config=config) as handle:
        client = api_client_class(handle)
        try:
            statuses = [client.get("WhoAmI") for _ in range(3)]
        finally:
            client.close()
    throttled = statuses[-1]
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"].isdigit()
    assert int(throttled.headers["Retry-After"]) >= 1


# ---- 8. the 2-minute limit of one request -------------------------------------------------------
def test_8_a_request_past_the_execution_limit_fails_and_changes_nothing(api, emulator):
    targets = [
        {
            "@odata.type": "Microsoft.Dynamics.CRM.crc33_customer",
            "crc33_cid": 880000 + i,
            "crc33_name": f"slow {i}",
        }
        for i in range(300)
    ]
    before = api.get("crc33_customers/$count?$filter=crc33_cid ge 880000").text
    emulator.admin("PATCH", "config", {"cost_model": {"request_timeout_seconds": 1.0}})
    try:
        response = api.post(
            "crc33_customers/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": targets}
        )
    finally:
        emulator.admin("PATCH", "config", {"cost_model": {"request_timeout_seconds": 120.0}})
    assert response.status_code == 500, response.text
    assert response.json()["error"]["code"] == "0x80044151"
    assert api.get("crc33_customers/$count?$filter=crc33_cid ge 880000").text == before
    fits = api.post(
        "crc33_customers/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": targets[:10]}
    )
    assert fits.status_code == 200, fits.text


# ---- 9. bulk messages on standard tables --------------------------------------------------------
def test_9_standard_tables_support_create_update_upsert_multiple(api):
    for table in ("account", "contact"):
        for message in ("CreateMultiple", "UpdateMultiple", "UpsertMultiple"):
            query = (
                "sdkmessagefilters?$select=sdkmessagefilterid&$filter=sdkmessageid/name eq "
                f"'{message}' and primaryobjecttypecode eq '{table}'"
            )
            assert len(api.get(query).json()["value"]) == 1, (table, message)
    created = api.post(
        "contacts/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.contact", "lastname": "Bulk"}]},
    )
    assert created.status_code == 200, created.text
    assert len(created.json()["Ids"]) == 1


# ---- 10. formatted values -----------------------------------------------------------------------
def test_10_formatted_values_on_choices_lookups_money_and_dates(api):
    (contact_id,) = contacts(api, "Formatted", 1)
    response = api.post(
        "accounts",
        json={
            "name": "Formatted Co",
            "revenue": 1234.5,
            "accountcategorycode": 1,
            "primarycontactid@odata.bind": f"/contacts({contact_id})",
        },
        headers={"Prefer": "return=representation"},
    )
    account_id = response.json()["accountid"]
    account = api.get(f"accounts({account_id})", headers=ANNOTATIONS).json()
    assert account[f"revenue{FORMATTED}"] == "$1,234.50"
    assert account[f"accountcategorycode{FORMATTED}"] == "Preferred Customer"
    assert account[f"_primarycontactid_value{FORMATTED}"] == "F0 Formatted00"
    assert account["_primarycontactid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "contact"
    assert account[f"statecode{FORMATTED}"] == "Active"
    assert account[f"createdon{FORMATTED}"].count("/") == 2
    contact = api.get(f"contacts({contact_id})", headers=ANNOTATIONS).json()
    assert contact[f"gendercode{FORMATTED}"] == "Male"
    plain = api.get(f"contacts({contact_id})").json()
    assert not any(k.endswith(FORMATTED) for k in plain)
    listed = api.get(
        "contacts?$select=gendercode&$filter=lastname eq 'Formatted00'",
        headers={"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'},
    ).json()["value"]
    assert listed[0][f"gendercode{FORMATTED}"] == "Male"


def test_5_created_tables_survive_a_restart(tmp_path, api_client_class):
    attribute = {
        "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
        "SchemaName": "new_Name",
        "MaxLength": 100,
        "IsPrimaryName": True,
    }
    body = {"SchemaName": "new_Kept", "Attributes": [attribute]}
    with run_emulator(tmp_path, config={"limits": {"enabled": False}}) as handle:
        client = api_client_class(handle)
        try:
            assert client.post("EntityDefinitions", json=body).status_code == 204
            assert client.post("new_kepts", json={"new_name": "still here"}).status_code == 204
        finally:
            client.close()
    with run_emulator(tmp_path, config={"limits": {"enabled": False}}) as handle:
        client = api_client_class(handle)
        try:
            rows = client.get("new_kepts?$select=new_name").json()["value"]
        finally:
            client.close()
    assert [r["new_name"] for r in rows] == ["still here"]


def test_expand_single_valued_navigation_on_records_and_collections(api):
    (contact_id,) = contacts(api, "Expanded", 1)
    response = api.post(
        "accounts",
        json={"name": "Expand Co", "primarycontactid@odata.bind": f"/contacts({contact_id})"},
        headers={"Prefer": "return=representation"},
    )
    account_id = response.json()["accountid"]
    one = api.get(
        f"accounts({account_id})?$select=name&$expand=primarycontactid($select=lastname)"
    ).json()
    assert one["primarycontactid"]["lastname"] == "Expanded00"
    assert one["primarycontactid"]["contactid"] == contact_id
    assert "firstname" not in one["primarycontactid"]
    listed = api.get(
        "accounts?$select=name&$filter=name eq 'Expand Co'&$expand=primarycontactid,parentaccountid"
    ).json()["value"]
    assert listed[0]["primarycontactid"]["fullname"] == "F0 Expanded00"
    assert listed[0]["parentaccountid"] is None
    unknown = api.get("accounts?$expand=contact_customer_accounts")
    assert unknown.status_code == 400
