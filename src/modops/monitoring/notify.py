"""Airflow notifiers that page on-call through the webhook (:mod:`modops.monitoring.alerts`).

- :class:`OnCallFailureNotifier`: an ``on_failure_callback`` for every modops DAG's tasks; it
  names the DAG, task, run and error. It never raises (a callback must not mask the failure).
- :class:`DriftAlertNotifier`: called by the scoring DAG's alert task with the day's verdict;
  when a webhook is configured and does not take the alert, it raises, so the task fails,
  retries, and the failure notifier tries too. Without a webhook the alert is recorded only.

Every alert, sent or not, is appended to ``alerts.jsonl`` in the state folder's monitoring folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseNotifier

from modops.config import load_settings
from modops.monitoring.alerts import AlertDeliveryError, drift_payload, failure_payload, send_alert

__all__ = ["DriftAlertNotifier", "OnCallFailureNotifier"]


def _alert_dir():  # noqa: ANN202
    return load_settings().monitoring_dir / "alerts"


class OnCallFailureNotifier(BaseNotifier):
    """Posts a failed task's DAG, task, run, try and error to the on-call webhook.

    Args:
        webhook_url: Overrides ``MODOPS_ALERT_WEBHOOK_URL`` (templated).
    """

    template_fields = ("webhook_url",)

    def __init__(self, *, webhook_url: str | None = None) -> None:
        super().__init__()
        self.webhook_url = webhook_url

    def notify(self, context: Mapping[str, Any]) -> None:
        ti = context.get("ti") or context.get("task_instance")
        dag = context.get("dag")
        payload = failure_payload(
            dag_id=getattr(dag, "dag_id", None) or getattr(ti, "dag_id", "?"),
            task_id=getattr(ti, "task_id", None),
            run_id=context.get("run_id"),
            error=repr(context.get("exception") or context.get("reason") or "unknown error"),
            try_number=getattr(ti, "try_number", None),
            log_url=getattr(ti, "log_url", None),
        )
        delivery = send_alert(
            payload, url=self.webhook_url or load_settings().alert_webhook_url, log_dir=_alert_dir(), kind="failure"
        )
        if not delivery.sent:
            self.log.warning("on-call failure alert not delivered: %s", delivery.detail)


class DriftAlertNotifier(BaseNotifier):
    """Posts a drifted day's verdict (what drifted, by how much, where the report is).

    Args:
        verdict: The drift verdict (``modops drift --json``).
        webhook_url: Overrides ``MODOPS_ALERT_WEBHOOK_URL`` (templated).
    """

    template_fields = ("webhook_url",)

    def __init__(self, verdict: Mapping[str, Any], *, webhook_url: str | None = None) -> None:
        super().__init__()
        self.verdict, self.webhook_url = dict(verdict), webhook_url

    def notify(self, context: Mapping[str, Any]) -> None:
        url = self.webhook_url or load_settings().alert_webhook_url
        delivery = send_alert(drift_payload(self.verdict), url=url, log_dir=_alert_dir(), kind="drift")
        if url and not delivery.sent:
            raise AlertDeliveryError(f"drift alert for {self.verdict.get('day')} not delivered: {delivery.detail}")
        self.log.info("drift alert for %s: %s", self.verdict.get("day"), delivery.detail)
