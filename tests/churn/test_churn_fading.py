"""The engagement model (`fading.py`) on simulated members whose fade is known; the Spark job
(`fade_job.py`) gives the same numbers as the pandas functions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from customer360.churn.fading import (
    FADE_FEATURES,
    FadeModel,
    day_number,
    fade_depths,
    fit_fade_model,
)

PERIOD = dt.date(2017, 3, 1)
FIRST_LOG = day_number(PERIOD) - 200


def simulate(members: int, onset_before_billing: np.ndarray, tau: float, seed: int = 0):
    """Daily logs and transactions of `members`: a 30-day term billed 20 days before PERIOD,
    earlier terms back to the first log day; member i fades from `onset_before_billing[i]` days
    before the billing (NaN: engaged throughout). Returns (logs, transactions, true depth)."""
    rng = np.random.default_rng(seed)
    billing = day_number(PERIOD) - 20
    days = np.arange(FIRST_LOG, day_number(PERIOD) + 40)  # logs past the period too
    activity = rng.beta(4.0, 1.5, members)
    volume = rng.lognormal(np.log(22), 0.6, members)
    onset = billing - onset_before_billing
    since = days[None, :] - onset[:, None]
    level = np.where(since >= 0, np.maximum(0.05, np.exp(-np.maximum(since, 0) / tau)), 1.0)
    level = np.nan_to_num(level, nan=1.0)
    hit = rng.random(level.shape) < activity[:, None] * level
    row, col = np.nonzero(hit)
    plays = rng.poisson(rng.poisson(volume[row] * (0.3 + 0.7 * level[row, col])))
    msno = np.array([f"m{i:04d}" for i in range(members)])
    logs = pd.DataFrame({"msno": msno[row], "day": days[col], "plays": plays.astype(float)})
    starts = np.arange(billing, FIRST_LOG - 30, -30)
    transactions = pd.DataFrame({
        "msno": np.repeat(msno, len(starts)),
        "transaction_day": np.tile(starts, members),
        "expire_day": np.tile(starts + 30, members),
        "is_cancel": 0,
    })  # fmt: skip
    since_billing = billing - onset
    depth = np.where(
        since_billing >= 0, 1 - np.maximum(0.05, np.exp(-np.maximum(since_billing, 0) / tau)), 0
    )
    return logs, transactions, pd.Series(np.nan_to_num(depth), index=msno)


def test_depth_on_the_billing_day_is_read_from_the_logs():
    onsets = np.tile([np.nan, 10.0, 30.0, 60.0], 75)  # engaged, depth 0.39, 0.78, 0.95
    logs, transactions, truth = simulate(300, onsets, tau=20.0)
    depths = fade_depths(logs, transactions, [PERIOD], FadeModel()).set_index("msno")
    assert list(depths.columns) == ["period_start", *FADE_FEATURES]
    error = (depths["fade_depth"] - truth.reindex(depths.index)).abs()
    assert error.mean() < 0.05, error.describe()
    engaged = truth.reindex(depths.index) == 0
    assert depths.loc[engaged, "fade_depth"].mean() < 0.08
    assert depths.loc[engaged, "fade_engaged"].mean() > 0.8
    deep = truth.reindex(depths.index) > 0.9
    assert depths.loc[deep, "fade_depth"].mean() > 0.85
    assert depths.loc[deep, "fade_engaged"].max() < 0.1


def test_logs_on_or_after_the_period_change_nothing():
    logs, transactions, _ = simulate(60, np.full(60, 15.0), tau=20.0)
    before = fade_depths(logs, transactions, [PERIOD], FadeModel())
    after = logs[logs["day"] >= day_number(PERIOD)].assign(plays=500.0)
    changed = pd.concat([logs[logs["day"] < day_number(PERIOD)], after])
    pd.testing.assert_frame_equal(before, fade_depths(changed, transactions, [PERIOD], FadeModel()))


def test_without_logs_before_the_billing_the_depth_is_unknown():
    logs, transactions, _ = simulate(5, np.full(5, np.nan), tau=20.0)
    early = dt.date.fromordinal(dt.date(1970, 1, 1).toordinal() + FIRST_LOG - 25)
    late = pd.concat([transactions, transactions.assign(
        transaction_day=FIRST_LOG - 60, expire_day=FIRST_LOG - 20
    )])  # fmt: skip
    depths = fade_depths(logs, late, [early], FadeModel())
    assert len(depths) == 5 and depths[list(FADE_FEATURES)].isna().all().all()


def test_the_clock_is_fitted_from_the_population():
    onsets = np.where(np.arange(400) % 2 == 0, np.nan, np.linspace(0, 80, 400))
    for tau in (10.0, 40.0):
        logs, transactions, _ = simulate(400, onsets, tau=tau, seed=int(tau))
        logs = logs[logs["day"] < day_number(PERIOD)]
        fitted = fit_fade_model(logs, transactions, taus=(10.0, 40.0), iterations=1)
        assert fitted.tau == tau


@pytest.mark.spark
def test_the_spark_job_runs_the_same_functions(spark):
    from customer360.churn.fade_job import fade_features

    logs, transactions, _ = simulate(40, np.tile([np.nan, 5.0, 25.0, 50.0], 10), tau=20.0)

    def date(days: pd.Series) -> pd.Series:
        return (pd.Timestamp(0) + pd.to_timedelta(days, unit="D")).dt.date

    user_logs = spark.createDataFrame(pd.DataFrame({
        "msno": logs["msno"],
        "date": date(logs["day"]),
        "num_25": 0, "num_50": 0, "num_75": 0, "num_985": 0,
        "num_100": logs["plays"].astype(int),
    }))  # fmt: skip
    clean = spark.createDataFrame(pd.DataFrame({
        "msno": transactions["msno"],
        "transaction_date": date(transactions["transaction_day"]),
        "membership_expire_date": date(transactions["expire_day"]),
        "is_cancel": transactions["is_cancel"],
    }))  # fmt: skip
    features, model = fade_features(clean, user_logs, [PERIOD])
    got = features.toPandas().sort_values("msno", ignore_index=True)
    fitted = fit_fade_model(logs, transactions)  # all 40 members: Spark's sample is them all
    expected = fade_depths(logs, transactions, [PERIOD], fitted)
    expected = expected.sort_values("msno", ignore_index=True)
    assert (model.tau, model.onset_rate, model.recover_rate) == pytest.approx(
        (fitted.tau, fitted.onset_rate, fitted.recover_rate), rel=1e-9
    )
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-6)
