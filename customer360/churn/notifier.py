"""Alert channels for the churn report: e-mail (SMTP), webhook (HTTP POST JSON), file queue.

All implement `Notifier.send(alert)`. Secrets (SMTP password, webhook URL tokens) are read
from the environment or held in memory, never logged or put into exception messages.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import smtplib
import ssl
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx
import pandas as pd

from customer360.churn.model import PROBABILITY_COLUMN
from customer360.churn.targeting import RetentionEconomics


class NotificationError(RuntimeError):
    """An alert could not be delivered (the message says which channel and why, no secrets)."""


@dataclass(frozen=True)
class ChurnAlert:
    """One alert: a subject, a plain-text body, a JSON-able summary and the dashboard file."""

    subject: str
    text: str
    summary: Mapping[str, Any] = field(default_factory=dict)
    dashboard_path: Path | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON body the webhook and file-queue channels send."""
        return {
            "subject": self.subject,
            "text": self.text,
            "summary": dict(self.summary),
            "dashboard_file": self.dashboard_path.name if self.dashboard_path else None,
        }


@runtime_checkable
class Notifier(Protocol):
    def send(self, alert: ChurnAlert) -> None: ...


def build_alert(
    period_label: str,
    predictions_pdf: pd.DataFrame,
    threshold: float,
    *,
    expected_profit: float | None = None,
    economics: RetentionEconomics | None = None,
    dashboard_path: str | Path | None = None,
) -> ChurnAlert:
    """The standard churn alert for a scored period (counts above the chosen threshold)."""
    probabilities = predictions_pdf[PROBABILITY_COLUMN]
    churners = int((probabilities >= threshold).sum())
    summary: dict[str, Any] = {
        "period": period_label,
        "members_scored": len(predictions_pdf),
        "predicted_churners": churners,
        "threshold": float(threshold),
        "mean_churn_probability": float(probabilities.mean()) if len(probabilities) else None,
    }
    if expected_profit is not None:
        summary["expected_profit"] = float(expected_profit)
    if economics is not None:
        summary["economics"] = economics.as_dict()
    lines = [
        f"Churn report for {period_label}",
        f"Members scored: {len(predictions_pdf):,}",
        f"Predicted churners (p >= {threshold:.4f}): {churners:,}",
    ]
    if expected_profit is not None:
        lines.append(f"Expected profit of the retention offers: {expected_profit:,.0f}")
    if dashboard_path is not None:
        lines.append("The dashboard is attached (open it in a browser; it needs no network).")
    return ChurnAlert(
        subject=f"Churn risk {period_label}: {churners:,} predicted churners",
        text="\n".join(lines) + "\n",
        summary=summary,
        dashboard_path=Path(dashboard_path) if dashboard_path is not None else None,
    )


class SmtpNotifier:
    """E-mail with the dashboard HTML attached.

    Credentials come from environment variables *named* by `username_env`/`password_env`
    (nothing secret in configuration). `use_starttls=True` upgrades the connection with
    certificate verification on (the system trust store, or `ca_file`).
    """

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        username_env: str | None = None,
        password_env: str | None = None,
        use_starttls: bool = False,
        *,
        timeout: float = 30.0,
        ca_file: str | None = None,
    ) -> None:
        if not recipients:
            raise ValueError("SmtpNotifier needs at least one recipient")
        if (username_env is None) != (password_env is None):
            raise ValueError("username_env and password_env go together")
        self.host, self.port, self.sender = host, port, sender
        self.recipients = list(recipients)
        self.username_env, self.password_env = username_env, password_env
        self.use_starttls, self.timeout, self.ca_file = use_starttls, timeout, ca_file

    def message(self, alert: ChurnAlert) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = alert.subject
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = dt.datetime.now(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        message.set_content(alert.text)
        if alert.dashboard_path is not None:
            # Bytes in base64 with the charset declared: the file arrives byte for byte.
            message.add_attachment(
                alert.dashboard_path.read_bytes(),
                maintype="text",
                subtype="html",
                filename=alert.dashboard_path.name,
                params={"charset": "utf-8"},
            )
        return message

    def send(self, alert: ChurnAlert) -> None:
        message = self.message(alert)
        credentials = self._credentials()
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.use_starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file))
                if credentials is not None:
                    smtp.login(*credentials)
                smtp.send_message(message, from_addr=self.sender, to_addrs=self.recipients)
        except (OSError, smtplib.SMTPException) as exc:
            raise NotificationError(
                f"SMTP delivery to {self.host}:{self.port} failed: {type(exc).__name__}"
                + (f" {exc.smtp_code}" if isinstance(exc, smtplib.SMTPResponseException) else "")
            ) from None

    def _credentials(self) -> tuple[str, str] | None:
        if self.username_env is None or self.password_env is None:
            return None
        missing = [n for n in (self.username_env, self.password_env) if not os.environ.get(n)]
        if missing:
            raise NotificationError(f"SMTP credentials: environment variable(s) {missing} unset")
        return os.environ[self.username_env], os.environ[self.password_env]


class WebhookNotifier:
    """POST the alert as JSON (`ChurnAlert.payload()`); TLS verification stays on."""

    def __init__(
        self, url: str, *, timeout: float = 10.0, headers: Mapping[str, str] | None = None
    ) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError("webhook url must be http(s)")
        self._url = url  # may embed a token: never echoed in errors
        self.timeout = timeout
        self._headers = dict(headers or {})

    def send(self, alert: ChurnAlert) -> None:
        try:
            response = httpx.post(
                self._url, json=alert.payload(), headers=self._headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise NotificationError(f"webhook POST failed: {type(exc).__name__}") from None
        if not response.is_success:
            raise NotificationError(f"webhook POST failed: HTTP {response.status_code}")


class FileQueueNotifier:
    """One JSON message file per alert in `directory` (a stand-in for a message queue).

    Files are written atomically (temp file + rename) and named
    `<UTC timestamp>-<uuid>.json` so a consumer can process them in order.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def send(self, alert: ChurnAlert) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{uuid.uuid4().hex}.json"
        body = alert.payload()
        body["dashboard_path"] = str(alert.dashboard_path) if alert.dashboard_path else None
        body["queued_at"] = dt.datetime.now(dt.UTC).isoformat()
        tmp = self.directory / f".{name}.tmp"
        tmp.write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")
        tmp.replace(self.directory / name)

    def messages(self) -> list[Path]:
        """The queued message files, oldest first."""
        return sorted(self.directory.glob("*.json"))
