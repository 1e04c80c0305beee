"""Any subset of the landing areas, and a failing enrichment domain, on one C360_HOME.

The areas arrive one by one, as they do for a new user: the Synapse Link export alone, then the
finance files, then the second CRM source together with KKBox files the churn assets cannot use
(members_v3.csv missing: churn fails for real — labels can come from the transactions, but
no drop is usable without its members; one stage proves both "+ a second source" and "churn
fails → profile and publish still materialise"), then a complete KKBox drop, then the broken
drop again. (Finance + second source + export succeeding as a whole is the last stage of
tests/graph/test_no_dataverse_export.py.) After each drop the graph runs as `customer360 run`
does (new partitions, then every unpartitioned asset in ONE run — what "Materialize all" launches
for them) against the real local Dataverse (HTTPS, msal). Each stage is one test (two for the
third); they share the stages' results.

The complete stage (export, finance, second source, KKBox) is also the whole graph end to end,
churn included: no asset check of severity ERROR fails, every asset of the graph materialised
over the stages, and the churn chain reaches Dataverse — model → predictions → customer churn
risk → profile → publish, read back with the test's own msal client. (What the browser test
proves through `customer360 dev` is not repeated: the medallion and publish counts, the Delta
tables, Dataverse's customers, deactivations and contacts. The churn assets' own quality bounds
are tests/churn_assets, on 3,000 members.)
"""

from __future__ import annotations

import shutil

import dagster as dg
import pytest
from dataverse_reader import Reader

from assets.skipping import NOT_LANDED
from customer360.churn import generate_kkbox
from customer360.cli.local_dataverse import local_dataverse
from customer360.cli.runner import GraphRun, enrichment_lines, materialize_graph
from customer360.definitions import build_definitions
from customer360.generate import generate_customer_landing, write_second_source
from customer360.generate.customers import SAMPLE_DATA
from sensors.landing import register_landing_partitions

pytestmark = [pytest.mark.spark, pytest.mark.e2e]

CORE = ["silver/customer", "gold/customer_source_link", "gold/customer_profile",
        "gold/customer_segments", "lakedb/gold", "dynamics/crc33_customer",
        "dynamics/contact"]  # fmt: skip
PUBLISH = ["dynamics/crc33_customer", "dynamics/contact", "dynamics/crc33_customer_deactivation"]
STAGES_UP_TO_COMPLETE = ["dataverse", "finance", "second_source_kkbox_broken", "kkbox"]


def _drop(staged, home, area: str) -> None:
    shutil.copytree(staged / area, home / "landing" / area, dirs_exist_ok=True)


@pytest.fixture(scope="module")
def stages(spark, tmp_path_factory):
    """({stage name: (GraphRun, profile rows)} for the five drops, in order; what was generated;
    the graph's materialisable asset keys; Dataverse's customers after the complete stage)."""
    home = tmp_path_factory.mktemp("c360")
    staged = tmp_path_factory.mktemp("staged")  # everything generated, dropped area by area
    generated = generate_customer_landing(staged, change_folders=1)  # 2 partition runs, not 4
    write_second_source(staged)
    # Half the Dataverse customers are KKBox members, and some members are no customer: enough
    # for a model and its bands (its quality bounds: tests/churn_assets, 3,000 members).
    cids = list(range(0, 1400, 2)) + list(range(100_000, 100_100))
    generate_kkbox(staged / "kkbox", members=len(cids), seed=0, customer_ids=cids)
    out: dict[str, tuple[GraphRun, list[dict]]] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("C360_HOME", str(home))
        mp.setenv("C360_ENV", "local")
        with local_dataverse(home) as emu, dg.instance_for_test() as instance:
            emu.admin("POST", "load", {"table": "crc33_customer",
                                       "path": str(SAMPLE_DATA / "customer.csv")})  # fmt: skip
            defs = build_definitions()
            lake = defs.resources["lakehouse"].lake

            def run(name: str) -> None:
                register_landing_partitions(instance, defs.resources["landing"])
                summary = materialize_graph(defs, instance)
                profile = lake.read_arrow("gold", "customer_profile").to_pylist()
                out[name] = (summary, profile)

            graph = defs.resolve_asset_graph()
            keys = {k.to_user_string() for k in graph.materializable_asset_keys}
            _drop(staged, home, "dataverse")
            run("dataverse")
            _drop(staged, home, "finance")
            run("finance")
            _drop(staged, home, "crm2")
            _drop(staged, home, "kkbox")
            members = home / "landing" / "kkbox" / "members_v3.csv"
            members.rename(members.with_suffix(".held"))  # a drop the churn assets cannot use
            run("second_source_kkbox_broken")
            members.with_suffix(".held").rename(members)
            run("kkbox")
            reader = Reader(emu)  # what the complete stage published, before the broken drop
            try:
                customers = reader.table("crc33_customers", ["crc33_churnriskband"])
            finally:
                reader.close()
            members.rename(members.with_suffix(".held"))
            run("kkbox_broken_again")
    yield out, generated, keys, customers


def _core_built(summary: GraphRun) -> None:
    missing = [key for key in CORE if key not in summary.materialized]
    assert missing == [], (missing, summary.failed)


