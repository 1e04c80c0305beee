"""Row preparation and classification per mode: create/update/unchanged/invalid and the diff."""

from __future__ import annotations

import uuid

import pytest
from dynamics_fixtures import customer_meta, systemuser_meta

from customer360.dynamics.classify import Verdict, classify
from customer360.dynamics.operations import Operation, OpKind
from customer360.dynamics.plan import compile_plan
from customer360.dynamics.prepare import extract_key, prepare_row
from customer360.dynamics.spec import LookupBy, load_spec
from customer360.dynamics.values import RowProblem

OWNER = uuid.UUID("11111111-1111-1111-1111-111111111111")


def plan_for(**over):
    data = {
        "table": "crc33_customer",
        "entity_set": "crc33_customers",
        "mode": "upsert",
        "key": {"columns": {"crc33_cid": "cid"}},
        "columns": {
            "crc33_name": "Name",
            "crc33_firstname": {"source": "First", "length_policy": "truncate"},
            "crc33_totalspend": "Spend",
        },
        **over,
    }
    return compile_plan(load_spec(data), customer_meta(), {"systemuser": systemuser_meta()})


ROW = {"cid": "7", "Name": " Ann Lee ", "First": "Ann", "Spend": "12.5"}
TARGET = {
    "crc33_customerid": "aaaaaaaa-0000-0000-0000-000000000007",
    "crc33_cid": 7,
    "crc33_name": "Ann Lee",
    "crc33_firstname": "Ann",
    "crc33_totalspend": 12.50,
}


def run(plan, row=ROW, target=None, resolved=None):
    prepared = prepare_row(plan, 0, row)
    return classify(plan, prepared, target, resolved or {})


def test_key_text_is_the_odata_key_segment() -> None:
    plan = plan_for()
    assert extract_key(plan, ROW) == ({"crc33_cid": 7}, "crc33_cid=7")
    with pytest.raises(RowProblem, match="key column 'crc33_cid' is empty"):
        extract_key(plan, {**ROW, "cid": " "})


def test_new_row_is_created_with_a_deterministic_id_and_its_key() -> None:
    plan = plan_for()
    result = run(plan)
    assert result.verdict is Verdict.WRITE
    op = result.op
    expected_id = str(uuid.uuid5(plan.spec.id_namespace, "crc33_customer|crc33_cid=7"))
    assert (op.kind, op.record_id) == (OpKind.CREATE, expected_id)
    assert op.payload == {
        "crc33_customerid": expected_id,
        "crc33_cid": 7,
        "crc33_name": "Ann Lee",
        "crc33_firstname": "Ann",
        "crc33_totalspend": 12.5,
    }


def test_identical_row_is_unchanged_and_a_change_sends_only_that_column() -> None:
    plan = plan_for()
    assert run(plan, target=TARGET).verdict is Verdict.UNCHANGED
    result = run(plan, row={**ROW, "Spend": "13"}, target=TARGET)
    assert result.op.kind is OpKind.UPDATE
    assert result.op.payload == {"crc33_totalspend": 13}
    assert result.op.record_id == TARGET["crc33_customerid"]


def test_change_detection_off_sends_every_mapped_column() -> None:
    plan = plan_for(change_detection=False)
    assert not plan.reads_target
    op = run(plan, target=None).op
    assert op.kind is OpKind.UPSERT
    assert op.payload == {
        "crc33_name": "Ann Lee",
        "crc33_firstname": "Ann",
        "crc33_totalspend": 12.5,
    }
    assert op.key == {"crc33_cid": 7}


def test_null_policy_ignore_vs_clear() -> None:
    row = {**ROW, "First": None}
    assert run(plan_for(), row=row, target=TARGET).verdict is Verdict.UNCHANGED
    clear = plan_for(defaults={"null_policy": "clear"})
    assert run(clear, row=row, target=TARGET).op.payload == {"crc33_firstname": None}


