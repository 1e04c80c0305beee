"""Every mode and key strategy against the local Dataverse (real HTTPS, no HTTP mocks)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from dynamics_emulator import (
    Reader,
    connection,
    customer_row,
    customer_rows,
    customer_spec,
    expected_record,
    options,
    written,
)

from customer360.dynamics import InMemorySink, PublishOptions, load_spec, publish
from customer360.emulator.launcher import run_emulator

SELECT = ["crc33_customerid", *expected_record(customer_row(0))]


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with run_emulator(
        tmp_path_factory.mktemp("dv-modes"), config={"limits": {"enabled": False}}
    ) as handle:
        yield handle


@pytest.fixture
def fresh(emu):
    emu.admin("POST", "reset")
    reader = Reader(emu)
    yield emu, reader
    reader.close()


def table_by_cid(reader: Reader, select=SELECT) -> dict[int, dict]:
    rows = reader.table("crc33_customers", select)
    by_cid = {r["crc33_cid"]: r for r in rows}
    assert len(by_cid) == len(rows), "duplicate business keys in the target"
    return by_cid


def assert_target_matches(reader: Reader, rows: list[dict]) -> None:
    target = table_by_cid(reader)
    assert sorted(target) == sorted(r["cid"] for r in rows)
    for row in rows:
        record = {k: v for k, v in target[row["cid"]].items() if k != "crc33_customerid"}
        assert record == expected_record(row)


def test_upsert_by_business_key_and_second_identical_run_sends_nothing(fresh) -> None:
    emu, reader = fresh
    rows = list(customer_rows(2300))
    sink = InMemorySink()
    progress = []
    metrics = publish(
        rows,
        customer_spec(),
        connection(emu, 2),
        sink=sink,
        options=options(chunk_rows=1000, bulk_batch_size=500),
        progress=progress.append,
    )
    assert (metrics.published, metrics.unchanged, metrics.failed, metrics.deferred) == (
        2300,
        0,
        0,
        0,
    )
    assert dict(metrics.by_operation) == {"create": 2300}
    assert metrics.requests == 5  # 2 + 2 + 1 CreateMultiple of ≤500 (chunks of 1000 + 300)
    assert sorted(sink.published_keys) == sorted(f"crc33_cid={i}" for i in range(2300))
    assert {b.primitive for b in sink.batches} == {"CreateMultiple"}
    assert {b.principal for b in sink.batches} <= {emu.principals[0][0], emu.principals[1][0]}
    assert progress[-1].finished and progress[-1].published == 2300
    assert_target_matches(reader, rows)
    # deterministic ids: uuid5(namespace, "<table>|<key>")
    spec = customer_spec()
    target = table_by_cid(reader)
    assert target[7]["crc33_customerid"] == str(
        uuid.uuid5(spec.id_namespace, "crc33_customer|crc33_cid=7")
    )

    before = written(emu)
    again = publish(rows, spec, connection(emu, 2), sink=InMemorySink(), options=options())
    assert (again.published, again.unchanged, again.requests) == (0, 2300, 0)
    assert written(emu) == before  # the emulator saw no write at all

    changed = [customer_row(i, version=5) if i % 100 == 0 else customer_row(i) for i in range(2300)]
    third_sink = InMemorySink()
    third = publish(changed, spec, connection(emu), sink=third_sink, options=options())
    assert (third.published, third.unchanged) == (23, 2277)
    assert dict(third.by_operation) == {"update": 23}
    assert written(emu) == before + 23
    assert_target_matches(reader, changed)


def test_change_detection_off_upserts_every_row(fresh) -> None:
    emu, reader = fresh
    rows = list(customer_rows(300))
    spec = customer_spec(change_detection=False)
    first = publish(rows, spec, connection(emu), options=options())
    second = publish(rows, spec, connection(emu), options=options())
    assert (first.published, second.published, second.unchanged) == (300, 300, 0)
    assert dict(second.by_operation) == {"upsert": 300}
    # metadata only (EntityDefinitions + 3 sdkmessagefilters), no target reads
    assert first.read_requests == second.read_requests == 4
    assert_target_matches(reader, rows)


def test_insert_by_primary_id(fresh) -> None:
    emu, reader = fresh
    ids = {i: str(uuid.uuid4()) for i in range(50)}
    rows = [{**customer_row(i), "id": ids[i]} for i in range(50)]
    spec = customer_spec(
        mode="insert",
        key={"strategy": "primary_id", "columns": {"crc33_customerid": "id"}},
        columns={"crc33_cid": "cid", "crc33_name": "Name", "crc33_email": "Email"},
    )
    first = publish(rows, spec, connection(emu), options=options())
    assert first.published == 50
    target = table_by_cid(reader)
    assert {r["crc33_cid"]: r["crc33_customerid"] for r in target.values()} == ids
    changed = [dict(r, Email="new@x.com") if r["cid"] < 5 else r for r in rows]
    sink = InMemorySink()
    second = publish(changed, spec, connection(emu), sink=sink, options=options())
    assert (second.published, second.unchanged, second.failed) == (0, 45, 5)
    assert {f.error_code for f in sink.failed_rows} == {"RecordAlreadyExists"}
    assert sorted(f.key for f in sink.failed_rows) == sorted(ids[i] for i in range(5))


def test_update_only_listed_columns_of_existing_records(fresh) -> None:
    emu, reader = fresh
    publish(list(customer_rows(40)), customer_spec(), connection(emu), options=options())
    updates = [{"cid": i, "Email": f"updated{i}@x.com"} for i in range(35, 45)]
    spec = customer_spec(mode="update", columns={"crc33_email": "Email"})
    sink = InMemorySink()
    metrics = publish(updates, spec, connection(emu), sink=sink, options=options())
    assert (metrics.published, metrics.failed) == (5, 5)
    assert dict(metrics.by_operation) == {"update": 5}
    assert sorted(f.key for f in sink.failed_rows) == [f"crc33_cid={i}" for i in range(40, 45)]
    assert {(f.error_code, f.batch_id, f.attempts) for f in sink.failed_rows} == {
        ("RecordNotFound", None, 0)
    }
    target = table_by_cid(reader)
    assert target[36]["crc33_email"] == "updated36@x.com"
    assert target[36]["crc33_name"] == customer_row(36)["Name"]  # not listed: untouched
    assert target[34]["crc33_email"] == customer_row(34)["Email"]


def test_append_creates_and_falls_back_to_micro_batches(fresh) -> None:
    emu, reader = fresh
    rows = list(customer_rows(450))
    opts = options(batch_batch_size=200)
    first = publish(rows, customer_spec(mode="append"), connection(emu), options=opts)
    assert (first.published, first.read_requests) == (450, 4)  # no target reads
    assert_target_matches(reader, rows)
    extra = list(customer_rows(5, start=450))
    sink = InMemorySink()
    again = publish(
        rows[:250] + extra, customer_spec(mode="append"), connection(emu), sink=sink, options=opts
    )
    # the bulk request fails as a whole (existing ids) → micro-batches of 200 isolate each row
    assert (again.published, again.failed) == (5, 250)
    assert {f.error_code for f in sink.failed_rows} == {"0x80040237"}
    assert {f.http_status for f in sink.failed_rows} == {412}
    assert [b.primitive for b in sink.batches].count("$batch") == 2
    assert_target_matches(reader, rows + extra)


def test_soft_and_hard_delete(fresh) -> None:
    emu, reader = fresh
    publish(list(customer_rows(30)), customer_spec(), connection(emu), options=options())
    keys = [{"cid": i} for i in range(10)]
    soft = customer_spec(mode="delete", columns={})
    first = publish(keys, soft, connection(emu), options=options())
    assert first.published == 10
    states = table_by_cid(reader, ["crc33_cid", "statecode", "statuscode"])
    assert {i: (states[i]["statecode"], states[i]["statuscode"]) for i in range(12)} == {
        **{i: (1, 2) for i in range(10)},
        10: (0, 1),
        11: (0, 1),
    }
    assert publish(keys, soft, connection(emu), options=options()).unchanged == 10

    hard = customer_spec(mode="delete", columns={}, delete={"hard": True})
    sink = InMemorySink()
    gone = publish(
        [{"cid": i} for i in range(5, 15)], hard, connection(emu), sink=sink, options=options()
    )
    assert (gone.published, gone.by_operation["delete"]) == (10, 10)
    assert {b.primitive for b in sink.batches} == {"$batch"}  # no DeleteMultiple on standard tables
    assert sorted(table_by_cid(reader, ["crc33_cid"])) == [*range(5), *range(15, 30)]
    assert publish([{"cid": 5}], hard, connection(emu), options=options()).unchanged == 1


def test_state_and_owner_by_key(fresh) -> None:
    emu, reader = fresh
    owners = ["sam.sales@contoso.com", "riley.retention@contoso.com", "nobody@contoso.com"]
    rows = [
        {**customer_row(i), "Status": ["Active", "Inactive"][i % 2], "Owner": owners[i % 3]}
        for i in range(30)
    ]
    spec = customer_spec(
        state={"statecode": {"source": "Status"}},
        owner={"source": "Owner", "by": "key", "key_attribute": "internalemailaddress"},
    )
    sink = InMemorySink()
    metrics = publish(rows, spec, connection(emu), sink=sink, options=options())
    assert (metrics.published, metrics.failed) == (20, 10)
    assert {(f.error_code, f.message) for f in sink.failed_rows} == {
        ("0x80040229", "ownerid: no systemuser matches nobody@contoso.com")
    }
    users = {
        u["internalemailaddress"]: u["systemuserid"]
        for u in reader.table("systemusers", ["systemuserid", "internalemailaddress"])
        if u.get("internalemailaddress")
    }
    target = table_by_cid(reader, ["crc33_cid", "statecode", "statuscode", "_ownerid_value"])
    for i in range(30):
        if i % 3 == 2:
            assert i not in target
            continue
        assert target[i]["_ownerid_value"] == users[owners[i % 3]]
        assert (target[i]["statecode"], target[i]["statuscode"]) == ((0, 1), (1, 2))[i % 2]
    assert publish(rows, spec, connection(emu), options=options()).unchanged == 20

    team_spec = customer_spec(
        owner={"source": "Team", "owner_type": "team", "by": "key", "key_attribute": "name"},
    )
    moved = [{**customer_row(i), "Team": "Sales"} for i in range(3)]
    assert publish(moved, team_spec, connection(emu), options=options()).published == 3
    teams = {t["name"]: t["teamid"] for t in reader.table("teams", ["teamid", "name"])}
    target = table_by_cid(reader, ["crc33_cid", "_ownerid_value"])
    assert {target[i]["_ownerid_value"] for i in range(3)} == {teams["Sales"]}


def test_table_without_bulk_messages_uses_batch_and_reports_bad_rows(fresh) -> None:
    emu, reader = fresh
    ids = [str(uuid.uuid4()) for _ in range(25)]
    rows = [
        {
            "id": ids[i],
            "first": f"F{i}",
            "last": ("L" * 60) if i == 3 else f"Last{i}",
            "gender": ["Male", "Female"][i % 2],
        }
        for i in range(25)
    ]
    spec = load_spec(
        {
            "table": "contact",
            "entity_set": "contacts",
            "mode": "upsert",
            "key": {"strategy": "primary_id", "columns": {"contactid": "id"}},
            "columns": {
                "firstname": "first",
                "lastname": "last",
                "gendercode": {"source": "gender", "option_labels": True},
            },
        }
    )
    # contact has the bulk messages on current Dataverse: turn them off to test the fallback
    emu.admin("PATCH", "config", {"bulk_messages": {"contact": False}})
    sink = InMemorySink()
    try:
        metrics = publish(rows, spec, connection(emu), sink=sink, options=PublishOptions())
    finally:
        emu.admin("PATCH", "config", {"bulk_messages": {"contact": None}})
    assert (metrics.published, metrics.failed) == (24, 1)
    (bad,) = sink.failed_rows
    assert (bad.key, bad.error_code, bad.batch_id, bad.record["last"]) == (
        ids[3],
        "0x80044331",
        None,
        "L" * 60,
    )
    assert "length 60 exceeds the maximum of 50" in bad.message
    assert {b.primitive for b in sink.batches} == {"$batch"}
    contacts = {c["contactid"]: c for c in reader.table("contacts", ["contactid", "gendercode"])}
    assert {contacts[ids[i]]["gendercode"] for i in (0, 1)} == {1, 2}


def test_bisection_isolates_a_record_only_the_server_rejects(fresh) -> None:
    emu, reader = fresh
    emu.admin("PATCH", "config", {"enforce_application_required": True})
    try:
        rows = list(customer_rows(1000))
        rows[613] = {**rows[613], "Name": None}  # crc33_name is ApplicationRequired
        sink = InMemorySink()
        metrics = publish(
            rows,
            customer_spec(),
            connection(emu),
            sink=sink,
            options=options(enforce_application_required=False),  # let the server find it
        )
    finally:
        emu.admin("PATCH", "config", {"enforce_application_required": False})
    assert (metrics.published, metrics.failed) == (999, 1)
    (bad,) = sink.failed_rows
    assert (bad.key, bad.error_code, bad.http_status, bad.attempts) == (
        "crc33_cid=613",
        "0x80040200",
        400,
        11,
    )
    # 1000 → 500 → … → 1: ten splits, each sending two halves
    assert (metrics.bisections, metrics.requests) == (10, 21)
    assert sorted(table_by_cid(reader, ["crc33_cid"])) == [i for i in range(1000) if i != 613]


NASTY_KEYS = [
    "O'Brien",
    "''double''",
    "a/b\\c",
    "50% off",
    "a&b=c,d",
    "?query#frag",
    "+plus;semi:colon",
    "(paren)",
    "[br]{ace}",
    'dq"uote',
    "émoji 🙂",
    "tab\there",
    "日本語",
    "@p1",
    "$filter",
]


def test_string_keys_with_url_syntax_survive_writes_reads_and_lookups(fresh) -> None:
    emu, reader = fresh
    rows = [{"number": key, "name": f"Account {i}"} for i, key in enumerate(NASTY_KEYS)]
    spec = load_spec(
        {
            "table": "account",
            "entity_set": "accounts",
            "mode": "upsert",
            "key": {"columns": {"accountnumber": "number"}},
            "columns": {"name": "name"},
        }
    )
    first = publish(rows, spec, connection(emu), options=options())
    assert (first.published, first.failed) == (len(NASTY_KEYS), 0)
    accounts = {
        a["accountnumber"]: a
        for a in reader.table("accounts", ["accountid", "accountnumber", "name"])
    }
    assert sorted(accounts) == sorted(NASTY_KEYS)
    assert all(accounts[r["number"]]["name"] == r["name"] for r in rows)
    # the second run finds every key again through the `In` filter: nothing to send
    again = publish(rows, spec, connection(emu), options=options())
    assert (again.unchanged, again.requests) == (len(NASTY_KEYS), 0)
    # blind upserts address each record by its key in the URL ($batch PATCH accounts(key))
    blind = load_spec({**_spec_dict(spec), "change_detection": False})
    renamed = [{**r, "name": r["name"] + "!"} for r in rows]
    assert publish(renamed, blind, connection(emu), options=options()).published == len(rows)
    accounts = {
        a["accountnumber"]: a
        for a in reader.table("accounts", ["accountid", "accountnumber", "name"])
    }
    assert len(accounts) == len(NASTY_KEYS)
    assert all(accounts[r["number"]]["name"] == r["name"] for r in renamed)

    # a lookup by the same awkward keys: contact.parentcustomerid → account by accountnumber
    contacts = [
        {"id": str(uuid.uuid4()), "last": f"L{i}", "account": key}
        for i, key in enumerate(NASTY_KEYS)
    ]
    contact_spec = load_spec(
        {
            "table": "contact",
            "entity_set": "contacts",
            "mode": "upsert",
            "key": {"strategy": "primary_id", "columns": {"contactid": "id"}},
            "columns": {
                "lastname": "last",
                "parentcustomerid": {
                    "source": "account",
                    "lookup": {
                        "table": "account",
                        "navigation": "parentcustomerid_account",
                        "by": "key",
                        "key_attribute": "accountnumber",
                    },
                },
            },
        }
    )
    linked = publish(contacts, contact_spec, connection(emu), options=options())
    assert (linked.published, linked.failed) == (len(contacts), 0)
    parents = {
        c["contactid"]: c["_parentcustomerid_value"]
        for c in reader.table("contacts", ["contactid", "_parentcustomerid_value"])
    }
    for contact in contacts:
        assert parents[contact["id"]] == accounts[contact["account"]]["accountid"]
    assert publish(contacts, contact_spec, connection(emu), options=options()).unchanged == len(
        contacts
    )


def _spec_dict(spec) -> dict:
    return {
        "table": spec.table,
        "entity_set": spec.entity_set,
        "mode": spec.mode.value,
        "key": {"columns": dict(spec.key.columns)},
        "columns": {c.target: c.source for c in spec.columns},
    }


def test_keys_compare_as_dataverse_compares_them(fresh) -> None:
    """Issue 14: alternate keys ignore case in Dataverse. `CaseKey`/`casekey` in one source
    merged silently; `y` overwrote an existing `Y` on every run; ` Padded ` and `Padded` were
    reported as DuplicateSourceKey."""
    emu, reader = fresh
    spec = load_spec(
        {
            "table": "account",
            "entity_set": "accounts",
            "mode": "upsert",
            "key": {"columns": {"accountnumber": "number"}},
            "columns": {"name": "name"},
        }
    )
    rows = [
        {"number": "CaseKey", "name": "first"},
        {"number": "casekey", "name": "second"},
        {"number": " Padded ", "name": "trimmed"},
        {"number": "Padded", "name": "again"},
        {"number": "Y", "name": "upper"},
    ]
    sink = InMemorySink()
    first = publish(rows, spec, connection(emu), sink=sink, options=options())
    assert (first.published, first.failed) == (3, 2)
    reasons = {f.row_number: f.error_code for f in sink.failed_rows}
    assert reasons == {1: "KeyCaseCollision", 3: "KeyBlankCollision"}
    assert "letter case" in sink.failed_rows[0].message

    def accounts() -> dict[str, str]:
        return {
            a["accountnumber"]: a["name"]
            for a in reader.table("accounts", ["accountnumber", "name"])
        }

    assert accounts() == {"CaseKey": "first", "Padded": "trimmed", "Y": "upper"}
    # a second publish of unchanged data sends nothing
    again = publish(rows, spec, connection(emu), options=options())
    assert (again.published, again.unchanged, again.failed, again.requests) == (0, 3, 2, 0)
    # `y` is the record `Y`: unchanged when equal, an update (never a second create) otherwise
    same = publish([{"number": "y", "name": "upper"}], spec, connection(emu), options=options())
    assert (same.unchanged, same.requests) == (1, 0)
    changed = publish([{"number": "y", "name": "lower"}], spec, connection(emu), options=options())
    assert (changed.published, changed.by_operation["update"]) == (1, 1)
    settled = publish([{"number": "y", "name": "lower"}], spec, connection(emu), options=options())
    assert (settled.unchanged, settled.requests) == (1, 0)
    assert accounts() == {"CaseKey": "first", "Padded": "trimmed", "Y": "lower"}


@pytest.mark.parametrize("change_detection", [False, True], ids=["blind", "reads-target"])
def test_rows_that_need_no_reads_stream_to_stage_3(fresh, change_detection) -> None:
    """A blind upsert sends its first request long before the source is read to the end (a
    chunk goes out a batch at a time); with change detection a chunk is read against the
    target first, so with one chunk for the whole source nothing is sent before its end."""
    emu, reader = fresh
    read_at: list[dt.datetime] = []

    def source():
        for row in customer_rows(6000):
            if row["cid"] == 5999:
                read_at.append(dt.datetime.now(dt.UTC))  # the last row is read now
            yield row

    sink = InMemorySink()
    spec = customer_spec(change_detection=change_detection)
    metrics = publish(
        source(),
        spec,
        connection(emu),
        sink=sink,
        options=options(chunk_rows=6000, bulk_batch_size=500),
    )
    assert metrics.published == 6000 and metrics.failed == 0
    first_sent = min(b.started_at for b in sink.batches)
    assert (first_sent < read_at[0]) is (not change_detection)
    assert sorted(b.rows for b in sink.batches) == [500] * 12
    assert_target_matches(reader, list(customer_rows(6000)))
