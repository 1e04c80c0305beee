"""The pyarrow fast path takes only provably simple files and then agrees with the stdlib parser."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synapse_link_fixtures import ACCOUNT_MODEL_JSON, ID1, ID2, ID3, contact_model_json

from customer360.synapse_link import (
    Attribute,
    EntityModel,
    chunks,
    parse_entity_csv,
    parse_model_json,
)

CONTACT = parse_model_json(contact_model_json())["contact"]
ACCOUNT = parse_model_json(ACCOUNT_MODEL_JSON)["account"]

SIMPLE_FILES = {
    "LF": f"{ID1},,,Ann,1,\n{ID2},,,Bob,2,True\n",
    "CRLF": f"{ID1},,,Ann,1,\r\n{ID2},,,Bob,2,True\r\n",
    "CR-only": f"{ID1},,,Ann,1,\r{ID2},,,Bob,2,True\r",
    "no final line break": f"{ID1},,,Ann,1,\n{ID2},,,Bob,2,True",
    "BOM": f"\ufeff{ID1},,,Ann,1,\n",
    "quoted like the SneaksAndData fixtures": (
        f'{ID1},"1/1/2020 0:00:01 PM","1/1/2020 0:00:01 PM","Ann",1,\n'
        f'{ID2},"9/12/2021 10:05:07 AM",,"Bob ""B"", Jr.",2,True\n'
    ),
    "quote inside an unquoted field": f'{ID1},,,Ann "A" Lee,1,\n',
    "bad values (rejected after parsing)": f"{ID1},,,Ann,x,\n{ID2},yesterday,,Bob,2,maybe\n",
    "multi-line values": f'{ID1},,,"Ann\nLee",1,\n{ID2},,,"Bob\r\n\rB",2,\n{ID3},,,Cy,3,\n',
    "carriage return in a value": f'{ID1},,,"Ann\rLee",1,\n',
}
STDLIB_ONLY_FILES = {
    "blank line": f"{ID1},,,Ann,1,\n\n{ID2},,,Bob,2,\n",
    "blank line and a multi-line value": f'{ID1},,,"Ann\nLee",1,\n\n{ID2},,,Bob,2,\n',
    "unquoted line break pair": f'{ID1},,,"Ann\nLee",1,\n{ID2},,,"Bob\nB"x,2,\n',
    "older row with fewer fields": f"{ID1},,,Ann,1\n{ID2},,,Bob,2,\n",
    "row with too many fields": f"{ID1},,,Ann,1,,x\n",
    "text after a closing quote": f'{ID1},,,"Ann"x,1,\n',
    "text after a closing quote ending in a comma": f'{ID1},,,"Ann,"x,1,\n',
    "unterminated quote in the last field": f'{ID1},,,Ann,1,"True\n',
    "unterminated quote mid-line": f'{ID1},,,"Ann,1,\n{ID2},,,Bob,2,\n',
    "space before a closing delimiter": f'{ID1},,,"Ann" ,1,\n',
    "invalid UTF-8": f"{ID1},,,Ann,1,\n".encode() + b"\xff\n",
}


def _encode(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8")


@pytest.mark.parametrize("text", SIMPLE_FILES.values(), ids=SIMPLE_FILES.keys())
def test_simple_files_take_the_arrow_path(text):
    assert chunks._arrow_chunks(_encode(text), len(CONTACT.attributes)) is not None


@pytest.mark.parametrize("text", STDLIB_ONLY_FILES.values(), ids=STDLIB_ONLY_FILES.keys())
def test_files_needing_the_stdlib_parser_are_refused_by_the_arrow_path(text):
    assert chunks._arrow_chunks(_encode(text), len(CONTACT.attributes)) is None


@pytest.mark.parametrize(
    "text",
    [*SIMPLE_FILES.values(), *STDLIB_ONLY_FILES.values()],
    ids=[*SIMPLE_FILES.keys(), *STDLIB_ONLY_FILES.keys()],
)
def test_both_paths_give_the_same_rows_and_rejects(text, monkeypatch):
    data = _encode(text)
    default = parse_entity_csv(data, CONTACT, source_file="f.csv")
    monkeypatch.setattr(chunks, "_arrow_chunks", lambda data, field_count: None)

    stdlib = parse_entity_csv(data, CONTACT, source_file="f.csv")

    assert default.table.equals(stdlib.table)
    assert default.rejected == stdlib.rejected


def test_empty_file_reads_as_no_rows_on_both_paths(monkeypatch):
    assert parse_entity_csv(b"", CONTACT, source_file="f.csv").table.num_rows == 0
    monkeypatch.setattr(chunks, "_arrow_chunks", lambda data, field_count: None)
    assert parse_entity_csv(b"", CONTACT, source_file="f.csv").table.num_rows == 0


def test_arrow_path_chunks_keep_line_numbers_across_blocks(monkeypatch):
    monkeypatch.setattr(chunks, "_ARROW_BLOCK_SIZE", 256)  # force several blocks
    lines = [f"{ID3},,,name {i},{i},\n" for i in range(40)]
    data = "".join(lines).encode()

    found = chunks._arrow_chunks(data, len(CONTACT.attributes))

    assert found is not None and len(found) > 1
    numbered = [
        (chunk.start_line(i), chunk.columns[3][i].as_py())
        for chunk in found
        for i in range(chunk.row_count)
    ]
    assert numbered == [(i + 1, f"name {i}") for i in range(40)]


def test_every_type_agrees_on_both_paths(monkeypatch):
    data = (
        f"{ID1},1/1/2020 12:00:01 AM,12/31/2020 11:59:59 PM,Contoso,1.5,2.5e-3,-3,4,"
        "2020-01-01T00:15:00.0000000+00:00,2020-01-01T00:15:00.0000000Z,False\n"
        f"{ID2},,,,,,,,,,\n"
    ).encode()
    default = parse_entity_csv(data, ACCOUNT, source_file="f.csv")
    monkeypatch.setattr(chunks, "_arrow_chunks", lambda data, field_count: None)

    stdlib = parse_entity_csv(data, ACCOUNT, source_file="f.csv")

    assert default.rejected == [] and default.table.num_rows == 2
    assert default.table.equals(stdlib.table)
    assert default.table.column("ratio").to_pylist() == [0.0025, None]
    assert default.table.column("employees").type == pa.int32()


SMALL_MODEL = EntityModel(
    "t", (Attribute("a", "string"), Attribute("b", "string"), Attribute("c", "int32"))
)
PIECES = [
    'x,y,1\n', 'x,"y\ny",2\r\n', '"q""",,3\r', "a", ",", '"', '""', "\n", "\r", "\r\n",
    " ", "1", "é", "\x00", ',"', '",', "\ufeff",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40))
def test_both_paths_agree_on_arbitrary_text_property(pieces):
    data = "".join(pieces).encode("utf-8")
    default = parse_entity_csv(data, SMALL_MODEL, source_file="f.csv")
    original = chunks._arrow_chunks
    chunks._arrow_chunks = lambda data, field_count: None  # stdlib only, restored below
    try:
        stdlib = parse_entity_csv(data, SMALL_MODEL, source_file="f.csv")
    finally:
        chunks._arrow_chunks = original

    assert default.table.equals(stdlib.table)
    assert default.rejected == stdlib.rejected


def test_arrow_path_places_multiline_records_on_their_lines():
    data = f'{ID1},,,"Ann\nLee",1,\n{ID2},,,"Bob\r\n\rB",2,\n{ID3},,,Cy,3,\n'.encode()

    (chunk,) = chunks._arrow_chunks(data, len(CONTACT.attributes))

    assert [(chunk.start_line(i), chunk.end_line(i)) for i in range(3)] == [(1, 2), (3, 5), (6, 6)]
