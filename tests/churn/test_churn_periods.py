"""Period detection from the data's date ranges and label files (pure Python, no Spark)."""

import datetime as dt

import pytest

from customer360.churn.layout import KKBoxLayoutError, detect_layout, label_file_months
from customer360.churn.periods import (
    ChurnPeriods,
    DataFacts,
    PeriodOverrides,
    coverage_share,
    derivable_months,
    detect_periods,
    parse_month,
    periods_path,
)

d = dt.date


def test_kaggle_v2_scores_april_validates_on_train_v2_march():
    facts = DataFacts(
        d(2015, 1, 1), d(2017, 3, 31), d(2015, 1, 1), d(2017, 3, 31),
        {"train.csv": d(2017, 2, 1), "train_v2.csv": d(2017, 3, 1)},
    )  # fmt: skip
    periods = detect_periods(facts)
    assert periods.scoring == d(2017, 4, 1)
    assert periods.validation == d(2017, 3, 1)
    months = [d(2016, m, 1) for m in (9, 10, 11, 12)] + [d(2017, 1, 1), d(2017, 2, 1)]
    assert periods.train == tuple(months)
    # train_v2 labels a month the transactions cannot; train.csv one they can: cross-checked.
    assert periods.file_only == {"train_v2.csv": d(2017, 3, 1)}
    assert periods.cross_checked == {"train.csv": d(2017, 2, 1)}


def test_kaggle_v1_scores_march_validates_on_train_csv_february():
    facts = DataFacts(
        d(2015, 1, 1), d(2017, 2, 28), d(2015, 1, 1), d(2017, 2, 28), {"train.csv": d(2017, 2, 1)}
    )
    periods = detect_periods(facts)
    assert (periods.scoring, periods.validation) == (d(2017, 3, 1), d(2017, 2, 1))
    assert periods.train[-1] == d(2017, 1, 1)
    assert periods.file_only == {"train.csv": d(2017, 2, 1)} and not periods.cross_checked


def test_label_less_drop_validates_on_the_newest_derivable_month():
    facts = DataFacts(d(2015, 1, 1), d(2017, 3, 31), d(2016, 6, 1), d(2017, 3, 31))
    periods = detect_periods(facts)
    assert periods.scoring == d(2017, 4, 1)
    assert periods.validation == d(2017, 2, 1)  # March needs April's renewals
    # Logs from June 2016: September is the first month whose 90-day look-back they cover.
    assert periods.train == (d(2016, 9, 1), d(2016, 10, 1), d(2016, 11, 1), d(2016, 12, 1),
                             d(2017, 1, 1))  # fmt: skip
    assert detect_periods(facts, PeriodOverrides(train_months=2)).train == (
        d(2016, 12, 1), d(2017, 1, 1)
    )  # fmt: skip


def test_a_2016_drop_gets_2016_months_and_partial_log_coverage_is_reported():
    # Transactions Jan–Sep 2016, logs only from June: training months whose 90-day look-back
    # the logs cover come first; coverage shares are reported for every chosen month.
    facts = DataFacts(d(2016, 1, 1), d(2016, 9, 30), d(2016, 6, 1), d(2016, 9, 30))
    periods = detect_periods(facts)
    assert periods.scoring == d(2016, 10, 1)
    assert periods.validation == d(2016, 8, 1)
    # No earlier month's look-back is fully covered: July (logs cover 30 of its 90 days) trains.
    assert periods.train == (d(2016, 7, 1),)
    assert periods.coverage["2016-07"]["logs"] == round(30 / 90, 4)
    assert "do not cover" in " ".join(periods.reasons)
    shares = periods.coverage
    assert set(shares) == {"2016-07", "2016-08", "2016-10"}
    assert shares["2016-10"] == {"logs": 1.0, "transactions": 1.0}


