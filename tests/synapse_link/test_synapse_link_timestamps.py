"""Both Synapse Link timestamp formats: writing them, and reading them one by one or vectorised."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pyarrow as pa
import pytest

from customer360.synapse_link.timestamps import (
    format_iso_timestamp,
    format_sink_timestamp,
    parse_timestamp,
    timestamps_fast,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (utc(2021, 9, 12, 10, 5, 7), "9/12/2021 10:05:07 AM"),
        (utc(2020, 1, 1, 0, 0, 1), "1/1/2020 12:00:01 AM"),  # midnight hour is 12 AM
        (utc(2020, 1, 1, 12, 0, 1), "1/1/2020 12:00:01 PM"),  # noon hour is 12 PM
        (utc(2020, 1, 1, 13, 0, 0), "1/1/2020 1:00:00 PM"),
        (utc(2020, 12, 31, 23, 59, 59, 999999), "12/31/2020 11:59:59 PM"),  # seconds precision
        (datetime(2020, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))), "1/1/2020 12:00:00 AM"),
    ],
)
def test_format_sink_timestamp(value, text):
    assert format_sink_timestamp(value) == text


def test_format_iso_timestamp_has_seven_fraction_digits_in_utc():
    value = datetime(2020, 1, 1, 1, 15, 0, 123456, tzinfo=timezone(timedelta(hours=1)))

    assert format_iso_timestamp(value) == "2020-01-01T00:15:00.1234560Z"
    assert format_iso_timestamp(value, offset=True) == "2020-01-01T00:15:00.1234560+00:00"
    assert format_iso_timestamp(utc(1, 1, 3)) == "0001-01-03T00:00:00.0000000Z"
    assert format_iso_timestamp(date(1980, 5, 9)) == "1980-05-09T00:00:00.0000000Z"


def test_formatting_refuses_naive_datetimes():
    with pytest.raises(ValueError, match="naive datetime"):
        format_iso_timestamp(datetime(2020, 1, 1), "createdon")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1/1/2020 0:00:01 PM", utc(2020, 1, 1, 12, 0, 1)),  # hour 0 + PM is noon
        ("1/1/2020 0:00:01 AM", utc(2020, 1, 1, 0, 0, 1)),
        ("1/1/2020 12:00:00 AM", utc(2020, 1, 1, 0, 0, 0)),
        ("1/1/2020 12:30:00 PM", utc(2020, 1, 1, 12, 30, 0)),
        ("9/12/2021 10:05:07 AM", utc(2021, 9, 12, 10, 5, 7)),
        ("9/12/2021 10:05:07 pm", utc(2021, 9, 12, 22, 5, 7)),
        ("09/02/2021 1:05:07 PM", utc(2021, 9, 2, 13, 5, 7)),
        ("9/12/2021 22:05:07", utc(2021, 9, 12, 22, 5, 7)),  # 24-hour variant, no AM/PM
        ("2020-01-01T00:15:00.0000000Z", utc(2020, 1, 1, 0, 15)),
        ("2020-01-01T00:15:00.1234567Z", utc(2020, 1, 1, 0, 15, 0, 123456)),
        ("2020-01-01T00:15:00.12Z", utc(2020, 1, 1, 0, 15, 0, 120000)),
        ("2020-01-01T00:15:00Z", utc(2020, 1, 1, 0, 15)),
        ("2020-01-01T00:15:00", utc(2020, 1, 1, 0, 15)),  # no zone: UTC
        ("0001-01-03T00:00:00.0000000", utc(1, 1, 3)),
        ("2020-01-01T02:15:00.0000000+02:00", utc(2020, 1, 1, 0, 15)),
        ("2020-01-01T00:15:00.0000000-05:30", utc(2020, 1, 1, 5, 45)),
        ("2020-1-2T3:4:5", utc(2020, 1, 2, 3, 4, 5)),  # y-M-d'T'H:m:s
        ("2020-01-01 00:15:00", utc(2020, 1, 1, 0, 15)),
        ("2020-01-01", utc(2020, 1, 1)),
    ],
)
def test_parse_timestamp_formats_and_variants(text, expected):
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterday", "not a timestamp"),
        ("2/30/2021 1:00:00 AM", "invalid date/time"),
        ("2021-02-29T00:00:00Z", "invalid date/time"),
        ("1/1/2020 13:00:00 PM", "hour 13 is not valid with PM"),
        ("2020-01-01T25:00:00Z", "invalid date/time"),
        ("2020-01-01T00:00:00+25:00", "invalid UTC offset"),
    ],
)
def test_parse_timestamp_names_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        parse_timestamp(text)


def test_vectorised_parse_agrees_with_the_scalar_parser_on_canonical_values():
    texts = [
        "1/1/2020 0:00:01 PM",
        "12/31/2021 12:00:00 AM",
        "12/31/2021 12:00:00 PM",
        "2020-01-01T00:15:00.0000000Z",
        "2020-01-01T00:15:00.1234567+02:00",
        "1969-12-31T23:59:59.9999999Z",
        "0001-01-03T00:00:00.0000000",
        "9999-12-31T23:59:59.9999999Z",
    ]

    parsed = timestamps_fast(pa.array(texts)).to_pylist()

    assert parsed == [parse_timestamp(text) for text in texts]


def test_vectorised_parse_leaves_invalid_values_null_for_the_slow_path():
    parsed = timestamps_fast(
        pa.array(["2/30/2021 1:00:00 AM", None, "garbage", "2021-02-30T00:00:00Z", "1/1/2020 1:00"])
    ).to_pylist()

    assert parsed == [None, None, None, None, None]
