"""Finance drops into bronze (issue 14 §3): the header contract, ambiguous amounts, invalid UTF-8
in one file, a re-sent file. Real files in a LocalLandingZone, real parser, real delta-rs."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from customer360.bronze.ingest import ingest_drop_days
from customer360.lakehouse import DeltaLake
from customer360.transforms.finance import BRONZE_SCHEMA, parse_finance_csv
from resources.landing import LocalLandingZone

DAY1, DAY2 = "2024-06-02", "2024-06-03"


def drop(landing: Path, name: str, data: bytes, day: str) -> None:
    path = landing / "finance" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    when = datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC).timestamp()
    os.utime(path, (when, when))


@pytest.fixture
def env(tmp_path):
    landing = tmp_path / "landing"
    zone = LocalLandingZone(root=str(landing))
    lake = DeltaLake(str(tmp_path / "lake"))

    def ingest(*days: str):
        return ingest_drop_days(
            lake, zone, "finance", "customer_finance", parse_finance_csv, BRONZE_SCHEMA,
            list(days), lambda _: None, once_per_content=True,
        )  # fmt: skip

    return landing, lake, ingest


def bronze(lake: DeltaLake) -> list[dict]:
    rows = lake.read_arrow("bronze", "customer_finance").to_pylist()
    return sorted(rows, key=lambda r: (r["_drop_day"], r["_source_file"], r["_source_line"]))


def rejects(lake: DeltaLake) -> list[tuple]:
    rows = lake.read_arrow("bronze", "_rejected").to_pylist()
    return sorted((r["partition"], r["file"], r["line"], r["raw"], r["reason"]) for r in rows)


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("cid,month,incme,spend", "has misspelt column(s) 'incme' (did you mean 'income'?)"),
        ("cid,month,income", "lacks required column(s) spend"),
        ("cid,month,income,spnd", "lacks required column(s) spend ('spnd' looks like 'spend')"),
        ("cid,spend,spend", "repeats column(s) spend"),
    ],
)
def test_a_file_breaking_the_header_contract_is_rejected_whole_and_keeps_good_values(
    env, header, problem
):
    landing, lake, ingest = env
    drop(landing, "monthly_1.csv", b"cid,month,income,spend\n1,2024-05,100,20\n", DAY1)
    drop(landing, "monthly_2.csv", f"{header}\n1,2024-05,100,20\n".encode(), DAY2)
    drop(landing, "other.csv", b"cid,spend\n2,7\n", DAY2)

    ingest(DAY1, DAY2)

    rows = bronze(lake)
    assert [(r["cid"], r["income"], r["spend"], r["_drop_day"]) for r in rows] == [
        (1, Decimal("100.00"), Decimal("20.00"), DAY1),  # nothing from the bad file replaces it
        (2, None, Decimal("7.00"), DAY2),  # the day's other file is ingested
    ]
    names = ", ".join(n.strip() for n in header.split(","))
    assert rejects(lake) == [
        (
            DAY2,
            "monthly_2.csv",
            1,
            header,
            f"file rejected: monthly_2.csv: header [{names}] {problem}; "
            "expected header: cid, spend (required), month, income (optional)",
        )
    ]


def test_extra_columns_are_kept_in_bronze_and_reported(env):
    landing, lake, ingest = env
    drop(landing, "spend.csv", b"cid,spend,Segment\n1,5,gold\n2,6,\n", DAY1)

    done = ingest(DAY1)

    assert [json.loads(r["_extra_columns"]) for r in bronze(lake)] == [
        {"segment": "gold"},
        {"segment": ""},
    ]
    assert done.notes == [
        "spend.csv: extra columns segment not in the contract; kept in _extra_columns"
    ]


def test_ambiguous_separators_are_rejects_quoting_the_original_field(env):
    landing, lake, ingest = env
    text = (
        'cid,spend\n1,"12,3"\n2,"12,3x"\n3,"1,234"\n4,"1,234.50"\n5,"1,234,567"\n'
        '6,"12.3"\n7, 8.25 \n'
    )
    drop(landing, "spend.csv", text.encode(), DAY1)

    ingest(DAY1)

    assert [(r["cid"], r["spend"]) for r in bronze(lake)] == [
        (4, Decimal("1234.50")),
        (5, Decimal("1234567.00")),
        (6, Decimal("12.30")),
        (7, Decimal("8.25")),
    ]
    ambiguous = "has a ',' that cannot be read unambiguously (decimal comma or thousands "
    ambiguous += "separator?); amounts use '.' for decimals"
    assert [(line, raw, reason) for _, _, line, raw, reason in rejects(lake)] == [
        (2, '1,"12,3"', f"spend '12,3' {ambiguous}"),  # never 123.00
        (3, '2,"12,3x"', "spend '12,3x' is not an amount (max 2 decimals)"),  # not '123x'
        (4, '3,"1,234"', f"spend '1,234' {ambiguous}"),
    ]


def test_invalid_utf8_is_located_and_only_its_lines_are_set_aside(env):
    landing, lake, ingest = env
    drop(landing, "a_bad.csv", b"cid,spend\n1,5\n2,6\xff\n3,\xe97\n4,8\n", DAY1)
    drop(landing, "b_good.csv", b"cid,spend\n10,1\n", DAY1)

    ingest(DAY1)

    assert [(r["_source_file"], r["cid"], r["_source_line"]) for r in bronze(lake)] == [
        ("a_bad.csv", 1, 2),
        ("a_bad.csv", 4, 5),
        ("b_good.csv", 10, 2),
    ]
    assert rejects(lake) == [
        (DAY1, "a_bad.csv", 3, "2,6\ufffd",
         "a_bad.csv: not valid UTF-8 at byte offset 17 of the file (byte 4 of line 3: 0xff)"),
        (DAY1, "a_bad.csv", 4, "3,\ufffd7",
         "a_bad.csv: not valid UTF-8 at byte offset 21 of the file (byte 3 of line 4: 0xe9)"),
    ]  # fmt: skip


def test_invalid_utf8_in_the_header_rejects_that_file_only(env):
    landing, lake, ingest = env
    drop(landing, "a_bad.csv", b"cid,sp\xffend\n1,5\n", DAY1)
    drop(landing, "b_good.csv", b"cid,spend\n10,1\n", DAY1)

    ingest(DAY1)

    assert [r["cid"] for r in bronze(lake)] == [10]
    ((_, file, line, _, reason),) = rejects(lake)
    assert (file, line) == ("a_bad.csv", 1)
    assert "byte offset 6 of the file" in reason and "the header cannot be read" in reason


def test_a_re_sent_file_is_ingested_once(env):
    landing, lake, ingest = env
    content = b"cid,spend\n1,5\n2,6\n"  # month-less: counts for the month it was dropped
    drop(landing, "customer_spend.csv", content, DAY1)
    drop(landing, "resent/customer_spend.csv", content, DAY2)
    drop(landing, "new.csv", b"cid,spend\n3,1\n", DAY2)

    ingest(DAY1)
    done = ingest(DAY2)
    again = ingest(DAY1, DAY2)  # re-runs converge

    rows = bronze(lake)
    assert [(r["cid"], r["_drop_day"]) for r in rows] == [(1, DAY1), (2, DAY1), (3, DAY2)]
    assert done.notes == [
        f"resent/customer_spend.csv: same content as the file ingested on {DAY1}; skipped "
        "(a re-sent file counts once)"
    ]
    assert again.rows == 3
    assert rejects(lake) == []


def test_the_same_content_twice_in_one_day_is_ingested_once(env):
    landing, lake, ingest = env
    drop(landing, "a.csv", b"cid,spend\n1,5\n", DAY1)
    drop(landing, "b.csv", b"cid,spend\n1,5\n", DAY1)

    done = ingest(DAY1)

    assert [r["_source_file"] for r in bronze(lake)] == ["a.csv"]
    assert "b.csv: same content as the file ingested on 2024-06-02 (a.csv)" in done.notes[0]


def test_an_open_quote_is_a_reject_not_a_guess(env):
    landing, lake, ingest = env
    drop(landing, "a.csv", b'cid,spend\n1,"5\n2,6\n', DAY1)  # the closing quote is missing

    ingest(DAY1)

    assert [r["cid"] for r in bronze(lake)] == [2]
    assert [(line, raw, reason) for _, _, line, raw, reason in rejects(lake)] == [
        (2, '1,"5', "unterminated quoted field: the closing quote is missing")
    ]


def test_a_file_that_cannot_be_read_at_all_does_not_stop_the_day(env):
    landing, lake, ingest = env
    drop(landing, "a.csv", bytes(range(128, 256)) + b"\n1,5\n", DAY1)  # binary, not CSV text
    drop(landing, "b.csv", b"cid,spend\n2,6\n", DAY1)

    ingest(DAY1)

    assert [r["cid"] for r in bronze(lake)] == [2]
    ((_, file, line, _, reason),) = rejects(lake)
    assert (file, line) == ("a.csv", 1)
    assert reason.startswith("file rejected: a.csv: not valid UTF-8 at byte offset 0")
