"""Admin endpoints (load, stats, limits, reset, config) and state that survives a restart."""

from __future__ import annotations

import csv
import json
import stat

import pytest

from customer360.emulator.launcher import EmulatorAdminError, run_emulator
from customer360.generate.customers import SAMPLE_DATA
from customer360.generate.seed_table import customer_id_for_cid

# The packaged copy of the public sample (customer360/sample_data, see SOURCES.md there).
SEED = SAMPLE_DATA / "customer.csv"
NO_LIMITS = {"limits": {"enabled": False}}


def first_seed_row() -> dict[str, str]:
    with open(SEED, encoding="utf-8", newline="") as handle:
        return next(csv.DictReader(handle))


def test_load_sample_csv_reload_and_restart(tmp_path, api_client_class):
    home = tmp_path / "home"
    with run_emulator(home, config=NO_LIMITS) as emulator:
        loaded = emulator.admin("POST", "load", {"table": "crc33_customer", "path": str(SEED)})
        assert loaded == {"table": "crc33_customer", "created": 1400, "updated": 0}
        again = emulator.admin("POST", "load", {"table": "crc33_customer", "path": str(SEED)})
        assert again == {"table": "crc33_customer", "created": 0, "updated": 1400}
        api = api_client_class(emulator)
        row = first_seed_row()
        record = api.get(f"crc33_customers(crc33_cid={row['cid']})").json()
        # The same Id as the data generator's Synapse Link rows for this customer.
        assert record["crc33_customerid"] == customer_id_for_cid(int(row["cid"]))
        assert record["crc33_firstname"] == row["FirstName"]
        assert record["crc33_name"] == row["Name"]
        assert record["crc33_postcode"] == row["PostCode"]
        assert record["crc33_dateofbirth"] == row["DateOfBirth"]
        assert record["createdon"] == f"{row['Created_date']}T00:00:00Z"
        assert record["crc33_source"] == row["Source"]
        owner = emulator.admin("GET", "health")["principals"]["user:alex.admin"]
        assert record["_ownerid_value"] == owner
        count = api.get("crc33_customers/$count").text
        version_before = record["versionnumber"]
        api.close()
    config_file = home / "dataverse" / "config.json"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    principals_before = json.loads(config_file.read_text())["application_users"]
    ca_before = (home / "dataverse" / "ca.pem").read_bytes()
    with run_emulator(home, config=NO_LIMITS) as emulator:
        api = api_client_class(emulator)
        assert api.get("crc33_customers/$count").text == count == "1400"
        record = api.get(f"crc33_customers(crc33_cid={row['cid']})").json()
        assert record["versionnumber"] == version_before
        api.patch(f"crc33_customers(crc33_cid={row['cid']})", json={"crc33_city": "Cape Town"})
        after = api.get(f"crc33_customers(crc33_cid={row['cid']})").json()
        assert after["versionnumber"] > version_before
        assert after["crc33_city"] == "Cape Town"
        api.close()
    assert json.loads(config_file.read_text())["application_users"] == principals_before
    assert (home / "dataverse" / "ca.pem").read_bytes() == ca_before


def test_load_reports_the_bad_row(tmp_path, emulator):
    bad = tmp_path / "bad.csv"
    bad.write_text("cid,Name\n1,Ann\nx,Bob\n", encoding="utf-8")
    with pytest.raises(EmulatorAdminError) as raised:
        emulator.admin("POST", "load", {"table": "crc33_customer", "path": str(bad)})
    assert f"{bad} row 3 column 'cid': invalid literal for int() with base 10: 'x'" in str(
        raised.value
    )
    too_long = tmp_path / "long.csv"
    too_long.write_text("cid,PostCode\n1," + "9" * 21 + "\n", encoding="utf-8")
    with pytest.raises(EmulatorAdminError) as raised:
        emulator.admin("POST", "load", {"table": "crc33_customer", "path": str(too_long)})
    assert f"{too_long} row 2 column 'PostCode': A validation error occurred." in str(raised.value)


def test_limits_endpoint_reports_configuration_and_ceiling(emulator):
    report = emulator.admin("GET", "limits?batch_size=1000&operation=upsert&columns=20")
    assert report["effective"]["window_seconds"] == 300.0
    assert report["effective"]["max_requests"] == 6000
    assert report["effective"]["max_execution_seconds"] == 1200.0
    assert report["effective"]["max_concurrent"] == 52
    assert report["effective"]["enabled"] is False
    ceiling = report["ceiling"]
    assert ceiling["request_execution_seconds"] == pytest.approx(10.02)
    assert ceiling["binding_limit"] == "execution_time"
    assert ceiling["records_per_second_per_user"] == pytest.approx(399.2, abs=0.1)
    assert ceiling["records_per_second_all_users"] == pytest.approx(4 * 399.2, abs=0.4)
    with pytest.raises(EmulatorAdminError):
        emulator.admin("GET", "limits?operation=merge")


def test_config_changes_and_stats_and_reset(emulator, api):
    before = emulator.admin("GET", "config")
    assert "signing_key" not in before
    assert all("client_secret" not in u for u in before["application_users"])
    with pytest.raises(EmulatorAdminError, match="cannot change"):
        emulator.admin("PATCH", "config", {"tenant_id": "x"})
    with pytest.raises(EmulatorAdminError, match=r"unknown emulator config key 'limits\.nope'"):
        emulator.admin("PATCH", "config", {"limits": {"nope": 1}})
    assert api.post("crc33_customers", json={"crc33_cid": 7001}).status_code == 204
    stats = emulator.admin("GET", "stats")["users"]["c360-publisher-1"]
    assert stats["records_written"] >= 1
    assert stats["statuses"]["204"] >= 1
    assert emulator.admin("GET", "stats")["writer_cpu_seconds"] >= 0.0  # the SQLite writer's
    emulator.admin("POST", "reset", {})
    assert api.get("crc33_customers(crc33_cid=7001)").status_code == 404
    # Seeded principals are back after a reset, and the stats start again.
    users = api.get("systemusers?$select=fullname&$filter=startswith(fullname,'%23 c360')").json()
    assert len(users["value"]) == 4
    assert emulator.admin("GET", "stats")["users"]["c360-publisher-1"]["requests"] == 2


def test_in_process_mode_serves_the_same_api(tmp_path, api_client_class):
    with run_emulator(tmp_path / "inproc", config=NO_LIMITS, in_process=True) as emulator:
        assert emulator.pid is None
        assert emulator.emulator.base_url == emulator.base_url
        api = api_client_class(emulator)
        created = api.post("crc33_customers", json={"crc33_cid": 9001})
        assert created.status_code == 204
        assert (
            emulator.emulator.store.find_by_key(
                "crc33_customer", emulator.emulator.schema.tables["crc33_customer"].keys[0], (9001,)
            )
            == created.headers["OData-EntityId"][-37:-1]
        )
        api.close()
