"""Fidelity of the Web API: status codes, headers, bodies and error codes (reference §1, §5).

One emulator subprocess serves the whole module (limits off); each test uses its own key values.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def config_of(emulator) -> dict:
    return json.loads((emulator.home / "dataverse" / "config.json").read_text())


def create_customer(api, cid: int, **extra) -> str:
    body = {"crc33_cid": cid, "crc33_name": f"Customer {cid}", **extra}
    response = api.post("crc33_customers", json=body)
    assert response.status_code == 204, response.text
    match = re.fullmatch(rf".*crc33_customers\(({GUID})\)", response.headers["OData-EntityId"])
    assert match
    return match.group(1)


# ---- service document, WhoAmI, metadata ---------------------------------------------------------


def test_service_document_lists_entity_sets(api, emulator):
    response = api.get("")
    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"] == f"{emulator.api_url}$metadata"
    names = [item["name"] for item in body["value"]]
    assert names == [
        "accounts",
        "contacts",
        "crc33_customers",
        "systemusers",
        "teams",
        "sdkmessagefilters",
    ]


def test_whoami_returns_the_application_users_systemuser_and_dop_hint(api, emulator):
    config = config_of(emulator)
    response = api.get("WhoAmI")
    assert response.status_code == 200
    assert response.headers["x-ms-dop-hint"] == "50"
    assert response.headers["OData-Version"] == "4.0"
    body = response.json()
    assert body["UserId"] == config["application_users"][0]["systemuserid"]
    assert body["BusinessUnitId"] == config["business_unit_id"]
    assert body["OrganizationId"] == config["organization_id"]
    assert body["@odata.context"] == (
        f"{emulator.api_url}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse"
    )


def test_post_to_whoami_is_no_http_resource(api, emulator, dataverse_error):
    response = api.post("WhoAmI", json={})
    assert dataverse_error(response) == (
        404,
        "",
        f"No HTTP resource was found that matches the request URI '{emulator.api_url}WhoAmI'.",
    )


def test_unknown_entity_set_is_resource_not_found(api, dataverse_error):
    response = api.get("Account")
    assert dataverse_error(response) == (
        404,
        "0x8006088a",
        "Resource not found for the segment 'Account'.",
    )


def test_entity_definitions_with_keys_and_attributes(api):
    response = api.get(
        "EntityDefinitions(LogicalName='crc33_customer')?$select=LogicalName,EntitySetName,"
        "PrimaryIdAttribute,ChangeTrackingEnabled&$expand=Keys,Attributes"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["LogicalName"] == "crc33_customer"
    assert body["EntitySetName"] == "crc33_customers"
    assert body["PrimaryIdAttribute"] == "crc33_customerid"
    assert body["ChangeTrackingEnabled"] is True
    assert body["@c360.emulator.BulkMessagesSupported"] is True
    assert [
        (k["LogicalName"], k["KeyAttributes"], k["EntityKeyIndexStatus"]) for k in body["Keys"]
    ] == [("crc33_cidkey", ["crc33_cid"], "Active")]
    attributes = {a["LogicalName"]: a for a in body["Attributes"]}
    assert attributes["crc33_email"]["AttributeType"] == "String"
    assert attributes["crc33_email"]["MaxLength"] == 100
    assert attributes["crc33_totalspend"]["AttributeType"] == "Decimal"
    assert attributes["crc33_dateofbirth"]["Format"] == "DateOnly"
    assert attributes["ownerid"]["Targets"] == ["systemuser", "team"]
    assert [o["Value"] for o in attributes["statuscode"]["OptionSet"]["Options"]] == [1, 2]


def test_entity_definitions_keys_path_and_bulk_flag_of_contact(api):
    keys = api.get("EntityDefinitions(LogicalName='account')/Keys").json()["value"]
    assert [k["KeyAttributes"] for k in keys] == [["accountnumber"]]
    contact = api.get("EntityDefinitions(LogicalName='contact')?$select=LogicalName").json()
    assert contact["@c360.emulator.BulkMessagesSupported"] is True  # standard tables have them
    team = api.get("EntityDefinitions(LogicalName='team')?$select=LogicalName").json()
    assert team["@c360.emulator.BulkMessagesSupported"] is False


def test_sdkmessagefilters_tell_which_tables_support_bulk_messages(api):
    query = (
        "sdkmessagefilters?$select=sdkmessagefilterid&$filter=sdkmessageid/name eq @message and "
        "primaryobjecttypecode eq @table&@message='CreateMultiple'&@table="
    )
    assert len(api.get(query + "'crc33_customer'").json()["value"]) == 1
    assert len(api.get(query + "'contact'").json()["value"]) == 1
    assert api.get(query + "'team'").json()["value"] == []


# ---- create -------------------------------------------------------------------------------------


def test_create_returns_204_with_odata_entityid_and_no_body(api, emulator):
    response = api.post("crc33_customers", json={"crc33_cid": 1001, "crc33_name": "A"})
    assert response.status_code == 204
    assert response.content == b""
    assert re.fullmatch(
        rf"{re.escape(emulator.api_url)}crc33_customers\({GUID}\)",
        response.headers["OData-EntityId"],
    )


def test_create_with_return_representation_is_201_with_body(api, emulator):
    response = api.post(
        "crc33_customers?$select=crc33_name,crc33_cid",
        json={"crc33_cid": 1002, "crc33_name": "Rep"},
        headers={"Prefer": "return=representation"},
    )
    assert response.status_code == 201
    assert response.headers["Preference-Applied"] == "return=representation"
    assert "OData-EntityId" not in response.headers
    body = response.json()
    assert body["@odata.context"] == (
        f"{emulator.api_url}$metadata#crc33_customers(crc33_name,crc33_cid)/$entity"
    )
    assert re.fullmatch(r'W/"\d+"', body["@odata.etag"])
    assert set(body) == {
        "@odata.context",
        "@odata.etag",
        "crc33_name",
        "crc33_cid",
        "crc33_customerid",
    }
    assert (body["crc33_name"], body["crc33_cid"]) == ("Rep", 1002)


def test_create_defaults_owner_state_and_system_columns(api, emulator):
    config = config_of(emulator)
    record_id = create_customer(api, 1003)
    body = api.get(f"crc33_customers({record_id})").json()
    me = config["application_users"][0]["systemuserid"]
    assert body["_ownerid_value"] == me
    assert body["_owninguser_value"] == me
    assert body["_owningteam_value"] is None
    assert body["_createdby_value"] == me
    assert (body["statecode"], body["statuscode"]) == (0, 1)
    assert body["versionnumber"] == int(body["@odata.etag"][3:-1])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["createdon"])


def test_create_with_given_primary_key_and_duplicate_primary_key(api, dataverse_error):
    record_id = "11111111-2222-4333-8444-555555555555"
    first = api.post("crc33_customers", json={"crc33_customerid": record_id, "crc33_cid": 1004})
    assert first.status_code == 204
    assert first.headers["OData-EntityId"].endswith(f"crc33_customers({record_id})")
    again = api.post("crc33_customers", json={"crc33_customerid": record_id, "crc33_cid": 1005})
    assert dataverse_error(again) == (412, "0x80040237", "Cannot insert duplicate key.")


def test_create_with_duplicate_alternate_key(api, dataverse_error):
    create_customer(api, 1006)
    response = api.post("crc33_customers", json={"crc33_cid": 1006})
    status, code, message = dataverse_error(response)
    assert (status, code) == (412, "0x80060892")
    assert message.startswith("Entity Key crc33_cidkey violated.")


def test_overriddencreatedon_sets_createdon(api):
    record_id = create_customer(api, 1007, overriddencreatedon="2012-08-24T00:00:00Z")
    body = api.get(f"crc33_customers({record_id})?$select=createdon,overriddencreatedon").json()
    assert body["createdon"] == "2012-08-24T00:00:00Z"
    assert body["overriddencreatedon"] == "2012-08-24T00:00:00Z"


# ---- validation errors --------------------------------------------------------------------------


def test_unknown_property_is_0x80090801(api, dataverse_error):
    response = api.post("crc33_customers", json={"crc33_cid": 1010, "crc33_nickname": "x"})
    assert dataverse_error(response) == (
        400,
        "0x80090801",
        "Invalid property 'crc33_nickname' was found in entity "
        "'Microsoft.Dynamics.CRM.crc33_customer'.",
    )


def test_string_longer_than_max_length_is_0x80044331(api, dataverse_error):
    response = api.post("crc33_customers", json={"crc33_cid": 1011, "crc33_postcode": "1" * 21})
    assert dataverse_error(response) == (
        400,
        "0x80044331",
        "A validation error occurred.  The length of the 'crc33_postcode' attribute of the "
        "'crc33_customer' entity exceeded the maximum allowed length of '20'.",
    )
    assert api.get("crc33_customers(crc33_cid=1011)").status_code == 404  # nothing written


def test_wrong_type_is_a_payload_error(api, dataverse_error):
    response = api.post("crc33_customers", json={"crc33_cid": "abc"})
    status, code, message = dataverse_error(response)
    assert (status, code) == (400, "0x80048d19")
    assert message.endswith(
        "Microsoft.OData.ODataException: Cannot convert the literal 'abc' to the expected type "
        "'Edm.Int32'."
    )
    assert "Entity :'crc33_customers'" in message


def test_picklist_value_outside_the_option_set(api, dataverse_error):
    response = api.post("contacts", json={"lastname": "X", "gendercode": 3})
    assert dataverse_error(response) == (
        400,
        "0x80044331",
        "A validation error occurred.  The value 3 of 'gendercode' on record of type 'contact' "
        "is outside the valid range. Accepted Values: 1,2",
    )


def test_system_required_column_missing_is_0x80040200(api, dataverse_error):
    response = api.post("teams", json={"teamtype": 0})
    assert dataverse_error(response) == (
        400,
        "0x80040200",
        "Required field 'name' is missing for entity 'team'.",
    )


def test_state_and_status_pairs(api, dataverse_error):
    record_id = create_customer(api, 1012)
    assert api.patch(f"crc33_customers({record_id})", json={"statecode": 1}).status_code == 204
    body = api.get(f"crc33_customers({record_id})?$select=statecode,statuscode").json()
    assert (body["statecode"], body["statuscode"]) == (1, 2)
    bad = api.patch(f"crc33_customers({record_id})", json={"statecode": 0, "statuscode": 2})
    assert dataverse_error(bad) == (
        400,
        "0x80048408",
        "State code is invalid or state code is valid but status code is invalid for a "
        "specified state code.",
    )
    only_status = api.patch(f"crc33_customers({record_id})", json={"statuscode": 1})
    assert dataverse_error(only_status)[1] == "0x80048408"
    unknown_state = api.patch(f"crc33_customers({record_id})", json={"statecode": 5})
    assert dataverse_error(unknown_state)[1] == "0x80048408"
    ok = api.patch(f"crc33_customers({record_id})", json={"statecode": 0, "statuscode": 1})
    assert ok.status_code == 204


# ---- retrieve, keys -----------------------------------------------------------------------------


def test_retrieve_by_primary_and_alternate_key(api, emulator):
    record_id = create_customer(api, 1020, crc33_email="a@contoso.com")
    by_id = api.get(f"crc33_customers({record_id})?$select=crc33_email")
    assert by_id.status_code == 200
    assert by_id.json()["@odata.context"] == (
        f"{emulator.api_url}$metadata#crc33_customers(crc33_email)/$entity"
    )
    by_named_pk = api.get(f"crc33_customers(crc33_customerid={record_id})?$select=crc33_email")
    by_key = api.get("crc33_customers(crc33_cid=1020)?$select=crc33_email")
    assert by_named_pk.json() == by_id.json() == by_key.json()


def test_not_found_by_primary_key_and_by_alternate_key(api, dataverse_error):
    missing = "00000000-0000-4000-8000-000000000001"
    assert dataverse_error(api.get(f"crc33_customers({missing})")) == (
        404,
        "0x80040217",
        f"crc33_customer With Id = {missing} Does Not Exist",
    )
    assert dataverse_error(api.get("crc33_customers(crc33_cid=999999)")) == (
        404,
        "0x80060891",
        "A record with the specified key values does not exist in crc33_customer entity",
    )


def test_key_with_non_key_columns_is_rejected(api, dataverse_error):
    response = api.get("crc33_customers(crc33_name='x')")
    assert dataverse_error(response) == (
        400,
        "0x80060890",
        "The key in the request URI is not valid for resource "
        "'Microsoft.Dynamics.CRM.crc33_customer'. Ensure that the names and number of key "
        "properties match the declared or alternate key properties for the resource "
        "'Microsoft.Dynamics.CRM.crc33_customer'.",
    )


def test_string_keys_with_quotes_and_reserved_characters(api):
    number = "O'Brien/1 & Co?=#%"
    created = api.post("accounts", json={"name": "Quote Co", "accountnumber": number})
    assert created.status_code == 204, created.text
    literal = "'" + number.replace("'", "''") + "'"
    response = api.get(f"accounts(accountnumber={quote(literal, safe='')})?$select=name")
    assert response.status_code == 200
    assert response.json()["name"] == "Quote Co"
    # Alternate keys on strings compare without case, as on SQL Server's default collation.
    upper = quote("'" + number.upper().replace("'", "''") + "'", safe="")
    assert api.get(f"accounts(accountnumber={upper})?$select=name").status_code == 200


def test_if_none_match_etag_gives_304(api):
    record_id = create_customer(api, 1021)
    etag = api.get(f"crc33_customers({record_id})").json()["@odata.etag"]
    response = api.get(f"crc33_customers({record_id})", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert (
        api.get(f"crc33_customers({record_id})", headers={"If-None-Match": "null"}).status_code
        == 200
    )


def test_single_property_get_put_delete(api, emulator):
    record_id = create_customer(api, 1022, crc33_city="Paris")
    response = api.get(f"crc33_customers({record_id})/crc33_city")
    assert response.json() == {
        "@odata.context": f"{emulator.api_url}$metadata#crc33_customers({record_id})/crc33_city",
        "value": "Paris",
    }
    assert (
        api.put(f"crc33_customers({record_id})/crc33_city", json={"value": "Oslo"}).status_code
        == 204
    )
    assert api.get(f"crc33_customers({record_id})/crc33_city").json()["value"] == "Oslo"
    assert api.delete(f"crc33_customers({record_id})/crc33_city").status_code == 204
    assert api.get(f"crc33_customers({record_id})/crc33_city").status_code == 204


# ---- update, upsert, conditional operations -----------------------------------------------------


def test_update_with_if_match_star_and_missing_record(api, dataverse_error):
    record_id = create_customer(api, 1030)
    ok = api.patch(
        f"crc33_customers({record_id})", json={"crc33_city": "Rome"}, headers={"If-Match": "*"}
    )
    assert ok.status_code == 204
    missing = "00000000-0000-4000-8000-000000000002"
    response = api.patch(
        f"crc33_customers({missing})", json={"crc33_city": "Rome"}, headers={"If-Match": "*"}
    )
    assert dataverse_error(response) == (
        404,
        "0x80040217",
        f"crc33_customer With Id = {missing} Does Not Exist",
    )
    by_key = api.patch(
        "crc33_customers(crc33_cid=1031)", json={"crc33_city": "x"}, headers={"If-Match": "*"}
    )
    assert dataverse_error(by_key)[:2] == (404, "0x80060891")


def test_create_only_with_if_none_match_star(api, dataverse_error):
    created = api.patch(
        "crc33_customers(crc33_cid=1032)", json={"crc33_name": "N"}, headers={"If-None-Match": "*"}
    )
    assert created.status_code == 204
    again = api.patch(
        "crc33_customers(crc33_cid=1032)", json={"crc33_name": "N"}, headers={"If-None-Match": "*"}
    )
    assert dataverse_error(again) == (
        412,
        "0x80040237",
        "A record with matching key values already exists.",
    )


def test_optimistic_concurrency_with_etags(api, dataverse_error):
    record_id = create_customer(api, 1033)
    etag = api.get(f"crc33_customers({record_id})").json()["@odata.etag"]
    ok = api.patch(
        f"crc33_customers({record_id})", json={"crc33_city": "A"}, headers={"If-Match": etag}
    )
    assert ok.status_code == 204
    stale = api.patch(
        f"crc33_customers({record_id})", json={"crc33_city": "B"}, headers={"If-Match": etag}
    )
    assert dataverse_error(stale) == (
        412,
        "0x80060882",
        "The version of the existing record doesn't match the RowVersion property provided.",
    )
    new_etag = api.get(f"crc33_customers({record_id})").json()["@odata.etag"]
    assert int(new_etag[3:-1]) > int(etag[3:-1])
    stale_delete = api.delete(f"crc33_customers({record_id})", headers={"If-Match": etag})
    assert dataverse_error(stale_delete)[:2] == (412, "0x80060882")


def test_upsert_by_alternate_key_creates_then_updates(api, emulator):
    url = "crc33_customers(crc33_cid=1040)"
    created = api.patch(url, json={"crc33_name": "first"})
    assert created.status_code == 204
    assert created.headers["OData-EntityId"] == f"{emulator.api_url}{url}"
    updated = api.patch(url, json={"crc33_name": "second"})
    assert updated.status_code == 204
    representation = {"Prefer": "return=representation"}
    new = api.patch(
        "crc33_customers(crc33_cid=1041)?$select=crc33_cid", json={}, headers=representation
    )
    assert new.status_code == 201
    assert new.headers["Preference-Applied"] == "return=representation"
    existing = api.patch(
        f"{url}?$select=crc33_name", json={"crc33_name": "third"}, headers=representation
    )
    assert existing.status_code == 200
    assert existing.json()["crc33_name"] == "third"
    listed = api.get("crc33_customers?$filter=crc33_cid eq 1040&$select=crc33_name").json()["value"]
    assert [r["crc33_name"] for r in listed] == ["third"]


def test_upsert_body_key_value_wins_over_the_url_on_create(api):
    response = api.patch("crc33_customers(crc33_cid=1042)", json={"crc33_cid": 1043})
    assert response.status_code == 204
    assert api.get("crc33_customers(crc33_cid=1043)").status_code == 200
    assert api.get("crc33_customers(crc33_cid=1042)").status_code == 404


def test_upsert_by_primary_key_creates_with_that_id(api):
    record_id = "22222222-3333-4444-8555-666666666666"
    response = api.patch(
        f"crc33_customers({record_id})?$select=crc33_cid",
        json={"crc33_cid": 1044},
        headers={"Prefer": "return=representation"},
    )
    assert response.status_code == 201
    assert response.json()["crc33_customerid"] == record_id


def test_delete_then_delete_again(api, dataverse_error):
    record_id = create_customer(api, 1050)
    response = api.delete(f"crc33_customers({record_id})")
    assert response.status_code == 204
    assert response.content == b""
    assert dataverse_error(api.delete(f"crc33_customers({record_id})"))[:2] == (404, "0x80040217")
    assert api.delete("crc33_customers(crc33_cid=1050)").status_code == 404


# ---- lookups and owner --------------------------------------------------------------------------


def seeded(emulator) -> dict[str, str]:
    return emulator.admin("GET", "health")["principals"]


def test_assign_owner_to_team_and_user(api, emulator):
    principals = seeded(emulator)
    record_id = create_customer(api, 1060)
    team = principals["team:sales"]
    assert (
        api.patch(
            f"crc33_customers({record_id})", json={"ownerid@odata.bind": f"/teams({team})"}
        ).status_code
        == 204
    )
    body = api.get(
        f"crc33_customers({record_id})", headers={"Prefer": 'odata.include-annotations="*"'}
    ).json()
    assert body["_ownerid_value"] == team
    assert body["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "team"
    assert body["_owningteam_value"] == team
    assert body["_owninguser_value"] is None
    user = principals["user:sam.sales"]
    assert (
        api.patch(
            f"crc33_customers({record_id})",
            json={"ownerid@odata.bind": f"{emulator.api_url}systemusers({user})"},
        ).status_code
        == 204
    )
    body = api.get(f"crc33_customers({record_id})?$select=ownerid,owninguser").json()
    assert (body["_ownerid_value"], body["_owninguser_value"]) == (user, user)


def test_invalid_owners(api, emulator, dataverse_error):
    principals = seeded(emulator)
    record_id = create_customer(api, 1061)
    account = api.post("accounts", json={"name": "Owner test"}).headers["OData-EntityId"]
    account_id = account[-37:-1]
    not_a_principal = api.patch(
        f"crc33_customers({record_id})", json={"ownerid@odata.bind": f"/accounts({account_id})"}
    )
    assert dataverse_error(not_a_principal) == (
        400,
        "0x80040229",
        "The owner ID is invalid or missing.",
    )
    access_team = api.patch(
        f"crc33_customers({record_id})",
        json={"ownerid@odata.bind": f"/teams({principals['team:campaign']})"},
    )
    assert dataverse_error(access_team)[:2] == (400, "0x80040229")
    missing = "00000000-0000-4000-8000-000000000003"
    no_user = api.patch(
        f"crc33_customers({record_id})", json={"ownerid@odata.bind": f"/systemusers({missing})"}
    )
    assert dataverse_error(no_user) == (
        404,
        "0x80040217",
        f"systemuser With Id = {missing} Does Not Exist",
    )


def test_lookup_binds_by_primary_and_alternate_key(api, dataverse_error):
    contact = api.post("contacts", json={"firstname": "Ann", "lastname": "Lee"})
    contact_id = contact.headers["OData-EntityId"][-37:-1]
    assert api.post("accounts", json={"name": "Parent", "accountnumber": "P-1"}).status_code == 204
    child = api.post(
        "accounts?$select=_primarycontactid_value,_parentaccountid_value",
        json={
            "name": "Child",
            "primarycontactid@odata.bind": f"/contacts({contact_id})",
            "parentaccountid@odata.bind": "/accounts(accountnumber='P-1')",
        },
        headers={"Prefer": "return=representation"},
    )
    assert child.status_code == 201, child.text
    parent_id = api.get("accounts(accountnumber='P-1')").json()["accountid"]
    assert child.json()["_primarycontactid_value"] == contact_id
    assert child.json()["_parentaccountid_value"] == parent_id
    full = api.get(f"contacts({contact_id})?$select=fullname").json()
    assert full["fullname"] == "Ann Lee"
    bad_url = api.post("accounts", json={"name": "x", "primarycontactid@odata.bind": "contacts"})
    assert dataverse_error(bad_url) == (
        400,
        "0x80090800",
        "Invalid url value 'contacts' for lookup property 'primarycontactid'.",
    )
    wrong_target = api.post(
        "accounts", json={"name": "x", "primarycontactid@odata.bind": f"/accounts({parent_id})"}
    )
    assert dataverse_error(wrong_target)[:2] == (400, "0x80090800")
    missing_key = api.post(
        "accounts",
        json={"name": "x", "parentaccountid@odata.bind": "/accounts(accountnumber='none')"},
    )
    assert dataverse_error(missing_key)[:2] == (404, "0x80060891")


def test_polymorphic_lookup_needs_the_disambiguated_name(api, dataverse_error):
    account_id = api.post("accounts", json={"name": "Customer parent"}).headers["OData-EntityId"][
        -37:-1
    ]
    ok = api.post(
        "contacts?$select=_parentcustomerid_value",
        json={"lastname": "Kid", "parentcustomerid_account@odata.bind": f"/accounts({account_id})"},
        headers={"Prefer": "return=representation"},
    )
    assert ok.status_code == 201
    assert ok.json()["_parentcustomerid_value"] == account_id
    ambiguous = api.post(
        "contacts",
        json={"lastname": "Kid", "parentcustomerid@odata.bind": f"/accounts({account_id})"},
    )
    assert dataverse_error(ambiguous)[:2] == (400, "0x80048d19")


# ---- authentication and request limits ----------------------------------------------------------


def test_missing_or_bad_token_is_401(emulator):
    with emulator.http_client() as http:
        missing = http.get(f"{emulator.api_url}WhoAmI")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"].startswith(
            f"Bearer authorization_uri={emulator.base_url}/{emulator.tenant_id}/oauth2/authorize"
        )
        bad = http.get(f"{emulator.api_url}WhoAmI", headers={"Authorization": "Bearer abc.def.ghi"})
        assert bad.status_code == 401
        assert 'error="invalid_token"' in bad.headers["WWW-Authenticate"]


def test_url_longer_than_32768_characters_is_414(api, dataverse_error):
    values = ",".join(f"'{i:08d}'" for i in range(3700))
    response = api.get(
        f"crc33_customers?$filter=Microsoft.Dynamics.CRM.In(PropertyName='crc33_name',"
        f"PropertyValues=[{values}])"
    )
    assert dataverse_error(response)[:2] == (414, "0x8004418a")


def test_body_larger_than_the_limit_is_413(api, emulator, dataverse_error):
    emulator.admin("PATCH", "config", {"max_body_bytes": 200})
    try:
        response = api.post("crc33_customers", json={"crc33_cid": 1070, "crc33_name": "x" * 300})
        assert dataverse_error(response) == (
            413,
            "0x8004418a",
            "Request message length is too large.",
        )
    finally:
        emulator.admin("PATCH", "config", {"max_body_bytes": 134217728})
