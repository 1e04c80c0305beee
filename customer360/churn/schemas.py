"""The KKBox (WSDM Cup 2018) file layouts: column order as in the Kaggle CSVs, and their types.

One place for the headers so the readers, the generator and the tests agree byte for byte.
"""

from __future__ import annotations

from typing import Final

#: File stem → CSV header, in the order Kaggle ships them.
MEMBERS_COLUMNS: Final = (
    "msno",
    "city",
    "bd",
    "gender",
    "registered_via",
    "registration_init_time",
)
TRANSACTIONS_COLUMNS: Final = (
    "msno",
    "payment_method_id",
    "payment_plan_days",
    "plan_list_price",
    "actual_amount_paid",
    "is_auto_renew",
    "transaction_date",
    "membership_expire_date",
    "is_cancel",
)
USER_LOGS_COLUMNS: Final = (
    "msno",
    "date",
    "num_25",
    "num_50",
    "num_75",
    "num_985",
    "num_100",
    "num_unq",
    "total_secs",
)
TRAIN_COLUMNS: Final = ("msno", "is_churn")

#: The file names a user drops into `landing/kkbox/` (Kaggle's names).
KKBOX_FILES: Final = {
    "members_v3": MEMBERS_COLUMNS,
    "transactions": TRANSACTIONS_COLUMNS,
    "transactions_v2": TRANSACTIONS_COLUMNS,
    "user_logs": USER_LOGS_COLUMNS,
    "user_logs_v2": USER_LOGS_COLUMNS,
    "train": TRAIN_COLUMNS,
    "train_v2": TRAIN_COLUMNS,
    "sample_submission_zero": TRAIN_COLUMNS,
    "sample_submission_v2": TRAIN_COLUMNS,
}

#: Plausible ages; KKBox's `bd` holds values from -7000 to 2015, outside this range → NULL.
BD_MIN: Final = 10
BD_MAX: Final = 70

#: Columns of the rejected-rows DataFrame every reader returns (plus the raw string columns).
REJECT_COLUMNS: Final = ("source_file", "raw_line", "reason")
