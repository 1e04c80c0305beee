"""Synthetic KKBox data: the Kaggle files, same headers and formats, with learnable churn.

`generate_kkbox` simulates each member's subscription life with numpy (all members at once, one
transaction per member per loop step), so 100,000 members take seconds, not minutes:

- plans of 30/90/180/410 days with KKBox-like list prices (NTD), payment methods, promotions
  (paid 0 or half price), auto-renew (about 80%), active cancels (immediate or end-of-term);
- each member is engaged or disengaging (`disengagement.py`: a member-level process whose
  listening level decays smoothly from an onset until a re-engagement);
- at each billing the world decides whether the member renews at the term's expiry or churns;
  churn is more likely with auto-renew off, after a cancel, the deeper the member's
  disengagement on the billing day (already visible in the logs before the decision), on a
  discounted or cheap plan, for young members and some registration channels/cities; a
  churner may come back after more than 30 days (a new subscription, engaged again);
- daily listening (`user_logs`) for the last five months of the range: per-member activity and
  volume, counts num_25..num_100, num_unq, total_secs, a few members with two rows on a day;
- `train_v2.csv` holds the labels of the last month, computed by the official rules from the
  simulated future (which, as with Kaggle, is not in the transaction files).

Files are split as Kaggle's: `transactions.csv` / `user_logs.csv` before the last month,
`transactions_v2.csv` / `user_logs_v2.csv` the last month (the month of `end`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from customer360.churn.disengagement import FLOOR, Disengagement, level_on
from customer360.churn.ids import msno_for_customer
from customer360.churn.periods import add_months, period_bounds
from customer360.churn.schemas import (
    MEMBERS_COLUMNS,
    TRAIN_COLUMNS,
    TRANSACTIONS_COLUMNS,
    USER_LOGS_COLUMNS,
)

DEFAULT_START = dt.date(2016, 1, 1)
#: Kaggle's data end; the last month (March 2017) goes to the *_v2 files and train_v2.csv.
DEFAULT_END = dt.date(2017, 3, 31)
#: User logs cover the last months of the range: six training months, the validation month
#: and the 90-day engagement look-back before the first training month.
LOG_MONTHS = 10

_EPOCH = dt.date(1970, 1, 1)
_NEVER = np.iinfo(np.int32).max // 2
_PLAN_DAYS = np.array([30, 90, 180, 410])
_PLAN_SHARE = np.array([0.80, 0.07, 0.05, 0.08])
#: List prices (NTD) per plan and their shares; the 30-day 99/129 plans are the cheap ones.
_PLAN_PRICES = {
    30: (np.array([149, 99, 129, 180]), np.array([0.70, 0.15, 0.10, 0.05])),
    90: (np.array([447, 480]), np.array([0.8, 0.2])),
    180: (np.array([894, 536]), np.array([0.7, 0.3])),
    410: (np.array([1788, 1599, 2000]), np.array([0.6, 0.3, 0.1])),
}
_AUTO_METHODS = (np.array([41, 40, 39, 38, 37, 36]), np.array([0.55, 0.12, 0.1, 0.1, 0.08, 0.05]))
_MANUAL_METHODS = (
    np.array([34, 32, 30, 33, 29, 31, 35, 27, 28, 22, 20]),
    np.array([0.25, 0.15, 0.12, 0.1, 0.1, 0.08, 0.06, 0.05, 0.04, 0.03, 0.02]),
)
_CITIES = np.array([1, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 17, 18, 21, 22])
_CITY_SHARE = np.array(
    [0.45, 0.02, 0.06, 0.08, 0.04, 0.03, 0.02, 0.02, 0.02, 0.02, 0.1, 0.03, 0.04, 0.01, 0.02,
     0.02, 0.02]
)  # fmt: skip
_CHANNELS = np.array([7, 9, 3, 4, 13])
_CHANNEL_SHARE = np.array([0.33, 0.27, 0.17, 0.2, 0.03])
_CHANNEL_EFFECT = {7: -0.6, 9: 0.0, 3: 0.2, 4: 0.45, 13: 0.1}
#: Log-odds of an active cancel during a term, and what disengagement (× D) / manual renewal add.
_CANCEL_LOGIT, _CANCEL_FADING, _CANCEL_MANUAL = -3.4, 2.2, 0.5
#: Renewal timing of a member who stays: auto-renew bills on the expiry or, this often, the day
#: before; a manual renewer comes within these days of it (half-open range); after a cancel that
#: is not churn (a plan change) the new subscription comes within this many days.
_AUTO_DAY_BEFORE = 0.3
_MANUAL_RENEWAL_DAYS = (-7, 22)
_PLAN_CHANGE_DAYS = 10
_BD_OUTLIERS = np.array([-7000, -38, 1, 3, 105, 931, 1051, 2015])
#: Typical seconds per play in each listened-fraction bucket (num_25 … num_100).
_SECONDS_PER_PLAY = np.array([18.0, 65.0, 115.0, 175.0, 245.0])


LAYOUTS = ("v2", "v1", "label-less")


def generate_kkbox(
    out_dir: str | Path,
    members: int,
    seed: int = 0,
    start: dt.date = DEFAULT_START,
    end: dt.date = DEFAULT_END,
    customer_ids: Sequence[int] | None = None,
    *,
    layout: str = "v2",
    truth_dir: str | Path | None = None,
    log_months: int = LOG_MONTHS,
    drivers: ChurnDrivers | None = None,
) -> dict[str, Path]:
    """Write the Kaggle KKBox files for `members` simulated members into `out_dir`.

    `end` must be the last day of a month M (the data's last month); the range must span at
    least four months. `layout`: "v2" (Kaggle's second release: transactions/user_logs before M,
    *_v2 files for M, train.csv = labels of M − 1, train_v2.csv = labels of M,
    sample_submission_v2.csv = the M + 1 members), "v1" (one transactions/user_logs file up to
    M, train.csv = labels of M, sample_submission_zero.csv) or "label-less" (no label or
    submission file). Logs cover the last `log_months` months. With `truth_dir` (keep it out of
    landing) `truth.csv` gets, for the scoring month M + 1, each labelled member's true churn
    probability and outcome. With `customer_ids` member i's msno is
    `msno_for_customer(customer_ids[i])`. Same arguments → same bytes. Returns {stem: path}.
    """
    _check_arguments(members, start, end, customer_ids, layout)
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    drivers = drivers or ChurnDrivers()
    last_month = end.replace(day=1)
    msno = _msnos(rng, members, customer_ids)
    traits = _member_traits(rng, members, _day(start), _day(end), drivers.member_sd)
    # Simulate two months past the scoring month: the renewals that decide its labels.
    sim = _simulate(rng, traits, _day(add_months(last_month, 3)) - 1, drivers)
    log_from = _day(add_months(last_month, -(log_months - 1)))
    logs = _user_logs(rng, traits, sim, log_from, _day(end))
    paths = _write_layout(out, layout, msno, traits, sim.transactions, logs, last_month)
    if truth_dir is not None:
        paths["truth"] = _write_truth(
            Path(truth_dir), msno, sim, add_months(last_month, 1), layout, seed, drivers
        )
    return paths


def _check_arguments(members, start, end, customer_ids, layout) -> None:
    if members <= 0:
        raise ValueError(f"members must be positive, got {members}")
    if (end + dt.timedelta(days=1)).day != 1:
        raise ValueError(f"end must be the last day of a month, got {end}")
    if add_months(start.replace(day=1), 4) > end.replace(day=1):
        raise ValueError(f"the range {start}..{end} must span at least four months")
    if customer_ids is not None and len(customer_ids) != members:
        raise ValueError(f"customer_ids has {len(customer_ids)} ids for {members} members")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")


def _write_layout(out, layout, msno, traits, full_tx, logs, last_month) -> dict[str, Path]:
    """The files of `layout`; transactions after the data's end stay unwritten (the future)."""
    end = _day(add_months(last_month, 1)) - 1
    tx = full_tx[full_tx["transaction_date"] <= end]
    paths = {"members_v3": _write_members(out / "members_v3.csv", msno, traits)}
    split = _day(last_month) if layout == "v2" else end + 1
    paths["transactions"] = _write_transactions(
        out / "transactions.csv", msno, tx[tx["transaction_date"] < split]
    )
    paths["user_logs"] = _write_logs(out / "user_logs.csv", msno, logs[logs["date"] < split])
    if layout == "v2":
        paths["transactions_v2"] = _write_transactions(
            out / "transactions_v2.csv", msno, tx[tx["transaction_date"] >= split]
        )
        paths["user_logs_v2"] = _write_logs(
            out / "user_logs_v2.csv", msno, logs[logs["date"] >= split]
        )
    if layout == "label-less":
        return paths
    labels = {"v1": {"train": last_month}, "v2": {"train": add_months(last_month, -1),
              "train_v2": last_month}}[layout]  # fmt: skip
    for stem, month in labels.items():
        frame = label_period_arrays(full_tx, month)
        paths[stem] = _write_csv(
            out / f"{stem}.csv",
            TRAIN_COLUMNS,
            {"msno": msno[frame["member"].to_numpy()], "is_churn": frame["is_churn"].to_numpy()},
        )
    # The members to predict: in scope for the next month on what the files show.
    scoring = label_period_arrays(tx, add_months(last_month, 1))["member"].to_numpy()
    stem = "sample_submission_v2" if layout == "v2" else "sample_submission_zero"
    paths[stem] = _write_csv(
        out / f"{stem}.csv",
        TRAIN_COLUMNS,
        {"msno": msno[scoring], "is_churn": np.zeros(len(scoring), dtype=np.int64)},
    )
    return paths


def _write_truth(
    truth_dir: Path,
    msno,
    sim: _Simulation,
    month: dt.date,
    layout: str,
    seed: int,
    drivers: ChurnDrivers,
) -> Path:
    """The scoring month's labelled members with their true churn probability and outcome.

    `churn_probability` is the probability as of the month's first day: everything the world
    had drawn by then (plan, auto-renew, discount, fading, member effect, a cancel already made)
    is known, so is that the member has not renewed by then (being in scope says so; see
    `_probability_on`), and a cancel still to come is weighed by its chance — a prediction
    made on that day cannot know later draws, so an oracle that did would not be a fair
    yardstick. The disengagement D that drives the term was fixed on its billing day, before
    the month.
    `drawn_probability` is the one the outcome was drawn with (it includes later cancels).
    """
    labels = label_period_arrays(sim.transactions, month)
    day = _day(month)
    terms = _terms_frame(sim)
    truth = labels.merge(terms, on=["member", "last_expire"], how="inner")
    truth_dir.mkdir(parents=True, exist_ok=True)
    path = truth_dir / "truth.csv"
    pd.DataFrame(
        {
            "msno": msno[truth["member"].to_numpy()],
            "period_start": month.isoformat(),
            "is_churn": truth["is_churn"].to_numpy(),
            "churn_probability": np.round(_probability_on(truth, _day(month)), 6),
            "drawn_probability": truth["probability"].round(6).to_numpy(),
            "fading": truth["fading"].round(4).to_numpy(),
            "probability_if_fading": np.round(
                _probability_on(_with_fading(truth, 1 - FLOOR), day), 6
            ),
            "probability_if_not_fading": np.round(_probability_on(_with_fading(truth, 0), day), 6),
        }
    ).to_csv(path, index=False)
    _write_fading(truth_dir / "fading.csv", msno, sim.transactions, terms, month)
    (truth_dir / "truth.json").write_text(
        json.dumps(
            {
                "scoring_month": f"{month:%Y-%m}",
                "layout": layout,
                "seed": seed,
                "drivers": asdict(drivers),
                "labelled": len(labels),
                "with_probability": len(truth),
            },
            indent=2,
        )
    )
    return path


def _terms_frame(sim: _Simulation) -> pd.DataFrame:
    """Every simulated term, keyed by (member, last_expire) as the labels are."""
    keys = ("member", "end", "auto", "probability", "p_cancel", "p_stay", "cancel_chance",
            "cancel_from", "cancel_span", "cancel_day", "fading", "logit_rest", "cancel_rest",
            "fading_effect", "cancel_effect")  # fmt: skip
    terms = pd.DataFrame({k: np.concatenate([t[k] for t in sim.terms]) for k in keys})
    terms = terms.rename(columns={"end": "last_expire"})
    return terms.drop_duplicates(["member", "last_expire"], keep="last")


def _with_fading(terms: pd.DataFrame, fading: int) -> pd.DataFrame:
    """The same terms as if their disengagement D at billing had been `fading` (0: engaged,
    1: fully disengaged; everything else as drawn)."""
    logit = terms["logit_rest"] + terms["fading_effect"] * fading
    return terms.assign(
        p_stay=_sigmoid(logit.to_numpy()),
        p_cancel=_sigmoid((logit + terms["cancel_effect"]).to_numpy()),
        cancel_chance=_sigmoid((terms["cancel_rest"] + _CANCEL_FADING * fading).to_numpy()),
    )


def _write_fading(path: Path, msno, transactions, terms: pd.DataFrame, month: dt.date) -> None:
    """(msno, period_start, fading = D at billing) of the in-scope term of every month of the
    last year up to `month`: the hidden driver, for diagnostics (how well logs can reveal it),
    never features."""
    frames = []
    for k in range(-12, 1):
        period = add_months(month, k)
        labelled = label_period_arrays(transactions, period)
        rows = labelled.merge(
            terms[["member", "last_expire", "fading"]], on=["member", "last_expire"]
        )
        frames.append(
            pd.DataFrame(
                {
                    "msno": msno[rows["member"].to_numpy()],
                    "period_start": period.isoformat(),
                    "fading": rows["fading"].round(4).to_numpy(),
                }
            )
        )
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)


