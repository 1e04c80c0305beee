"""SynapseLinkWriter: exact bytes, layouts, schema evolution, and writer → reader round trips."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customer360.synapse_link import (
    Attribute,
    EntityModel,
    LocalFileSystem,
    SynapseLinkFormatError,
    SynapseLinkWriter,
    list_export_folders,
    parse_model_json,
    read_entity,
    read_entity_folders,
)

T0 = datetime(2024, 1, 5, 10, 15, tzinfo=UTC)
ID1 = "10bff458-d47a-4924-804b-31c0a83108e6"
ID2 = "2b4bc74e-2132-4d8e-8572-48ce4260f182"


def every_type_model(granularity: str = "Year") -> EntityModel:
    return EntityModel.for_dataverse_table(
        "crc33_thing",
        [
            Attribute("crc33_name", "string", max_length=200),
            Attribute("crc33_amount", "decimal", precision=19, scale=4),
            Attribute("crc33_ratio", "double"),
            Attribute("crc33_count", "int32"),
            Attribute("crc33_big", "int64"),
            Attribute("crc33_flag", "boolean"),
            Attribute("crc33_when", "dateTime"),
            Attribute("crc33_owner", "guid"),
            Attribute("createdon", "dateTimeOffset"),
            Attribute("modifiedon", "dateTime"),
        ],
        partition_granularity=granularity,
    )


FULL_ROW = {
    "Id": ID1,
    "SinkCreatedOn": datetime(2024, 1, 5, 0, 0, 1, tzinfo=UTC),
    "SinkModifiedOn": datetime(2024, 1, 5, 12, 30, 0, tzinfo=UTC),
    "crc33_name": 'Contoso, "Ltd"\nline 2',
    "crc33_amount": Decimal("-1234.5"),
    "crc33_ratio": 0.1,
    "crc33_count": -7,
    "crc33_big": 2**40,
    "crc33_flag": True,
    "crc33_when": datetime(2020, 1, 1, 1, 15, 0, 250000, tzinfo=timezone(timedelta(hours=1))),
    "crc33_owner": ID2.upper(),
    "createdon": datetime(2021, 9, 12, 8, 0, tzinfo=UTC),
    "modifiedon": datetime(2021, 9, 13, tzinfo=UTC),
    "versionnumber": 1111000001,
    "IsDelete": False,
}
FULL_ROW_CSV = (
    f"{ID1},1/5/2024 12:00:01 AM,1/5/2024 12:30:00 PM,"
    '"Contoso, ""Ltd""\nline 2",-1234.5,0.1,-7,1099511627776,True,'
    f"2020-01-01T00:15:00.2500000Z,{ID2},1111000001,"
    "2021-09-12T08:00:00.0000000+00:00,2021-09-13T00:00:00.0000000Z,False\n"
)


def test_incremental_write_produces_synapse_link_bytes_and_layout(tmp_path):
    model = every_type_model()

    folder = SynapseLinkWriter(tmp_path).write({model.name: (model, [FULL_ROW])}, export_time=T0)

    assert folder == "2024-01-05T10.15.00Z"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "2024-01-05T10.15.00Z",
        "2024-01-05T10.15.00Z/crc33_thing",
        "2024-01-05T10.15.00Z/crc33_thing/2021.csv",
        "2024-01-05T10.15.00Z/model.json",
        "Microsoft.Athena.TrickleFeedService",
        "Microsoft.Athena.TrickleFeedService/crc33_thing-model.json",
    ]
    assert (tmp_path / folder / "crc33_thing/2021.csv").read_bytes() == FULL_ROW_CSV.encode()
    document = json.loads((tmp_path / folder / "model.json").read_text())
    assert document["annotations"] == [{"name": "customer360:ExportComplete", "value": "true"}]
    (entity,) = document["entities"]
    assert entity["partitions"] == [
        {"name": "2021", "location": "2024-01-05T10.15.00Z/crc33_thing/2021.csv"}
    ]
    assert entity["annotations"] == [
        {"name": "Athena:PartitionGranularity", "value": "Year"},
        {"name": "Athena:InitialSyncState", "value": "Completed"},
        {"name": "Athena:InitialSyncDataCompletedTime", "value": "1/5/2024 10:15:00 AM"},
    ]
    assert parse_model_json((tmp_path / folder / "model.json").read_bytes()) == {
        model.name: EntityModel(
            model.name,
            model.attributes,
            annotations={
                "Athena:InitialSyncState": "Completed",
                "Athena:InitialSyncDataCompletedTime": "1/5/2024 10:15:00 AM",
            },
            partitions=("2021",),
        )
    }
    manifest = tmp_path / "Microsoft.Athena.TrickleFeedService/crc33_thing-model.json"
    assert parse_model_json(manifest.read_bytes())[model.name].attributes == model.attributes


def test_crlf_line_terminator_is_configurable(tmp_path):
    model = every_type_model()
    rows = [{"Id": ID1, "crc33_name": "a"}, {"Id": ID2, "crc33_name": "b\r\nc"}]

    SynapseLinkWriter(tmp_path, line_terminator="\r\n").write(
        {model.name: (model, rows)}, export_time=T0
    )

    data = (tmp_path / "2024-01-05T10.15.00Z/crc33_thing/2024.csv").read_bytes()
    assert (
        data
        == (
            f"{ID1},1/5/2024 10:15:00 AM,1/5/2024 10:15:00 AM,a,,,,,,,,,,,\r\n"
            f'{ID2},1/5/2024 10:15:00 AM,1/5/2024 10:15:00 AM,"b\r\nc",,,,,,,,,,,\r\n'
        ).encode()
    )


def test_partition_comes_from_createdon_else_sink_created_on(tmp_path):
    model = every_type_model("Month")
    without_createdon = EntityModel.for_dataverse_table("crc33_log", [Attribute("a", "string")])
    rows = [
        {
            "Id": ID1,
            "createdon": datetime(2021, 9, 30, 23, 30, tzinfo=timezone(timedelta(hours=-2))),
        },
        {"Id": ID2, "SinkCreatedOn": datetime(2019, 2, 1, tzinfo=UTC)},  # no createdon value
    ]

    SynapseLinkWriter(tmp_path).write(
        {model.name: (model, rows), without_createdon.name: (without_createdon, [{"Id": ID1}])},
        export_time=T0,
    )

    folder = tmp_path / "2024-01-05T10.15.00Z"
    assert sorted(p.name for p in (folder / "crc33_thing").iterdir()) == [
        "2019-02.csv",
        "2021-10.csv",  # 23:30 at -02:00 is October 1st in UTC
    ]
    assert [p.name for p in (folder / "crc33_log").iterdir()] == ["2024.csv"]


def test_root_layout_appends_and_rewrites_model_json(tmp_path):
    model = every_type_model()
    writer = SynapseLinkWriter(tmp_path, incremental=False)
    first = {"Id": ID1, "createdon": datetime(2021, 1, 1, tzinfo=UTC), "versionnumber": 1}
    second = {"Id": ID1, "createdon": datetime(2021, 1, 1, tzinfo=UTC), "versionnumber": 2}
    other = EntityModel.for_dataverse_table("crc33_other", [Attribute("a", "string")])

    assert writer.write({model.name: (model, [first])}, export_time=T0) == ""
    writer.write({other.name: (other, [{"Id": ID2, "a": "x"}])}, export_time=T0)
    writer.write({model.name: (model, [second])}, export_time=T0 + timedelta(minutes=15))

    fs = LocalFileSystem(tmp_path)
    (folder,) = list_export_folders(fs)
    assert (folder.name, sorted(folder.entities)) == ("", ["crc33_other", "crc33_thing"])
    table = read_entity(fs, folder, model.name).table
    assert table.select(["versionnumber", "SinkModifiedOn", "_source_line"]).to_pylist() == [
        {"versionnumber": 1, "SinkModifiedOn": T0, "_source_line": 1},
        {
            "versionnumber": 2,
            "SinkModifiedOn": T0 + timedelta(minutes=15),
            "_source_line": 2,
        },
    ]
    document = json.loads((tmp_path / "model.json").read_text())
    assert "annotations" not in document  # the root layout is always complete
    assert [e["partitions"] for e in document["entities"]] == [
        [{"name": "2021", "location": "crc33_thing/2021.csv"}],
        [{"name": "2024", "location": "crc33_other/2024.csv"}],
    ]


def test_added_column_leaves_older_files_untouched(tmp_path):
    old = every_type_model()
    new = old.with_added_attributes(Attribute("crc33_tier", "int32"))
    writer = SynapseLinkWriter(tmp_path)
    writer.write({old.name: (old, [{"Id": ID1, "crc33_name": "old"}])}, export_time=T0)
    old_file = tmp_path / "2024-01-05T10.15.00Z/crc33_thing/2024.csv"
    before = old_file.read_bytes()

    writer.write(
        {new.name: (new, [{"Id": ID2, "crc33_name": "new", "crc33_tier": 3}])},
        export_time=T0 + timedelta(minutes=15),
    )

    assert old_file.read_bytes() == before
    fs = LocalFileSystem(tmp_path)
    result = read_entity_folders(fs, list_export_folders(fs), new.name)
    assert result.table.select(["crc33_name", "crc33_tier"]).to_pylist() == [
        {"crc33_name": "old", "crc33_tier": None},
        {"crc33_name": "new", "crc33_tier": 3},
    ]


def test_added_column_in_the_root_layout_appends_longer_rows_to_the_same_file(tmp_path):
    old = every_type_model()
    new = old.with_added_attributes(Attribute("crc33_tier", "int32"))
    writer = SynapseLinkWriter(tmp_path, incremental=False)
    writer.write({old.name: (old, [{"Id": ID1, "crc33_name": "old"}])}, export_time=T0)
    writer.write({new.name: (new, [{"Id": ID2, "crc33_tier": 3}])}, export_time=T0)

    lines = (tmp_path / "crc33_thing/2024.csv").read_text().splitlines()
    fs = LocalFileSystem(tmp_path)
    (folder,) = list_export_folders(fs)
    result = read_entity(fs, folder, new.name)

    assert [line.count(",") for line in lines] == [14, 15]  # the old row stays short
    assert folder.entities[new.name].column_names == new.column_names
    assert result.rejected == []
    assert result.table.select(["Id", "crc33_name", "crc33_tier"]).to_pylist() == [
        {"Id": ID1, "crc33_name": "old", "crc33_tier": None},
        {"Id": ID2, "crc33_name": None, "crc33_tier": 3},
    ]


def test_model_that_reorders_exported_columns_is_refused(tmp_path):
    model = every_type_model()
    writer = SynapseLinkWriter(tmp_path)
    writer.write({model.name: (model, [])}, export_time=T0)
    reordered = EntityModel(
        model.name, (model.attributes[1], model.attributes[0], *model.attributes[2:])
    )

    with pytest.raises(SynapseLinkFormatError, match="only append new ones"):
        writer.write({model.name: (reordered, [])}, export_time=T0 + timedelta(minutes=15))


def test_second_write_to_the_same_interval_is_refused(tmp_path):
    model = every_type_model()
    writer = SynapseLinkWriter(tmp_path)
    writer.write({model.name: (model, [])}, export_time=T0)

    with pytest.raises(FileExistsError, match=r"2024-01-05T10\.15\.00Z already exists"):
        writer.write({model.name: (model, [])}, export_time=T0)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"Id": ID1, "crc33_nmae": "typo"}, r"row 0: unknown columns \['crc33_nmae'\]"),
        ({"Id": "nope"}, "column 'Id' \\(guid\\): expected a GUID"),
        ({"Id": ID1, "crc33_count": 2**31}, "out of range for int32"),
        ({"Id": ID1, "crc33_count": True}, "expected int"),
        ({"Id": ID1, "crc33_amount": Decimal("1.23456")}, "has more than 4 decimals"),
        ({"Id": ID1, "crc33_amount": Decimal("1e20")}, "does not fit 19,4"),
        ({"Id": ID1, "crc33_ratio": float("nan")}, "is not finite"),
        ({"Id": ID1, "crc33_flag": "True"}, "expected bool"),
        ({"Id": ID1, "crc33_when": datetime(2020, 1, 1)}, "naive datetime"),
        ({"Id": ID1, "crc33_name": "x" * 201}, "201 characters > maxLength 200"),
    ],
)
def test_invalid_rows_are_refused_naming_table_row_and_column(tmp_path, row, message):
    model = every_type_model()

    with pytest.raises((ValueError, TypeError), match=message):
        SynapseLinkWriter(tmp_path).write({model.name: (model, [row])}, export_time=T0)
    assert not (tmp_path / "2024-01-05T10.15.00Z").exists()  # nothing half-written


def test_writing_behind_the_newest_folder_is_refused(tmp_path):
    model = every_type_model()
    writer = SynapseLinkWriter(tmp_path)
    writer.write({model.name: (model, [])}, export_time=T0)

    with pytest.raises(ValueError, match="must be written in time order"):
        writer.write({model.name: (model, [])}, export_time=T0 - timedelta(minutes=15))


def test_naive_export_time_is_refused(tmp_path):
    with pytest.raises(ValueError, match="export_time must be timezone-aware"):
        SynapseLinkWriter(tmp_path).write({}, export_time=datetime(2024, 1, 5))


def test_delete_row_round_trips_as_an_is_delete_marker(tmp_path):
    model = every_type_model()
    when = T0 + timedelta(hours=1)
    marker = SynapseLinkWriter.delete_row(model, ID1, 1111000002, when)

    SynapseLinkWriter(tmp_path, incremental=False).write(
        {model.name: (model, [marker])}, export_time=when
    )

    assert marker == {
        "Id": ID1,
        "SinkCreatedOn": when,
        "SinkModifiedOn": when,
        "versionnumber": 1111000002,
        "IsDelete": True,
    }
    assert (tmp_path / "crc33_thing/2024.csv").read_text() == (
        f"{ID1},1/5/2024 11:15:00 AM,1/5/2024 11:15:00 AM,,,,,,,,,1111000002,,,True\n"
    )
    fs = LocalFileSystem(tmp_path)
    (folder,) = list_export_folders(fs)
    (row,) = read_entity(fs, folder, model.name).table.to_pylist()
    assert (row["Id"], row["IsDelete"], row["versionnumber"], row["crc33_name"]) == (
        ID1,
        True,
        1111000002,
        None,
    )


def test_round_trip_gives_back_exactly_the_rows_written(tmp_path):
    model = every_type_model()
    awkward = [
        "comma, inside",
        'quote " inside',
        '"starts and ends with quotes"',
        "new\nline",
        "carriage\rreturn",
        "crlf\r\ninside",
        "  padded  ",
        "unicode: Zoë 東京 🚀",
        "trailing newline\n",
        ",",
        '"',
    ]
    rows = []
    for index, text in enumerate(awkward):
        row = dict(FULL_ROW)
        row.update(
            Id=f"00000000-0000-0000-0000-{index:012d}",
            crc33_name=text,
            crc33_when=datetime(2020, 1, 1, tzinfo=UTC) + timedelta(microseconds=index * 1001),
        )
        rows.append(row)
    rows.append({"Id": "00000000-0000-0000-0000-000000000099"})  # every other column null

    SynapseLinkWriter(tmp_path).write({model.name: (model, rows)}, export_time=T0)

    fs = LocalFileSystem(tmp_path)
    (folder,) = list_export_folders(fs)
    result = read_entity(fs, folder, model.name)
    assert result.rejected == []
    read_back = [
        {k: v for k, v in row.items() if not k.startswith("_")} for row in result.table.to_pylist()
    ]
    expected = [_as_read(row, model) for row in rows]
    assert sorted(read_back, key=lambda r: r["Id"]) == sorted(expected, key=lambda r: r["Id"])


def _as_read(row: dict, model: EntityModel) -> dict:
    """What the reader returns for a written row: UTC instants, lower-case GUIDs, Sink defaults."""
    out = {}
    for name in model.column_names:
        value = row.get(name)
        if name in ("SinkCreatedOn", "SinkModifiedOn") and value is None:
            value = T0
        if isinstance(value, datetime):
            value = value.astimezone(UTC)
        elif isinstance(value, date):
            value = datetime(value.year, value.month, value.day, tzinfo=UTC)
        if isinstance(value, str) and model.attribute(name).data_type == "guid":
            value = value.lower()
        out[name] = value
    return out


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    texts=st.lists(
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",)),  # surrogates are not text
            min_size=1,  # the format cannot tell "" from null (both are an empty field)
            max_size=40,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_string_values_round_trip_property(tmp_path_factory, texts):
    root = tmp_path_factory.mktemp("roundtrip")
    model = EntityModel.for_dataverse_table(
        "t", [Attribute("a", "string"), Attribute("b", "string")]
    )
    rows = [
        {"Id": f"00000000-0000-0000-0000-{i:012d}", "a": text, "b": text[::-1]}
        for i, text in enumerate(texts)
    ]

    SynapseLinkWriter(root).write({"t": (model, rows)}, export_time=T0)

    fs = LocalFileSystem(root)
    (folder,) = list_export_folders(fs)
    result = read_entity(fs, folder, "t")
    assert result.rejected == []
    assert result.table.select(["a", "b"]).to_pylist() == [
        {"a": text, "b": text[::-1]} for text in texts
    ]
