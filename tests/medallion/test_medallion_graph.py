"""End to end: the sample customers exported with the Synapse Link writer over several folders
(updates, deletes, re-creates, a column added mid-stream) flow through bronze, silver, gold and
the lake database. Every asset is materialised; no ERROR asset check may fail (checks in CI)."""

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from customer360.definitions import build_definitions
from customer360.generate import generate_customer_landing
from customer360.generate.customers import ADDED_COLUMN
from customer360.runner import failure_messages, materialize_assets, materialize_graph
from customer360.synapse_link import SynapseLinkWriter
from customer360.synapse_link.sample import CUSTOMER_TABLE, crc33_customer_model
from sensors.landing import register_landing_partitions

pytestmark = [pytest.mark.spark, pytest.mark.e2e]


@pytest.fixture(scope="module")
def graph(spark, tmp_path_factory):
    home = tmp_path_factory.mktemp("c360")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("C360_HOME", str(home))
        mp.setenv("C360_ENV", "local")
        generated = generate_customer_landing(home / "landing")
        defs = build_definitions()
        with dg.instance_for_test() as instance:
            register_landing_partitions(instance, defs.resources["landing"])
            summary = materialize_graph(defs, instance)
            yield home, generated, defs, instance, summary


def _errors(summary):
    return [c for c in summary.failed_checks if "(ERROR)" in c]


def test_every_asset_materialises_and_error_checks_pass(graph):
    _, _, defs, _, summary = graph
    assert summary.success, summary.failed
    assert _errors(summary) == []
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().materializable_asset_keys}
    assert keys <= set(summary.materialized)


def test_counts_are_exact(graph, spark):
    _home, generated, defs, _, summary = graph
    lake = defs.resources["lakehouse"].lake
    bronze = lake.read_arrow("bronze", CUSTOMER_TABLE)
    assert bronze.num_rows == generated.versions
    assert summary.materialized["bronze/crc33_customer"]["dagster/row_count"] == generated.versions
    customers = lake.read_arrow("silver", "customer")
    assert customers.num_rows == generated.live_customers
    assert lake.read_arrow("silver", "customer_quarantine").num_rows == 0
    ids = set(customers.column("Id").to_pylist())
    assert ids == set(generated.live_rows)
    gone = generated.deleted_ids - generated.recreated_ids
    assert gone and not (gone & ids)  # deletes are gone
    assert generated.recreated_ids <= ids  # re-creates revived
    # e-mails were re-written in upper case with blanks by the generator: cleaned again.
    assert all(e == e.strip().lower() for e in customers.column("email").to_pylist())


def test_history_keeps_every_version(graph):
    _, generated, defs, _, _ = graph
    history = defs.resources["lakehouse"].lake.read_arrow("silver", "customer_history")
    assert history.num_rows == generated.versions
    rows = history.to_pylist()
    current = [r for r in rows if r["is_current"]]
    assert len(current) == generated.customers  # one current version per Id ever seen
    assert sum(1 for r in current if not r["is_deleted"]) == generated.live_customers
    updated = next(iter(sorted(generated.updated_ids - generated.deleted_ids)))
    chain = sorted((r for r in rows if r["Id"] == updated), key=lambda r: r["valid_from"])
    assert len(chain) >= 2 and chain[0]["valid_to"] == chain[1]["valid_from"]


def test_profile_flags_duplicate_emails_as_documented(graph):
    _, generated, defs, _, _ = graph
    profile = defs.resources["lakehouse"].lake.read_arrow("gold", "customer_profile").to_pylist()
    assert len(profile) == generated.live_customers
    emails = [str(r["crc33_email"]).strip().lower() for r in generated.live_rows.values()]
    shared = {e for e in emails if emails.count(e) > 1}
    expected = sum(1 for e in emails if e in shared)
    assert expected > 0
    assert sum(r["dq_duplicate_email"] for r in profile) == expected
    assert {r["value_segment"] for r in profile} <= {"high_value", "medium_value", "low_value"}


def test_lake_database_answers_by_name(graph):
    home, _, defs, _, _ = graph
    lake = defs.resources["lakehouse"].lake
    with duckdb.connect(str(home / "lake" / "lakedb.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM gold.customer_profile").fetchone()[0]
        comment = con.execute(
            "SELECT comment FROM duckdb_columns() WHERE schema_name = 'gold' "
            "AND table_name = 'customer_profile' AND column_name = 'email'"
        ).fetchone()[0]
    assert rows == lake.table("gold", "customer_profile").count()
    assert comment == "e-mail, trimmed and lower-cased"


def test_new_folder_is_applied_incrementally_and_reruns_converge(graph):
    home, generated, defs, instance, _ = graph
    lake = defs.resources["lakehouse"].lake
    model = crc33_customer_model().with_added_attributes(ADDED_COLUMN)
    victim, changed = sorted(generated.live_rows)[:2]
    row = dict(generated.live_rows[changed], crc33_city="Springfield", versionnumber=10**9)
    when = dt.datetime(2024, 6, 4, tzinfo=dt.UTC)
    writer = SynapseLinkWriter(home / "landing" / "dataverse")
    writer.write(
        {CUSTOMER_TABLE: (model, [row, SynapseLinkWriter.delete_row(model, victim, 10**9, when)])},
        export_time=when,
    )
    history_before = lake.read_arrow("silver", "customer_history").num_rows
    register_landing_partitions(instance, defs.resources["landing"])
    summary = materialize_graph(defs, instance)
    assert summary.success and _errors(summary) == []
    assert summary.runs == 2  # only the new partition, then the unpartitioned layers
    customers = {r["Id"]: r for r in lake.read_arrow("silver", "customer").to_pylist()}
    assert victim not in customers and customers[changed]["city"] == "Springfield"
    assert len(customers) == generated.live_customers - 1
    assert lake.read_arrow("silver", "customer_history").num_rows == history_before + 2
    # Re-running an already applied partition changes nothing (exactly-once per partition).
    bronze_rows = lake.read_arrow("bronze", CUSTOMER_TABLE).num_rows
    first = sorted(instance.get_dynamic_partitions("dataverse_export"))[0]
    keys = [dg.AssetKey(["bronze", CUSTOMER_TABLE]), dg.AssetKey(["silver", "customer_history"])]
    rerun = materialize_assets(defs, instance, keys, first)
    assert rerun.success, failure_messages(rerun)
    assert lake.read_arrow("bronze", CUSTOMER_TABLE).num_rows == bronze_rows
    assert lake.read_arrow("silver", "customer_history").num_rows == history_before + 2


def test_rejected_rows_are_kept_with_reasons(graph):
    home, _, defs, instance, _ = graph
    bad = home / "landing" / "finance" / "broken.csv"
    bad.write_text("cid,spend\n1,12\nabc,5\n2,-1\n")
    register_landing_partitions(instance, defs.resources["landing"])
    summary = materialize_graph(defs, instance)
    assert summary.success
    rejected = defs.resources["lakehouse"].lake.read_arrow("bronze", "_rejected").to_pylist()
    mine = sorted((r["line"], r["reason"]) for r in rejected if r["file"] == "broken.csv")
    assert mine == [
        (3, "cid 'abc' is not an integer"),
        (4, "spend '-1' must be a non-negative amount"),
    ]
    assert any("no_rejected_rows" in c and "(WARN)" in c for c in summary.failed_checks)


def test_paths_are_under_c360_home(graph):
    home, _, defs, _, _ = graph
    assert Path(defs.resources["lakehouse"].root_uri) == home / "lake"
    assert (home / "lake" / "bronze" / CUSTOMER_TABLE / "_delta_log").is_dir()