def _probability_on(terms: pd.DataFrame, day: int) -> np.ndarray:
    """P(churn) known on `day` for a member still in scope then.

    A cancel before `day` is certain, one after it is weighed by its chance given that none
    happened yet (the cancel day is uniform over its span). Being in scope on `day` also says
    the member has not renewed yet, which only a stayer can do: a member who cancelled and has
    not re-subscribed within the plan-change days, or a manual renewer past the early-renewal
    days, is more likely a churner than the draw alone says (Bayes on the renewal timing).
    """
    cancelled = terms["cancel_day"].to_numpy() < day
    span = terms["cancel_span"].to_numpy()
    after = np.clip(terms["cancel_from"].to_numpy() + span - day, 0, span) / span
    chance = terms["cancel_chance"].to_numpy()
    still = chance * after / (1 - chance * (1 - after))
    p_cancel, p_stay = terms["p_cancel"].to_numpy(), terms["p_stay"].to_numpy()
    # A cancel still to come renews (if at all) after `day`: nothing to condition on.
    churn = np.where(cancelled, p_cancel, still * p_cancel + (1 - still) * p_stay)
    stay = np.where(
        cancelled,
        (1 - p_cancel) * _not_renewed_after_cancel(terms["cancel_day"].to_numpy(), day),
        still * (1 - p_cancel) + (1 - still) * (1 - p_stay) * _not_renewed_yet(terms, day),
    )
    return churn / (churn + stay)


