"""On-call alerts: Slack-compatible webhook payloads, their delivery, and a record of each.

Payloads follow Slack's incoming-webhook format (a ``text`` summary that every receiver shows,
plus ``blocks`` for those that render them), which Mattermost, Rocket.Chat, Microsoft Teams'
Slack-compatible connectors and most alert routers accept. Building a payload is pure; sending
it posts JSON with retries. Every alert, delivered or not, is appended to an alert log, so an
alert that could not be delivered (no URL configured, receiver down) is never lost.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["AlertDeliveryError", "Delivery", "drift_payload", "failure_payload", "post_webhook", "send_alert"]

_MAX_FIELDS = 10  # Slack renders at most 10 fields per section
_MAX_TEXT = 2900  # and at most 3000 characters per text object


class AlertDeliveryError(RuntimeError):
    """The webhook did not accept the alert after every attempt."""


@dataclass(frozen=True)
class Delivery:
    """What became of an alert: ``sent`` (with the HTTP status), or why not."""

    sent: bool
    status: int | None
    detail: str


def _fmt(value: Any) -> str:  # noqa: ANN401 - a JSON scalar
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def drift_payload(verdict: Mapping[str, Any]) -> dict[str, Any]:
    """The alert for a drifted day, from a drift verdict (``modops drift --json``).

    Returns:
        ``{"text": ..., "blocks": [...]}``: what drifted, by how much against which threshold,
        and where the report is.
    """
    fired = [c for c in verdict["checks"] if c["fired"]]
    names = ", ".join(c["name"] for c in fired) or "nothing"
    where = verdict.get("report") or verdict.get("verdict") or "(no report: too few images)"
    text = (
        f"modops: drift on {verdict['day']} (model v{verdict['model_version']}): {len(fired)} of "
        f"{len(verdict['checks'])} checks fired: {names}. Report: {where}"
    )
    fields = [
        {"type": "mrkdwn", "text": f"*{c['name']}*\n{_fmt(c['value'])} (threshold {_fmt(c['threshold'])})"}
        for c in fired[:_MAX_FIELDS]
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"modops: drift on {verdict['day']}"}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": (
                    f"*Model* v{verdict['model_version']} · {verdict['rows']} images scored vs "
                    f"{verdict['reference_rows']} in the reference · *{len(fired)}* of {len(verdict['checks'])} "
                    "checks fired"
                ),
            },
        },
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    details = "\n".join(f"• `{c['name']}`: {c['detail']}" for c in fired)
    if details:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": details[:_MAX_TEXT]}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Report: `{where}`"}]})
    return {"text": text, "blocks": blocks}


def failure_payload(
    *,
    dag_id: str,
    task_id: str | None,
    run_id: str | None,
    error: str,
    try_number: int | None = None,
    log_url: str | None = None,
) -> dict[str, Any]:
    """The alert for a failed DAG task: which DAG, task and run, the error, and where the log is."""
    where = f"{dag_id}.{task_id}" if task_id else dag_id
    text = f"modops: {where} failed (run {run_id or '?'}): {error}"[:_MAX_TEXT]
    facts = [
        {"type": "mrkdwn", "text": f"*DAG*\n{dag_id}"},
        {"type": "mrkdwn", "text": f"*Task*\n{task_id or '-'}"},
        {"type": "mrkdwn", "text": f"*Run*\n{run_id or '-'}"},
        {"type": "mrkdwn", "text": f"*Try*\n{try_number if try_number is not None else '-'}"},
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"modops: {where} failed"}},
        {"type": "section", "fields": facts},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"```{error[: _MAX_TEXT - 6]}```"}},
    ]
    if log_url:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Log: {log_url}"}]})
    return {"text": text, "blocks": blocks}


def post_webhook(url: str, payload: Mapping[str, Any], *, timeout_s: float = 10.0, attempts: int = 3) -> int:
    """POST ``payload`` as JSON; retries on connection errors and 5xx/429 with backoff.

    Returns:
        The HTTP status of the accepted attempt.

    Raises:
        AlertDeliveryError: After the last failed attempt, or at once on another 4xx (a wrong
            URL or payload will not fix itself).
    """
    if not url.startswith(("http://", "https://")):
        raise AlertDeliveryError(f"webhook URL must be http(s), got {url!r} (set MODOPS_ALERT_WEBHOOK_URL)")
    body = json.dumps(payload).encode()
    last = ""
    for attempt in range(attempts):
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - scheme checked above
                return int(response.status)
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code} {exc.reason}"
            if exc.code < 500 and exc.code != 429:
                raise AlertDeliveryError(f"webhook refused the alert: {last}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        if attempt + 1 < attempts:
            time.sleep(0.5 * 2**attempt)
    raise AlertDeliveryError(f"webhook unreachable after {attempts} attempts: {last}")


def send_alert(payload: Mapping[str, Any], *, url: str | None, log_dir: Path, kind: str, **post: Any) -> Delivery:  # noqa: ANN401
    """Deliver an alert to ``url`` (when set) and append it, with the outcome, to ``log_dir/alerts.jsonl``.

    Never raises for a delivery failure: the outcome is returned and logged, and the caller
    decides (a drift task fails loudly; a failure callback only logs).
    """
    if not url:
        delivery = Delivery(False, None, "no webhook configured (MODOPS_ALERT_WEBHOOK_URL); recorded only")
    else:
        try:
            delivery = Delivery(True, post_webhook(url, payload, **post), "delivered")
        except AlertDeliveryError as exc:
            delivery = Delivery(False, None, str(exc))
    log_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "kind": kind,
        "sent": delivery.sent,
        "status": delivery.status,
        "detail": delivery.detail,
        "payload": payload,
    }
    with (log_dir / "alerts.jsonl").open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    return delivery
