"""Spec parsing: dict/YAML loading, Python construction, and errors that name the field."""

from __future__ import annotations

import textwrap

import pytest
from dynamics_fixtures import customer_meta, systemuser_meta

from customer360.dynamics.plan import compile_plan
from customer360.dynamics.spec import (
    ColumnSpec,
    KeySpec,
    KeyStrategy,
    LengthPolicy,
    LookupBy,
    Mode,
    NullPolicy,
    OwnerSpec,
    PublishSpec,
    Rules,
    SpecError,
    StateSpec,
    StateValue,
    load_spec,
    load_spec_yaml,
)

YAML = textwrap.dedent(
    """
    table: crc33_customer
    entity_set: crc33_customers
    mode: Upsert
    key: {strategy: business_key, columns: {crc33_cid: cid}}
    defaults: {trim: true, length_policy: error, null_policy: clear}
    columns:
      crc33_name: Name
      crc33_firstname: {source: FirstName, length_policy: truncate}
      crc33_gendercode: {source: Gender, option_labels: {M: 1, F: 2}}
    state: {statecode: {source: Status}}
    owner: {source: Owner, by: key, key_attribute: internalemailaddress}
    change_detection: false
    batch_size: 250
    """
)


def test_yaml_and_python_construction_are_equal() -> None:
    built = PublishSpec(
        table="crc33_customer",
        entity_set="crc33_customers",
        mode=Mode.UPSERT,
        key=KeySpec(KeyStrategy.BUSINESS_KEY, {"crc33_cid": "cid"}),
        columns=(
            ColumnSpec("crc33_name", "Name"),
            ColumnSpec("crc33_firstname", "FirstName", length_policy=LengthPolicy.TRUNCATE),
            ColumnSpec("crc33_gendercode", "Gender", option_labels={"M": 1, "F": 2}),
        ),
        defaults=Rules(trim=True, null_policy=NullPolicy.CLEAR),
        state=StateSpec(statecode=StateValue(source="Status")),
        owner=OwnerSpec("Owner", by=LookupBy.KEY, key_attribute="internalemailaddress"),
        change_detection=False,
        batch_size=250,
    )
    assert load_spec_yaml(YAML) == built
    assert built.source_columns == ["cid", "Name", "FirstName", "Gender", "Status", "Owner"]
    rules = built.rules_for(built.columns[1])
    assert rules == Rules(True, LengthPolicy.TRUNCATE, NullPolicy.CLEAR)


def test_yaml_file_errors_name_the_file(tmp_path) -> None:
    path = tmp_path / "customer.yaml"
    path.write_text(YAML.replace("mode: Upsert", "mode: merge"))
    with pytest.raises(SpecError) as err:
        load_spec_yaml(path)
    assert str(path) in str(err.value)
    assert "mode must be one of insert | upsert | update | append | delete, got 'merge'" in str(
        err.value
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": 1}, "unknown field(s) ['colour']"),
        ({"entity_set": ""}, "entity_set must be a non-empty string"),
        (
            {"key": {"strategy": "primary_id", "columns": {"a": "a", "b": "b"}}},
            "primary_id takes exactly one column",
        ),
        ({"columns": {"crc33_cid": "cid"}}, "must not also be listed in columns"),
        ({"columns": {"crc33_name": {"source": "n", "trim": "yes"}}}, "trim must be true or false"),
        ({"columns": {"crc33_name": {"src": "n"}}}, "unknown field(s) ['src']"),
        ({"batch_size": 5000}, "batch_size must be between 1 and 1000, got 5000"),
        ({"owner": {"source": "o", "by": "key"}}, "owner.by=key needs owner.key_attribute"),
        ({"state": {"statuscode": 2}}, "state needs statecode"),
        ({"mode": "update", "columns": {}}, "mode update needs at least one column"),
    ],
)
def test_bad_specs_are_rejected_with_the_field(change: dict, message: str) -> None:
    data = {
        "table": "crc33_customer",
        "entity_set": "crc33_customers",
        "mode": "upsert",
        "key": {"columns": {"crc33_cid": "cid"}},
        "columns": {"crc33_name": "Name"},
        **change,
    }
    with pytest.raises(SpecError) as err:
        load_spec(data)
    assert message in str(err.value)
    assert "'crc33_customer'" in str(err.value)


def test_missing_required_field() -> None:
    with pytest.raises(SpecError, match="missing required field 'key'"):
        load_spec({"table": "t", "entity_set": "ts", "mode": "insert"})


def _spec(**over) -> PublishSpec:
    data = {
        "table": "crc33_customer",
        "entity_set": "crc33_customers",
        "mode": "upsert",
        "key": {"columns": {"crc33_cid": "cid"}},
        "columns": {"crc33_name": "Name"},
        **over,
    }
    return load_spec(data)


def test_compile_checks_spec_against_metadata() -> None:
    meta = customer_meta()
    plan = compile_plan(_spec(), meta)
    assert plan.select() == ["crc33_customerid", "crc33_cid", "crc33_name"]
    assert plan.use_bulk == {"CreateMultiple": True, "UpdateMultiple": True, "UpsertMultiple": True}
    with pytest.raises(SpecError, match="has no column 'crc33_nope'"):
        compile_plan(_spec(columns={"crc33_nope": "x"}), meta)
    with pytest.raises(SpecError, match=r"key columns \['crc33_email'\] are not an active"):
        compile_plan(_spec(key={"columns": {"crc33_email": "e"}}), meta)  # index still Pending
    with pytest.raises(SpecError, match="does not match the table's entity set 'crc33_customers'"):
        compile_plan(_spec(entity_set="customers"), meta)
    with pytest.raises(SpecError, match="primary_id must use 'crc33_customerid'"):
        compile_plan(_spec(key={"strategy": "primary_id", "columns": {"crc33_cid": "x"}}), meta)
    with pytest.raises(SpecError, match="managed by the state/owner sections"):
        compile_plan(_spec(columns={"statecode": "s"}), meta)
    with pytest.raises(SpecError, match=r"delete\.statecode=1, statuscode=1 is not a valid pair"):
        compile_plan(_spec(mode="delete", delete={"statuscode": 1}), meta)
    with pytest.raises(SpecError, match="referenced table 'systemuser' is not available"):
        compile_plan(_spec(owner={"source": "o"}), meta)
    owner = compile_plan(
        _spec(owner={"source": "o", "by": "key", "key_attribute": "internalemailaddress"}),
        meta,
        {"systemuser": systemuser_meta()},
    ).owner
    assert (owner.entity_set, owner.navigation, owner.value_attribute) == (
        "systemusers",
        "ownerid",
        "_ownerid_value",
    )


def test_deterministic_ids_depend_on_target_and_key_only() -> None:
    plan = compile_plan(_spec(), customer_meta())
    other = compile_plan(_spec(columns={"crc33_email": "Email"}), customer_meta())
    assert plan.deterministic_id("crc33_cid=7") == other.deterministic_id("crc33_cid=7")
    assert plan.deterministic_id("crc33_cid=7") != plan.deterministic_id("crc33_cid=8")
    assert str(plan.deterministic_id("crc33_cid=7")) == str(
        __import__("uuid").uuid5(plan.spec.id_namespace, "crc33_customer|crc33_cid=7")
    )
