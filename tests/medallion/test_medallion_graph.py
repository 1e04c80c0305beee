"""End to end: the sample customers exported with the Synapse Link writer over several folders
(updates, deletes, re-creates, a column added mid-stream) flow through bronze, silver, gold and
the lake database. Every asset is materialised; no ERROR asset check may fail (checks in CI)."""

import datetime as dt
import uuid
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import duckdb
import pytest

from customer360.cli.runner import failure_messages, materialize_assets, materialize_graph
from customer360.definitions import build_definitions
from customer360.generate import generate_customer_landing
from customer360.generate.customers import ADDED_COLUMN, SAMPLE_DATA
from customer360.generate.seed_table import (
    CUSTOMER_TABLE,
    crc33_customer_model,
    customer_rows_from_csv,
)
from customer360.synapse_link import SynapseLinkWriter
from sensors.landing import register_landing_partitions

# The medallion layers only: publishing and churn have their own tests
# (tests/graph/test_partial_landing.py runs all).
MEDALLION = dg.AssetSelection.groups(
    "bronze", "silver", "gold", "lakedb"
) - dg.AssetSelection.assets(["gold", "customer_churn_risk"])
pytestmark = [pytest.mark.spark, pytest.mark.e2e]
SAMPLE_CSV = SAMPLE_DATA / "customer.csv"


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
            summary = materialize_graph(defs, instance, MEDALLION)
            yield home, generated, defs, instance, summary


def _errors(summary):
    return [c for c in summary.failed_checks if "(ERROR)" in c]


def test_every_asset_materialises_and_error_checks_pass(graph):
    _, _, defs, _, summary = graph
    assert summary.success, summary.failed
    assert _errors(summary) == []
    keys = {k.to_user_string() for k in MEDALLION.resolve(defs.resolve_asset_graph())}
    # No second CRM source lands here (tests/unify_assets has one): its bronze has no partition,
    # its silver is written empty and the profile is the Dataverse customers alone.
    assert keys - {"bronze/crm_residents"} <= set(summary.materialized)
    assert summary.materialized["silver/crm_residents"]["dagster/row_count"] == 0


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
    summary = materialize_graph(defs, instance, MEDALLION)
    assert summary.success and _errors(summary) == []
    assert summary.runs == 2  # only the new partition, then the unpartitioned layers
    # Silver applies just the two changed customers; finance is untouched (gold, whose link
    # table can regroup any records, is rebuilt in full).
    assert summary.materialized["silver/customer"]["refresh"] == "incremental"
    assert summary.materialized["silver/customer"]["customers_reprocessed"] == 2
    assert summary.materialized["silver/customer_finance"]["refresh"] == "unchanged"
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


def _rows(lake, layer, table, keys):
    rows = lake.read_arrow(layer, table).to_pylist()
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in keys))


INCREMENTAL_TABLES = {
    ("silver", "customer"): ["Id"],
    ("silver", "customer_quarantine"): ["Id"],
    ("gold", "customer_profile"): ["unified_customer_id"],
    ("gold", "customer_segments"): ["unified_customer_id", "segment_type", "segment"],
}


class _Year2031(dt.date):
    """`date.today()` in 2031: a birth date in 2030 becomes plausible (see the test below)."""

    @classmethod
    def today(cls):
        return cls(2031, 1, 1)


