"""The budget alert: a JSON POST to a webhook and/or a mail through SMTP."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import structlog

from chatbot_server.config import BudgetSettings

log = structlog.get_logger(__name__)
SMTP_TIMEOUT_SECONDS = 10.0


class BudgetAlerts:
    """Sends what `budget.warning` says to the configured webhook and mailboxes."""

    def __init__(self, http: httpx.AsyncClient, settings: BudgetSettings) -> None:
        self._http = http
        self._settings = settings

    async def send(self, alert: dict[str, Any]) -> None:
        """Delivers to every configured channel; a failed channel is logged, not raised."""
        if self._settings.alert_webhook_url:
            await self._post(self._settings.alert_webhook_url, alert)
        if self._settings.alert_email and self._settings.smtp_url:
            await self._mail(self._settings.smtp_url, self._settings.alert_email, alert)

    async def _post(self, url: str, alert: dict[str, Any]) -> None:
        try:
            response = await self._http.post(url, json=alert, timeout=10.0)
            response.raise_for_status()
            log.info("budget.alert_sent", channel="webhook", status=response.status_code)
        except httpx.HTTPError as error:
            log.error("budget.alert_failed", channel="webhook", error=type(error).__name__)

    async def _mail(self, smtp_url: str, recipients: str, alert: dict[str, Any]) -> None:
        message = EmailMessage()
        message["From"] = self._settings.alert_sender
        message["To"] = recipients
        message["Subject"] = (
            f"chatbot: {alert['used_percent']:.0f} % of the daily budget spent ({alert['day']})"
        )
        message.set_content(
            f"Spent today (UTC {alert['day']}): ${alert['spent_usd']:.4f} of "
            f"${alert['budget_usd']:.2f} ({alert['used_percent']:.1f} %).\n"
            f"The alert threshold is {alert['alert_threshold'] * 100:.0f} %. At 100 % new "
            f"answers are {alert['exhausted_action']}d until {alert['reset_time']}.\n"
        )
        try:
            await asyncio.to_thread(_send_mail, smtp_url, message)
            log.info("budget.alert_sent", channel="email")
        except (OSError, smtplib.SMTPException) as error:
            log.error("budget.alert_failed", channel="email", error=type(error).__name__)


def _send_mail(smtp_url: str, message: EmailMessage) -> None:
    """smtp://[user:password@]host[:port][?starttls=true] or smtps://..."""
    parts = urlsplit(smtp_url)
    host = parts.hostname or "localhost"
    secure = parts.scheme == "smtps"
    port = parts.port or (465 if secure else 25)
    smtp_class = smtplib.SMTP_SSL if secure else smtplib.SMTP
    with smtp_class(host, port, timeout=SMTP_TIMEOUT_SECONDS) as client:
        if parse_qs(parts.query).get("starttls", ["false"])[0].lower() in ("1", "true"):
            client.starttls()
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message)
