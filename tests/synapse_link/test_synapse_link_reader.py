"""Reading hand-written Synapse Link exports (literal bytes written into tmp_path)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from synapse_link_fixtures import (
    ACCOUNT_COLUMNS,
    ACCOUNT_MODEL_JSON,
    ID1,
    ID2,
    ID3,
    ID4,
    contact_model_json,
    put,
)

from customer360.synapse_link import (
    ExportFolder,
    LocalFileSystem,
    RejectedRow,
    SynapseLinkFormatError,
    arrow_schema,
    entity_files,
    list_export_folders,
    parse_entity_csv,
    parse_model_json,
    read_entity,
    read_entity_folders,
)
from customer360.synapse_link.csv_records import SourceText, iter_records

INGESTION = ["_source_file", "_source_line", "_export_folder"]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def rows_of(table: pa.Table, *columns: str) -> list[tuple]:
    data = table.select(list(columns)).to_pylist()
    return [tuple(row[c] for c in columns) for row in data]


def only_folder(root) -> ExportFolder:
    (folder,) = list_export_folders(LocalFileSystem(root))
    return folder


def contact_folder(root, csv_text: str | bytes, *, file: str = "2021-09.csv") -> ExportFolder:
    put(root, "model.json", contact_model_json())
    put(root, f"contact/{file}", csv_text)
    return only_folder(root)


# ---------------------------------------------------------------------------------------------
# layouts


ACCOUNT_2020 = (
    f'{ID1},"1/1/2020 0:00:01 PM","1/1/2020 0:00:01 PM","Contoso, Ltd",1234.500000,0.25,120,'
    '1111000001,"2020-01-01T00:15:00.0000000+00:00","2020-01-01T00:15:00.0000000Z",\n'
    f'{ID2.upper()},12/31/2020 12:00:00 AM,12/31/2020 12:30:00 PM,"He said ""hi""",-0.000001,'
    "-1.5e3,0,1111000002,2020-12-31T23:59:59.9999999+02:00,2020-12-31T23:59:59.1234567Z,False\n"
    f'{ID3},"9/12/2021 10:05:07 AM","9/12/2021 10:05:07 AM",,,,,1111000003,,,True\n'
)
ACCOUNT_2021 = f"{ID4},9/12/2021 10:05:07 AM,9/12/2021 10:05:07 AM,Fabrikam,,,7,5,,,\n"


def test_root_layout_with_year_partitions_reads_every_cdm_type(tmp_path):
    put(tmp_path, "model.json", ACCOUNT_MODEL_JSON)
    put(tmp_path, "account/2020.csv", ACCOUNT_2020)
    put(tmp_path, "account/2021.csv", ACCOUNT_2021)
    fs = LocalFileSystem(tmp_path)

    folders = list_export_folders(fs)
    result = read_entity(fs, folders[0], "account")

    assert [(f.name, f.is_complete, list(f.entities)) for f in folders] == [("", True, ["account"])]
    assert result.rejected == []
    assert result.table.schema == arrow_schema(
        parse_model_json(ACCOUNT_MODEL_JSON)["account"], include_ingestion_columns=True
    )
    assert result.table.to_pylist() == [
        {
            "Id": ID1,
            "SinkCreatedOn": utc(2020, 1, 1, 12, 0, 1),
            "SinkModifiedOn": utc(2020, 1, 1, 12, 0, 1),
            "name": "Contoso, Ltd",
            "revenue": Decimal("1234.500000"),
            "ratio": 0.25,
            "employees": 120,
            "versionnumber": 1111000001,
            "createdon": utc(2020, 1, 1, 0, 15),
            "modifiedon": utc(2020, 1, 1, 0, 15),
            "IsDelete": None,
            "_source_file": "account/2020.csv",
            "_source_line": 1,
            "_export_folder": "",
        },
        {
            "Id": ID2,  # GUIDs are normalised to lower case
            "SinkCreatedOn": utc(2020, 12, 31, 0, 0, 0),  # 12 AM
            "SinkModifiedOn": utc(2020, 12, 31, 12, 30, 0),  # 12 PM
            "name": 'He said "hi"',
            "revenue": Decimal("-0.000001"),
            "ratio": -1500.0,
            "employees": 0,
            "versionnumber": 1111000002,
            "createdon": utc(2020, 12, 31, 21, 59, 59, 999999),  # +02:00 → UTC, 100 ns cut
            "modifiedon": utc(2020, 12, 31, 23, 59, 59, 123456),
            "IsDelete": False,
            "_source_file": "account/2020.csv",
            "_source_line": 2,
            "_export_folder": "",
        },
        {
            "Id": ID3,
            "SinkCreatedOn": utc(2021, 9, 12, 10, 5, 7),
            "SinkModifiedOn": utc(2021, 9, 12, 10, 5, 7),
            "name": None,
            "revenue": None,
            "ratio": None,
            "employees": None,
            "versionnumber": 1111000003,
            "createdon": None,
            "modifiedon": None,
            "IsDelete": True,  # the append-only delete marker
            "_source_file": "account/2020.csv",
            "_source_line": 3,
            "_export_folder": "",
        },
        {
            "Id": ID4,
            "SinkCreatedOn": utc(2021, 9, 12, 10, 5, 7),
            "SinkModifiedOn": utc(2021, 9, 12, 10, 5, 7),
            "name": "Fabrikam",
            "revenue": None,
            "ratio": None,
            "employees": 7,
            "versionnumber": 5,
            "createdon": None,
            "modifiedon": None,
            "IsDelete": None,
            "_source_file": "account/2021.csv",
            "_source_line": 1,
            "_export_folder": "",
        },
    ]