def _not_renewed_after_cancel(cancel_day: np.ndarray, day: int) -> np.ndarray:
    """P(a plan change after a cancel on `cancel_day` comes on or after `day`)."""
    return np.clip((cancel_day + _PLAN_CHANGE_DAYS - day) / _PLAN_CHANGE_DAYS, 0, 1)


def _not_renewed_yet(terms: pd.DataFrame, day: int) -> np.ndarray:
    """P(a staying member without a cancel renews on or after `day`), by `_next_transaction`'s
    timing: auto-renew on the expiry or the day before, manual within `_MANUAL_RENEWAL_DAYS`."""
    expiry = terms["last_expire"].to_numpy()
    auto = np.where(expiry > day, 1.0, np.where(expiry == day, 1 - _AUTO_DAY_BEFORE, 0.0))
    low, high = _MANUAL_RENEWAL_DAYS
    manual = np.clip((expiry + high - day) / (high - low), 0, 1)
    return np.where(terms["auto"].to_numpy(), auto, manual)


# ---------------------------------------------------------------------------------------------
# members


@dataclass
class _Traits:
    join_day: np.ndarray
    auto: np.ndarray  # initial auto-renew
    plan: np.ndarray  # index into _PLAN_DAYS
    price: np.ndarray  # list price of the member's plan
    activity: np.ndarray  # probability of listening on an active day
    volume: np.ndarray  # mean plays per listening day
    skip_share: np.ndarray  # (n, 5) shares of plays per listened-fraction bucket
    risk: np.ndarray  # member-level churn propensity (logit units)
    city: np.ndarray
    bd: np.ndarray
    gender: np.ndarray  # object array: "male" / "female" / ""
    channel: np.ndarray
    registration_day: np.ndarray


