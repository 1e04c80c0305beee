"""Readers: typed good rows, rejected rows with their raw values, file and every reason."""

from __future__ import annotations

import datetime as dt

import pytest

from customer360.churn.readers import (
    KKBoxFileError,
    read_members,
    read_train,
    read_transactions,
    read_user_logs,
)

pytestmark = pytest.mark.spark


def _write(path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_members_types_bd_outliers_and_blank_gender_become_null(spark, tmp_path):
    path = _write(
        tmp_path / "members_v3.csv",
        [
            "msno,city,bd,gender,registered_via,registration_init_time",
            "m1,1,0,,7,20110911",  # bd 0 and blank gender → NULL, kept
            "m2,13,28,male,9,20160105",
            "m3,5,2015,female,3,20040326",  # bd outlier → NULL
            "m4,x1,20,male,4,20150101",  # city not an integer
            "m5,1,20,other,4,2015010",  # bad gender and bad date: both reasons
            ",1,20,male,4,20150101",  # blank msno
            "m7,1,20",  # too few fields
        ],
    )
    good, rejected = read_members(spark, path)
    assert sorted(tuple(r) for r in good.collect()) == [
        ("m1", 1, None, None, 7, dt.date(2011, 9, 11)),
        ("m2", 13, 28, "male", 9, dt.date(2016, 1, 5)),
        ("m3", 5, None, "female", 3, dt.date(2004, 3, 26)),
    ]
    rows = {r["raw_line"]: r for r in rejected.collect()}
    assert {k: v["reason"] for k, v in rows.items()} == {
        "m4,x1,20,male,4,20150101": "city is not an integer: 'x1'",
        "m5,1,20,other,4,2015010": (
            "gender must be male or female or blank: 'other'; "
            "registration_init_time is not a yyyymmdd date: '2015010'"
        ),
        ",1,20,male,4,20150101": "msno is blank",
        "m7,1,20": "malformed line: expected 6 comma-separated fields",
    }
    assert all(r["source_file"].endswith("/members_v3.csv") for r in rows.values())
    assert rows["m4,x1,20,male,4,20150101"]["city"] == "x1"  # raw values are kept


def test_transactions_reject_bad_flags_dates_and_negative_amounts(spark, tmp_path):
    header = (
        "msno,payment_method_id,payment_plan_days,plan_list_price,actual_amount_paid,"
        "is_auto_renew,transaction_date,membership_expire_date,is_cancel"
    )
    path = _write(
        tmp_path / "transactions.csv",
        [
            header,
            "t1,41,30,149,149,1,20170131,20170228,0",
            "t2,41,30,149,0,0,20170301,20170215,1",  # backdated expiry is kept
            "t3,41,30,149,149,2,20170131,20170230,0",  # flag 2, Feb 30
            "t4,41,-30,149,149,1,20170131,20170228,0",  # negative plan days
            "t5,41,30,149.5,149,1,20170131,20170228,0",  # not an integer
        ],
    )
    good, rejected = read_transactions(spark, path)
    assert sorted(tuple(r) for r in good.collect()) == [
        ("t1", 41, 30, 149, 149, 1, dt.date(2017, 1, 31), dt.date(2017, 2, 28), 0),
        ("t2", 41, 30, 149, 0, 0, dt.date(2017, 3, 1), dt.date(2017, 2, 15), 1),
    ]
    assert dict((r["msno"], r["reason"]) for r in rejected.collect()) == {
        "t3": "is_auto_renew is not 0 or 1: '2'; "
        "membership_expire_date is not a yyyymmdd date: '20170230'",
        "t4": "payment_plan_days is negative: '-30'",
        "t5": "plan_list_price is not an integer: '149.5'",
    }


def test_user_logs_and_train(spark, tmp_path):
    logs = _write(
        tmp_path / "user_logs_v2.csv",
        [
            "msno,date,num_25,num_50,num_75,num_985,num_100,num_unq,total_secs",
            "u1,20170301,2,0,1,0,10,12,2766.254",
            "u1,20170301,0,0,0,0,1,1,240",
            "u2,20170302,1,1,1,1,1,5,-9223372036854775.808",  # the real file's outlier
            "u3,20170302,1,1,1,1,1,5,abc",
        ],
    )
    good, rejected = read_user_logs(spark, logs)
    assert sorted(tuple(r) for r in good.collect()) == [
        ("u1", dt.date(2017, 3, 1), 0, 0, 0, 0, 1, 1, 240.0),
        ("u1", dt.date(2017, 3, 1), 2, 0, 1, 0, 10, 12, 2766.254),
    ]
    assert dict((r["msno"], r["reason"]) for r in rejected.collect()) == {
        "u2": "total_secs is negative: '-9223372036854775.808'",
        "u3": "total_secs is not a number: 'abc'",
    }
    train = _write(tmp_path / "train_v2.csv", ["msno,is_churn", "a,1", "b,0", "c,yes"])
    good, rejected = read_train(spark, train)
    assert sorted(tuple(r) for r in good.collect()) == [("a", 1), ("b", 0)]
    assert [r["reason"] for r in rejected.collect()] == ["is_churn is not 0 or 1: 'yes'"]


def test_wrong_header_or_missing_file_is_a_clear_error(spark, tmp_path):
    v1 = _write(
        tmp_path / "members.csv",
        [
            "msno,city,bd,gender,registered_via,registration_init_time,expiration_date",
            "m,1,0,,7,1,2",
        ],
    )
    with pytest.raises(KKBoxFileError, match=r"members\.csv: header is .*expiration_date"):
        read_members(spark, v1)
    with pytest.raises(KKBoxFileError, match="cannot be read"):
        read_members(spark, tmp_path / "absent.csv")
    empty = tmp_path / "train_v2.csv"
    empty.write_text("")
    with pytest.raises(KKBoxFileError, match="is empty"):
        read_train(spark, empty)