def test_incremental_layout_with_month_partitions(tmp_path):
    first, second = "2024-01-05T10.15.00Z", "2024-01-05T10.30.00Z"
    put(tmp_path, f"{first}/model.json", contact_model_json())
    put(tmp_path, f"{first}/contact/2021-09.csv", f"{ID1},1/5/2024 10:15:00 AM,,Ann,1,\n")
    put(tmp_path, f"{first}/contact/2021-10.csv", f"{ID2},1/5/2024 10:15:00 AM,,Bob,2,\n")
    put(tmp_path, f"{second}/model.json", contact_model_json(complete=True))
    put(tmp_path, f"{second}/contact/2021-09.csv", f"{ID1},1/5/2024 10:30:00 AM,,,3,True\n")
    fs = LocalFileSystem(tmp_path)

    folders = list_export_folders(fs)
    tables = [read_entity(fs, folder, "contact").table for folder in folders]

    assert [(f.name, f.is_complete) for f in folders] == [(first, True), (second, True)]
    assert folders[0].entities["contact"].partition_granularity == "Month"
    assert folders[1].exported_at == utc(2024, 1, 5, 10, 30)
    assert rows_of(tables[0], "Id", "fullname", "versionnumber", *INGESTION) == [
        (ID1, "Ann", 1, f"{first}/contact/2021-09.csv", 1, first),
        (ID2, "Bob", 2, f"{first}/contact/2021-10.csv", 1, first),
    ]
    assert rows_of(tables[1], "Id", "fullname", "versionnumber", "IsDelete", "_export_folder") == [
        (ID1, None, 3, True, second)
    ]


def test_newest_incremental_folder_is_skipped_until_a_newer_one_exists(tmp_path):
    older, newest = "2024-01-05T10.15.00Z", "2024-01-05T10.30.00Z"
    for name in (older, newest):
        put(tmp_path, f"{name}/model.json", contact_model_json())
        put(tmp_path, f"{name}/contact/2021-09.csv", f"{ID1},,,Ann,1,\n")
    put(tmp_path, "2024-01-05T10.45.00Z/contact/2021-09.csv", f"{ID1},,,Ann,2,\n")  # no model yet
    fs = LocalFileSystem(tmp_path)

    complete = list_export_folders(fs)
    everything = list_export_folders(fs, include_incomplete=True)

    assert [f.name for f in complete] == [older, newest]
    assert [(f.name, f.is_complete) for f in everything] == [
        (older, True),
        (newest, True),
        ("2024-01-05T10.45.00Z", False),
    ]
    assert everything[2].entities == {}  # no model.json: in progress, not read
    assert everything[2].unmodelled_tables == ()