def test_insert_mode_existing_record() -> None:
    plan = plan_for(mode="insert")
    assert run(plan, target=TARGET).verdict is Verdict.UNCHANGED
    result = run(plan, row={**ROW, "Spend": 1}, target=TARGET)
    assert result.verdict is Verdict.INVALID
    assert result.problem.code == "RecordAlreadyExists"
    assert "differs in ['crc33_totalspend']" in result.problem.message


def test_update_mode_needs_the_record() -> None:
    plan = plan_for(mode="update")
    result = run(plan, target=None)
    assert (result.verdict, result.problem.code) == (Verdict.INVALID, "RecordNotFound")


def test_deactivating_or_deleting_a_missing_record_is_nothing_to_do() -> None:
    # issue 14: the deleted customer was never in Dataverse -> not a failed RecordNotFound row
    for delete in ({"hard": False, "statecode": 1}, {"hard": True}):
        plan = plan_for(mode="delete", delete=delete)
        assert run(plan, target=None).verdict is Verdict.ABSENT


def test_append_creates_without_looking() -> None:
    plan = plan_for(mode="append")
    assert not plan.reads_target
    assert run(plan, target=TARGET).op.kind is OpKind.CREATE


def test_required_column_missing_on_create_only() -> None:
    plan = plan_for()
    row = {**ROW, "Name": "  "}
    result = run(plan, row=row)
    assert result.problem.code == "0x80040200"
    assert "['crc33_name']" in result.problem.message
    assert run(plan, row=row, target=TARGET).verdict is Verdict.UNCHANGED


def test_soft_and_hard_delete() -> None:
    soft = plan_for(mode="delete", columns={})
    active = {**TARGET, "statecode": 0, "statuscode": 1}
    op = run(soft, target=active).op
    assert (op.kind, op.payload) == (OpKind.UPDATE, {"statecode": 1, "statuscode": 2})
    assert (
        run(soft, target={**active, "statecode": 1, "statuscode": 2}).verdict is Verdict.UNCHANGED
    )
    hard = plan_for(mode="delete", columns={}, delete={"hard": True})
    assert run(hard, target=active).op.kind is OpKind.DELETE
    assert run(hard, target=None).verdict is Verdict.ABSENT  # nothing to do (counted unchanged)


def test_state_labels_and_pairs() -> None:
    plan = plan_for(state={"statecode": {"source": "S"}, "statuscode": {"source": "R"}})
    op = run(
        plan,
        row={**ROW, "S": "Inactive", "R": "Closed"},
        target={**TARGET, "statecode": 0, "statuscode": 1},
    ).op
    assert op.payload == {"statecode": 1, "statuscode": 3}
    with pytest.raises(RowProblem) as bad:
        prepare_row(plan, 0, {**ROW, "S": 0, "R": 3})
    assert (bad.value.code, bad.value.message) == (
        "0x80048408",
        "statuscode 3 is not valid for statecode 0",
    )
    default = plan_for(state={"statecode": 1})
    assert run(default).op.payload["statuscode"] == 2


def test_owner_binding_and_missing_owner() -> None:
    plan = plan_for(owner={"source": "Owner", "by": "key", "key_attribute": "internalemailaddress"})
    row = {**ROW, "Owner": "a@x.com"}
    resolved = {("systemuser", LookupBy.KEY, "a@x.com"): OWNER}
    op = run(plan, row=row, resolved=resolved).op
    assert op.payload["ownerid@odata.bind"] == f"/systemusers({OWNER})"
    same = {**TARGET, "_ownerid_value": str(OWNER).upper()}
    assert run(plan, row=row, target=same, resolved=resolved).verdict is Verdict.UNCHANGED
    missing = run(plan, row=row, resolved={("systemuser", LookupBy.KEY, "a@x.com"): None})
    assert (missing.problem.code, missing.problem.message) == (
        "0x80040229",
        "ownerid: no systemuser matches a@x.com",
    )


def test_operation_json_round_trip() -> None:
    op = run(plan_for()).op
    op.attempts = 3
    again = Operation.from_json(op.to_json())
    assert again == op