def test_overrides_win_and_bad_months_are_named():
    facts = DataFacts(d(2015, 1, 1), d(2017, 3, 31), d(2015, 1, 1), d(2017, 3, 31))
    overrides = PeriodOverrides(
        train=(d(2016, 10, 1),), validation=d(2016, 11, 1), scoring=d(2016, 12, 1)
    )
    periods = detect_periods(facts, overrides)
    assert (periods.train, periods.validation, periods.scoring) == (
        (d(2016, 10, 1),),
        d(2016, 11, 1),
        d(2016, 12, 1),
    )
    assert "set by hand" in " ".join(periods.reasons)
    assert parse_month("2017-03") == d(2017, 3, 1)
    with pytest.raises(ValueError, match="2017-13"):
        parse_month("2017-13")


def test_no_labelled_month_is_a_clear_error():
    with pytest.raises(ValueError, match="no labelled month"):
        detect_periods(DataFacts(d(2017, 2, 1), d(2017, 3, 31)))


def test_periods_round_trip_through_json(tmp_path):
    facts = DataFacts(d(2015, 1, 1), d(2017, 3, 31), d(2016, 1, 1), d(2017, 3, 31))
    periods = detect_periods(facts)
    again = ChurnPeriods.from_dict(periods.as_dict())
    assert (again.train, again.validation, again.scoring) == (
        periods.train, periods.validation, periods.scoring
    )  # fmt: skip
    path = periods_path(tmp_path / "lake")
    with pytest.raises(FileNotFoundError, match=r"periods\.json"):
        ChurnPeriods.load(path)
    periods.save(path)
    assert path == tmp_path / "lake" / "churn" / "periods.json"
    assert ChurnPeriods.load(path) == periods


def test_the_coverage_note_names_the_short_months_or_says_all_covered():
    short = detect_periods(DataFacts(d(2016, 1, 1), d(2016, 9, 30), d(2016, 6, 1), d(2016, 9, 30)))
    assert set(short.short_coverage()) == {"2016-07", "2016-08"}
    assert "2016-07: logs 33%, transactions 100%" in short.coverage_note()
    assert "missing (not zero)" in short.coverage_note()
    full = detect_periods(DataFacts(d(2015, 1, 1), d(2017, 3, 31), d(2015, 1, 1), d(2017, 3, 31)))
    assert full.short_coverage() == {}
    assert full.coverage_note() == "logs and transactions cover every month's look-back"


def test_derivable_months_need_the_following_month_and_a_history_month():
    assert derivable_months(DataFacts(d(2016, 1, 5), d(2016, 5, 31))) == [
        d(2016, 2, 1), d(2016, 3, 1), d(2016, 4, 1)
    ]  # fmt: skip
    assert coverage_share(d(2016, 12, 1), d(2017, 3, 31), d(2017, 1, 1)) == round(31 / 90, 4)


def test_layouts_and_label_file_months():
    v1 = detect_layout(["members_v3.csv", "transactions.csv", "user_logs.csv", "train.csv"])
    assert v1.name == "kaggle-v1" and v1.label_files == ("train.csv",)
    v2 = detect_layout(
        ["members_v3.csv", "transactions.csv", "transactions_v2.csv", "user_logs.csv",
         "user_logs_v2.csv", "train.csv", "train_v2.csv", "sample_submission_v2.csv"]
    )  # fmt: skip
    assert v2.name == "kaggle-v2" and v2.transactions == ("transactions.csv", "transactions_v2.csv")
    bare = detect_layout(["members_v3.csv", "transactions_v2.csv", "user_logs_v2.csv"])
    assert bare.name == "label-less" and bare.label_files == ()
    with pytest.raises(KKBoxLayoutError, match=r"user_logs\.csv or user_logs_v2\.csv"):
        detect_layout(["members_v3.csv", "transactions.csv"])
    months = label_file_months(
        ("train.csv", "train_v2.csv"),
        {"transactions.csv": d(2017, 2, 28), "transactions_v2.csv": d(2017, 3, 31)},
    )
    assert months == {"train.csv": d(2017, 2, 1), "train_v2.csv": d(2017, 3, 1)}