def test_complete_marker_makes_the_newest_folder_readable(tmp_path):
    put(tmp_path, "2024-01-05T10.15.00Z/model.json", contact_model_json(complete=True))
    put(tmp_path, "2024-01-05T10.15.00Z/contact/2021-09.csv", f"{ID1},,,Ann,1,\n")
    put(tmp_path, "2024-01-05T10.30.00Z/model.json", contact_model_json(complete=False))
    fs = LocalFileSystem(tmp_path)

    complete = list_export_folders(fs)

    assert [(f.name, f.is_complete) for f in complete] == [("2024-01-05T10.15.00Z", True)]
    assert read_entity(fs, complete[0], "contact").table.num_rows == 1


def test_doc_style_folder_names_are_recognised_and_sorted_by_time(tmp_path):
    put(tmp_path, "2024-01-05T10:15:00.000Z/model.json", contact_model_json(complete=True))
    put(tmp_path, "2023-12-31T23.45.00Z/model.json", contact_model_json(complete=True))

    names = [f.name for f in list_export_folders(LocalFileSystem(tmp_path))]

    assert names == ["2023-12-31T23.45.00Z", "2024-01-05T10:15:00.000Z"]


def test_trickle_feed_manifests_replace_a_missing_root_model_json(tmp_path):
    put(tmp_path, "Microsoft.Athena.TrickleFeedService/account-model.json", ACCOUNT_MODEL_JSON)
    put(tmp_path, "Microsoft.Athena.TrickleFeedService/account-EntityMetadata.json", "{}")
    put(tmp_path, "account/2021.csv", ACCOUNT_2021)
    put(tmp_path, "OptionsetMetadata/OptionsetMetadata.csv", "account,statecode,0,Active\n")
    fs = LocalFileSystem(tmp_path)

    (folder,) = list_export_folders(fs)
    result = read_entity(fs, folder, "account")

    assert (folder.name, list(folder.entities), folder.unmodelled_tables) == ("", ["account"], ())
    assert rows_of(result.table, "Id", "name", "employees") == [(ID4, "Fabrikam", 7)]


def test_trickle_feed_manifests_describe_tables_a_folder_model_json_does_not_list(tmp_path):
    put(tmp_path, "Microsoft.Athena.TrickleFeedService/contact-model.json", contact_model_json())
    put(tmp_path, "2024-01-05T10.15.00Z/model.json", ACCOUNT_MODEL_JSON)
    put(tmp_path, "2024-01-05T10.15.00Z/contact/2021-09.csv", f"{ID1},,,Ann,1,\n")
    put(tmp_path, "2024-01-05T10.30.00Z/model.json", contact_model_json())
    fs = LocalFileSystem(tmp_path)

    folders = list_export_folders(fs)
    result = read_entity(fs, folders[0], "contact")

    assert [f.name for f in folders] == ["2024-01-05T10.15.00Z"]  # the newest is incomplete
    assert sorted(folders[0].entities) == ["account", "contact"]
    assert rows_of(result.table, "Id", "fullname") == [(ID1, "Ann")]


def test_folder_without_model_json_is_in_progress_and_never_read(tmp_path):
    # Synapse Link writes a folder's model.json when the folder is done: without it the folder
    # is still being written, even when a newer folder exists (and a manifest could type it).
    put(tmp_path, "Microsoft.Athena.TrickleFeedService/contact-model.json", contact_model_json())
    put(tmp_path, "2024-01-05T10.15.00Z/contact/2021-09.csv", f"{ID1},,,Ann,1,\n")
    put(tmp_path, "2024-01-05T10.30.00Z/model.json", contact_model_json(complete=True))
    fs = LocalFileSystem(tmp_path)

    folders = list_export_folders(fs)
    everything = list_export_folders(fs, include_incomplete=True)

    assert [f.name for f in folders] == ["2024-01-05T10.30.00Z"]
    first = everything[0]
    assert (first.name, first.is_complete, first.entities) == ("2024-01-05T10.15.00Z", False, {})


def test_snapshot_subfolder_and_non_csv_files_are_not_read(tmp_path):
    folder = contact_folder(tmp_path, f"{ID1},,,Ann,1,\n")
    put(tmp_path, "contact/Snapshot/2021-09_20240105.csv", f"{ID1},,,Ann,1,\n")
    put(tmp_path, "contact/readme.txt", "not data")
    fs = LocalFileSystem(tmp_path)

    assert entity_files(fs, folder, "contact") == ["contact/2021-09.csv"]
    assert read_entity(fs, folder, "contact").table.num_rows == 1


