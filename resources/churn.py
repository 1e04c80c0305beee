"""Churn settings (period overrides, retention economics, alert rule) and the alert channel."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from customer360.churn.periods import DEFAULT_TRAIN_MONTHS, PeriodOverrides, parse_month

if TYPE_CHECKING:  # the channels and the economics load scikit-learn/pandas: on first use only
    from customer360.churn.notifier import Notifier
    from customer360.churn.targeting import RetentionEconomics

#: Environment overrides of the detected periods (empty = detect from the data).
TRAIN_MONTHS_ENV = "C360_CHURN_TRAIN_MONTHS"  # e.g. "2016-12,2017-01"
VALIDATION_MONTH_ENV = "C360_CHURN_VALIDATION_MONTH"  # e.g. "2017-02"
SCORING_MONTH_ENV = "C360_CHURN_SCORING_MONTH"  # e.g. "2017-03"
MAX_TRAIN_MONTHS_ENV = "C360_CHURN_MAX_TRAIN_MONTHS"  # default 3


class ChurnSettingsResource(dg.ConfigurableResource):
    """Which months train, validate and score the model (detected from the data unless set
    here or by the `C360_CHURN_*` variables), and what a retained member is worth. The
    economics defaults are the library's documented examples, not business truths."""

    train_months: str = Field(default="", description="comma-separated yyyy-mm; '' = detect")
    validation_month: str = Field(default="", description="yyyy-mm; '' = detect")
    scoring_month: str = Field(default="", description="yyyy-mm; '' = detect")
    max_train_months: int = Field(default=0, description="0 = C360_CHURN_MAX_TRAIN_MONTHS or 3")
    customer_value: float = 1788.0
    offer_cost: float = 149.0
    acceptance_rate: float = 0.3
    alert_min_members: int = Field(
        default=100, description="alert when more members than this are above the threshold"
    )

    @staticmethod
    def _setting(value: str, env: str) -> str:
        return (value or os.environ.get(env, "")).strip()

    @property
    def overrides(self) -> PeriodOverrides:
        """The months set by hand (config first, then the environment); None = detect."""
        train = self._setting(self.train_months, TRAIN_MONTHS_ENV)
        validation = self._setting(self.validation_month, VALIDATION_MONTH_ENV)
        scoring = self._setting(self.scoring_month, SCORING_MONTH_ENV)
        count = self.max_train_months or int(
            os.environ.get(MAX_TRAIN_MONTHS_ENV, "") or DEFAULT_TRAIN_MONTHS
        )
        return PeriodOverrides(
            train=tuple(parse_month(m) for m in train.split(",") if m.strip()) or None,
            validation=parse_month(validation) if validation else None,
            scoring=parse_month(scoring) if scoring else None,
            train_months=count,
        )

    @property
    def economics(self) -> RetentionEconomics:
        from customer360.churn.targeting import RetentionEconomics

        return RetentionEconomics(self.customer_value, self.offer_cost, self.acceptance_rate)


class NotifierResource(dg.ConfigurableResource):
    """The alert channel: `file` (a message queue stand-in, default), `smtp` or `webhook`.
    SMTP credentials are read from the environment variables *named* here, never stored."""

    channel: str = Field(default="file", pattern="^(file|smtp|webhook)$")
    queue_dir: str | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_sender: str = "customer360@localhost"
    smtp_recipients: list[str] = Field(default_factory=list)
    smtp_username_env: str | None = None
    smtp_password_env: str | None = None
    smtp_starttls: bool = False
    webhook_url: str | None = None

    def notifier(self) -> Notifier:
        from customer360.churn.notifier import FileQueueNotifier, SmtpNotifier, WebhookNotifier

        if self.channel == "smtp":
            return SmtpNotifier(
                self.smtp_host, self.smtp_port, self.smtp_sender, self.smtp_recipients,
                self.smtp_username_env, self.smtp_password_env, self.smtp_starttls,
            )  # fmt: skip
        if self.channel == "webhook":
            if not self.webhook_url:
                raise ValueError("the webhook channel needs webhook_url")
            return WebhookNotifier(self.webhook_url)
        if not self.queue_dir:
            raise ValueError("the file channel needs queue_dir")
        return FileQueueNotifier(self.queue_dir)
