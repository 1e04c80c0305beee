"""The unified profile on the seed data, through the real graph: customer.csv exported by the
Synapse Link writer into landing/dataverse/, customer_spend.csv into landing/finance/ and
residents_adls.csv into landing/crm2/ → bronze → silver → gold/customer_source_link,
gold/customer_match_pairs, gold/match_candidates, gold/customer_profile → the lake database.

Expected figures (docs/unify.md "Seed data"): 1,400 + 740 = 2,140 records; the 140 planted pairs
(residents cid 2000+i = customer cid i) merge, so 2,000 profiles, merge rate 140/2,140; precision
and recall 1.0 against the 140 true pairs; the 14 e-mails shared by two records with two dates of
birth are different people and wait in gold/match_candidates.
"""

import datetime as dt
import shutil

import dagster as dg
import duckdb
import pyarrow.compute as pc
import pytest
from seed_landing import GRAPH, write_seed_landing

from assets.keys import SOURCE_LINK_KEY
from assets.unified import TRUTH_ENV, merge_rate_check
from customer360.cli.runner import materialize_assets, materialize_graph
from customer360.definitions import build_definitions
from customer360.generate import TRUTH_PAIRS_CSV
from customer360.generate.customers import SAMPLE_DATA
from customer360.unify import unified_id
from resources.ui_metadata import plot_file
from sensors.landing import register_landing_partitions, remember_landing_scan

pytestmark = [pytest.mark.spark, pytest.mark.e2e]
IDENTITY = [
    SOURCE_LINK_KEY,
    dg.AssetKey(["gold", "customer_match_pairs"]),
    dg.AssetKey(["gold", "match_candidates"]),
]


@pytest.fixture(scope="module")
def graph(spark, tmp_path_factory):
    home = tmp_path_factory.mktemp("c360")
    write_seed_landing(home / "landing")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("C360_HOME", str(home))
        mp.setenv("C360_ENV", "local")
        mp.setenv(TRUTH_ENV, str(TRUTH_PAIRS_CSV))
        defs = build_definitions()
        with dg.instance_for_test() as instance:
            scan = register_landing_partitions(instance, defs.resources["landing"])
            summary = materialize_graph(defs, instance, GRAPH, scan.changed)
            remember_landing_scan(instance, scan)
            yield home, defs, instance, summary


def _lake(defs):
    return defs.resources["lakehouse"].lake


def test_graph_runs_and_error_checks_pass(graph):
    _, _, _, summary = graph
    assert summary.success, summary.failed
    assert [c for c in summary.failed_checks if "(ERROR)" in c] == []
    assert summary.materialized["silver/crm_residents"]["dagster/row_count"] == 740
    assert summary.materialized["silver/crm_residents_quarantine"]["dagster/row_count"] == 0


