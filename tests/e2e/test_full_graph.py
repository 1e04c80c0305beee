"""The demo, as a test: sample landing data, KKBox files tied to the sample customers and the
local Dataverse (real HTTPS server, real msal) → every asset of the graph is materialised and no
asset check of severity ERROR fails. This is the end-to-end check CI runs."""

import dagster as dg
import pytest
from dataverse_reader import Reader

from customer360.churn import generate_kkbox
from customer360.cli.local_dataverse import local_dataverse
from customer360.cli.runner import materialize_graph
from customer360.definitions import build_definitions
from customer360.generate import generate_customer_landing, write_second_source
from customer360.generate.customers import SAMPLE_DATA
from sensors.landing import register_landing_partitions

pytestmark = [pytest.mark.spark, pytest.mark.e2e]


@pytest.fixture(scope="module")
def full_run(spark, tmp_path_factory):
    home = tmp_path_factory.mktemp("c360")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("C360_HOME", str(home))
        mp.setenv("C360_ENV", "local")
        landing = generate_customer_landing(home / "landing")
        write_second_source(home / "landing")
        cids = list(range(1400)) + list(range(100_000, 101_100))
        generate_kkbox(home / "landing" / "kkbox", members=len(cids), seed=0, customer_ids=cids)
        with local_dataverse(home) as emu:
            emu.admin(
                "POST",
                "load",
                {"table": "crc33_customer", "path": str(SAMPLE_DATA / "customer.csv")},
            )
            defs = build_definitions()
            with dg.instance_for_test() as instance:
                register_landing_partitions(instance, defs.resources["landing"])
                summary = materialize_graph(defs, instance)
                reader = Reader(emu)
                try:
                    customers = reader.table(
                        "crc33_customers",
                        ["crc33_cid", "statecode", "crc33_valuesegment", "crc33_churnriskband"],
                    )
                    contacts = reader.table("contacts", ["contactid"])
                finally:
                    reader.close()
                profile = defs.resources["lakehouse"].lake.read_arrow("gold", "customer_profile")
                yield defs, summary, landing, customers, contacts, profile.to_pylist()


def test_every_asset_materialises_and_no_error_check_fails(full_run):
    defs, summary, *_ = full_run
    assert summary.success, summary.failed
    errors = [c for c in summary.failed_checks if "(ERROR)" in c]
    assert errors == []
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().materializable_asset_keys}
    assert keys == set(summary.materialized)


def test_gold_reaches_dynamics(full_run):
    _, summary, landing, customers, contacts, profile = full_run
    live = landing.live_customers
    published = summary.materialized["dynamics/crc33_customer"]
    assert published["published"] + published["unchanged"] == live
    assert published["failed"] == 0 and published["deferred"] == 0
    by_cid = {c["crc33_cid"]: c for c in customers}
    assert sum(1 for c in by_cid.values() if c["crc33_valuesegment"]) == live
    deactivated = summary.materialized["dynamics/crc33_customer_deactivation"]["published"]
    assert deactivated == len(landing.deleted_ids - landing.recreated_ids)
    assert sum(1 for c in by_cid.values() if c["statecode"] == 1) == deactivated
    # One contact per person (unified profile: Dataverse and the second source). Contacts need
    # a last name in Dataverse; the sample has people without one: they are not sent, they end
    # in ops/publish_failed_rows (nothing lost, nothing half-created).
    assert len(profile) > live  # the second source's own people are there too
    no_lastname = sum(1 for r in profile if not r["lastname"])
    contact = summary.materialized["dynamics/contact"]
    assert no_lastname > 0 and contact["failed"] == no_lastname
    assert len(contacts) == contact["published"] == len(profile) - no_lastname


def test_churn_reaches_the_customer_profile_and_dynamics(full_run):
    _, summary, _, customers, _, profile = full_run
    assert summary.materialized["churn/model"]["roc_auc"] >= 0.7
    risk_rows = summary.materialized["gold/customer_churn_risk"]["dagster/row_count"]
    assert risk_rows > 0
    # Members exist for the sample cids only: profiles without a Dataverse record get none.
    scored = [r for r in profile if r["churn_probability"] is not None]
    assert 0 < len(scored) <= risk_rows and all(r["dataverse_cids"] for r in scored)
    bands = {r["churn_risk_band"] for r in scored}
    assert bands <= {"low", "medium", "high"} and len(bands) > 1
    # … and the Dynamics publish carries them to every Dataverse record of those people.
    published = [c for c in customers if c["crc33_churnriskband"]]
    assert len(published) == sum(len(r["dataverse_cids"]) for r in scored)
