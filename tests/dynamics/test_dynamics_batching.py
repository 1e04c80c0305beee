"""$batch encoding/decoding, source chunking and the duplicate-key registry."""

from __future__ import annotations

import pyarrow as pa
import pytest

from customer360.dynamics.batch_codec import BatchPart, decode_batch, encode_batch
from customer360.dynamics.source import KeyClaim, KeyForms, KeyRegistry, SourceError, iter_chunks


def test_encode_batch_parts() -> None:
    content_type, body = encode_batch(
        [
            BatchPart("POST", "accounts", {"name": "Ä & co"}),
            BatchPart("PATCH", "accounts(accountnumber='A''1')", {"name": "x"}, {"If-Match": "*"}),
            BatchPart("DELETE", "accounts(00000000-0000-0000-0000-000000000001)"),
        ],
        "/api/data/v9.2/",
    )
    boundary = content_type.split('boundary="')[1].rstrip('"')
    text = body.decode()
    assert text.count(f"--{boundary}\r\n") == 3
    assert text.endswith(f"--{boundary}--\r\n")
    assert "POST /api/data/v9.2/accounts HTTP/1.1\r\n" in text
    assert "PATCH /api/data/v9.2/accounts(accountnumber='A''1') HTTP/1.1\r\nIf-Match: *\r\n" in text
    assert '{"name":"Ä & co"}' in text
    assert "Content-ID: 3" in text
    with pytest.raises(ValueError, match="at most 1000 requests, got 1001"):
        encode_batch([BatchPart("GET", "x")] * 1001, "/")


RESPONSE = (
    "--batchresponse_1\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n\r\n"
    "HTTP/1.1 204 No Content\r\n"
    "OData-EntityId: https://x/api/data/v9.2/accounts(1)\r\n\r\n\r\n"
    "--batchresponse_1\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n\r\n"
    "HTTP/1.1 400 Bad Request\r\n"
    "Content-Type: application/json; odata.metadata=minimal\r\n\r\n"
    '{"error":{"code":"0x80044331","message":"too long"}}\r\n'
    "--batchresponse_1\r\n"
    "Content-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n"
    "--changesetresponse_2\r\n"
    "Content-Type: application/http\r\n\r\n"
    "HTTP/1.1 503 Service Unavailable\r\n\r\n"
    "--changesetresponse_2--\r\n"
    "--batchresponse_1--\r\n"
)


def test_decode_batch_in_order_with_nested_change_sets() -> None:
    parts = decode_batch("multipart/mixed; boundary=batchresponse_1", RESPONSE.encode())
    assert [p.status for p in parts] == [204, 400, 503]
    assert parts[0].ok and not parts[1].ok
    assert (parts[1].error_code, parts[1].error_message) == ("0x80044331", "too long")
    assert parts[0].headers["odata-entityid"].endswith("accounts(1)")
    lf_only = RESPONSE.replace("\r\n", "\n")
    assert [
        p.status for p in decode_batch('multipart/mixed; boundary="batchresponse_1"', lf_only)
    ] == [
        204,
        400,
        503,
    ]


def test_chunks_from_record_batches_and_dicts() -> None:
    batch = pa.record_batch({"cid": list(range(7)), "x": list("abcdefg"), "unused": [0] * 7})
    chunks = list(iter_chunks([batch, batch], 5, ["cid", "x"]))
    assert [len(c) for c in chunks] == [5, 5, 4]
    assert chunks[0][0] == {"cid": 0, "x": "a"}
    assert [len(c) for c in iter_chunks(pa.Table.from_batches([batch]), 3, None)] == [3, 3, 1]
    rows = ({"cid": i, "x": "y"} for i in range(4))
    assert [len(c) for c in iter_chunks(rows, 3, ["cid"])] == [3, 1]
    with pytest.raises(SourceError, match=r"lack column\(s\) \['Name'\]"):
        list(iter_chunks([batch], 5, ["cid", "Name"]))
    with pytest.raises(SourceError, match=r"lack column\(s\) \['Name'\]"):
        list(iter_chunks([{"cid": 1}], 5, ["cid", "Name"]))
    with pytest.raises(SourceError, match="got int"):
        list(iter_chunks([1], 5, None))


def test_chunks_start_small_and_double_up_to_the_chunk_size() -> None:
    """The first chunk is one bulk batch, so stage 3 starts before a whole chunk is ready."""
    rows = ({"cid": i} for i in range(40))
    chunks = list(iter_chunks(rows, 10, ["cid"], first_rows=2))
    assert [len(c) for c in chunks] == [2, 4, 8, 10, 10, 6]
    assert [r["cid"] for c in chunks for r in c] == list(range(40))
    batch = pa.record_batch({"cid": list(range(25))})
    chunks = list(iter_chunks([batch, batch], 16, None, first_rows=3))
    assert [len(c) for c in chunks] == [3, 6, 12, 16, 13]
    assert [r["cid"] for c in chunks for r in c] == list(range(25)) * 2
    assert [len(c) for c in iter_chunks([batch], 10, None, first_rows=50)] == [10, 10, 5]