def test_incremental_run_gives_the_same_tables_as_a_full_rebuild(graph, monkeypatch):
    home, generated, defs, instance, _ = graph
    lake = defs.resources["lakehouse"].lake
    model = crc33_customer_model().with_added_attributes(ADDED_COLUMN)
    writer = SynapseLinkWriter(home / "landing" / "dataverse")
    live = generated.live_rows
    csv_rows = {r["Id"]: r for r in customer_rows_from_csv(SAMPLE_CSV)}
    sharing: dict[str, list[str]] = {}
    for i, r in csv_rows.items():
        sharing.setdefault(str(r["crc33_email"]).strip().lower(), []).append(i)

    def shares(i: str) -> int:
        return len(sharing[str(csv_rows[i]["crc33_email"]).strip().lower()])

    # Customers not touched by the test above, with an e-mail nobody else has; and a pair.
    plain = [i for i in sorted(live)[2:] if shares(i) == 1]
    pair = next(v for v in sharing.values() if len(v) == 2 and set(v) <= set(sorted(live)[2:]))
    deleted = next(i for i in sorted(generated.deleted_ids - generated.recreated_ids)
                   if shares(i) == 1)  # fmt: skip
    # 1. A customer born in 2030 (quarantined today). This run also re-applies every customer
    #    the re-run of the first partition above re-marked: that many changes take the full path.
    future = dict(live[plain[6]], crc33_dateofbirth=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
                  versionnumber=2 * 10**9)  # fmt: skip
    writer.write({CUSTOMER_TABLE: (model, [future])},
                 export_time=dt.datetime(2024, 6, 4, 1, tzinfo=dt.UTC))  # fmt: skip
    register_landing_partitions(instance, defs.resources["landing"])
    summary = materialize_graph(defs, instance, MEDALLION)
    assert summary.success and _errors(summary) == []
    assert summary.materialized["silver/customer"]["refresh"] == "full"
    quarantined = {r["Id"] for r in lake.read_arrow("silver", "customer_quarantine").to_pylist()}
    assert plain[6] in quarantined

    # 2. Every kind of change in one folder, later the same day (as_of stays).
    old_row = csv_rows[deleted]
    when = dt.datetime(2024, 6, 4, 2, tzinfo=dt.UTC)
    version = 3 * 10**9
    rows = [
        dict(live[plain[0]], crc33_city="Gotham", versionnumber=version),  # update
        dict(live[plain[1]], crc33_email=live[plain[2]]["crc33_email"],  # now shares an e-mail
             versionnumber=version),
        dict(live[pair[0]], crc33_email="unique.again@contoso.com",  # … that is shared no more
             versionnumber=version),
        dict(live[plain[3]], crc33_email="not-an-email", versionnumber=version),  # quarantined
        dict(old_row, versionnumber=version),  # re-created
        dict(live[plain[4]], Id=str(uuid.uuid4()), crc33_cid=99_999,  # new customer
             crc33_email="new.customer@contoso.com", versionnumber=version),
        SynapseLinkWriter.delete_row(model, plain[5], version, when),  # deleted
    ]  # fmt: skip
    writer.write({CUSTOMER_TABLE: (model, rows)}, export_time=when)
    register_landing_partitions(instance, defs.resources["landing"])
    # Time passes: the customer born in 2030 passes validation without a new version.
    monkeypatch.setattr("customer360.transforms.customer.dt", SimpleNamespace(date=_Year2031))
    summary = materialize_graph(defs, instance, MEDALLION)
    assert summary.success and _errors(summary) == []
    assert summary.materialized["silver/customer"]["refresh"] == "incremental"
    assert summary.materialized["silver/customer_finance"]["refresh"] == "unchanged"
    profile = {r["customer_id"]: r for r in lake.read_arrow("gold", "customer_profile").to_pylist()}
    assert plain[6] in profile  # passed validation after time passed, no new version needed
    assert plain[5] not in profile and plain[3] not in profile and deleted in profile
    assert profile[plain[2]]["dq_duplicate_email"] and not profile[pair[1]]["dq_duplicate_email"]
    assert profile[plain[0]]["city"] == "Gotham"
    incremental = {t: _rows(lake, *t, keys) for t, keys in INCREMENTAL_TABLES.items()}
    versions = {t: lake.table(*t).version() for t in INCREMENTAL_TABLES}

    # 3. The same tables from a full rebuild.
    keys = [dg.AssetKey(["silver", "customer"]), dg.AssetKey(["silver", "customer_quarantine"]),
            dg.AssetKey(["silver", "customer_finance"]), dg.AssetKey(["gold", "customer_profile"]),
            dg.AssetKey(["gold", "customer_segments"])]  # fmt: skip
    job = defs.get_repository_def().get_implicit_job_def_for_assets(keys)
    full = {"config": {"full_refresh": True}}
    ops = {"silver__customer_and_quarantine": full, "silver__customer_finance": full}
    result = job.get_subset(asset_selection=set(keys)).execute_in_process(
        instance=instance, run_config={"ops": ops}, raise_on_error=False
    )
    assert result.success, failure_messages(result)
    for table, key_columns in INCREMENTAL_TABLES.items():
        assert lake.table(*table).version() > versions[table]  # really rewritten
        assert _rows(lake, *table, key_columns) == incremental[table], table


def test_rejected_rows_are_kept_with_reasons(graph):
    home, _, defs, instance, _ = graph
    bad = home / "landing" / "finance" / "broken.csv"
    bad.write_text("cid,spend\n1,12\nabc,5\n2,-1\n")
    register_landing_partitions(instance, defs.resources["landing"])
    summary = materialize_graph(defs, instance, MEDALLION)
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