def test_table_folder_without_any_model_is_reported(tmp_path):
    put(tmp_path, "model.json", contact_model_json())
    put(tmp_path, "lead/2021.csv", f"{ID1},,,x\n")

    (folder,) = list_export_folders(LocalFileSystem(tmp_path))

    assert folder.unmodelled_tables == ("lead",)


def test_missing_export_root_has_no_folders(tmp_path):
    assert list_export_folders(LocalFileSystem(tmp_path / "not-there")) == []


def test_table_listed_without_files_reads_as_an_empty_typed_table(tmp_path):
    put(tmp_path, "model.json", ACCOUNT_MODEL_JSON)
    fs = LocalFileSystem(tmp_path)

    result = read_entity(fs, only_folder(tmp_path), "account")

    assert result.table.num_rows == 0
    assert result.table.column_names == ACCOUNT_COLUMNS + INGESTION


def test_unknown_table_is_a_clear_error(tmp_path):
    folder = contact_folder(tmp_path, "")
    with pytest.raises(KeyError, match="the root layout has no table 'lead' \\(tables: contact\\)"):
        read_entity(LocalFileSystem(tmp_path), folder, "lead")


def test_broken_model_json_fails_only_its_own_folder_naming_file_and_json_error(tmp_path):
    put(tmp_path, "2024-01-05T10.15.00Z/model.json", '{"entities": [')
    put(tmp_path, "2024-01-05T10.15.00Z/contact/2021-09.csv", f"{ID1},,,Ann,1,\n")
    put(tmp_path, "2024-01-05T10.30.00Z/model.json", contact_model_json(complete=True))
    put(tmp_path, "2024-01-05T10.30.00Z/contact/2021-09.csv", f"{ID2},,,Bob,2,\n")
    fs = LocalFileSystem(tmp_path)

    broken, good = list_export_folders(fs)  # listing the area does not raise

    assert (broken.name, broken.is_complete, broken.entities) == ("2024-01-05T10.15.00Z", True, {})
    assert broken.error.startswith("2024-01-05T10.15.00Z/model.json: model.json is not valid JSON")
    assert "line 1 column" in broken.error  # the JSON decoder's own position
    assert good.error is None
    assert rows_of(read_entity(fs, good, "contact").table, "Id") == [(ID2,)]
    with pytest.raises(SynapseLinkFormatError, match=r"2024-01-05T10\.15\.00Z/model\.json"):
        read_entity(fs, broken, "contact")


def test_broken_root_model_json_and_manifest_are_folder_errors_not_listing_errors(tmp_path):
    put(tmp_path, "model.json", b'{"entities": [\xff')
    put(tmp_path, "Microsoft.Athena.TrickleFeedService/lead-model.json", "nope")
    put(tmp_path, "2024-01-05T10.15.00Z/model.json", contact_model_json(complete=True))
    put(tmp_path, "2024-01-05T10.15.00Z/lead/2021.csv", f"{ID1},,,x\n")

    root, folder = list_export_folders(LocalFileSystem(tmp_path))

    assert root.error.startswith("model.json: model.json is not UTF-8")
    assert folder.error.startswith("Microsoft.Athena.TrickleFeedService/lead-model.json: ")
    assert "contact" in folder.entities


def test_half_written_model_json_of_the_newest_folder_means_incomplete(tmp_path):
    put(tmp_path, "2024-01-05T10.15.00Z/model.json", '{"entities": [')

    folders = list_export_folders(LocalFileSystem(tmp_path), include_incomplete=True)

    assert [(f.name, f.is_complete) for f in folders] == [("2024-01-05T10.15.00Z", False)]


# ---------------------------------------------------------------------------------------------
# CSV dialect


