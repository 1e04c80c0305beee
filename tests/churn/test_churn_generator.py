"""The KKBox generator: Kaggle headers and formats, determinism, realistic values, customer ids;
and the generator's own port of the labelling rules on the official examples."""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pandas as pd
import pytest
from churn_builders import d

from customer360.churn.generator import _day, generate_kkbox, label_period_arrays
from customer360.churn.ids import msno_for_customer
from customer360.churn.schemas import KKBOX_FILES


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return generate_kkbox(tmp_path_factory.mktemp("kkbox"), members=800, seed=1)


def _digest(paths) -> dict[str, str]:
    return {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in paths.items()}


def test_writes_the_kaggle_files_with_their_exact_headers(files):
    assert sorted(files) == sorted(set(KKBOX_FILES) - {"sample_submission_zero"})  # v2
    for stem, path in files.items():
        assert path.name == f"{stem}.csv"
        assert path.read_text().splitlines()[0] == ",".join(KKBOX_FILES[stem])


def test_same_seed_same_bytes_other_seed_other_data(files, tmp_path):
    again = generate_kkbox(tmp_path / "again", members=800, seed=1)
    assert _digest(again) == _digest(files)
    other = generate_kkbox(tmp_path / "other", members=800, seed=2)
    assert _digest(other)["transactions"] != _digest(files)["transactions"]


def test_values_look_like_kkbox(files):
    members = pd.read_csv(files["members_v3"], keep_default_na=False)
    tx = pd.concat([pd.read_csv(files["transactions"]), pd.read_csv(files["transactions_v2"])])
    logs = pd.read_csv(files["user_logs_v2"])
    assert len(members) == 800 and members["msno"].str.len().eq(44).all()
    assert set(members["gender"]) == {"", "male", "female"}
    assert 0.45 < (members["gender"] == "").mean() < 0.65
    assert set(tx["payment_plan_days"]) <= {30, 90, 180, 410}
    renewals = tx[tx["is_cancel"] == 0]
    assert set(renewals.loc[renewals["payment_plan_days"] == 30, "plan_list_price"]) <= {
        99, 129, 149, 180,
    }  # fmt: skip
    assert 0.7 < renewals["is_auto_renew"].mean() < 0.95
    assert 0.01 < tx["is_cancel"].mean() < 0.1
    assert (tx["actual_amount_paid"] <= tx["plan_list_price"]).all()
    # Kaggle's split: transactions_v2 and user_logs_v2 hold the last month only.
    v2 = pd.read_csv(files["transactions_v2"])
    assert v2["transaction_date"].between(20170301, 20170331).all()
    assert logs["date"].between(20170301, 20170331).all()
    assert (logs[["num_25", "num_50", "num_75", "num_985", "num_100", "num_unq"]] >= 0).all().all()
    assert (logs["total_secs"] >= 0).all() and (logs["total_secs"] > 0).mean() > 0.9
    for frame in (logs, pd.read_csv(files["user_logs"])):  # values the reader accepts
        assert frame.notna().all().all()
        pd.to_datetime(frame["date"].astype(str), format="%Y%m%d")  # raises on a bad date
    train = pd.read_csv(files["train_v2"])
    assert set(train["msno"]) <= set(members["msno"])
    assert 0.05 < train["is_churn"].mean() < 0.25


def test_members_tied_to_customers_use_msno_for_customer(tmp_path):
    ids = [1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010]
    paths = generate_kkbox(tmp_path, members=10, seed=3, customer_ids=ids)
    members = pd.read_csv(paths["members_v3"])
    assert members["msno"].tolist() == [msno_for_customer(i) for i in ids]
    with pytest.raises(ValueError, match="3 ids for 10 members"):
        generate_kkbox(tmp_path, members=10, customer_ids=[1, 2, 3])
    with pytest.raises(ValueError, match="last day of a month"):
        generate_kkbox(tmp_path, members=10, end=dt.date(2017, 3, 30))


def _frame(rows) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=["member", "transaction_date", "membership_expire_date", "is_cancel"]
    )
    frame["transaction_date"] = frame["transaction_date"].map(lambda s: _day(d(s)))
    frame["membership_expire_date"] = frame["membership_expire_date"].map(lambda s: _day(d(s)))
    frame["payment_method_id"] = 41
    frame["payment_plan_days"] = 30
    frame["plan_list_price"] = 149
    return frame


