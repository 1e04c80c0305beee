"""How far each member has faded on the billing day: an engagement hidden Markov model.

A member who drifts away listens less and less before deciding not to renew; the depth of that
fall on the day the term was billed is the strongest churn driver a log shows. Window features
(plays in the last 21 days against the usual level, …) see it blurred by the day-to-day chance
of listening at all; a model of the process reads it far more precisely. Each member is, day by
day, either *engaged* (listening level 1) or *fading* since an onset k days ago (level
``max(floor, exp(-k / tau))``); onsets and recoveries are daily hazards. A day inside a
subscription shows whether the member listened (chance ``activity × level``) and how much
(plays with mean ``volume × (0.3 + 0.7 × level)``, over-dispersed: a quasi-Poisson with
dispersion 2); days outside every subscription say nothing. The member's own activity and
volume come from their logs (EM, shrunk towards the population), the clock (`tau`) and the
hazards from the whole population by maximum likelihood (`fit_fade_model`).

`fade_depths` gives, per (member, month), the posterior mean of the depth ``1 − level`` on the
member's last billing before the month, from the logs **before the month only** (the same
information a forecast on the month's first day has), and the posterior chance that the member
was engaged on that day. Pure numpy and pandas, one batch of members at a time, so Spark can run
it per bucket of members (`customer360.churn.fade_job.fade_features`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

#: Output columns of `fade_depths` beside msno and period_start.
FADE_FEATURES: tuple[str, ...] = ("fade_depth", "fade_engaged", "fade_spread")
#: Members per forward–backward batch (memory: 2 × batch × days × states × 4 bytes, ~180 MB).
BATCH = 1000
#: Days of log read before each period: a year estimates the member's own level and bounds
#: the batch's memory on long drops (Kaggle's logs span 26 months).
HISTORY_DAYS = 365
#: Population prior of the member's own traits (pseudo-days of evidence).
_PRIOR_ACTIVITY, _PRIOR_ACTIVITY_DAYS = 0.7, 4.0
_PRIOR_VOLUME, _PRIOR_VOLUME_DAYS = 20.0, 5.0
#: Rounds of re-estimating the traits against the expected level (EM): the first guess reads
#: a fading member's quiet days as a low level of their own, so it under-reads the fade.
TRAIT_ROUNDS = 1
_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class FadeModel:
    """The population's clock: days for the level to fall to 1/e, its floor, daily hazards.
    The defaults are only where `fit_fade_model` starts (a fade a year, lasting a season); the
    floor stays fixed (a member who has drifted away still opens the app now and then)."""

    tau: float = 20.0
    floor: float = 0.05
    onset_rate: float = 1 / 365
    recover_rate: float = 1 / 90

    def levels(self) -> np.ndarray:
        """Level per state: [engaged, fading day 0, 1, …, the day it reaches the floor]."""
        floor_day = int(np.ceil(self.tau * np.log(1 / self.floor)))
        fading = np.maximum(self.floor, np.exp(-np.arange(floor_day + 1) / self.tau))
        return np.concatenate([[1.0], fading])


@dataclass
class _Batch:
    """Daily arrays of a batch of members over [first, first + days): listened, plays, and
    whether the day is inside a subscription (`counts`)."""

    msno: pd.Index
    first: int
    listened: np.ndarray
    plays: np.ndarray
    counts: np.ndarray


def day_number(value: dt.date) -> int:
    """Days since 1970-01-01 (the unit of every day column here)."""
    return (value - _EPOCH).days


def fade_depths(
    logs: pd.DataFrame,
    transactions: pd.DataFrame,
    periods: Sequence[dt.date],
    model: FadeModel,
    log_days: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """msno, period_start, `FADE_FEATURES` for every member whose subscription may still be
    current at each period (see `_billing_days`). `logs`: msno, day (days since 1970-01-01),
    plays — one row per member and day (`daily_plays`); `transactions`: msno, transaction_day,
    expire_day, is_cancel; `log_days`: the first and last day the whole log covers (from
    `logs` when None — a part of the members must pass the whole's, since a day without a row
    inside the log's range means "did not listen", outside it "unknown"). Depths are NaN where
    the log does not reach the billing day."""
    billing = _billing_days(transactions, periods)
    columns = ["msno", "period_start", *FADE_FEATURES]
    if log_days is None and len(logs):
        log_days = (int(logs["day"].min()), int(logs["day"].max()))
    if billing.empty:
        return pd.DataFrame(columns=columns)
    first, observed = log_days or (0, -1)
    parts = []
    for period, rows in billing.groupby("period_start"):
        last = day_number(period) - 1
        if min(last, observed) < first:  # no log before the period: unknown, not engaged
            parts.append(
                rows[["msno", "period_start"]].assign(**dict.fromkeys(FADE_FEATURES, np.nan))
            )
            continue
        start = max(first, last - HISTORY_DAYS + 1)
        for batch in _batches(logs, transactions, rows["msno"].to_numpy(), start, last, observed):
            parts.append(_depths(batch, rows[rows["msno"].isin(batch.msno)], model))
    return pd.concat(parts, ignore_index=True)[columns]


def fit_fade_model(
    logs: pd.DataFrame,
    transactions: pd.DataFrame,
    taus: Sequence[float] = (10.0, 14.0, 20.0, 28.0, 40.0),
    iterations: int = 3,
    members: int = 2000,
    seed: int = 0,
    log_days: tuple[int, int] | None = None,
) -> FadeModel:
    """The clock with the highest likelihood of (a sample of) the logs; for each candidate
    `tau` the hazards (Baum–Welch) and the members' traits are re-estimated `iterations`
    times. `log_days` as in `fade_depths`. No logs: the default clock."""
    if logs.empty:
        return FadeModel()
    # sorted: the logs arrive in whatever order Spark collected them, and a sample drawn from
    # that order fitted a different clock on each run of the same data
    msno = logs["msno"].drop_duplicates().sort_values(ignore_index=True)
    if len(msno) > members:
        msno = msno.sample(members, random_state=seed)
    first, last = log_days or (int(logs["day"].min()), int(logs["day"].max()))
    first = max(first, last - HISTORY_DAYS + 1)
    logs = logs[logs["msno"].isin(msno)]
    batches = list(_batches(logs, transactions, msno.to_numpy(), first, last))
    best: tuple[float, FadeModel] | None = None
    for tau in taus:
        model = replace(FadeModel(), tau=float(tau))
        levels: list[np.ndarray | None] = [None] * len(batches)
        for _ in range(iterations):
            onsets = recoveries = engaged = fading = loglik = 0.0
            for i, batch in enumerate(batches):
                traits = _member_traits(batch, level=levels[i])
                stats = _smooth(batch, model, last + 1 - batch.first, traits, hazards=True)
                levels[i] = stats.level
                onsets += stats.onsets
                recoveries += stats.recoveries
                engaged += stats.engaged_days
                fading += stats.fading_days
                loglik += stats.loglik
            model = replace(
                model,
                onset_rate=float(np.clip(onsets / max(engaged, 1.0), 1e-4, 0.1)),
                recover_rate=float(np.clip(recoveries / max(fading, 1.0), 1e-4, 0.2)),
            )
        if best is None or loglik > best[0]:
            best = (loglik, model)
    return best[1] if best else FadeModel()


def daily_plays(user_logs: pd.DataFrame) -> pd.DataFrame:
    """msno, day, plays (all num_* summed; a member's rows of one day added up)."""
    plays = user_logs[["num_25", "num_50", "num_75", "num_985", "num_100"]].sum(axis=1)
    day = (pd.to_datetime(user_logs["date"]) - pd.Timestamp(_EPOCH)).dt.days
    frame = pd.DataFrame({"msno": user_logs["msno"], "day": day, "plays": plays})
    return frame.groupby(["msno", "day"], as_index=False)["plays"].sum()


# ---------------------------------------------------------------------------------------------


def _billing_days(transactions: pd.DataFrame, periods: Sequence[dt.date]) -> pd.DataFrame:
    """msno, period_start, billing_day: the member's last subscription transaction before the
    period, for members with a transaction before it whose expiry (or date) reaches the 31
    days before it — a superset of the members the features call current."""
    ends = transactions.assign(
        reach=np.maximum(transactions["expire_day"], transactions["transaction_day"]),
        paid_day=transactions["transaction_day"].where(transactions["is_cancel"] == 0),
    )
    parts = []
    for period in periods:
        start = day_number(period)
        member = (
            ends[ends["transaction_day"] < start]
            .groupby("msno", as_index=False)
            .agg(billing_day=("paid_day", "max"), reach=("reach", "max"))
        )
        member = member[(member["reach"] >= start - 31) & member["billing_day"].notna()]
        parts.append(member[["msno", "billing_day"]].assign(period_start=period))
    billing = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return billing.astype({"billing_day": "int64"}) if len(billing) else billing


def _batches(
    logs: pd.DataFrame,
    transactions: pd.DataFrame,
    members: np.ndarray,
    first: int,
    last: int,
    observed: int | None = None,
) -> Iterator[_Batch]:
    """Batches over days [first, last]; days after `observed` (the log's end) count as unseen."""
    days = last - first + 1
    for start in range(0, len(members), BATCH):
        msno = pd.Index(members[start : start + BATCH])
        listened = np.zeros((len(msno), days), np.float32)
        plays = np.zeros((len(msno), days), np.float32)
        mine = logs[logs["msno"].isin(msno) & logs["day"].between(first, last)]
        row, col = msno.get_indexer(mine["msno"]), mine["day"].to_numpy() - first
        listened[row, col] = 1.0
        plays[row, col] = mine["plays"].to_numpy()
        counts = _subscribed(transactions, msno, first, days)
        if observed is not None:
            counts[:, max(observed - first + 1, 0) :] = False
        yield _Batch(msno, first, listened, plays, counts)


def _subscribed(transactions: pd.DataFrame, msno: pd.Index, first: int, days: int) -> np.ndarray:
    """Days inside a paid subscription (a lapsed member's listening says nothing of fading)."""
    paid = transactions[(transactions["is_cancel"] == 0) & transactions["msno"].isin(msno)]
    row = msno.get_indexer(paid["msno"])
    lo = np.clip(paid["transaction_day"].to_numpy() - first, 0, days)
    hi = np.clip(paid["expire_day"].to_numpy() - first + 1, 0, days)
    # +1 at each start, −1 after each end, a running sum: inside any interval when > 0
    edges = np.zeros((len(msno), days + 1), np.int32)
    keep = hi > lo
    np.add.at(edges, (row[keep], lo[keep]), 1)
    np.add.at(edges, (row[keep], hi[keep]), -1)
    return np.cumsum(edges[:, :days], axis=1) > 0


@dataclass
class _Traits:
    activity: np.ndarray
    volume: np.ndarray


def _member_traits(batch: _Batch, upto: int | None = None, level: np.ndarray | None = None):
    """Each member's activity (chance of listening at level 1) and volume (plays at level 1),
    from the subscribed days before `upto`, read against the expected `level` (1 if None)."""
    days = batch.counts.shape[1] if upto is None else upto
    seen = batch.counts[:, :days].astype(np.float32)
    listened, plays = batch.listened[:, :days] * seen, batch.plays[:, :days] * seen
    level = np.ones_like(seen) if level is None else level[:, :days]
    activity = (listened.sum(1) + _PRIOR_ACTIVITY * _PRIOR_ACTIVITY_DAYS) / (
        (level * seen).sum(1) + _PRIOR_ACTIVITY_DAYS
    )
    volume = (plays.sum(1) + _PRIOR_VOLUME * _PRIOR_VOLUME_DAYS) / (
        ((0.3 + 0.7 * level) * listened).sum(1) + _PRIOR_VOLUME_DAYS
    )
    return _Traits(np.clip(activity, 0.02, 0.99), np.maximum(volume, 1.0))


def _depths(batch: _Batch, rows: pd.DataFrame, model: FadeModel) -> pd.DataFrame:
    """The depth on each row's billing day from the batch's days (those before the period):
    the members' traits re-estimated `TRAIT_ROUNDS` times against the expected level, then
    the posterior."""
    upto = batch.counts.shape[1]
    want = np.full(len(batch.msno), -1)
    index = batch.msno.get_indexer(rows["msno"])
    want[index] = rows["billing_day"].to_numpy() - batch.first
    traits = _member_traits(batch, upto)
    for _ in range(TRAIT_ROUNDS):
        traits = _member_traits(batch, upto, _smooth(batch, model, upto, traits).level)
    posterior = _smooth(batch, model, upto, traits, want).at_want[index]
    depth = 1 - model.levels()
    known = want[index] >= 0  # a billing before the first log day: unknown
    mean = posterior @ depth
    spread = np.sqrt(np.maximum(posterior @ depth**2 - mean**2, 0.0))
    return pd.DataFrame({
        "msno": rows["msno"].to_numpy(),
        "period_start": rows["period_start"].to_numpy(),
        "fade_depth": np.where(known, mean, np.nan),
        "fade_engaged": np.where(known, posterior[:, 0], np.nan),
        "fade_spread": np.where(known, spread, np.nan),
    })  # fmt: skip


@dataclass
class _Smoothed:
    """What one forward–backward pass gives: the expected level per member and day (None when
    `want` was asked for instead), the state posterior on each member's wanted day (None
    without `want`), and the Baum–Welch counts and log-likelihood (zero unless `hazards`)."""

    level: np.ndarray | None
    at_want: np.ndarray | None
    onsets: float = 0.0
    recoveries: float = 0.0
    engaged_days: float = 0.0
    fading_days: float = 0.0
    loglik: float = 0.0


class _Emissions:
    """e_t per member and state, scaled by its row maximum, and the log of that scale. The
    per-member constants of the log-likelihood are computed once per pass: it is read on
    every one of the pass's days, and the day loop is most of the model's time."""

    def __init__(self, batch: _Batch, levels: np.ndarray, traits: _Traits, upto: int) -> None:
        chance = np.clip(traits.activity[:, None] * levels[None, :], 1e-6, 1 - 1e-6)
        mean = traits.volume[:, None] * (0.3 + 0.7 * levels[None, :])
        # quasi-Poisson (dispersion 2): a listened day with p plays has log-likelihood
        # log(chance) + ½ (p log(mean) − mean), i.e. heard + p × per_play
        self._heard = (np.log(chance) - 0.5 * mean).astype(np.float32)
        self._per_play = (0.5 * np.log(mean)).astype(np.float32)
        quiet = np.log1p(-chance)  # a subscribed day without listening
        self._quiet_top = quiet.max(1)
        self._quiet = np.exp(quiet - self._quiet_top[:, None]).astype(np.float32)
        self._batch = batch
        self._seen = batch.counts[:, :upto]
        self._listened = (batch.listened[:, :upto] > 0) & self._seen

    def __call__(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        seen = self._seen[:, t]
        n, states = self._heard.shape
        if not seen.any():
            return np.ones((n, states), np.float32), np.zeros(n)
        log_e = self._heard + self._batch.plays[:, t, None] * self._per_play
        top = log_e.max(1).astype(np.float64)
        e = np.exp(log_e - top[:, None].astype(np.float32))
        quiet = seen & ~self._listened[:, t]
        e[quiet], top[quiet] = self._quiet[quiet], self._quiet_top[quiet]
        e[~seen], top[~seen] = 1.0, 0.0  # a day outside every subscription says nothing
        return e, top


def _smooth(
    batch: _Batch,
    model: FadeModel,
    upto: int,
    traits: _Traits,
    want: np.ndarray | None = None,
    hazards: bool = False,
) -> _Smoothed:
    """Forward–backward over days [0, upto) of the batch; emissions only on subscribed days.
    Without `want`: the expected level per day, and with `hazards` the Baum–Welch counts and
    log-likelihood (the clock's fit); with `want`: only the posterior on the wanted days."""
    levels = model.levels()
    n, states = len(batch.msno), levels.size
    emission = _Emissions(batch, levels, traits, upto)
    on, off = model.onset_rate, model.recover_rate
    alpha = np.zeros((upto, n, states), np.float32)
    current = np.zeros((n, states))
    current[:, 0] = 1.0
    out = _Smoothed(level=None, at_want=None)
    emissions = []
    for t in range(upto):
        if t:
            current = _step_forward(current, on, off)
        e, shift = emission(t)
        emissions.append(e)
        current = current * e
        total = current.sum(1, keepdims=True)
        if hazards:
            out.loglik += float(np.log(total).sum() + np.sum(shift))
        current /= total
        alpha[t] = current
    if want is None:
        out.level = np.ones((n, batch.counts.shape[1]), np.float32)
    else:
        out.at_want = np.zeros((n, states))
        out.at_want[:, 0] = 1.0
    beta = np.ones((n, states))
    for t in range(upto - 1, -1, -1):
        if want is None:
            gamma = alpha[t] * beta
            gamma /= gamma.sum(1, keepdims=True)
            out.level[:, t] = gamma @ levels
        else:
            hit = want == t
            if hit.any():
                gamma = alpha[t][hit] * beta[hit]
                out.at_want[hit] = gamma / gamma.sum(1, keepdims=True)
        if t:
            eb = emissions[t] * beta
            beta = _step_backward(eb, on, off)  # β_{t-1}
            if hazards:
                _count_transitions(out, alpha[t - 1].astype(np.float64), eb, beta, on, off)
            beta /= beta.sum(1, keepdims=True)
    return out


def _count_transitions(
    out: _Smoothed, before: np.ndarray, eb: np.ndarray, beta: np.ndarray, on: float, off: float
) -> None:
    """Adds the expected transitions into one day to `out` (Baum–Welch counts for the
    hazards); `before` is α of the day before, `beta` its β."""
    total = (before * beta).sum(1)
    out.onsets += float((before[:, 0] * on * eb[:, 1] / total).sum())
    out.recoveries += float((before[:, 1:].sum(1) * off * eb[:, 0] / total).sum())
    out.engaged_days += float((before[:, 0] * beta[:, 0] / total).sum())
    out.fading_days += float(((before[:, 1:] * beta[:, 1:]).sum(1) / total).sum())


def _step_forward(p: np.ndarray, on: float, off: float) -> np.ndarray:
    """One day of the chain: engaged → fading day 0 (`on`), fading → engaged (`off`), fading
    day k → k + 1 (the last state, the floor, keeps itself)."""
    out = np.empty_like(p)
    out[:, 0] = p[:, 0] * (1 - on) + off * p[:, 1:].sum(1)
    out[:, 1] = p[:, 0] * on
    out[:, 2:] = p[:, 1:-1] * (1 - off)
    out[:, -1] += p[:, -1] * (1 - off)
    return out


def _step_backward(eb: np.ndarray, on: float, off: float) -> np.ndarray:
    """β_{t-1}(s) = Σ_s' T(s, s') e_t(s') β_t(s'), with `eb` = e_t × β_t."""
    out = np.empty_like(eb)
    out[:, 0] = (1 - on) * eb[:, 0] + on * eb[:, 1]
    out[:, 1:-1] = off * eb[:, [0]] + (1 - off) * eb[:, 2:]
    out[:, -1] = off * eb[:, 0] + (1 - off) * eb[:, -1]
    return out