def test_multiline_quoted_values_and_doubled_quotes_keep_physical_line_numbers(tmp_path):
    text = (
        f'{ID1},,,"line one\nline two, with comma",1,\n'
        f'{ID2},,,"say ""hi""\r\nand ""bye""",2,\n'
        f"{ID3},,,plain,3,\n"
    )
    folder = contact_folder(tmp_path, text)

    result = read_entity(LocalFileSystem(tmp_path), folder, "contact")

    assert result.rejected == []
    assert rows_of(result.table, "fullname", "_source_line") == [
        ("line one\nline two, with comma", 1),
        ('say "hi"\r\nand "bye"', 3),
        ("plain", 5),
    ]


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR-only"])
def test_line_endings_lf_crlf_and_cr_only(tmp_path, ending):
    text = ending.join(
        [f"{ID1},,,Ann,1,", f'{ID2},,,"two{ending}lines",2,', f"{ID3},,,Cy,3,True", ""]
    )
    folder = contact_folder(tmp_path, text)

    result = read_entity(LocalFileSystem(tmp_path), folder, "contact")

    assert result.rejected == []
    assert rows_of(result.table, "Id", "fullname", "IsDelete", "_source_line") == [
        (ID1, "Ann", None, 1),
        (ID2, f"two{ending}lines", None, 2),
        (ID3, "Cy", True, 4),
    ]


def test_blank_lines_are_skipped(tmp_path):
    folder = contact_folder(tmp_path, f"{ID1},,,Ann,1,\n\n{ID2},,,Bob,2,\r\n\r\n")

    result = read_entity(LocalFileSystem(tmp_path), folder, "contact")

    assert (result.rejected, result.held_back) == ([], [])
    assert rows_of(result.table, "fullname", "_source_line") == [("Ann", 1), ("Bob", 3)]


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR-only"])
def test_last_line_without_line_break_is_still_being_written_and_held_back(tmp_path, ending):
    text = f"{ID1},,,Ann,1,{ending}{ID2},,,Bob,2,{ending}{ID3},,,C"  # the writer is mid-record
    folder = contact_folder(tmp_path, text)

    result = read_entity(LocalFileSystem(tmp_path), folder, "contact")

    assert rows_of(result.table, "fullname") == [("Ann",), ("Bob",)]
    assert result.rejected == []  # not a bad row: not read yet
    (held,) = result.held_back
    assert (held.file, held.line, held.raw) == ("contact/2021-09.csv", 3, f"{ID3},,,C")
    assert "no line break yet" in held.reason


def test_file_with_one_partial_line_reads_nothing_yet(tmp_path):
    folder = contact_folder(tmp_path, f"{ID1},,,Ann,1")

    result = read_entity(LocalFileSystem(tmp_path), folder, "contact")

    assert result.table.num_rows == 0
    assert [(r.line, r.raw) for r in result.held_back] == [(1, f"{ID1},,,Ann,1")]


def test_utf8_bom_and_unicode_values(tmp_path):
    folder = contact_folder(tmp_path, f"{ID1},,,Zoë Ñandú 東京 🚀,1,\n".encode("utf-8-sig"))

    result = read_entity(LocalFileSystem(tmp_path), folder, "contact")

    assert rows_of(result.table, "Id", "fullname") == [(ID1, "Zoë Ñandú 東京 🚀")]


def test_values_longer_than_the_csv_module_default_limit(tmp_path):
    long_text = "x" * 300_000
    folder = contact_folder(tmp_path, f'{ID1},,,"{long_text}",1,\n')

    result = read_entity(LocalFileSystem(tmp_path), folder, "contact")

    assert rows_of(result.table, "fullname") == [(long_text,)]


def test_column_added_later_leaves_older_rows_of_the_root_layout_null(tmp_path):
    # The root layout is appended in place for years: rows written before a column was added
    # lack it (Microsoft's FAQ); they are read with nulls.
    put(tmp_path, "model.json", contact_model_json(extra_columns=("emailaddress1", "telephone1")))
    put(
        tmp_path,
        "contact/2021-09.csv",
        f"{ID1},,,Ann,1,\n"  # written before both columns existed
        f"{ID2},,,Bob,2,,bob@contoso.com\n"  # before telephone1 existed
        f"{ID3},,,Cy,3,,cy@contoso.com,801-555-0100\n",
    )
    fs = LocalFileSystem(tmp_path)

    result = read_entity(fs, only_folder(tmp_path), "contact")

    assert result.rejected == []
    assert rows_of(result.table, "fullname", "emailaddress1", "telephone1", "_source_line") == [
        ("Ann", None, None, 1),
        ("Bob", "bob@contoso.com", None, 2),
        ("Cy", "cy@contoso.com", "801-555-0100", 3),
    ]