def _msnos(rng: np.random.Generator, n: int, customer_ids: Sequence[int] | None) -> np.ndarray:
    if customer_ids is not None:
        return np.array([msno_for_customer(int(c)) for c in customer_ids], dtype=object)
    raw = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    return np.array([base64.b64encode(row.tobytes()).decode("ascii") for row in raw], dtype=object)


def _member_traits(
    rng: np.random.Generator, n: int, start: int, end: int, member_sd: float
) -> _Traits:
    # 45% are already members at the start; the rest join evenly until three weeks before end.
    existing = rng.random(n) < 0.45
    join_day = np.where(
        existing, rng.integers(start, start + 30, n), rng.integers(start + 30, end - 20, n)
    )
    plan = rng.choice(len(_PLAN_DAYS), size=n, p=_PLAN_SHARE)
    price = np.empty(n, dtype=np.int64)
    for index, days in enumerate(_PLAN_DAYS):
        chosen = plan == index
        values, share = _PLAN_PRICES[int(days)]
        price[chosen] = rng.choice(values, size=int(chosen.sum()), p=share)
    gender = rng.choice(np.array(["", "male", "female"], dtype=object), n, p=[0.55, 0.23, 0.22])
    age = np.clip(np.rint(rng.normal(29, 9, n)), 14, 70).astype(np.int64)
    unknown_age = (gender == "") & (rng.random(n) < 0.8)
    bd = np.where(unknown_age, 0, age)
    outlier = rng.random(n) < 0.005
    bd[outlier] = rng.choice(_BD_OUTLIERS, int(outlier.sum()))
    channel = rng.choice(_CHANNELS, n, p=_CHANNEL_SHARE)
    city = rng.choice(_CITIES, n, p=_CITY_SHARE)
    city_effect = dict(zip(_CITIES.tolist(), rng.normal(0, 0.25, len(_CITIES)), strict=True))
    demographic = (
        np.vectorize(_CHANNEL_EFFECT.get)(channel)
        + np.vectorize(city_effect.get)(city)
        + 0.35 * ((bd >= 10) & (bd < 22))
        - 0.2 * ((bd >= 40) & (bd <= 70))
    )
    registration = join_day - rng.integers(0, 3650, n) * (rng.random(n) < 0.6)
    shares = rng.dirichlet([3.0, 1.0, 0.7, 0.6, 8.0], n)
    return _Traits(
        join_day=join_day.astype(np.int64),
        auto=rng.random(n) < 0.8,
        plan=plan,
        price=price,
        activity=rng.beta(4.0, 1.5, n),
        volume=rng.lognormal(np.log(22), 0.6, n),
        skip_share=shares,
        risk=rng.normal(0, member_sd, n) + demographic,
        city=city,
        bd=bd,
        gender=gender,
        channel=channel,
        registration_day=np.maximum(registration, _day(dt.date(2004, 3, 26))).astype(np.int64),
    )