def _forms(text: str, raw: str | None = None) -> KeyForms:
    return KeyForms(match=text.casefold(), trimmed=text, raw=raw if raw is not None else text)


def _new(claims: list[KeyClaim]) -> list[bool]:
    return [c is KeyClaim.NEW for c in claims]


def test_key_registry_first_occurrence_wins_across_chunks() -> None:
    registry = KeyRegistry()
    assert _new(registry.claim([_forms("a"), _forms("b"), _forms("a")])) == [True, True, False]
    claims = registry.claim([_forms(k) for k in ("c", "b", "d", "d")])
    assert _new(claims) == [True, False, True, False]
    assert len(registry) == 4
    assert registry.claim([]) == []
    many = [_forms(f"k{i}") for i in range(100_000)]
    assert all(_new(registry.claim(many)))
    assert not any(_new(registry.claim(many[::1000])))
    assert len(registry) == 100_004


def test_key_registry_says_why_a_key_was_seen_before() -> None:
    registry = KeyRegistry()
    claims = registry.claim(
        [
            _forms("CaseKey"),
            _forms("casekey"),  # one Dataverse record: alternate keys ignore case
            _forms("CaseKey"),  # the same key again
            _forms("Blank", raw=" Blank "),
            _forms("Blank", raw="Blank"),  # equal only once trimmed
            _forms("BLANK", raw="BLANK "),  # trimmed and folded
        ]
    )
    assert claims == [
        KeyClaim.NEW,
        KeyClaim.CASE,
        KeyClaim.DUPLICATE,
        KeyClaim.NEW,
        KeyClaim.BLANKS,
        KeyClaim.CASE,
    ]
    # across chunks too
    assert registry.claim([_forms("CASEKEY"), _forms("Blank", raw="Blank  ")]) == [
        KeyClaim.CASE,
        KeyClaim.BLANKS,
    ]


def test_request_bodies_per_operation_kind() -> None:
    from customer360.dynamics.bodies import TableRef, batch_part, bulk_item
    from customer360.dynamics.operations import Operation, OpKind

    target = TableRef("crc33_customer", "crc33_customers", "crc33_customerid", "upsert", {})
    rid = "6f1c2a8e-3d4b-5c6d-8e9f-0a1b2c3d4e5f"
    create = Operation(
        OpKind.CREATE,
        "crc33_cid=1",
        0,
        {"crc33_customerid": rid, "crc33_cid": 1, "crc33_name": "A"},
        {},
        rid,
        {"crc33_cid": 1},
    )
    assert bulk_item(target, OpKind.CREATE, create) == {
        "@odata.type": "Microsoft.Dynamics.CRM.crc33_customer",
        "crc33_customerid": rid,
        "crc33_cid": 1,
        "crc33_name": "A",
    }
    # a retried create: upsert by its id, without the id in the body
    create.upsert_by_id = True
    assert bulk_item(target, OpKind.UPSERT, create) == {
        "@odata.type": "Microsoft.Dynamics.CRM.crc33_customer",
        "@odata.id": f"crc33_customers({rid})",
        "crc33_cid": 1,
        "crc33_name": "A",
    }
    upsert = Operation(OpKind.UPSERT, "x", 0, {"crc33_name": "B"}, {}, None, {"crc33_cid": 2})
    assert bulk_item(target, OpKind.UPSERT, upsert)["@odata.id"] == "crc33_customers(crc33_cid=2)"
    part = batch_part(target, OpKind.UPSERT, upsert)
    assert (part.method, part.url, part.body) == (
        "PATCH",
        "crc33_customers(crc33_cid=2)",
        {"crc33_name": "B"},
    )
    update = Operation(OpKind.UPDATE, "x", 0, {"crc33_name": "C"}, {}, rid, {"crc33_cid": 3})
    assert bulk_item(target, OpKind.UPDATE, update)["crc33_customerid"] == rid
    part = batch_part(target, OpKind.UPDATE, update)
    assert (part.method, part.url, dict(part.headers)) == (
        "PATCH",
        f"crc33_customers({rid})",
        {"If-Match": "*"},
    )
    delete = Operation(OpKind.DELETE, "x", 0, {}, {}, rid, {"crc33_cid": 4})
    part = batch_part(target, OpKind.DELETE, delete)
    assert (part.method, part.url, part.body) == ("DELETE", f"crc33_customers({rid})", None)


def test_deferred_op_round_trips_through_a_table_row() -> None:
    import datetime as dt

    from customer360.dynamics.outcomes import DeferredOp

    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    op = DeferredOp(
        "run",
        "crc33_customer",
        "crc33_customers",
        "upsert",
        "crc33_cid=1",
        "{}",
        3,
        now,
        now,
        "transient: HTTP 503",
        now,
    )
    row = {**op.to_record(), "publish_target": "customers"}  # extra columns are ignored
    assert DeferredOp.from_record(row) == op
    naive = {**row, "deadline": now.replace(tzinfo=None), "attempts": 3.0}
    assert DeferredOp.from_record(naive) == op  # a table that drops the zone: read as UTC
    text = {**row, "next_attempt_at": now.isoformat()}
    assert DeferredOp.from_record(text) == op