def test_row_with_fewer_fields_than_its_folders_model_json_is_rejected(tmp_path):
    # Synapse Link writes every attribute of an incremental folder's model.json in its files.
    name = "2024-01-05T10.15.00Z"
    put(tmp_path, f"{name}/model.json", contact_model_json(complete=True))
    put(tmp_path, f"{name}/contact/2021-09.csv", f"{ID1},,,Ann,1,\n{ID2},,,Bob\n{ID3},,,Cy,3,\n")
    fs = LocalFileSystem(tmp_path)

    result = read_entity(fs, only_folder(tmp_path), "contact")

    assert rows_of(result.table, "fullname") == [("Ann",), ("Cy",)]
    assert result.rejected == [
        RejectedRow(
            file=f"{name}/contact/2021-09.csv",
            line=2,
            raw=f"{ID2},,,Bob",
            reason="4 fields, but the folder's model.json declares 6 attributes",
        )
    ]


def test_older_folder_read_with_a_newer_model_needs_its_own_models_fields(tmp_path):
    older, newer = "2024-01-05T10.15.00Z", "2024-01-05T10.30.00Z"
    put(tmp_path, f"{older}/model.json", contact_model_json())
    put(tmp_path, f"{older}/contact/2021-09.csv", f"{ID1},,,Ann,1,\n{ID2},,Bob\n")
    put(tmp_path, f"{newer}/model.json", contact_model_json(extra_columns=("emailaddress1",)))
    fs = LocalFileSystem(tmp_path)
    folders = list_export_folders(fs, include_incomplete=True)

    result = read_entity_folders(fs, folders, "contact")

    assert rows_of(result.table, "fullname", "emailaddress1") == [("Ann", None)]
    assert [(r.line, r.reason) for r in result.rejected] == [
        (2, "3 fields, but the folder's model.json declares 6 attributes")
    ]


# ---------------------------------------------------------------------------------------------
# rejected rows


def test_row_with_more_fields_than_the_model_is_rejected(tmp_path):
    folder = contact_folder(tmp_path, f"{ID1},,,Ann,1,\n{ID2},,,Bob,2,,surprise\n{ID3},,,Cy,3,\n")

    result = read_entity(LocalFileSystem(tmp_path), folder, "contact")

    assert rows_of(result.table, "fullname") == [("Ann",), ("Cy",)]
    assert result.rejected == [
        RejectedRow(
            file="contact/2021-09.csv",
            line=2,
            raw=f"{ID2},,,Bob,2,,surprise",
            reason="7 fields, but the model has only 6 attributes",
        )
    ]


def test_bad_values_are_rejected_with_file_line_raw_and_reason(tmp_path):
    put(tmp_path, "model.json", ACCOUNT_MODEL_JSON)
    good = f"{ID1},1/1/2020 1:00:00 PM,1/1/2020 1:00:00 PM,ok,1.5,2.5,3,4,,,False"
    lines = [
        good,
        "not-a-guid,,,x,,,,5,,,",
        f"{ID2},,,x,1.1234567,,,6,,,",  # more decimals than scale 6
        f"{ID3},,,x,,abc,99999999999,7,,,",  # bad double and int32 overflow
        f"{ID4},2/30/2021 1:00:00 AM,,x,,,,8,2021-13-01T00:00:00Z,,maybe",
        f'{ID1},,,"multi\nline",,,,x9,,,',  # bad int64 in a two-line record
        good,
        ",,,no id,,,,10,,,",
    ]
    put(tmp_path, "account/2020.csv", "\n".join(lines) + "\n")
    fs = LocalFileSystem(tmp_path)

    result = read_entity(fs, only_folder(tmp_path), "account")

    assert rows_of(result.table, "Id", "_source_line") == [(ID1, 1), (ID1, 8)]
    file = "account/2020.csv"
    assert result.rejected == [
        RejectedRow(file, 2, lines[1], "column 'Id' (guid): not a GUID: 'not-a-guid'"),
        RejectedRow(
            file,
            3,
            lines[2],
            "column 'revenue' (decimal): has more than 6 decimal places: '1.1234567'",
        ),
        RejectedRow(
            file,
            4,
            lines[3],
            "column 'ratio' (double): not a number: 'abc'; "
            "column 'employees' (int32): out of range for int32: '99999999999'",
        ),
        RejectedRow(
            file,
            5,
            lines[4],
            "column 'SinkCreatedOn' (dateTime): invalid date/time (day is out of range for "
            "month): '2/30/2021 1:00:00 AM'; column 'createdon' (dateTimeOffset): invalid "
            "date/time (month must be in 1..12): '2021-13-01T00:00:00Z'; "
            "column 'IsDelete' (boolean): not a boolean (expected True or False): 'maybe'",
        ),
        RejectedRow(file, 6, lines[5], "column 'versionnumber' (int64): not a whole number: 'x9'"),
        RejectedRow(file, 9, lines[7], "column 'Id' (guid): missing; every exported row has one"),
    ]
    assert result.rejected_table().to_pylist()[0] == {
        "file": file,
        "line": 2,
        "raw": lines[1],
        "reason": "column 'Id' (guid): not a GUID: 'not-a-guid'",
    }


