"""The whole graph in one in-process run, churn included: sample landing data, KKBox files tied
to the sample customers and the local Dataverse (real HTTPS server, real msal) → every asset of
the graph is materialised, no asset check of severity ERROR fails, and the churn risk reaches
the profile and Dynamics.

What the browser test (tests/ui/test_ui_end_to_end.py) proves through `customer360 dev` is not
repeated here: the medallion and publish counts, the Delta tables, Dataverse's customers,
deactivations and contacts. That walk has no KKBox data (the churn chain would double it), so
the churn chain end to end — model → predictions → customer churn risk → profile → Dataverse —
is this test's job. Kept small: one change folder (of the generator's three) and KKBox members
for the sample customers only."""

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
        generate_customer_landing(home / "landing", change_folders=1)
        write_second_source(home / "landing")  # every asset: the second source's too
        cids = list(range(1400))
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
                    customers = reader.table("crc33_customers", ["crc33_churnriskband"])
                finally:
                    reader.close()
                profile = defs.resources["lakehouse"].lake.read_arrow("gold", "customer_profile")
                yield defs, summary, customers, profile.to_pylist()


def test_every_asset_materialises_and_no_error_check_fails(full_run):
    defs, summary, *_ = full_run
    assert summary.success, summary.failed
    errors = [c for c in summary.failed_checks if "(ERROR)" in c]
    assert errors == []
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().materializable_asset_keys}
    assert keys == set(summary.materialized)


def test_churn_reaches_the_customer_profile_and_dynamics(full_run):
    _, summary, customers, profile = full_run
    # A model was trained and scored (its quality bounds: tests/churn_assets, 3,000 members).
    assert 0.5 < summary.materialized["churn/model"]["roc_auc"] <= 1.0
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