def test_the_generators_labeller_agrees_with_the_official_examples():
    frame = _frame(
        [
            (1, "01-01", "02-28", 0), (1, "02-25", "03-15", 0), (1, "04-30", "05-30", 0),
            (2, "01-01", "02-28", 0), (2, "02-25", "04-03", 0), (2, "03-15", "03-16", 1),
            (2, "04-01", "06-30", 0),
            (3, "01-01", "02-28", 0), (3, "02-25", "04-03", 0), (3, "03-15", "03-16", 1),
            (3, "03-18", "04-02", 0),
            (4, "02-10", "03-10", 0),
        ]
    )  # fmt: skip
    labels = label_period_arrays(frame, dt.date(2017, 3, 1))
    got = {
        int(r.member): (int(r.is_churn), r.last_expire, r.renewal_gap_days)
        for r in labels.itertuples()
    }
    gap_of_4 = got.pop(4)
    assert got == {1: (1, _day(d("03-15")), 46.0), 2: (0, _day(d("03-16")), 16.0)}
    assert gap_of_4[:2] == (1, _day(d("03-10"))) and np.isnan(gap_of_4[2])  # no renewal


@pytest.mark.parametrize(
    ("layout", "stems"),
    [
        ("v1", {"members_v3", "transactions", "user_logs", "train", "sample_submission_zero"}),
        ("label-less", {"members_v3", "transactions", "user_logs"}),
    ],
)
def test_other_layouts_write_kaggles_other_file_sets(tmp_path, layout, stems):
    paths = generate_kkbox(tmp_path / "landing", members=600, seed=5, layout=layout)
    assert set(paths) == stems
    assert {p.stem for p in (tmp_path / "landing").iterdir()} == stems
    tx = pd.read_csv(paths["transactions"])
    assert tx["transaction_date"].max() <= 20170331  # one file up to the data's end
    if layout == "v1":  # train.csv labels the last month, the submission lists the next one
        train = pd.read_csv(paths["train"])
        assert 0.03 < train["is_churn"].mean() < 0.3
        assert (pd.read_csv(paths["sample_submission_zero"])["is_churn"] == 0).all()
    with pytest.raises(ValueError, match="layout must be one of"):
        generate_kkbox(tmp_path / "x", members=10, layout="v3")


def test_truth_is_written_outside_landing_with_probabilities_and_outcomes(tmp_path):
    paths = generate_kkbox(tmp_path / "landing", members=3000, seed=6, truth_dir=tmp_path / "truth")
    truth = pd.read_csv(paths["truth"])
    assert paths["truth"].parent == tmp_path / "truth"
    assert not list((tmp_path / "landing").glob("truth*"))
    assert (truth["period_start"] == "2017-04-01").all()  # the month after the data's end
    assert truth["churn_probability"].between(0, 1).all()
    # Outcomes follow these probabilities (as of April 1st): calibrated within sampling error,
    # and far better than chance at ranking; the drawn ones also knew April's cancels.
    assert abs(truth["churn_probability"].mean() - truth["is_churn"].mean()) < 0.03
    churners = truth.loc[truth["is_churn"] == 1, "churn_probability"].mean()
    stayers = truth.loc[truth["is_churn"] == 0, "churn_probability"].mean()
    assert churners > 3 * stayers
    assert truth["drawn_probability"].between(0, 1).all()
    # Every truth member is in scope for April on the files' transactions (the submission).
    submission = pd.read_csv(paths["sample_submission_v2"])
    assert set(truth["msno"]) - set(submission["msno"]) == set() or len(
        set(truth["msno"]) - set(submission["msno"])
    ) < 0.05 * len(truth)
    # The hidden fading draw and the probability had it gone either way (bench diagnostics):
    # the truth is the variant of the member's own draw, and fading only ever raises it.
    own = truth["probability_if_fading"].where(
        truth["fading"] == 1, truth["probability_if_not_fading"]
    )
    assert (own - truth["churn_probability"]).abs().max() < 2e-6
    assert (truth["probability_if_fading"] > truth["probability_if_not_fading"]).all()
    assert 0.03 < truth["fading"].mean() < 0.3
    fading = pd.read_csv(tmp_path / "truth" / "fading.csv")
    assert fading["period_start"].nunique() == 13  # April and the twelve months before
    april = fading[fading["period_start"] == "2017-04-01"].set_index("msno")["fading"]
    assert april.reindex(truth["msno"]).tolist() == truth["fading"].tolist()
