"""The local webhook receiver keeps what alerts post, and refuses what is not an alert."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from modops.monitoring.receiver import WebhookReceiver


def _post(url: str, body: bytes) -> int:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status


def test_posts_are_kept_in_order_and_logged(tmp_path):
    log = tmp_path / "alerts.jsonl"
    with WebhookReceiver(log_path=log) as rx:
        assert _post(rx.url, json.dumps({"text": "one"}).encode()) == 200
        assert _post(rx.url, json.dumps({"text": "two", "blocks": []}).encode()) == 200
        with pytest.raises(urllib.error.HTTPError) as bad:
            _post(rx.url, b"not json")
        assert bad.value.code == 400
    assert [a["text"] for a in rx.received] == ["one", "two"]
    assert [json.loads(line)["text"] for line in log.read_text().splitlines()] == ["one", "two"]
