"""`$batch`: request and response text, change sets, Content-ID, errors and the 1,000 cap (§2)."""

from __future__ import annotations

import json
import re

GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def http_part(method: str, url: str, body: dict | None = None, headers: dict | None = None) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary", ""]
    lines.append(f"{method} {url} HTTP/1.1")
    if body is not None:
        lines.append("Content-Type: application/json; type=entry")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    lines.append("")
    lines.append(json.dumps(body) if body is not None else "")
    return "\r\n".join(lines)


def change_set(boundary: str, parts: list[tuple[str, str]]) -> str:
    """parts: (content_id, http part text without its MIME headers' Content-ID)."""
    text = [f"Content-Type: multipart/mixed; boundary={boundary}", ""]
    for content_id, part in parts:
        head, _, rest = part.partition("\r\n\r\n")
        text.append(f"--{boundary}")
        text.append(f"{head}\r\nContent-ID: {content_id}\r\n\r\n{rest}")
    text.append(f"--{boundary}--")
    return "\r\n".join(text)


def envelope(boundary: str, parts: list[str]) -> str:
    return "".join(f"--{boundary}\r\n{part}\r\n" for part in parts) + f"--{boundary}--\r\n"


def send(api, body: str, boundary: str = "batch_AAA123", prefer: str | None = None, quoted=True):
    value = f'"{boundary}"' if quoted else boundary
    headers = {"Content-Type": f"multipart/mixed; boundary={value}", "If-None-Match": "null"}
    if prefer:
        headers["Prefer"] = prefer
    return api.post("$batch", content=body.encode(), headers=headers)


def response_parts(response) -> tuple[str, list[str]]:
    content_type = response.headers["Content-Type"]
    match = re.fullmatch(rf"multipart/mixed; boundary=(batchresponse_{GUID})", content_type)
    assert match, content_type
    boundary = match.group(1)
    text = response.text
    assert text.endswith(f"--{boundary}--\r\n")
    parts = text.split(f"--{boundary}")[1:-1]
    return boundary, [p.strip("\r\n") for p in parts]


