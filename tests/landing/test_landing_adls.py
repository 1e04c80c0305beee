"""AdlsLandingZone reads the same landing files as LocalLandingZone, with the same results.

ADLS Gen2 is FAKED here because no ADLS Gen2 emulator exists (Azurite has no Data Lake ``dfs``
endpoint) and no storage account is reachable: see adls_fake.py. Two fakes over one in-memory
store, and every parity test runs on both:

- ``fake-client``: ``ADLS2Resource.adls2_client`` returns ``adls_fake.FakeDataLakeServiceClient``,
  an in-memory ``FileSystemClient`` returning the SDK's own ``PathProperties`` /
  ``DirectoryProperties`` and raising its ``ResourceNotFoundError``;
- ``sdk-http``: ``adls2_client`` returns the REAL ``azure.storage.filedatalake``
  ``DataLakeServiceClient``, talking HTTP to ``adls_http_stub.AdlsHttpStub`` on 127.0.0.1.

Only that one property is replaced; ``ADLS2Resource`` (config, credential) and everything above it
(``resources/landing.py``, ``customer360.synapse_link``, the sensors, the bronze assets) is real.
The landing files are real: a Synapse Link export written by the project's writer, the sample
finance files, a second CRM's CSV; the same bytes are read from disk by ``LocalLandingZone``.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from adls_fake import AdlsStore, FakeDataLakeServiceClient
from adls_http_stub import AdlsHttpStub
from azure.core.exceptions import ResourceNotFoundError
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.filedatalake import DataLakeServiceClient, PathProperties
from dagster_azure.adls2 import ADLS2Resource, ADLS2SASToken

from customer360.generate import generate_customer_landing
from customer360.generate.customers import SAMPLE_DATA
from customer360.generate.seed_table import (
    CUSTOMER_TABLE,
    crc33_customer_model,
    customer_rows_from_csv,
)
from customer360.synapse_link import SynapseLinkWriter, list_export_folders, read_entity
from resources.landing import AdlsLandingZone, LandingFile, LocalLandingZone
from sensors.landing import dataverse_partition_keys, finance_partition_keys

BACKENDS = ("fake-client", "sdk-http")
PARTIAL_FOLDER = "2024-06-03T12.00.00Z"  # a newer folder still being written: no model.json
ROOT_LAYOUT_TIMES = (datetime(2024, 6, 1, 10, tzinfo=UTC), datetime(2024, 6, 2, 10, tzinfo=UTC))
ROOT_LAYOUT_ROWS = (200, 50)  # rows in the first and second root-layout export
CRM2_CSV = b"resident_id,full_name,email\nR1,Ann Lee,ann@example.com\nR2,Bo Chan,bo@example.com\n"


def _drop(path: Path, data: bytes, when: datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (when.timestamp(), when.timestamp()))


@dataclass
class Layout:
    """One way of placing the landing areas in ADLS, and the local folder with the same files."""

    adls: dict  # AdlsLandingZone fields besides adls2
    local_root: Path
    folders: list[str]  # the complete export folders expected, oldest first
    finance: list[tuple[str, str]]  # (path, drop day) of every *.csv in finance, in order
    versions: int  # rows in the export


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Layout]:
    base = tmp_path_factory.mktemp("landing")

    # 1. The sample landing as `customer360 generate customers` writes it: incremental folders.
    incremental = base / "incremental"
    generated = generate_customer_landing(incremental, change_folders=3)
    _drop(  # Synapse Link has started the next folder: CSV there, model.json not yet
        incremental / "dataverse" / PARTIAL_FOLDER / CUSTOMER_TABLE / "2024.csv",
        b"half a ro",
        datetime(2024, 6, 3, 12, 0, 30, tzinfo=UTC),
    )
    finance = incremental / "finance"
    _drop(
        finance / "2024" / "06" / "late.csv",
        b"cid,spend\n1,5\n",
        datetime(2024, 6, 4, 23, 30, tzinfo=UTC),
    )
    _drop(finance / ".upload.csv", b"cid,spend\n", datetime(2024, 6, 4, tzinfo=UTC))  # hidden
    # Sorted like paths, not strings: 2024/06/late.csv comes before 2024.csv.
    _drop(finance / "2024.csv", b"cid,spend\n2,7\n", datetime(2024, 6, 4, 1, tzinfo=UTC))
    _drop(finance / "readme.txt", b"not a drop", datetime(2024, 6, 4, tzinfo=UTC))
    _drop(incremental / "crm2" / "residents.csv", CRM2_CSV, datetime(2024, 6, 5, 7, tzinfo=UTC))

    # 2. A Synapse Link container in the root (non-incremental) layout, appended to twice.
    own = base / "own_containers"
    rows = customer_rows_from_csv(SAMPLE_DATA / "customer.csv")
    writer = SynapseLinkWriter(own / "dataverse", incremental=False)
    model = crc33_customer_model()
    first, second = ROOT_LAYOUT_ROWS
    writer.write({CUSTOMER_TABLE: (model, rows[:first])}, export_time=ROOT_LAYOUT_TIMES[0])
    writer.write(
        {CUSTOMER_TABLE: (model, rows[first : first + second])}, export_time=ROOT_LAYOUT_TIMES[1]
    )
    shutil.copytree(finance, own / "finance")

    # Every *.csv of finance in the order listed, with its drop day (.upload.csv is hidden).
    expected_finance = [
        ("2024/06/late.csv", "2024-06-04"),
        ("2024.csv", "2024-06-04"),
        ("customer_finance_20240603.csv", "2024-06-03"),
        ("customer_spend.csv", "2024-06-02"),
    ]
    return {
        "prefix": Layout(
            {"file_system": "landing", "prefix": "raw/c360"},
            incremental,
            generated.folders,
            expected_finance,
            generated.versions,
        ),
        "container-root": Layout(
            {"file_system": "flat"},
            incremental,
            generated.folders,
            expected_finance,
            generated.versions,
        ),
        "own-containers": Layout(
            {
                "file_system": "landing",
                "prefix": "raw/c360",
                "areas": {"dataverse": "dataverse-env-org", "finance": "finance-drops/incoming"},
            },
            own,
            [""],
            expected_finance,
            first + second,
        ),
    }


@dataclass
class Account:
    store: AdlsStore
    stub: AdlsHttpStub
    clients: dict


@pytest.fixture(scope="module")
def account(files) -> Account:
    incremental = files["prefix"].local_root
    own = files["own-containers"].local_root
    store = AdlsStore()
    store.put_tree(incremental, "landing", "raw/c360")  # areas under a folder prefix
    store.put_tree(incremental, "flat")  # areas at the container root
    store.put_tree(own / "dataverse", "dataverse-env-org")  # a Synapse Link container
    store.put_tree(own / "finance", "finance-drops", "incoming")
    stub = AdlsHttpStub(store, account="sdkhttp")
    clients = {
        "fake-client": FakeDataLakeServiceClient(store),
        # The real SDK over HTTP, with its default transport (told to ignore proxy variables).
        "sdk-http": DataLakeServiceClient(
            stub.account_url, transport=RequestsTransport(use_env_settings=False)
        ),
    }
    with pytest.MonkeyPatch.context() as patch:
        # The one thing replaced: the service client ADLS2Resource would build for the account.
        patch.setattr(
            ADLS2Resource, "adls2_client", property(lambda self: clients[self.storage_account])
        )
        yield Account(store, stub, clients)
    stub.close()


def adls_zone(backend: str, **fields) -> AdlsLandingZone:
    adls2 = ADLS2Resource(storage_account=backend, credential=ADLS2SASToken(token="unused"))
    return AdlsLandingZone(adls2=adls2, **fields)


@pytest.fixture(
    params=[
        (b, layout) for b in BACKENDS for layout in ("prefix", "container-root", "own-containers")
    ],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def zones(request, files, account):
    backend, name = request.param
    layout = files[name]
    return adls_zone(backend, **layout.adls), LocalLandingZone(root=str(layout.local_root)), layout


def test_export_folders_and_tables_are_those_read_locally(zones):
    adls, local, layout = zones
    adls_fs, local_fs = adls.filesystem("dataverse"), local.filesystem("dataverse")
    folders = list_export_folders(adls_fs)
    assert [f.name for f in folders] == layout.folders  # the partial folder is not there
    assert folders == list_export_folders(local_fs)
    rows = 0
    for folder in folders:
        for entity in folder.entities:
            remote, here = (
                read_entity(adls_fs, folder, entity),
                read_entity(local_fs, folder, entity),
            )
            assert remote.table.equals(here.table), (folder.name, entity)
            assert remote.table.schema == here.table.schema
            assert remote.rejected == here.rejected == []
            rows += remote.table.num_rows
    assert rows == layout.versions


def test_a_folder_still_being_written_is_skipped_exactly_as_locally(zones):
    adls, local, layout = zones
    everything = list_export_folders(adls.filesystem("dataverse"), include_incomplete=True)
    assert everything == list_export_folders(local.filesystem("dataverse"), include_incomplete=True)
    if layout.folders == [""]:
        assert [(f.name, f.is_complete) for f in everything] == [("", True)]
    else:
        assert [(f.name, f.is_complete) for f in everything] == [
            *((name, True) for name in layout.folders),
            (PARTIAL_FOLDER, False),
        ]


def test_finance_files_paths_sizes_and_drop_days_match(zones):
    adls, local, layout = zones
    listed = adls.list_files("finance", ".csv")
    assert listed == local.list_files("finance", ".csv")
    assert [(f.path, f.drop_day) for f in listed] == layout.finance
    sizes = {f.path: f.size for f in listed}
    assert sizes["2024/06/late.csv"] == len(b"cid,spend\n1,5\n")
    assert sizes["customer_spend.csv"] == (SAMPLE_DATA / "customer_spend.csv").stat().st_size
    # Without a suffix: every file but the hidden one, and never a directory.
    everything = adls.list_files("finance")
    assert everything == local.list_files("finance")
    assert [f.path for f in everything] == [
        "2024/06/late.csv",
        "2024.csv",
        "customer_finance_20240603.csv",
        "customer_spend.csv",
        "readme.txt",
    ]


def test_read_bytes_round_trips(zones):
    adls, local, layout = zones
    for f in local.list_files("finance"):
        assert adls.read_bytes("finance", f.path) == local.read_bytes("finance", f.path)
    model = "model.json" if layout.folders == [""] else f"{layout.folders[-1]}/model.json"
    assert (
        adls.read_bytes("dataverse", model)
        == (layout.local_root / "dataverse" / model).read_bytes()
    )
    with pytest.raises(FileNotFoundError, match=r"no such file in ADLS: .*finance.*/nothere\.csv"):
        adls.read_bytes("finance", "nothere.csv")
    # Neither filesystem can be led outside its export root (one rule, synapse_link.path_parts).
    for fs in (adls.filesystem("dataverse"), local.filesystem("dataverse")):
        for path in ("../finance/x.csv", "a/./model.json"):
            with pytest.raises(ValueError, match="must stay inside the export root"):
                fs.read_bytes(path)


class WithoutEtags:
    """A landing zone as seen without ADLS ETags and at ADLS's one-second time resolution: what
    the fingerprints of the same files have in common in both places."""

    def __init__(self, zone) -> None:
        self.zone = zone

    def filesystem(self, area):
        return self.zone.filesystem(area)

    def list_files(self, area, suffix=""):
        return [
            replace(f, etag=None, modified=f.modified.replace(microsecond=0))
            for f in self.zone.list_files(area, suffix)
        ]


def test_sensor_partition_keys_are_the_same(zones):
    adls, local, layout = zones
    dataverse = dataverse_partition_keys(adls)
    assert sorted(dataverse) == sorted(dataverse_partition_keys(local))
    # ADLS fingerprints add each file's ETag; without it they are the local ones.
    assert dataverse_partition_keys(WithoutEtags(adls)) == dataverse_partition_keys(
        WithoutEtags(local)
    )
    assert all(f.etag for f in adls.list_files("dataverse"))
    if layout.folders == [""]:  # the root layout is split into days of SinkModifiedOn
        first, second = ROOT_LAYOUT_ROWS
        assert dataverse == dataverse_partition_keys(local)  # read from the rows: no ETags
        assert [(day, fp.split(":")[:2]) for day, fp in sorted(dataverse.items())] == [
            ("2024-06-01", [CUSTOMER_TABLE, str(first)]),
            ("2024-06-02", [CUSTOMER_TABLE, str(second)]),
        ]
    else:
        assert sorted(dataverse) == layout.folders
        assert len(set(dataverse.values())) == len(layout.folders)  # content digests
    finance = finance_partition_keys(WithoutEtags(adls))
    assert finance == finance_partition_keys(WithoutEtags(local)) == finance_partition_keys(local)
    assert (
        finance["2024-06-04"]
        == f"2024/06/late.csv:14:{datetime(2024, 6, 4, 23, 30, tzinfo=UTC).timestamp()};"
        f"2024.csv:14:{datetime(2024, 6, 4, 1, tzinfo=UTC).timestamp()};"
    )
    assert sorted(finance) == ["2024-06-02", "2024-06-03", "2024-06-04"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_other_areas_and_missing_areas(backend, files, account, tmp_path):
    layout = files["prefix"]
    adls, local = adls_zone(backend, **layout.adls), LocalLandingZone(root=str(layout.local_root))
    crm2 = adls.list_files("crm2", ".csv")
    assert crm2 == local.list_files("crm2", ".csv")
    assert [(f.path, f.size, f.drop_day) for f in crm2] == [
        ("residents.csv", len(CRM2_CSV), "2024-06-05")
    ]
    assert adls.read_bytes("crm2", "residents.csv") == CRM2_CSV
    # An area nothing was dropped in yet is empty, not an error (locally too); so is an area
    # under a prefix folder that does not exist yet.
    zones = (adls, adls_zone(backend, file_system="landing", prefix="not/there/yet"))
    for zone in (*zones, LocalLandingZone(root=str(tmp_path))):
        assert zone.list_files("nothing-yet", ".csv") == []
        assert list_export_folders(zone.filesystem("nothing-yet")) == []
        assert zone.filesystem("nothing-yet").exists("model.json") is False


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_missing_container_is_a_configuration_error(backend, account):
    for zone in (
        adls_zone(backend, file_system="no-such-container"),
        adls_zone(
            backend,
            file_system="landing",
            areas={"finance": "no-such-container/x", "dataverse": "no-such-container"},
        ),
    ):
        with pytest.raises(FileNotFoundError, match="'no-such-container' does not exist"):
            zone.list_files("finance", ".csv")
        with pytest.raises(FileNotFoundError, match="'no-such-container' does not exist"):
            list_export_folders(zone.filesystem("dataverse"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_drop_days_are_utc_whatever_the_machine_time_zone(backend, files, account, monkeypatch):
    # The SDK returns Last-Modified of a listing as a naive datetime (in UTC); reading it as
    # local time would move late.csv (23:30 UTC) to the next day on a UTC-7 machine.
    layout = files["prefix"]
    monkeypatch.setenv("TZ", "XXX+7")  # POSIX: local time is UTC-7
    time.tzset()
    try:
        late = {f.path: f for f in adls_zone(backend, **layout.adls).list_files("finance")}[
            "2024/06/late.csv"
        ]
    finally:
        monkeypatch.undo()
        time.tzset()
    assert late == LandingFile("2024/06/late.csv", 14, datetime(2024, 6, 4, 23, 30, tzinfo=UTC))
    assert late.drop_day == "2024-06-04"


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_export_folder_appears_once_synapse_link_finishes_it(backend, account, tmp_path):
    """Synapse Link writes a folder's CSV files first and its model.json last: the folder must be
    invisible until then, on ADLS exactly as on local disk."""
    written = tmp_path / "written"
    writer = SynapseLinkWriter(written, incremental=True)
    rows = customer_rows_from_csv(SAMPLE_DATA / "customer.csv")[:20]
    model = crc33_customer_model()
    one = writer.write(
        {CUSTOMER_TABLE: (model, rows[:10])}, export_time=datetime(2024, 7, 1, tzinfo=UTC)
    )
    two = writer.write(
        {CUSTOMER_TABLE: (model, rows[10:])}, export_time=datetime(2024, 7, 2, tzinfo=UTC)
    )
    container = f"synapse-{backend}"
    account.store.create_container(container)
    local_root = tmp_path / "landing"
    adls = adls_zone(backend, file_system="unused", areas={"dataverse": container})
    local = LocalLandingZone(root=str(local_root))

    def upload(relative: str) -> None:
        source = written / relative
        _drop(
            local_root / "dataverse" / relative,
            source.read_bytes(),
            datetime(2024, 7, 2, tzinfo=UTC),
        )
        account.store.put_file(
            container, relative, source.read_bytes(), datetime(2024, 7, 2, tzinfo=UTC)
        )

    def names(zone) -> list[str]:
        return [f.name for f in list_export_folders(zone.filesystem("dataverse"))]

    for path in sorted(written.rglob("*")):
        relative = path.relative_to(written).as_posix()
        if path.is_file() and not relative.startswith(two):
            upload(relative)
    assert names(adls) == names(local) == [one]
    for path in sorted((written / two).rglob("*.csv")):
        upload(path.relative_to(written).as_posix())
    assert names(adls) == names(local) == [one]  # CSV there, model.json not yet
    upload(f"{two}/model.json")
    assert names(adls) == names(local) == [one, two]
    adls_fs = adls.filesystem("dataverse")
    folder = list_export_folders(adls_fs)[1]
    assert read_entity(adls_fs, folder, CUSTOMER_TABLE).table.num_rows == 10


def test_walking_an_export_costs_one_listing_per_folder(files, account):
    layout = files["prefix"]
    fake = account.clients["fake-client"]
    fake.calls.clear()
    adls = adls_zone("fake-client", **layout.adls)
    fs = adls.filesystem("dataverse")
    for folder in list_export_folders(fs):
        read_entity(fs, folder, CUSTOMER_TABLE)
    complete = len(layout.folders)
    # Listings: root, manifests, every incremental folder (complete ones and the partial one),
    # then the table folder of each complete folder read. One HEAD: the export root itself.
    assert fake.calls["FileSystemClient.get_paths"] == 1 + 1 + (complete + 1) + complete
    assert fake.calls["DataLakeDirectoryClient.get_directory_properties"] == 1
    assert fake.calls["DataLakeFileClient.exists"] == 0
    partitions = sum(
        len(list((layout.local_root / "dataverse" / name / CUSTOMER_TABLE).glob("*.csv")))
        for name in layout.folders
    )
    models = len(layout.folders) + 1  # each folder's model.json and the manifest
    assert fake.calls["DataLakeFileClient.download_file"] == partitions + models


def test_dagster_sensors_and_bronze_assets_run_the_same_on_adls(files, account, tmp_path):
    """The real sensors and bronze assets, with the resource set up by Dagster (ADLS2Resource
    nested in AdlsLandingZone), give the same run requests and the same bronze rows."""
    from assets.bronze import customer_finance_bronze, dataverse_bronze_assets
    from resources.lakehouse import LakehouseResource
    from sensors.landing import dataverse_landing_sensor, finance_landing_sensor

    layout = files["prefix"]
    zones = {"local": LocalLandingZone(root=str(layout.local_root))}
    zones.update({backend: adls_zone(backend, **layout.adls) for backend in BACKENDS})
    folder, day = layout.folders[1], "2024-06-03"
    requested, bronze = {}, {}
    for name, zone in zones.items():
        with dg.instance_for_test() as instance:
            for sensor in (dataverse_landing_sensor, finance_landing_sensor):
                # A nested resource (ADLS2Resource) is set up inside the context manager.
                with dg.build_sensor_context(instance=instance, resources={"landing": zone}) as ctx:
                    result = sensor(ctx)
                # The run key ends with the content fingerprint, which holds ETags on ADLS.
                requested[name, sensor.name] = [
                    (r.partition_key, ":".join(r.run_key.split(":")[:2]))
                    for r in result.run_requests
                ]
            instance.add_dynamic_partitions("dataverse_export", [folder])
            instance.add_dynamic_partitions("finance_drop", [day])
            lakehouse = LakehouseResource(root_uri=str(tmp_path / name / "lake"))
            resources = {"landing": zone, "lakehouse": lakehouse}
            for assets, key in (
                (dataverse_bronze_assets, folder),
                ([customer_finance_bronze], day),
            ):
                run = dg.materialize(
                    assets, partition_key=key, instance=instance, resources=resources
                )
                assert run.success
        bronze[name] = {  # in file order: the order rows come back in is not fixed
            table: lakehouse.read_arrow("bronze", table)
            .drop_columns(["_ingested_at"])
            .sort_by([("_source_file", "ascending"), ("_source_line", "ascending")])
            for table in (CUSTOMER_TABLE, "customer_finance")
        }

    assert [key for key, _ in requested["local", "dataverse_landing_sensor"]] == layout.folders
    assert sorted(key for key, _ in requested["local", "finance_landing_sensor"]) == [
        "2024-06-02",
        "2024-06-03",
        "2024-06-04",
    ]
    local_fs = zones["local"].filesystem("dataverse")
    exported = next(f for f in list_export_folders(local_fs) if f.name == folder)
    finance_csv = layout.local_root / "finance" / "customer_finance_20240603.csv"
    assert (
        bronze["local"][CUSTOMER_TABLE].num_rows
        == read_entity(local_fs, exported, CUSTOMER_TABLE).table.num_rows
    )
    assert (
        bronze["local"]["customer_finance"].num_rows
        == len(finance_csv.read_bytes().splitlines()) - 1
    )
    for backend in BACKENDS:
        for sensor in ("dataverse_landing_sensor", "finance_landing_sensor"):
            assert requested[backend, sensor] == requested["local", sensor], (backend, sensor)
        for table in (CUSTOMER_TABLE, "customer_finance"):
            assert bronze[backend][table].equals(bronze["local"][table]), (backend, table)


def test_the_fake_client_answers_like_the_sdk(account):
    """The two fakes agree: what the in-memory client returns is what the real SDK makes of the
    HTTP stub's answers for the same store (types, naive listing times, errors)."""
    fake = account.clients["fake-client"].get_file_system_client("landing")
    real = account.clients["sdk-http"].get_file_system_client("landing")
    for path, recursive in (
        ("raw/c360/finance", True),
        ("raw/c360/dataverse", False),
        (None, False),
    ):
        listed = list(real.get_paths(path=path, recursive=recursive))
        assert list(fake.get_paths(path=path, recursive=recursive)) == listed
        assert all(type(p) is PathProperties and p.last_modified.tzinfo is None for p in listed)
    finance = {p.name: p for p in real.get_paths(path="raw/c360/finance")}
    entry = finance["raw/c360/finance/2024/06/late.csv"]
    assert (entry.is_directory, entry.content_length) == (False, 14)
    assert entry.last_modified == datetime(2024, 6, 4, 23, 30)  # naive, in UTC
    assert finance["raw/c360/finance/2024"].is_directory is True
    for client in (fake, real):
        with pytest.raises(ResourceNotFoundError):
            list(client.get_paths(path="raw/c360/nothing"))
        folder = client.get_directory_client("raw/c360/finance").get_directory_properties()
        assert folder.metadata == {"hdi_isfolder": "true"}
        a_file = client.get_directory_client("raw/c360/finance/2024.csv").get_directory_properties()
        assert a_file.metadata == {}
        assert a_file.last_modified == datetime(2024, 6, 4, 1, tzinfo=UTC)
        with pytest.raises(ResourceNotFoundError):
            client.get_directory_client("raw/c360/nothing").get_directory_properties()
        assert client.get_file_client("raw/c360/finance").exists() is True  # a directory too
        assert client.get_file_client("raw/c360/nothing").exists() is False
        data = client.get_file_client("raw/c360/finance/2024.csv").download_file().readall()
        assert data == b"cid,spend\n2,7\n"
    assert account.stub.requests["GET list-paths"] > 0  # the SDK really went over HTTP


def test_azure_mode_wires_container_prefix_and_areas_from_the_environment(monkeypatch):
    from customer360.settings import get_settings
    from resources import build_resources, landing_areas

    monkeypatch.setenv("C360_ENV", "azure")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "acct")
    monkeypatch.delenv("C360_AZURE_LANDING_CONTAINER", raising=False)
    monkeypatch.setenv("C360_AZURE_LANDING_PREFIX", "incoming")
    monkeypatch.setenv(
        "C360_AZURE_LANDING_AREAS", "dataverse=dataverse-env-org, finance=finance/drops"
    )
    landing = build_resources(get_settings())["landing"]
    assert (landing.file_system, landing.prefix) == ("landing", "incoming")
    assert landing.areas == {"dataverse": "dataverse-env-org", "finance": "finance/drops"}
    assert landing_areas("") == {}
    with pytest.raises(ValueError, match="'finance' is not area=container"):
        landing_areas("finance")
