"""Churn settings (periods, retention economics, alert rule) and the alert notifier channel."""

from __future__ import annotations

import datetime as dt

import dagster as dg
from pydantic import Field

from customer360.churn import (
    FileQueueNotifier,
    Notifier,
    RetentionEconomics,
    SmtpNotifier,
    WebhookNotifier,
)


class ChurnSettingsResource(dg.ConfigurableResource):
    """Which months train, validate, test and score the model, and what a retained member is
    worth. The economics defaults are the library's documented examples, not business truths."""

    train_periods: list[str] = Field(default=["2016-12-01", "2017-01-01"])
    validation_period: str = "2017-02-01"
    test_period: str = "2017-03-01"  # labels from train_v2.csv (as Kaggle's)
    scoring_period: str = "2017-04-01"  # outcome unknown: what the dashboard and alert are about
    customer_value: float = 1788.0
    offer_cost: float = 149.0
    acceptance_rate: float = 0.3
    alert_min_members: int = Field(
        default=100, description="alert when more members than this are above the threshold"
    )

    @staticmethod
    def _day(text: str) -> dt.date:
        return dt.date.fromisoformat(text)

    @property
    def train(self) -> list[dt.date]:
        return [self._day(p) for p in self.train_periods]

    @property
    def validation(self) -> dt.date:
        return self._day(self.validation_period)

    @property
    def test(self) -> dt.date:
        return self._day(self.test_period)

    @property
    def scoring(self) -> dt.date:
        return self._day(self.scoring_period)

    @property
    def labelled_periods(self) -> list[dt.date]:
        return [*self.train, self.validation]

    @property
    def economics(self) -> RetentionEconomics:
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