# ---------------------------------------------------------------------------------------------
# subscriptions


@dataclass
class _Simulation:
    transactions: pd.DataFrame  # member + TRANSACTIONS_COLUMNS (dates as day numbers)
    terms: list[dict[str, np.ndarray]]  # per loop step: member, start, end, fading (D), …
    episodes: tuple[np.ndarray, np.ndarray, np.ndarray]  # disengagement (member, onset, end)


def _pick(rng: np.random.Generator, table: tuple[np.ndarray, np.ndarray], size: int) -> np.ndarray:
    values, share = table
    return rng.choice(values, size=size, p=share)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class ChurnDrivers:
    """The churn log-odds at each expiry: intercept + the drivers present (see docs/churn.md §2).

    Other mixes make other worlds (e.g. engagement-led: a larger `fading`, smaller billing
    effects); `fading` multiplies the member's disengagement D (0–0.95) on the billing day;
    `member_sd` is the unobservable member effect."""

    intercept: float = -3.9
    manual_renewal: float = 2.0  # auto-renew off
    cancel: float = 2.0
    fading: float = 3.3
    discount: float = 1.2
    cheap_plan: float = 0.7  # a 30-day plan under 149 NTD
    long_plan: float = -0.6  # 180 days or more
    member_sd: float = 0.2


#: Named driver mixes for benches and acceptance worlds.
DRIVER_MIXES: dict[str, ChurnDrivers] = {
    "default": ChurnDrivers(),
    "engagement": ChurnDrivers(intercept=-4.2, manual_renewal=1.4, cancel=1.5, fading=4.0),
    "billing": ChurnDrivers(intercept=-4.0, manual_renewal=2.6, discount=1.8, fading=2.4),
}


@dataclass
class _State:
    """Each member's current plan and billing, updated at every simulated transaction."""

    next_day: np.ndarray
    prev_expiry: np.ndarray
    auto: np.ndarray
    plan: np.ndarray
    price: np.ndarray
    method: np.ndarray
    churned: np.ndarray  # the member's last term ended in churn (a next billing is a comeback)
    process: Disengagement


def _simulate(
    rng: np.random.Generator,
    traits: _Traits,
    sim_end: int,
    drivers: ChurnDrivers,
) -> _Simulation:
    n = len(traits.join_day)
    auto = traits.auto.copy()
    state = _State(
        next_day=traits.join_day.copy(),
        prev_expiry=traits.join_day.copy(),
        auto=auto,
        plan=traits.plan.copy(),
        price=traits.price.copy(),
        method=np.where(auto, _pick(rng, _AUTO_METHODS, n), _pick(rng, _MANUAL_METHODS, n)),
        churned=np.zeros(n, dtype=bool),
        process=Disengagement.start(rng, traits.risk, traits.join_day),
    )
    parts: list[dict[str, np.ndarray]] = []
    terms: list[dict[str, np.ndarray]] = []
    while True:
        idx = np.nonzero(state.next_day <= sim_end)[0]
        if idx.size == 0:
            break
        terms.append(_one_term(rng, traits, state, idx, drivers, parts))
    transactions = pd.DataFrame({key: np.concatenate([p[key] for p in parts]) for key in parts[0]})
    episodes = state.process.episodes(sim_end)
    return _Simulation(transactions=transactions, terms=terms, episodes=episodes)