def test_unterminated_quote_rejects_the_rest_of_the_file_and_keeps_earlier_rows(tmp_path):
    text = f'{ID1},,,Ann,1,\n{ID2},,,"Bob,2,\n{ID3},,,Cy,3,\n'
    folder = contact_folder(tmp_path, text)

    result = read_entity(LocalFileSystem(tmp_path), folder, "contact")

    assert rows_of(result.table, "fullname") == [("Ann",)]
    assert result.rejected == [
        RejectedRow(
            "contact/2021-09.csv",
            2,
            f'{ID2},,,"Bob,2,\n{ID3},,,Cy,3,',
            "unterminated quoted field: the closing quote is missing",
        )
    ]


def test_text_after_a_closing_quote_is_rejected(tmp_path):
    folder = contact_folder(tmp_path, f'{ID1},,,"Ann"x,1,\n{ID2},,,Bob,2,\n')

    result = read_entity(LocalFileSystem(tmp_path), folder, "contact")

    assert rows_of(result.table, "fullname", "_source_line") == [("Bob", 2)]
    assert [(r.line, r.raw, r.reason) for r in result.rejected] == [
        (
            1,
            f'{ID1},,,"Ann"x,1,',
            "malformed quoting: a closing quote must be followed by ',' or the end of line",
        )
    ]


def test_invalid_utf8_rejects_only_the_rows_holding_it(tmp_path):
    data = (
        f"{ID1},,,Ann,1,\n{ID2},,,B".encode()
        + b"\xff\xfe"
        + b"b,2,\n"
        + f"{ID3},,,Cy,3,\n".encode()
    )
    folder = contact_folder(tmp_path, data)

    result = read_entity(LocalFileSystem(tmp_path), folder, "contact")

    assert rows_of(result.table, "fullname") == [("Ann",), ("Cy",)]
    assert result.rejected == [
        RejectedRow(
            "contact/2021-09.csv", 2, f"{ID2},,,B\ufffd\ufffdb,2,", "field 4: not valid UTF-8"
        )
    ]


@pytest.mark.parametrize(
    "tail",
    ["", '"never closed\n'],
    ids=["multi-line values", "multi-line values then a quoting error"],
)
def test_record_line_numbers_across_chunks(tail):
    # chunks of two records: single-line first, then a multi-line record, a long row, a short
    # row, a blank line; the quoting error makes the rest of the file go record by record
    text = 'a,1\nb,2\nc,3\n"d\r\nd",4\ne,5,extra\nf\n\n"g\n\rg",7\n' + tail

    chunks = list(iter_records(SourceText(text.encode()), 2, chunk_rows=2, min_fields=1))

    found = [
        (row, chunk.start_line(i), chunk.end_line(i))
        for chunk in chunks
        for i, row in enumerate(chunk.rows)
    ]
    assert found == [
        (["a", "1"], 1, 1),
        (["b", "2"], 2, 2),
        (["c", "3"], 3, 3),
        (["d\r\nd", "4"], 4, 5),
        (["f", ""], 7, 7),
        (["g\n\rg", "7"], 9, 11),
    ]
    problems = [(p.start, p.end, p.reason) for c in chunks for p in c.problems]
    assert problems[0] == (6, 6, "3 fields, but the model has only 2 attributes")
    if tail:
        assert problems[1:] == [(12, 12, "unterminated quoted field: the closing quote is missing")]


