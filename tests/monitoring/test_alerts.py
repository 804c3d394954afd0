"""Alerts reach a local HTTP receiver as Slack-compatible JSON; failures are retried and recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from modops.config import load_settings
from modops.monitoring.alerts import AlertDeliveryError, drift_payload, failure_payload, post_webhook, send_alert


class Receiver:
    """A webhook receiver on loopback: records each JSON body; answers with the queued statuses, then 200."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(json.loads(body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


VERDICT = {
    "drift": True,
    "day": "2026-12-02",
    "model_version": "3",
    "rows": 300,
    "reference_rows": 400,
    "report": "/state/monitoring/day=2026-12-02/model_version=3/report.html",
    "checks": [
        {"name": "embedding", "kind": "embedding", "fired": True, "value": 0.81, "threshold": 0.55, "detail": "AUC"},
        {"name": "property:width", "kind": "property", "fired": True, "value": 2.4, "threshold": 0.15, "detail": "W"},
        {"name": "score:weapon", "kind": "score", "fired": False, "value": 0.02, "threshold": 0.15, "detail": "W"},
    ],
}


def test_the_drift_payload_says_what_drifted_by_how_much_and_where_the_report_is():
    payload = drift_payload(VERDICT)
    assert "2026-12-02" in payload["text"] and "embedding, property:width" in payload["text"]
    assert VERDICT["report"] in payload["text"]
    fields = next(b for b in payload["blocks"] if "fields" in b)["fields"]
    assert [f["text"].split("\n")[0] for f in fields] == ["*embedding*", "*property:width*"]
    assert "0.81 (threshold 0.55)" in fields[0]["text"]
    assert payload["blocks"][0]["type"] == "header"
    json.dumps(payload)  # serialisable as is


def test_an_alert_is_posted_retried_on_503_and_recorded(receiver, tmp_path):
    receiver.statuses = [503]
    delivery = send_alert(drift_payload(VERDICT), url=receiver.url, log_dir=tmp_path, kind="drift")
    assert delivery.sent and delivery.status == 200
    assert len(receiver.bodies) == 2 and receiver.bodies[-1]["text"].startswith("modops: drift on 2026-12-02")
    (record,) = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert record["sent"] and record["kind"] == "drift" and record["payload"]["blocks"]


def test_a_refusing_or_absent_receiver_is_an_error_that_is_recorded(receiver, tmp_path):
    receiver.statuses = [404]
    with pytest.raises(AlertDeliveryError, match="HTTP 404"):
        post_webhook(receiver.url, {"text": "x"})
    assert len(receiver.bodies) == 1  # a 4xx is not retried
    gone = send_alert({"text": "x"}, url="http://127.0.0.1:9/nothing", log_dir=tmp_path, kind="drift", attempts=2)
    assert not gone.sent and "unreachable after 2 attempts" in gone.detail
    unset = send_alert({"text": "x"}, url=None, log_dir=tmp_path, kind="drift")
    assert not unset.sent and "MODOPS_ALERT_WEBHOOK_URL" in unset.detail
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 2
    with pytest.raises(AlertDeliveryError, match="http"):
        post_webhook("file:///etc/passwd", {"text": "x"})


def _context(**kw):  # noqa: ANN003, ANN202
    ti = SimpleNamespace(task_id="score", dag_id="modops_scoring", try_number=2, log_url="http://airflow/log")
    return {"ti": ti, "dag": SimpleNamespace(dag_id="modops_scoring"), "run_id": "scheduled__2026-12-02", **kw}


def test_the_failure_notifier_pages_with_dag_task_run_and_error(receiver, monkeypatch):
    from modops.monitoring.notify import OnCallFailureNotifier

    monkeypatch.setenv("MODOPS_ALERT_WEBHOOK_URL", receiver.url)
    OnCallFailureNotifier().notify(_context(exception=RuntimeError("store unreachable")))
    (body,) = receiver.bodies
    assert body["text"].startswith("modops: modops_scoring.score failed (run scheduled__2026-12-02)")
    assert "store unreachable" in body["text"]
    assert any("http://airflow/log" in json.dumps(b) for b in body["blocks"])
    assert (load_settings().monitoring_dir / "alerts" / "alerts.jsonl").is_file()


def test_the_failure_notifier_never_raises_when_the_receiver_is_down(monkeypatch):
    from modops.monitoring.notify import OnCallFailureNotifier

    monkeypatch.setenv("MODOPS_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/down")
    OnCallFailureNotifier().notify(_context(exception=ValueError("x")))  # logs, does not raise


def test_the_drift_notifier_raises_when_a_configured_receiver_refuses(receiver, monkeypatch):
    from modops.monitoring.notify import DriftAlertNotifier

    monkeypatch.setenv("MODOPS_ALERT_WEBHOOK_URL", receiver.url)
    DriftAlertNotifier(VERDICT).notify(_context())
    assert receiver.bodies[-1] == drift_payload(VERDICT)
    receiver.statuses = [400]
    with pytest.raises(AlertDeliveryError, match="not delivered"):
        DriftAlertNotifier(VERDICT).notify(_context())


def test_failure_payload_truncates_huge_errors():
    payload = failure_payload(dag_id="d", task_id="t", run_id="r", error="x" * 10_000)
    assert len(payload["text"]) <= 2900
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in payload["blocks"])