def _one_term(rng, traits, state: _State, idx, drivers: ChurnDrivers, parts: list) -> dict:
    """Bill the members in `idx`, maybe cancel, decide churn, and plan their next transaction."""
    k = idx.size
    day = state.next_day[idx]
    plan_days = _PLAN_DAYS[state.plan[idx]]
    list_price = state.price[idx]
    promo = rng.random(k)
    paid = np.where(promo < 0.04, 0, np.where(promo < 0.08, list_price // 2, list_price))
    expiry = np.maximum(day, state.prev_expiry[idx]) + plan_days
    is_auto = state.auto[idx]
    method = state.method[idx]
    parts.append(_rows(idx, method, plan_days, list_price, paid, is_auto, day, expiry, False))

    # The member's disengagement on the billing day: its fall began before this decision.
    comeback = state.churned[idx]
    state.process.restart(rng, idx[comeback], day[comeback])
    state.process.advance(rng, idx, day)
    fading = state.process.depth(idx, day)
    cancel_rest = _CANCEL_LOGIT + _CANCEL_MANUAL * ~is_auto
    cancel_chance = _sigmoid(cancel_rest + _CANCEL_FADING * fading)
    cancel = rng.random(k) < cancel_chance
    cancel_span = np.maximum(plan_days - 2, 1)
    cancel_day = day + 1 + (rng.random(k) * cancel_span).astype(np.int64)
    cancel_expiry = np.where(rng.random(k) < 0.5, cancel_day, expiry)
    if cancel.any():
        c = cancel
        parts.append(
            _rows(idx[c], method[c], plan_days[c], list_price[c], paid[c],
                  np.zeros(int(c.sum()), bool), cancel_day[c], cancel_expiry[c], True)
        )  # fmt: skip
    effective = np.where(cancel, cancel_expiry, expiry)
    logit = (
        drivers.intercept
        + drivers.manual_renewal * ~is_auto
        + drivers.fading * fading
        + drivers.discount * (paid < list_price)
        + drivers.cheap_plan * ((plan_days == 30) & (list_price < 149))
        + drivers.long_plan * (plan_days >= 180)
        + traits.risk[idx]
    )
    probability = _sigmoid(logit + drivers.cancel * cancel)
    churn = rng.random(k) < probability
    _next_transaction(rng, state, idx, day, effective, is_auto, cancel, cancel_day, churn)
    state.churned[idx] = churn
    _change_plans(rng, state, idx, cancel, is_auto)
    return {
        "member": idx,
        "start": day,
        "end": effective,
        "auto": is_auto,
        "fading": fading,
        "probability": probability,
        # What the truth needs to condition on a day: churn odds with and without a cancel,
        # the cancel's chance and the days it could fall on (uniform over cancel_span).
        "p_cancel": _sigmoid(logit + drivers.cancel),
        "p_stay": _sigmoid(logit),
        "cancel_chance": cancel_chance,
        "cancel_from": day + 1,
        "cancel_span": cancel_span,
        "cancel_day": np.where(cancel, cancel_day, _NEVER),
        # For the truth's fading-free / fading variants (bench diagnostics, never features).
        "logit_rest": logit - drivers.fading * fading,
        "cancel_rest": cancel_rest,
        "fading_effect": np.full(k, drivers.fading),
        "cancel_effect": np.full(k, drivers.cancel),
    }


def _next_transaction(rng, state: _State, idx, day, effective, is_auto, cancel, cancel_day, churn):
    """Renewers: auto-renew bills on (or the day before) the expiry; manual renewers come within
    a week before to three weeks after; a cancel that is not churn is a plan change (a new
    subscription within ten days of the cancel); a churner may come back after > 30 days."""
    k = idx.size
    renew_day = np.where(
        is_auto & ~cancel,
        effective - (rng.random(k) < _AUTO_DAY_BEFORE),
        effective + rng.integers(*_MANUAL_RENEWAL_DAYS, k),
    )
    renew_day = np.where(cancel, cancel_day + rng.integers(0, _PLAN_CHANGE_DAYS, k), renew_day)
    comeback = rng.random(k) < 0.25
    after_churn = np.where(comeback, effective + rng.integers(31, 200, k), _NEVER)
    state.next_day[idx] = np.maximum(np.where(churn, after_churn, renew_day), day + 1)
    state.prev_expiry[idx] = effective


def _change_plans(rng, state: _State, idx, cancel, is_auto) -> None:
    """Plan changes (after a cancel, or 3% of the time) and auto-renew switches."""
    k = idx.size
    change = cancel | (rng.random(k) < 0.03)
    new_plan = rng.choice(len(_PLAN_DAYS), size=k, p=_PLAN_SHARE)
    state.plan[idx] = np.where(change, new_plan, state.plan[idx])
    for index, days in enumerate(_PLAN_DAYS):
        pick = change & (new_plan == index)
        values, share = _PLAN_PRICES[int(days)]
        state.price[idx[pick]] = rng.choice(values, size=int(pick.sum()), p=share)
    state.auto[idx] = np.where(cancel, rng.random(k) < 0.5, is_auto ^ (rng.random(k) < 0.02))
    switched = state.auto[idx] != is_auto
    state.method[idx] = np.where(
        switched,
        np.where(state.auto[idx], _pick(rng, _AUTO_METHODS, k), _pick(rng, _MANUAL_METHODS, k)),
        state.method[idx],
    )


def _rows(member, method, plan_days, list_price, paid, auto, day, expiry, cancel) -> dict:
    k = len(member)
    return {
        "member": np.asarray(member, dtype=np.int64),
        "payment_method_id": np.asarray(method, dtype=np.int64),
        "payment_plan_days": np.asarray(plan_days, dtype=np.int64),
        "plan_list_price": np.asarray(list_price, dtype=np.int64),
        "actual_amount_paid": np.asarray(paid, dtype=np.int64),
        "is_auto_renew": np.asarray(auto, dtype=np.int64),
        "transaction_date": np.asarray(day, dtype=np.int64),
        "membership_expire_date": np.asarray(expiry, dtype=np.int64),
        "is_cancel": np.full(k, int(cancel), dtype=np.int64),
    }


# ---------------------------------------------------------------------------------------------
# user logs


def _user_logs(
    rng: np.random.Generator,
    traits: _Traits,
    sim: _Simulation,
    first_day: int,
    last_day: int,
    chunk: int = 25_000,
) -> pd.DataFrame:
    n = len(traits.join_day)
    days = np.arange(first_day, last_day + 1)
    episode_member, onset, episode_end = sim.episodes
    seen = (episode_end > first_day) & (onset <= last_day)
    episode_member, onset, episode_end = episode_member[seen], onset[seen], episode_end[seen]
    frames = []
    for m0 in range(0, n, chunk):
        m1 = min(n, m0 + chunk)
        active = np.zeros((m1 - m0, len(days)), dtype=bool)
        level = np.ones((m1 - m0, len(days)), dtype=np.float32)
        for term in sim.terms:
            lo, hi = np.searchsorted(term["member"], [m0, m1])
            if lo == hi:
                continue
            rows = term["member"][lo:hi] - m0
            start = term["start"][lo:hi, None]
            end = term["end"][lo:hi, None]
            active[rows] |= (days >= start) & (days <= end)
        # Disengaging members listen less and less from the onset until they re-engage.
        lo, hi = np.searchsorted(episode_member, [m0, m1])
        if lo < hi:
            falls = level_on(days, onset[lo:hi, None], episode_end[lo:hi, None])
            np.minimum.at(level, episode_member[lo:hi] - m0, falls.astype(np.float32))
        # Lapsed members still listen a little (free tier).
        level = np.where(active, level, 0.1).astype(np.float32)
        chance = traits.activity[m0:m1, None].astype(np.float32) * level
        hit_row, hit_col = np.nonzero(rng.random(chance.shape, dtype=np.float32) < chance)
        member = hit_row + m0
        strength = level[hit_row, hit_col]
        plays = rng.poisson(traits.volume[member] * (0.3 + 0.7 * strength))
        frames.append(_log_rows(rng, member, days[hit_col], plays, traits.skip_share[member]))
        # A few members have a second row on the same day (as in the real file).
        twice = rng.random(member.size) < 0.015
        extra = rng.poisson(3, int(twice.sum()))
        frames.append(
            _log_rows(
                rng, member[twice], days[hit_col][twice], extra, traits.skip_share[member[twice]]
            )
        )
    logs = pd.concat(frames, ignore_index=True)
    return logs.sort_values(["date", "member"], kind="stable", ignore_index=True)


def _log_rows(rng, member, day, plays, share) -> pd.DataFrame:
    counts = rng.poisson(plays[:, None] * share)
    total = counts.sum(axis=1)
    noise = rng.lognormal(0.0, 0.15, member.size)
    seconds = np.round((counts * _SECONDS_PER_PLAY).sum(axis=1) * noise, 3)
    frame = pd.DataFrame(counts, columns=["num_25", "num_50", "num_75", "num_985", "num_100"])
    frame.insert(0, "date", day.astype(np.int64))
    frame.insert(0, "member", member.astype(np.int64))
    frame["num_unq"] = rng.binomial(total, 0.85)
    frame["total_secs"] = seconds
    return frame


# ---------------------------------------------------------------------------------------------
# labels (the official rules on day-number arrays; the Spark twin is labels.label_period)


def label_period_arrays(transactions: pd.DataFrame, period_start: dt.date) -> pd.DataFrame:
    """The official labels of one period from a pandas transaction table (day-number dates).

    Same rules as `customer360.churn.labels.label_period` (tested to agree on generated data);
    used to write the label files from the simulated future without Spark. Columns of
    `transactions`: member (any key), the KKBox transaction columns with `transaction_date` and
    `membership_expire_date` as days since 1970-01-01. Returns member, is_churn, last_expire,
    renewal_gap_days.
    """
    start_date, end_date = period_bounds(period_start)
    start, end = _day(start_date), _day(end_date)
    t = _official_sorted(
        transactions[transactions["transaction_date"] >= _day(add_months(start_date, -1))]
    )
    grouped = _walk_members(t, start, end)
    plan_change = np.fmin(
        grouped["period_sub_expire"].fillna(grouped["history_expire"]),
        grouped["period_cancel_expire"],
    )
    scope = np.where(grouped["period_cancel"], plan_change, grouped["history_expire"])
    reference = np.fmin(scope, grouped["search_cancel_expire"].to_numpy())
    result = pd.DataFrame(
        {
            "member": grouped.index.to_numpy(),
            "last_expire": scope,
            "renewal_gap_days": grouped["renewal_date"].to_numpy() - reference,
        }
    )
    result = result[(result["last_expire"] >= start) & (result["last_expire"] <= end)]
    churn = result["renewal_gap_days"].isna() | (result["renewal_gap_days"] >= 30)
    result = result.assign(
        is_churn=churn.astype(np.int64), last_expire=result["last_expire"].astype(np.int64)
    )
    return result[["member", "is_churn", "last_expire", "renewal_gap_days"]].reset_index(drop=True)


def _official_sorted(t: pd.DataFrame) -> pd.DataFrame:
    """Per member in KKBox's labeller order (see transactions.official_order)."""
    signature = (
        t["plan_list_price"].astype(str)
        + t["payment_plan_days"].astype(str)
        + t["payment_method_id"].astype(str)
    )
    cancel = t["is_cancel"].to_numpy() == 1
    expiry_key = np.where(cancel, -t["membership_expire_date"], t["membership_expire_date"])
    return t.assign(_sig=signature.to_numpy(), _key=expiry_key).sort_values(
        ["member", "transaction_date", "_sig", "is_cancel", "_key"],
        ascending=[True, True, False, True, True],
        kind="mergesort",
    )


def _walk_members(t: pd.DataFrame, start: int, end: int) -> pd.DataFrame:
    """Per member (index): history_expire, period_cancel, period_sub_expire,
    period_cancel_expire, search_cancel_expire, renewal_date — the labeller's walk."""
    day = t["transaction_date"].to_numpy()
    expiry = t["membership_expire_date"].to_numpy()
    cancel = t["is_cancel"].to_numpy() == 1
    member = t["member"].to_numpy()
    pos = np.arange(len(t))
    in_history = day < start
    in_period = (day >= start) & (day <= end)

    def per_member(values: np.ndarray, how: str) -> np.ndarray:
        return pd.Series(values).groupby(member).transform(how).to_numpy()

    nan = np.nan
    period_cancel = per_member((in_period & cancel).astype(float), "max") == 1
    last_sub = per_member(np.where(in_period & ~cancel, pos, nan), "max")
    searched = day >= np.where(period_cancel, end + 1, start)
    first_renewal = per_member(np.where(searched & ~cancel, pos, nan), "min")
    frame = pd.DataFrame(
        {
            "member": member,
            "history_pos": np.where(in_history, pos, nan),
            "history_expire": np.where(in_history, expiry, nan),
            "period_cancel": period_cancel,
            "period_sub_expire": np.where(pos == last_sub, expiry, nan),
            "period_cancel_expire": np.where(
                in_period & cancel & (np.isnan(last_sub) | (pos > last_sub)), expiry, nan
            ),
            "search_cancel_expire": np.where(
                searched & cancel & (np.isnan(first_renewal) | (pos < first_renewal)), expiry, nan
            ),
            "renewal_date": np.where(pos == first_renewal, day, nan),
        }
    )
    # The last history row per member carries history_expire.
    last_history = frame.dropna(subset=["history_pos"]).groupby("member")["history_expire"].last()
    grouped = frame.groupby("member").agg(
        period_cancel=("period_cancel", "first"),
        period_sub_expire=("period_sub_expire", "max"),
        period_cancel_expire=("period_cancel_expire", "min"),
        search_cancel_expire=("search_cancel_expire", "min"),
        renewal_date=("renewal_date", "max"),
    )
    return grouped.join(last_history.rename("history_expire"), how="inner")


# ---------------------------------------------------------------------------------------------
# writing


def _day(value: dt.date) -> int:
    return (value - _EPOCH).days


def _yyyymmdd(days: np.ndarray) -> np.ndarray:
    dates = np.asarray(days, dtype="int64").astype("datetime64[D]")
    years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    months = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day_of_month = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
    return years * 10000 + months * 100 + day_of_month


def _write_csv(path: Path, header: Sequence[str], columns: dict[str, np.ndarray]) -> Path:
    """Kaggle style: unquoted header and values, blank for a missing value."""
    table = pa.table({name: columns[name] for name in header})
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as sink:
        sink.write((",".join(header) + "\n").encode())
        pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    tmp.replace(path)
    return path


def _write_members(path: Path, msno: np.ndarray, traits: _Traits) -> Path:
    return _write_csv(
        path,
        MEMBERS_COLUMNS,
        {
            "msno": msno,
            "city": traits.city,
            "bd": traits.bd,
            "gender": traits.gender,
            "registered_via": traits.channel,
            "registration_init_time": _yyyymmdd(traits.registration_day),
        },
    )


def _write_transactions(path: Path, msno: np.ndarray, tx: pd.DataFrame) -> Path:
    tx = tx.sort_values(["transaction_date", "member"], kind="stable")
    columns = {name: tx[name].to_numpy() for name in TRANSACTIONS_COLUMNS if name != "msno"}
    columns["msno"] = msno[tx["member"].to_numpy()]
    columns["transaction_date"] = _yyyymmdd(columns["transaction_date"])
    columns["membership_expire_date"] = _yyyymmdd(columns["membership_expire_date"])
    return _write_csv(path, TRANSACTIONS_COLUMNS, columns)


def _write_logs(path: Path, msno: np.ndarray, logs: pd.DataFrame) -> Path:
    columns = {name: logs[name].to_numpy() for name in USER_LOGS_COLUMNS if name != "msno"}
    columns["msno"] = msno[logs["member"].to_numpy()]
    columns["date"] = _yyyymmdd(columns["date"])
    return _write_csv(path, USER_LOGS_COLUMNS, columns)
