"""The KKBox generator: Kaggle headers and formats, determinism, realistic values, customer ids;
and the generator's own port of the labelling rules on the official examples."""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pandas as pd
import pytest
from churn_builders import d

from customer360.churn.disengagement import FLOOR, TAU, Disengagement, level_on
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


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A v2 world with its truth written beside (not inside) landing."""
    root = tmp_path_factory.mktemp("world")
    paths = generate_kkbox(root / "landing", members=3000, seed=6, truth_dir=root / "truth")
    return root, paths


def test_truth_is_written_outside_landing_with_probabilities_and_outcomes(world):
    root, paths = world
    truth = pd.read_csv(paths["truth"])
    assert paths["truth"].parent == root / "truth"
    assert not list((root / "landing").glob("truth*"))
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
    # The hidden disengagement D at billing and the probability had it been none or the
    # deepest (bench diagnostics): the truth lies between them, equal to the engaged variant
    # for an engaged member, and disengagement only ever raises it.
    assert truth["fading"].between(0, 1 - FLOOR + 1e-9).all()
    assert 0.05 < (truth["fading"] > 0.3).mean() < 0.3
    engaged = truth["fading"] == 0
    gap = truth["churn_probability"] - truth["probability_if_not_fading"]
    assert gap[engaged].abs().max() < 2e-6
    # (A member who cancelled and did not re-subscribe within the plan-change days is a
    # certain churner, fading or not.)
    uncertain = truth["churn_probability"] < 1
    assert (gap[~engaged] > -2e-6).all()
    assert (gap[(truth["fading"] > 0.3) & uncertain] > 0.01).all()
    lifted = truth["probability_if_fading"] - truth["probability_if_not_fading"]
    assert (lifted[uncertain] > 0).all() and (lifted[~uncertain] == 0).all()
    fading = pd.read_csv(root / "truth" / "fading.csv")
    assert fading["period_start"].nunique() == 13  # April and the twelve months before
    april = fading[fading["period_start"] == "2017-04-01"].set_index("msno")["fading"]
    assert april.reindex(truth["msno"]).tolist() == truth["fading"].tolist()


@pytest.fixture(scope="module")
def large_world(tmp_path_factory):
    """A v2 world large enough for calibration within a small group (about 70 members)."""
    root = tmp_path_factory.mktemp("large")
    generate_kkbox(root / "landing", members=20_000, seed=6, truth_dir=root / "truth")
    return root


def test_truth_conditions_on_what_the_scoring_day_shows(large_world):
    """A member in scope on April 1st whose last transaction is a cancel has not re-subscribed
    yet, and only a stayer would have (a plan change follows a cancel within days): the truth
    weighs that in. The probability the outcome was drawn with does not, and is far too low
    for them (about 0.52 against an observed 0.75 in this world)."""
    landing = large_world / "landing"
    truth = pd.read_csv(large_world / "truth" / "truth.csv")
    in_scope = set(pd.read_csv(landing / "sample_submission_v2.csv")["msno"])
    truth = truth[truth["msno"].isin(in_scope)]
    tx = pd.concat([pd.read_csv(landing / n) for n in ("transactions.csv", "transactions_v2.csv")])
    last = tx.sort_values(["msno", "transaction_date", "is_cancel"]).groupby("msno").tail(1)
    cancelled = truth["msno"].isin(last.loc[last["is_cancel"] == 1, "msno"])
    group = truth[cancelled]
    assert len(group) >= 50
    assert abs(group["churn_probability"].mean() - group["is_churn"].mean()) < 0.1
    assert group["is_churn"].mean() - group["drawn_probability"].mean() > 0.15
    assert abs(truth["churn_probability"].mean() - truth["is_churn"].mean()) < 0.015


def _active_share_before_billing(paths) -> pd.DataFrame:
    """Per member: the in-scope term's billing day (last renewal before April) and the share
    of days with a log row 1–14 days before it and 61–120 days before it (the usual level)."""
    tx = pd.concat([pd.read_csv(paths["transactions"]), pd.read_csv(paths["transactions_v2"])])
    tx = tx[(tx["is_cancel"] == 0) & (tx["transaction_date"] < 20170401)]
    billing = tx.groupby("msno")["transaction_date"].max()
    billing = pd.to_datetime(billing.astype(str), format="%Y%m%d")
    logs = pd.concat([pd.read_csv(paths["user_logs"]), pd.read_csv(paths["user_logs_v2"])])
    logs = logs.drop_duplicates(["msno", "date"])
    before = (billing.reindex(logs["msno"]).to_numpy() - pd.to_datetime(
        logs["date"].astype(str), format="%Y%m%d"
    ).to_numpy()) / np.timedelta64(1, "D")  # fmt: skip
    logs = logs.assign(before=before)
    recent = logs[logs["before"].between(1, 14)].groupby("msno").size() / 14
    usual = logs[logs["before"].between(61, 120)].groupby("msno").size() / 60
    return pd.DataFrame({"recent": recent, "usual": usual}).fillna(0)


def test_disengagement_precedes_the_decision_and_drives_churn(world):
    """The world's disengagement is the member's, not a coin per term: a term decided while
    the member is deeply disengaged shows the fall in the logs BEFORE its billing day (the
    decision), and the depth D on that day drives churn."""
    _root, paths = world
    truth = pd.read_csv(paths["truth"]).set_index("msno")
    shares = _active_share_before_billing(paths).reindex(truth.index).dropna()
    shares = shares[shares["usual"] > 0.3]  # members who used to listen
    deep = truth.loc[shares.index, "fading"] > 0.6
    engaged = truth.loc[shares.index, "fading"] == 0
    assert deep.sum() >= 30 and engaged.sum() >= 300
    kept = shares["recent"] / shares["usual"]
    assert kept[deep].median() < 0.5  # already listening far less before the billing
    assert kept[engaged].median() > 0.85
    churn_deep = truth.loc[truth["fading"] > 0.6, "is_churn"].mean()
    churn_engaged = truth.loc[truth["fading"] == 0, "is_churn"].mean()
    assert churn_deep > 4 * churn_engaged


def test_the_disengagement_level_decays_from_the_onset_until_re_engagement():
    days = np.arange(100, 200)
    level = level_on(days, 120, 170)
    assert (level[days < 120] == 1).all() and (level[days >= 170] == 1).all()
    assert level[days == 120][0] == 1.0  # the onset day itself is still engaged
    assert level[days == 120 + int(TAU)][0] == pytest.approx(np.exp(-1), abs=1e-9)
    inside = level[(days >= 120) & (days < 170)]
    assert (np.diff(inside) <= 0).all() and inside.min() >= FLOOR
    # A churn and comeback starts engaged again, whatever the member was.
    rng = np.random.default_rng(0)
    process = Disengagement.start(rng, np.zeros(3), np.array([0, 0, 0]))
    process.onset[:], process.recover[:] = 10, 10_000
    process.advance(rng, np.arange(3), np.full(3, 60))
    assert (process.depth(np.arange(3), np.full(3, 60)) > 0.8).all()
    process.restart(rng, np.array([1]), np.array([60]))
    depth = process.depth(np.arange(3), np.full(3, 60))
    assert depth[1] == 0 and depth[0] > 0.8