def test_dataverse_export_alone(stages):
    (summary, profile), generated = stages[0]["dataverse"], stages[1]
    assert summary.success, summary.failed
    _core_built(summary)
    assert "no finance files landed" in summary.materialized["silver/customer_finance"]["skipped"]
    assert "skipped" in summary.materialized["silver/crm_residents"]
    used = summary.materialized["gold/customer_profile"]["enrichments"]
    assert used["finance"].startswith("none") and used["churn"].startswith("none")
    assert len(profile) == generated.live_customers  # one source: no second-source people
    assert all(r["total_spend"] is None and r["churn_probability"] is None for r in profile)
    # Every asset of the run got a status (what a "Materialize all" backfill needs to end
    # green): the churn chain materialised with its reason (no KKBox files), nothing written.
    assert summary.not_materialized == []
    for key in ("churn/members", "churn/model", "gold/customer_churn_risk"):
        assert summary.materialized[key]["skipped"] == NOT_LANDED, key
    published = summary.materialized["dynamics/crc33_customer"]
    assert published["published"] + published["unchanged"] == generated.live_customers


def test_plus_finance(stages):
    summary, profile = stages[0]["finance"]
    assert summary.success, summary.failed
    _core_built(summary)
    assert "skipped" not in summary.materialized["silver/customer_finance"]
    used = summary.materialized["gold/customer_profile"]["enrichments"]
    assert used["finance"].startswith("silver/customer_finance version")
    assert sum(1 for r in profile if r["total_spend"] is not None) > 1000


def test_plus_second_crm_source(stages):
    (summary, profile), generated = stages[0]["second_source_kkbox_broken"], stages[1]
    # Only churn failed in this stage (see the next test); the second source built.
    assert summary.failed_steps and all(s.startswith("churn__") for s in summary.failed_steps)
    _core_built(summary)
    assert "skipped" not in summary.materialized["silver/crm_residents"]
    per_source = summary.materialized["gold/customer_source_link"]["records_per_source"]
    assert per_source.get("residents", 0) > 0
    assert len(profile) > generated.live_customers  # the second source's own people


def test_churn_fails_profile_and_publish_still_materialise(stages):
    summary, profile = stages[0]["second_source_kkbox_broken"]
    assert not summary.success  # churn really failed …
    assert "churn__members" in summary.failed_steps
    assert all(step.startswith("churn__") for step in summary.failed_steps)
    assert "gold/customer_churn_risk" not in summary.materialized
    _core_built(summary)  # … and the Customer 360 did not wait for it
    for key in PUBLISH:
        assert key in summary.materialized, key
    used = summary.materialized["gold/customer_profile"]["enrichments"]
    assert used["churn"].startswith("none")
    assert all(r["churn_probability"] is None for r in profile)
    lines = "\n".join(enrichment_lines(summary))
    assert "domain churn FAILED in this run (churn__members" in lines
    assert "the profile went on with none" in lines


def test_plus_kkbox(stages):
    summary, profile = stages[0]["kkbox"]
    assert summary.success, summary.failed
    _core_built(summary)
    risk = summary.materialized["gold/customer_churn_risk"]
    assert risk["dagster/row_count"] > 0
    used = summary.materialized["gold/customer_profile"]["enrichments"]
    # This run's churn risk: the profile ran after the churn steps of the same run.
    assert used["churn"].startswith(f"gold/customer_churn_risk version {risk['delta_version']} ")
    assert sum(1 for r in profile if r["churn_probability"] is not None) > 0


def test_churn_fails_again_profile_keeps_the_last_good_churn_risk(stages):
    summary, profile = stages[0]["kkbox_broken_again"]
    good_profile = stages[0]["kkbox"][1]
    assert "churn__members" in summary.failed_steps
    _core_built(summary)
    good = stages[0]["kkbox"][0].materialized["gold/customer_churn_risk"]["delta_version"]
    last_good = f"gold/customer_churn_risk version {good} "
    used = summary.materialized["gold/customer_profile"]["enrichments"]
    assert used["churn"].startswith(last_good)
    risk = {r["unified_customer_id"]: r["churn_probability"] for r in good_profile}
    assert {r["unified_customer_id"]: r["churn_probability"] for r in profile} == risk
    lines = "\n".join(enrichment_lines(summary))
    assert f"the profile went on with {last_good}" in lines


def test_every_asset_materialises_and_no_error_check_fails(stages):
    out, _, keys, _ = stages
    summary = out["kkbox"][0]  # everything landed: the whole graph, churn included
    assert summary.success, summary.failed
    errors = [c for c in summary.failed_checks if "(ERROR)" in c]
    assert errors == []
    # Partitioned assets run when their area lands, the rest in every stage: over the stages up
    # to the complete one, every asset of the graph was materialised.
    built = set().union(*(set(out[name][0].materialized) for name in STAGES_UP_TO_COMPLETE))
    assert keys - built == set()


def test_churn_reaches_the_customer_profile_and_dynamics(stages):
    (summary, profile), customers = stages[0]["kkbox"], stages[3]
    # A model was trained and scored (its quality bounds: tests/churn_assets, 3,000 members).
    assert 0.5 < summary.materialized["churn/model"]["roc_auc"] <= 1.0
    risk_rows = summary.materialized["gold/customer_churn_risk"]["dagster/row_count"]
    assert risk_rows > 0
    # Members of Dataverse customers are scored; the extra members (cids 100,000+) match no
    # profile, and profiles without a Dataverse record get no churn risk.
    scored = [r for r in profile if r["churn_probability"] is not None]
    assert 0 < len(scored) <= risk_rows and all(r["dataverse_cids"] for r in scored)
    bands = {r["churn_risk_band"] for r in scored}
    assert bands <= {"low", "medium", "high"} and len(bands) > 1
    # … and the Dynamics publish carries them to every Dataverse record of those people.
    published = [c for c in customers if c["crc33_churnriskband"]]
    assert len(published) == sum(len(r["dataverse_cids"]) for r in scored)