def test_invalid_utf8_in_a_file_with_multiline_values(tmp_path):
    data = f'{ID1},,,"An\nn",1,\n{ID2},,,B'.encode() + b"\xff" + f",2,\n{ID3},,,Cy,3,\n".encode()
    folder = contact_folder(tmp_path, data)

    result = read_entity(LocalFileSystem(tmp_path), folder, "contact")

    assert rows_of(result.table, "fullname", "_source_line") == [("An\nn", 1), ("Cy", 4)]
    assert [(r.line, r.reason) for r in result.rejected] == [(3, "field 4: not valid UTF-8")]


def test_parse_entity_csv_reads_bytes_without_a_filesystem():
    model = parse_model_json(contact_model_json())["contact"]

    result = parse_entity_csv(
        f"{ID1},,,Ann,1,\n".encode(), model, source_file="x/contact/2021.csv", export_folder="x"
    )

    assert rows_of(result.table, "fullname", *INGESTION) == [("Ann", "x/contact/2021.csv", 1, "x")]


# ---------------------------------------------------------------------------------------------
# reading several folders with one schema


def test_older_folder_is_read_with_the_newer_model(tmp_path):
    older, newer = "2024-01-05T10.15.00Z", "2024-01-05T10.30.00Z"
    put(tmp_path, f"{older}/model.json", contact_model_json())
    put(tmp_path, f"{older}/contact/2021-09.csv", f"{ID1},,,Ann,1,\n")
    put(
        tmp_path,
        f"{newer}/model.json",
        contact_model_json(extra_columns=("jobtitle",), complete=True),
    )
    put(tmp_path, f"{newer}/contact/2021-09.csv", f"{ID2},,,Bob,2,,CEO\n")
    fs = LocalFileSystem(tmp_path)
    folders = list_export_folders(fs)

    result = read_entity_folders(fs, folders, "contact")

    assert rows_of(result.table, "fullname", "jobtitle", "_export_folder") == [
        ("Ann", None, older),
        ("Bob", "CEO", newer),
    ]
    with pytest.raises(SynapseLinkFormatError, match="is not a prefix of"):
        read_entity(fs, folders[1], "contact", model=folders[0].entities["contact"])


def test_tolerated_value_variants_are_read(tmp_path):
    put(tmp_path, "model.json", ACCOUNT_MODEL_JSON)
    put(
        tmp_path,
        "account/2020.csv",
        f"{{{ID1.upper()}}},9/12/2021 22:05:07,2021-09-12 10:05:07,x,1.5E2,1e5,+5,007,"
        "2020-01-01T00:15:00,2020-1-2T3:4:5.5,TRUE\n"
        f"{ID2},,,y,-.5,.25,-0,9,2020-01-01T02:15:00-02:00,2020-01-01,1\n"
        f"{ID3},,,z,,,,10,,,0\n",
    )

    result = read_entity(LocalFileSystem(tmp_path), only_folder(tmp_path), "account")

    assert result.rejected == []
    columns = ("Id", "SinkCreatedOn", "SinkModifiedOn", "revenue", "ratio", "employees")
    assert rows_of(result.table, *columns) == [
        (ID1, utc(2021, 9, 12, 22, 5, 7), utc(2021, 9, 12, 10, 5, 7), Decimal("150"), 1e5, 5),
        (ID2, None, None, Decimal("-0.5"), 0.25, 0),
        (ID3, None, None, None, None, None),
    ]
    assert rows_of(result.table, "versionnumber", "createdon", "modifiedon", "IsDelete") == [
        (7, utc(2020, 1, 1, 0, 15), utc(2020, 1, 2, 3, 4, 5, 500000), True),
        (9, utc(2020, 1, 1, 4, 15), utc(2020, 1, 1), True),
        (10, None, None, False),
    ]
