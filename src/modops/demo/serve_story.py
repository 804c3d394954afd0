"""``make demo-serve``: the moderation service on the demo model, a day of uploads through its API.

1. The model: the champion, or the newest registered version when ``make demo``'s gate refused
   its candidate (said so: the service then serves an unpromoted model, as ``modops serve
   --model latest`` would).
2. A day of demo uploads (each with its uploader and business category) is rendered into the
   state folder, and every image is posted to ``POST /v1/uploads`` over loopback HTTP.
3. The decisions are counted against the generator's ground truth, the head of the review queue
   is shown, and an admin reviewer's token is printed with the reviewer page's address; the
   service keeps running until Ctrl-C (``--exit`` stops it once the day is posted).

Reviewers' decisions on the page go where the service's always do: the label store and the
known-spam and allow banks, so the next relabel round trains on them.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from modops.config import Settings
from modops.demo.drift_story import StoryError, model_under_watch
from modops.progress import NullReporter, Reporter

__all__ = ["LiveServer", "run_serve_story", "truth_table"]

#: Days after the demo's base date: the training pool is day 0 and the drift story's day is later.
SERVE_DAY_INDEX = 2


class LiveServer:
    """A uvicorn server for ``app`` on a background thread (``with LiveServer(app, ...) as url:``).

    ``port=0`` picks a free port; :attr:`url` is the address it bound.
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, start_timeout_s: float = 30) -> None:  # noqa: ANN401
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        self.host, self.start_timeout_s = host, start_timeout_s
        self.thread = threading.Thread(target=self.server.run, name="modops-serve", daemon=True)
        self.url = ""

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise StoryError(f"the service did not start on {self.host} (is the port in use? try --port)")
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://{self.host}:{port}"
        return self

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C)."""
        while self.thread.is_alive():
            self.thread.join(0.5)

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def truth_table(decisions: pd.Series, truth: pd.Series) -> dict[str, dict[str, int]]:
    """``{true label: {decision: count}}`` of parallel per-upload series (labels from the generator)."""
    frame = pd.DataFrame({"decision": decisions.to_numpy(), "truth": truth.to_numpy()})
    return {
        str(label): {str(k): int(v) for k, v in group["decision"].value_counts().sort_index().items()}
        for label, group in frame.groupby("truth")
    }


def _post_day(base_url: str, day: Path, *, reporter: Reporter) -> pd.DataFrame:
    """Post every image of the day's ``labels.csv``; one row per upload with its response."""
    import logging

    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    rows = pd.read_csv(day / "labels.csv", dtype=str, keep_default_na=False)
    out = []
    with httpx.Client(base_url=base_url, timeout=120) as client, reporter.task("uploads", total=len(rows)) as step:
        for row in rows.itertuples(index=False):
            started = time.perf_counter()
            r = client.post(
                "/v1/uploads",
                files={"image": (Path(row.path).name, (day / row.path).read_bytes(), "application/octet-stream")},
                data={"uploader_id": row.uploader_id, "business_category": row.business_category},
            )
            body = r.json()
            out.append(
                {
                    "path": row.path,
                    "truth": row.true_label,
                    "status": r.status_code,
                    "id": body.get("id"),
                    "decision": body.get("decision", f"http_{r.status_code}"),
                    "reasons": ", ".join(sorted({x["step"] + ":" + x["code"] for x in body.get("reasons", [])})),
                    "seconds": time.perf_counter() - started,
                }
            )
            step(1)
    return pd.DataFrame(out)


def _queue_head(base_url: str, token: str, *, limit: int) -> list[dict[str, Any]]:
    import httpx

    r = httpx.get(f"{base_url}/v1/review/queue", params={"limit": limit}, headers={"Authorization": f"Bearer {token}"})
    r.raise_for_status()
    return r.json()


def run_serve_story(
    project: Path,
    *,
    settings: Settings,
    n_images: int = 300,
    positive_rate: float = 0.1,
    seed: int = 0,
    host: str = "127.0.0.1",
    port: int = 8080,
    keep_serving: bool = True,
    show: int = 8,
    reporter: Reporter | None = None,
    on_ready: Any = None,  # noqa: ANN401 - (result dict) -> None, called before serving on
) -> dict[str, Any]:
    """Run the story (module docstring) in ``project``; returns its figures (also in ``demo_serve.json``).

    Raises:
        StoryError: No registered model, or the port is taken.
    """
    from modops.demo import generate_pool
    from modops.demo.constants import BASE_DATE
    from modops.moderation.app import create_app
    from modops.moderation.run import build_service

    rep = reporter or NullReporter()
    project = Path(project).resolve()
    version, why = model_under_watch(settings)
    rep.log(f"demo-serve: serving v{version}, {why}")
    day = settings.state_dir.resolve() / "demo-serve" / "day"
    generate_pool(day, n_images=n_images, seed=seed, day=SERVE_DAY_INDEX, positive_rate=positive_rate)
    service = build_service(
        settings, params_path=project / "params.yaml", labels_dir=project / "data" / "labels", model=version
    )
    name = f"demo-{secrets.token_hex(3)}"
    _reviewer, token = service.store.add_reviewer(name, role="admin", by="demo-serve")
    try:
        with LiveServer(create_app(service), host=host, port=port) as live:
            rep.log(f"demo-serve: service up at {live.url}; posting {n_images} uploads of one demo day")
            posted = _post_day(live.url, day, reporter=rep)
            result = _summary(posted, version=version, why=why, url=live.url, reviewer=name)
            result["day"] = (BASE_DATE + timedelta(days=SERVE_DAY_INDEX)).date().isoformat()
            result["queue_head"] = _queue_head(live.url, token, limit=show)
            (settings.state_dir / "demo_serve.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
            result["token"] = token  # shown once, never written to disk
            if on_ready is not None:
                on_ready(result)
            if keep_serving:
                live.wait()
    finally:
        service.store.close()
    return result


def _summary(posted: pd.DataFrame, *, version: str, why: str, url: str, reviewer: str) -> dict[str, Any]:
    """The day's figures: decisions, decisions by true label, server errors, client-side latency."""
    seconds = posted["seconds"].to_numpy()
    return {
        "version": version,
        "served": why,
        "url": url,
        "reviewer": reviewer,
        "uploads": len(posted),
        "decisions": dict(Counter(posted["decision"])),
        "by_truth": truth_table(posted["decision"], posted["truth"]),
        "errors": int((posted["status"] >= 500).sum()),
        "latency_ms": {
            "p50": round(float(pd.Series(seconds).quantile(0.5)) * 1000, 1),
            "p99": round(float(pd.Series(seconds).quantile(0.99)) * 1000, 1),
        },
    }