def test_quality_figures_on_the_seed_data(graph):
    _, _, _, summary = graph
    meta = summary.materialized["gold/customer_source_link"]
    assert (meta["records"], meta["profiles"], meta["cross_source_profiles"]) == (2140, 2000, 140)
    assert meta["records_per_source"] == {"dataverse": 1400, "residents": 740}
    assert meta["merge_rate"] == pytest.approx(140 / 2140, abs=1e-6)
    assert (meta["precision"], meta["recall"], meta["truth_pairs"]) == (1.0, 1.0, 140)
    assert meta["pairs_per_rule"] == {"email_dob": 140}
    assert meta["review_candidates"] == 14
    assert meta["dagster/row_count"] == 2140
    assert summary.materialized["gold/customer_match_pairs"]["dagster/row_count"] == 140
    assert summary.materialized["gold/match_candidates"]["dagster/row_count"] == 14
    assert summary.materialized["gold/customer_profile"]["profiles"] == 2000
    examples = summary.materialized["gold/customer_match_pairs"]["example_merges"]
    assert len(examples) == 10 and {e["rule"] for e in examples} == {"email_dob"}
    for plot in (
        meta["quality_plot"],
        summary.materialized["gold/customer_profile"]["segments_plot"],
    ):
        assert plot_file(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_profile_is_one_row_per_person_with_measures(graph):
    _, defs, _, _ = graph
    profile = {
        r["unified_customer_id"]: r
        for r in _lake(defs).read_arrow("gold", "customer_profile").to_pylist()
    }
    assert len(profile) == 2000
    merged = profile[unified_id("dataverse", "0")]
    assert merged["sources"] == ["dataverse", "residents"]
    assert merged["source_records"] == ["dataverse/0", "residents/2000"]
    assert (merged["cid"], merged["dataverse_cids"], merged["record_count"]) == (0, [0], 2)
    spend = next(
        line.split(",")[1]
        for line in (SAMPLE_DATA / "customer_spend.csv").read_text().splitlines()[1:]
        if line.split(",")[0] == "0"
    )
    assert float(merged["total_spend"]) == float(spend)
    assert merged["value_segment"] is not None and merged["churn_probability"] is None
    only_residents = profile[unified_id("residents", "1500")]
    assert only_residents["cid"] is None and only_residents["dataverse_cids"] is None
    assert only_residents["dq_no_finance"] and only_residents["sources"] == ["residents"]
    # The shared e-mails stay apart (different people), flagged for data quality.
    assert sum(r["dq_duplicate_email"] for r in profile.values()) == 28
    segments = _lake(defs).read_arrow("gold", "customer_segments")
    value = segments.filter(pc.equal(segments["segment_type"], "value_segment"))
    assert value.num_rows == 2000


def test_every_merge_is_explained(graph):
    _, defs, _, _ = graph
    lake = _lake(defs)
    uid = unified_id("dataverse", "0")
    links = [r for r in lake.read_arrow("gold", "customer_source_link").to_pylist()
             if r["unified_customer_id"] == uid]  # fmt: skip
    assert sorted((r["source"], r["source_key"], r["rule"], r["score"]) for r in links) == [
        ("dataverse", "0", "email_dob", 1.0),
        ("residents", "2000", "email_dob", 1.0),
    ]
    pairs = [r for r in lake.read_arrow("gold", "customer_match_pairs").to_pylist()
             if r["unified_customer_id"] == uid]  # fmt: skip
    assert [(p["left_key"], p["right_key"], p["rule"]) for p in pairs] == [
        ("0", "2000", "email_dob")
    ]
    review = lake.read_arrow("gold", "match_candidates").to_pylist()
    assert {r["rule"] for r in review} == {"email_name_dob_typo"}
    assert all(r["left_unified_customer_id"] != r["right_unified_customer_id"] for r in review)


def test_lake_database_serves_the_unified_tables(graph):
    home, _, _, _ = graph
    with duckdb.connect(str(home / "lake" / "lakedb.duckdb"), read_only=True) as con:
        counts = {
            t: con.execute(f"SELECT count(*) FROM gold.{t}").fetchone()[0]
            for t in ("customer_profile", "customer_source_link", "match_candidates")
        }
    assert counts == {
        "customer_profile": 2000,
        "customer_source_link": 2140,
        "match_candidates": 14,
    }


def test_ids_are_stable_across_runs_and_unrelated_changes(graph):
    home, defs, instance, _ = graph
    lake = _lake(defs)

    def ids():
        rows = lake.read_arrow("gold", "customer_source_link").to_pylist()
        return {(r["source"], r["source_key"]): r["unified_customer_id"] for r in rows}

    before = ids()
    # Nothing changed: the resolution is reported again, not recomputed.
    rerun = materialize_assets(defs, instance, IDENTITY)
    assert rerun.success
    meta = rerun.get_asset_materialization_events()[0].materialization.metadata
    assert meta["refresh"].value == "unchanged" and meta["profiles"].value == 2000
    # Recomputed from scratch, ids are carried forward: none changes.
    job = defs.get_repository_def().get_implicit_job_def_for_assets(IDENTITY)
    full = {
        "ops": {
            "gold__customer_source_link_pairs_and_candidates": {"config": {"full_refresh": True}}
        }
    }
    forced = job.get_subset(asset_selection=set(IDENTITY)).execute_in_process(
        instance=instance, run_config=full, raise_on_error=False
    )
    assert forced.success
    meta = forced.get_asset_materialization_events()[0].materialization.metadata
    assert meta["refresh"].value == "full" and meta["ids"].value == {"carried": 2000}
    assert ids() == before
    checks = {c.check_name: c for c in forced.get_asset_check_evaluations()}
    assert checks["merge_rate_stable"].passed
    # A later drop of the second system with one new, unrelated person.
    extra = home / "landing" / "crm2" / "residents_new.csv"
    header = (SAMPLE_DATA / "residents_adls.csv").read_text().splitlines()[0]
    extra.write_text(header + "\n" + _new_resident(header) + "\n")
    scan = register_landing_partitions(instance, defs.resources["landing"])
    assert scan.changed["crm_residents_drop"] == {dt.datetime.now(dt.UTC).date().isoformat()}
    assert scan.changed["dataverse_export"] == set()
    summary = materialize_graph(defs, instance, GRAPH, scan.changed)
    assert summary.success, summary.failed
    after = ids()
    assert {k: v for k, v in after.items() if k in before} == before
    assert after[("residents", "9001")] == unified_id("residents", "9001")
    assert summary.materialized["gold/customer_profile"]["profiles"] == 2001
    # Only the new record was resolved and only its profile derived.
    link_meta = summary.materialized["gold/customer_source_link"]
    assert link_meta["refresh"] == "incremental" and link_meta["incremental"]["changed"] == 1
    profile_meta = summary.materialized["gold/customer_profile"]
    assert (profile_meta["refresh"], profile_meta["profiles_rederived"]) == ("incremental", 1)


def _new_resident(header: str) -> str:
    values = {
        "cid": "9001", "firstname": "Zed", "lastname": "Newman", "name": "Zed Newman",
        "gender": "Male", "email": "zed.newman@contoso.com", "telephone": "801-555-0199",
        "country": "United States", "city": "Provo", "state": "UT", "postcode": "84601",
        "streetaddress": "1 Main St", "dateofbirth": "1990-01-01", "created_date": "2024-03-02",
    }  # fmt: skip
    return ",".join(values.get(h.strip().lower(), "") for h in header.split(","))


def test_merge_rate_check_warns_on_a_jump():
    assert merge_rate_check(0.0654, 0.0650, 0.02).passed
    jumped = merge_rate_check(0.12, 0.0654, 0.02)
    assert not jumped.passed and jumped.severity == dg.AssetCheckSeverity.WARN
    assert merge_rate_check(0.12, None, 0.02).passed  # first run: nothing to compare with


def test_spark_engine_resolves_like_the_local_engine(graph, spark, tmp_path):
    """The graph's full resolution ran on this machine (unify.local); a cluster runs the same
    rules on Spark. On a copy of the lake, a full Spark resolution (ids carried forward from the
    local run's links) writes the same three tables and index, row for row."""
    from customer360.gold.identity import IDENTITY_TABLES, refresh_identity
    from customer360.lakehouse import DeltaLake
    from customer360.unify import unify_config

    local_lake = _lake(graph[1])
    copied = tmp_path / "lake"
    shutil.copytree(local_lake.root, copied)
    spark_lake = DeltaLake(str(copied))
    build = refresh_identity(lambda: spark, spark_lake, unify_config(), True,
                             tmp_path / "plot.png", lambda _: None, engine="spark")  # fmt: skip
    assert build.refresh == "full" and build.facts["accuracy"]["recall"] == 1.0
    for layer, name in IDENTITY_TABLES:
        local_rows = local_lake.read_arrow(layer, name)
        spark_rows = spark_lake.read_arrow(layer, name).select(local_rows.column_names)
        assert spark_rows.num_rows == local_rows.num_rows > 0, name
        con = duckdb.connect()
        con.register("local_rows", local_rows)
        con.register("spark_rows", spark_rows)
        for left, right in (("local_rows", "spark_rows"), ("spark_rows", "local_rows")):
            extra = con.sql(f"SELECT * FROM {left} EXCEPT ALL SELECT * FROM {right}").fetchall()
            assert extra == [], (name, left, extra[:3])