def test_batch_with_create_and_get_has_the_documented_response_text(api, emulator):
    body = envelope(
        "batch_AAA123",
        [
            http_part("POST", "/api/data/v9.2/crc33_customers", {"crc33_cid": 3001}),
            http_part(
                "GET", f"{emulator.api_url}crc33_customers(crc33_cid=3001)?$select=crc33_cid"
            ),
        ],
    )
    response = send(api, body)
    assert response.status_code == 200
    _, parts = response_parts(response)
    assert len(parts) == 2
    assert re.fullmatch(
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "\r\n"
        "HTTP/1.1 204 No Content\r\n"
        "OData-Version: 4.0\r\n"
        rf"Location: {re.escape(emulator.api_url)}crc33_customers\(({GUID})\)\r\n"
        rf"OData-EntityId: {re.escape(emulator.api_url)}crc33_customers\(\1\)\r\n",
        parts[0] + "\r\n",
    ), parts[0]
    head, _, payload = parts[1].partition("\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert head == "Content-Type: application/http\r\nContent-Transfer-Encoding: binary"
    headers, _, json_text = payload.partition("\r\n\r\n")
    assert "Content-Type: application/json; odata.metadata=minimal" in headers.split("\r\n")
    assert json.loads(json_text)["crc33_cid"] == 3001


def test_change_set_with_content_id_references(api):
    boundary = "changeset_dd81ccab-11ce-4d57-b91d-12c4e25c3cab"
    body = envelope(
        "batch_AAA124",
        [
            change_set(
                boundary,
                [
                    ("1", http_part("POST", "/api/data/v9.2/contacts", {"lastname": "Ref"})),
                    (
                        "2",
                        http_part(
                            "POST",
                            "/api/data/v9.2/accounts",
                            {"name": "With contact", "primarycontactid@odata.bind": "$1"},
                        ),
                    ),
                    ("3", http_part("PATCH", "$1", {"firstname": "Changed"})),
                ],
            )
        ],
    )
    response = send(api, body, boundary="batch_AAA124")
    assert response.status_code == 200
    _, parts = response_parts(response)
    assert len(parts) == 1
    match = re.match(
        rf"Content-Type: multipart/mixed; boundary=(changesetresponse_{GUID})\r\n\r\n", parts[0]
    )
    assert match, parts[0]
    inner = parts[0][match.end() :]
    cs_boundary = match.group(1)
    assert inner.endswith(f"--{cs_boundary}--")
    inner_parts = [p.strip("\r\n") for p in inner.split(f"--{cs_boundary}")[1:-1]]
    assert [re.search(r"Content-ID: (\d+)", p).group(1) for p in inner_parts] == ["1", "2", "3"]
    assert all("HTTP/1.1 204 No Content" in p for p in inner_parts)
    contact_id = re.search(rf"contacts\(({GUID})\)", inner_parts[0]).group(1)
    account_id = re.search(rf"accounts\(({GUID})\)", inner_parts[1]).group(1)
    account = api.get(f"accounts({account_id})?$select=_primarycontactid_value").json()
    assert account["_primarycontactid_value"] == contact_id
    assert api.get(f"contacts({contact_id})?$select=fullname").json()["fullname"] == "Changed Ref"


def test_failure_in_a_change_set_rolls_it_back_and_stops_the_batch(api):
    body = envelope(
        "batch_B",
        [
            change_set(
                "changeset_1",
                [
                    ("1", http_part("POST", "/api/data/v9.2/crc33_customers", {"crc33_cid": 3010})),
                    (
                        "2",
                        http_part(
                            "POST",
                            "/api/data/v9.2/crc33_customers",
                            {"crc33_cid": 3011, "crc33_postcode": "x" * 21},
                        ),
                    ),
                ],
            ),
            http_part("POST", "/api/data/v9.2/crc33_customers", {"crc33_cid": 3012}),
        ],
    )
    response = send(api, body, boundary="batch_B")
    assert response.status_code == 400
    _, parts = response_parts(response)
    assert len(parts) == 1
    lines = parts[0].split("\r\n")
    assert lines[:5] == [
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "Content-ID: 2",
        "",
        "HTTP/1.1 400 Bad Request",
    ]
    assert re.fullmatch(rf"REQ_ID: {GUID}", lines[5])
    assert json.loads(lines[-1])["error"]["code"] == "0x80044331"
    for cid in (3010, 3011, 3012):
        assert api.get(f"crc33_customers(crc33_cid={cid})").status_code == 404


def test_without_continue_on_error_the_batch_stops_at_the_first_failure(api):
    body = envelope(
        "batch_C",
        [
            http_part("POST", "/api/data/v9.2/crc33_customers", {"crc33_cid": 3020}),
            http_part("POST", "/api/data/v9.2/crc33_customers", {"crc33_cid": "bad"}),
            http_part("POST", "/api/data/v9.2/crc33_customers", {"crc33_cid": 3022}),
        ],
    )
    response = send(api, body, boundary="batch_C")
    assert response.status_code == 400
    _, parts = response_parts(response)
    assert [re.search(r"HTTP/1.1 (\d+)", p).group(1) for p in parts] == ["204", "400"]
    assert api.get("crc33_customers(crc33_cid=3020)").status_code == 200
    assert api.get("crc33_customers(crc33_cid=3022)").status_code == 404


def test_continue_on_error_runs_every_part(api):
    body = envelope(
        "batch_D",
        [
            http_part("POST", "/api/data/v9.2/crc33_customers", {"crc33_cid": 3030}),
            http_part("POST", "/api/data/v9.2/crc33_customers", {"crc33_cid": "bad"}),
            http_part("POST", "/api/data/v9.2/crc33_customers", {"crc33_cid": 3032}),
        ],
    )
    response = send(api, body, boundary="batch_D", prefer="odata.continue-on-error")
    assert response.status_code == 200
    assert response.headers["Preference-Applied"] == "odata.continue-on-error"
    _, parts = response_parts(response)
    assert [re.search(r"HTTP/1.1 (\d+)", p).group(1) for p in parts] == ["204", "400", "204"]
    assert api.get("crc33_customers(crc33_cid=3032)").status_code == 200


def test_unknown_content_id_reference(api):
    body = envelope(
        "batch_E",
        [change_set("changeset_E", [("1", http_part("PATCH", "$9", {"lastname": "x"}))])],
    )
    response = send(api, body, boundary="batch_E")
    assert response.status_code == 400
    _, parts = response_parts(response)
    error = json.loads(parts[0].split("\r\n")[-1])["error"]
    assert error["message"] == "Content-ID Reference: '$9' does not exist in the batch context."


def test_get_inside_a_change_set_is_rejected(api):
    body = envelope(
        "batch_F",
        [change_set("changeset_F", [("1", http_part("GET", "/api/data/v9.2/WhoAmI"))])],
    )
    response = send(api, body, boundary="batch_F")
    assert response.status_code == 400
    _, parts = response_parts(response)
    assert json.loads(parts[0].split("\r\n")[-1])["error"]["message"] == (
        "GET requests are not allowed inside a change set."
    )


def test_lf_line_endings_unquoted_boundary_and_service_relative_urls(api):
    body = (
        "--batch_G\n"
        "Content-Type: application/http\n"
        "Content-Transfer-Encoding: binary\n"
        "\n"
        "POST crc33_customers HTTP/1.1\n"
        "Content-Type: application/json\n"
        "\n"
        '{"crc33_cid": 3040}\n'
        "--batch_G--\n"
    )
    response = send(api, body, boundary="batch_G", quoted=False)
    assert response.status_code == 200
    assert api.get("crc33_customers(crc33_cid=3040)").status_code == 200


def test_more_than_1000_requests_is_rejected_and_1000_is_accepted(api, dataverse_error):
    too_many = envelope("batch_H", [http_part("GET", "/api/data/v9.2/WhoAmI")] * 1001)
    assert dataverse_error(send(api, too_many, boundary="batch_H")) == (
        400,
        "0x80040203",
        "The batch contains 1001 requests, more than the maximum of 1000 requests per batch.",
    )
    parts = [
        http_part("POST", "/api/data/v9.2/crc33_customers", {"crc33_cid": 40000 + i})
        for i in range(1000)
    ]
    response = send(api, envelope("batch_I", parts), boundary="batch_I")
    assert response.status_code == 200
    assert len(response_parts(response)[1]) == 1000


def test_nested_batch_is_rejected(api):
    inner = envelope("batch_inner", [http_part("GET", "/api/data/v9.2/WhoAmI")])
    part = (
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        "POST /api/data/v9.2/$batch HTTP/1.1\r\n"
        "Content-Type: multipart/mixed; boundary=batch_inner\r\n\r\n" + inner
    )
    response = send(api, envelope("batch_J", [part]), boundary="batch_J")
    assert response.status_code == 400
    _, parts = response_parts(response)
    assert "Batches can't be nested." in parts[0]


def test_content_id_reference_to_a_create_with_return_representation(api):
    body = envelope(
        "batch_K",
        [
            change_set(
                "changeset_K",
                [
                    (
                        "1",
                        http_part(
                            "POST",
                            "/api/data/v9.2/contacts",
                            {"lastname": "Represented"},
                            {"Prefer": "return=representation"},
                        ),
                    ),
                    ("2", http_part("PATCH", "$1", {"firstname": "Then"})),
                ],
            )
        ],
    )
    response = send(api, body, boundary="batch_K")
    assert response.status_code == 200
    _, parts = response_parts(response)
    assert "HTTP/1.1 201 Created" in parts[0]
    contact_id = re.search(rf'"contactid":"({GUID})"', parts[0]).group(1)
    assert (
        api.get(f"contacts({contact_id})?$select=fullname").json()["fullname"] == "Then Represented"
    )
