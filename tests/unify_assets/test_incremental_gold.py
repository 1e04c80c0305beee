"""Gold after a change, applied incrementally, equals gold rebuilt in full.

The seed graph (customer.csv exported to landing/dataverse/, residents_adls.csv in landing/crm2/)
is built; then a later export of the same day changes three customers: cid 1218 takes the date
of birth of cid 1239, which shares its e-mail (the two now match: a merge), cid 5 is deleted
(its profile with residents/2005 shrinks) and cid 100 moves city. The graph run that follows
must resolve identity and rebuild the profile incrementally, and give exactly the tables a full
refresh of both gives.
"""

import datetime as dt

import dagster as dg
import pyarrow as pa
import pytest
from seed_landing import EXPORTED, GRAPH, write_seed_landing

from customer360.cli.runner import materialize_graph
from customer360.definitions import build_definitions
from customer360.generate.customers import SAMPLE_DATA
from customer360.generate.seed_table import (
    CUSTOMER_TABLE,
    crc33_customer_model,
    customer_rows_from_csv,
)
from customer360.synapse_link import SynapseLinkWriter
from customer360.unify import unified_id
from sensors.landing import register_landing_partitions, remember_landing_scan

pytestmark = [pytest.mark.spark, pytest.mark.e2e]
GOLD = ["customer_source_link", "customer_match_pairs", "match_candidates", "customer_profile",
        "customer_segments"]  # fmt: skip
LATER = EXPORTED + dt.timedelta(hours=2)  # the same day: age and tenure do not move


def _run(defs, instance) -> dict:
    scan = register_landing_partitions(instance, defs.resources["landing"])
    summary = materialize_graph(defs, instance, GRAPH, scan.changed)
    assert summary.success, summary.failed
    assert [c for c in summary.failed_checks if "(ERROR)" in c] == []
    remember_landing_scan(instance, scan)
    return summary.materialized


def _snapshot(lake) -> dict[str, list[tuple]]:
    out = {}
    for name in GOLD:
        table: pa.Table = lake.read_arrow("gold", name)
        names = sorted(table.column_names)
        out[name] = sorted(tuple(str(r[c]) for c in names) for r in table.to_pylist())
    return out


def _changes(model) -> list[dict]:
    rows = {r["crc33_cid"]: r for r in customer_rows_from_csv(SAMPLE_DATA / "customer.csv")}

    def updated(cid: int, **values) -> dict:
        row = rows[cid]
        return {**row, **values, "modifiedon": LATER, "versionnumber": row["versionnumber"] + 5000}

    return [
        updated(1218, crc33_dateofbirth=rows[1239]["crc33_dateofbirth"]),
        updated(100, crc33_city="Elsewhere"),
        SynapseLinkWriter.delete_row(model, rows[5]["Id"], rows[5]["versionnumber"] + 5000, LATER),
    ]


def test_incremental_gold_equals_a_full_rebuild(spark, tmp_path, monkeypatch):
    writer = write_seed_landing(tmp_path / "landing")
    model = crc33_customer_model()
    monkeypatch.setenv("C360_HOME", str(tmp_path))
    monkeypatch.setenv("C360_ENV", "local")
    monkeypatch.delenv("C360_UNIFY_TRUTH", raising=False)
    defs = build_definitions()
    lake = defs.resources["lakehouse"].lake
    with dg.instance_for_test() as instance:
        first = _run(defs, instance)
        assert first["gold/customer_source_link"]["refresh"] == "full"
        assert first["gold/customer_profile"]["profiles"] == 2000

        writer.write({CUSTOMER_TABLE: (model, _changes(model))}, export_time=LATER)
        second = _run(defs, instance)
        link_meta, profile_meta = (
            second["gold/customer_source_link"],
            second["gold/customer_profile"],
        )
        assert link_meta["refresh"] == "incremental"
        assert link_meta["incremental"]["changed"] == 3
        assert profile_meta["refresh"] == "incremental"
        # No new residents drop: the second source's silver tables are left as they were.
        assert first["silver/crm_residents"]["refresh"] == "full"
        assert second["silver/crm_residents"]["refresh"] == "unchanged"
        # 1218 + 1239 → one profile; cid 5's profile replaced by residents/2005 alone; cid 100.
        assert profile_meta["profiles"] == 2000 - 1
        assert link_meta["records"] == 2139
        incremental = _snapshot(lake)

        job = defs.get_repository_def().get_implicit_job_def_for_assets(
            [dg.AssetKey(["gold", n]) for n in GOLD]
        )
        full = {
            "ops": {
                op: {"config": {"full_refresh": True}}
                for op in (
                    "gold__customer_source_link_pairs_and_candidates",
                    "gold__customer_profile_and_segments",
                )
            }
        }
        forced = job.get_subset(
            asset_selection={dg.AssetKey(["gold", n]) for n in GOLD}
        ).execute_in_process(instance=instance, run_config=full, raise_on_error=False)
        assert forced.success
        refreshes = {
            e.asset_key.path[-1]: e.materialization.metadata["refresh"].value
            for e in forced.get_asset_materialization_events()
            if "refresh" in e.materialization.metadata
        }
        assert refreshes["customer_source_link"] == refreshes["customer_profile"] == "full"
        assert _snapshot(lake) == incremental

    profile = {
        r["unified_customer_id"]: r for r in lake.read_arrow("gold", "customer_profile").to_pylist()
    }
    merged = profile[unified_id("dataverse", "1218")]
    assert merged["source_records"] == ["dataverse/1218", "dataverse/1239"]
    assert profile[unified_id("dataverse", "5")]["source_records"] == ["residents/2005"]
