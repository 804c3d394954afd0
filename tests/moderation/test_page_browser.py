"""The reviewer page in a real headless browser, against a live server on a loopback port.

Sign-in with a token, the queue with each image, its scores, reasons and Grad-CAM overlay, the
remove / restore buttons and their consequences (labels, public visibility), close-profile for an
admin but not for a reviewer, and sign-out. Uses Debian's chromium (``apt-get install chromium``,
or ``make browser``) driven by Playwright; Playwright's own browser download is not used.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from modops.data.labelstore import LabelStore
from tests.moderation.conftest import CLASSES, encode, moderate_cfg, picture

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


class CamRednessNet(nn.Module):
    """The conftest's redness model (promo_spam from red, here weapon from blue), plus the
    ``features.stage4`` layer that Grad-CAM hooks on a ``cnn_small`` member (an identity 1x1 conv):
    the conftest's RednessNet has no such layer, so its Grad-CAM request fails."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential()
        conv = nn.Conv2d(3, 3, kernel_size=1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(torch.eye(3)[:, :, None, None])
        self.features.add_module("stage4", conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, g, b = self.features(x).mean(dim=(2, 3)).unbind(dim=1)
        zeros = torch.zeros_like(r)
        return torch.stack([zeros, 12 * (r - g), zeros - 8, 12 * (b - g) - 8], dim=1)


def blue_picture(seed: int, size: int = 192) -> Image.Image:
    """Like the conftest's ``picture`` in a blue tint: the model above scores it weapon."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(6, 6, 3)).astype(np.float32)
    mixed = (0.55 * np.array((20, 20, 230), dtype=np.float32) + 0.45 * blocks).clip(0, 255).astype(np.uint8)
    return Image.fromarray(mixed).resize((size, size), Image.NEAREST)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: run `make browser` (or `apt-get install chromium`) to test the review page")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:  # noqa: ANN001
    """``app`` served by uvicorn on a daemon thread, on a free 127.0.0.1 port; yields its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="modops-review", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the review server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def world(service_factory):  # noqa: ANN001, ANN201
    """A service that queues (does not block) flagged uploads, one reviewer and one admin."""
    from modops.models.io import MemberSpec, ModelSpec
    from modops.models.predictor import SingleModel
    from modops.moderation.service import FixedModel

    service = service_factory(moderate_cfg(block_at=2.0))
    spec = ModelSpec(CLASSES, (MemberSpec("model", "cnn_small", 32),), thresholds={c: 0.5 for c in CLASSES[1:]})
    service.model = FixedModel("7", SingleModel(spec, CamRednessNet()))
    _, rita = service.store.add_reviewer("rita", role="reviewer")
    _, adam = service.store.add_reviewer("adam", role="admin")
    return service, rita, adam


def upload(base: str, img: Image.Image, *, uploader: str) -> dict:
    r = httpx.post(
        f"{base}/v1/uploads",
        files={"image": ("a.png", encode(img), "application/octet-stream")},
        data={"uploader_id": uploader, "business_category": "restaurants"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    return r.json()


def watch(page) -> list[str]:  # noqa: ANN001
    """Every console error, page error, failed request and HTTP error the page meets from now on."""
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text} {m.location['url']}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    page.on("response", lambda r: problems.append(f"http {r.status}: {r.url}") if r.status >= 400 else None)
    return problems


def settle(page) -> None:  # noqa: ANN001
    """Wait until every image on the page has finished loading (or failed)."""
    page.wait_for_function("[...document.images].every(i => i.complete)", timeout=20_000)


def submit(page, button) -> None:  # noqa: ANN001
    """Click a form's button and wait for the post/redirect/get to land."""
    with page.expect_navigation():
        button.click()
    settle(page)


def sign_in(page, base: str, token: str) -> None:  # noqa: ANN001
    page.goto(f"{base}/review/login")
    page.fill("input[name=token]", token)
    submit(page, page.get_by_role("button", name="Sign in"))


def sign_out(page) -> None:  # noqa: ANN001
    submit(page, page.get_by_role("button", name="Sign out"))


def card(page, upload_id: str):  # noqa: ANN001, ANN201
    return page.locator(f"section.card[data-upload='{upload_id}']")


def message(page) -> str:  # noqa: ANN001
    return page.locator("p.msg[role=status]").inner_text()


def test_sign_in_with_a_token_and_out_again(browser, world) -> None:  # noqa: ANN001
    from modops.moderation.app import create_app

    service, rita, _adam = world
    with live_server(create_app(service)) as base:
        page = browser.new_context().new_page()
        problems = watch(page)

        page.goto(f"{base}/review")  # not signed in: the login form
        assert page.url == f"{base}/review/login"
        sign_in(page, base, "not-a-token")
        assert page.url.startswith(f"{base}/review/login")
        assert page.get_by_role("alert").inner_text() == "unknown or inactive token"
        page.goto(f"{base}/review")
        assert page.url == f"{base}/review/login"

        sign_in(page, base, rita)
        assert page.url == f"{base}/review"
        assert "signed in as rita (reviewer)" in page.locator("header").inner_text()
        assert page.locator("p.empty").inner_text() == "Nothing pending review."

        sign_out(page)
        assert page.url == f"{base}/review/login"
        page.goto(f"{base}/review")
        assert page.url == f"{base}/review/login"
        assert page.context.cookies() == []
        page.context.close()
    assert problems == []


def test_review_queue_actions_in_the_browser(browser, world, tmp_path: Path) -> None:  # noqa: ANN001
    from modops.moderation.app import create_app

    service, rita, adam = world
    with live_server(create_app(service)) as base:
        spam = upload(base, picture(1, tint="red"), uploader="u1")
        weapon = upload(base, blue_picture(2), uploader="u2")
        false_flag = upload(base, picture(3, tint="red"), uploader="u3")
        bad_pending = upload(base, picture(4, tint="red"), uploader="bad")
        bad_clean = upload(base, picture(5, tint="green"), uploader="bad")
        queued = [spam, weapon, false_flag, bad_pending]
        assert [u["decision"] for u in queued] == ["pending_review"] * 4 and bad_clean["decision"] == "allowed"
        assert spam["scores"]["promo_spam"] > 0.9 and weapon["scores"]["weapon"] > 0.9

        page = browser.new_context(viewport={"width": 1280, "height": 2000}).new_page()
        problems = watch(page)
        gradcams: list[tuple[int, str]] = []
        page.on(
            "response",
            lambda r: (
                gradcams.append((r.status, r.headers.get("content-type", "")))
                if r.url.endswith("/gradcam.png")
                else None
            ),
        )
        sign_in(page, base, rita)
        assert page.title() == "Queue (4) · modops review"

        # every queued upload: its image, its Grad-CAM overlay, its scores and its reasons
        cards = page.locator("section.card")
        assert cards.evaluate_all("cs => cs.map(c => c.dataset.upload)") == [u["id"] for u in queued]
        for u in queued:
            one = card(page, u["id"])
            images = one.locator("img").evaluate_all(
                "is => is.map(i => [new URL(i.src).pathname, i.complete && i.naturalWidth > 0 && i.naturalHeight > 0])"
            )
            assert images == [
                [f"/v1/review/uploads/{u['id']}/image", True],
                [f"/v1/review/uploads/{u['id']}/gradcam.png", True],
            ], images
            assert one.locator("img").nth(1).is_visible()
            text = one.inner_text()
            for category, score in u["scores"].items():
                row = one.locator("table.scores tr", has_text=category)
                assert row.locator("td").all_inner_texts() == [category, f"{score:.3f}"]
            details = [r["detail"] for r in u["reasons"]]
            assert details and one.locator("ul.reasons li").all_inner_texts() == details, text
        assert gradcams == [(200, "image/png")] * 4

        # a reviewer has no close-profile button
        assert page.get_by_role("button", name="Close profile").count() == 0

        # remove, with the label the form offers: the category that was flagged
        for u, label in ((spam, "promo_spam"), (weapon, "weapon")):
            one = card(page, u["id"])
            assert one.locator("select[name=label]").input_value() == label
            submit(page, one.get_by_role("button", name="Remove"))
            assert message(page) == f"removed {u['id']}"
            assert card(page, u["id"]).count() == 0
            assert service.store.get_upload(u["id"]).status == "removed"

        # restore a false flag: it leaves the queue and becomes public
        assert httpx.get(f"{base}/v1/uploads/{false_flag['id']}").status_code == 404
        submit(page, card(page, false_flag["id"]).get_by_role("button", name="Restore"))
        assert message(page) == f"restored {false_flag['id']}"
        assert page.locator("section.card").evaluate_all("cs => cs.map(c => c.dataset.upload)") == [bad_pending["id"]]
        assert httpx.get(f"{base}/v1/uploads/{false_flag['id']}").status_code == 200

        events = LabelStore(tmp_path / "labels").events()
        got = {(e.image_id, e.label, e.source, e.who) for e in events.itertuples()}
        sha = {u["id"]: service.store.get_upload(u["id"]).sha256 for u in queued}
        assert got == {
            (sha[spam["id"]], "promo_spam", "reviewer", "rita"),
            (sha[weapon["id"]], "weapon", "reviewer", "rita"),
            (sha[false_flag["id"]], "clean", "reviewer", "rita"),
        }, events

        # a reviewer's close-profile post (a hand-made form: the page offers no button) is refused
        with page.expect_navigation():
            page.evaluate(
                """uid => { const f = document.createElement('form'); f.method = 'post';
                   f.action = `/review/profiles/${uid}/close`; document.body.append(f); f.submit(); }""",
                "bad",
            )
        settle(page)
        assert message(page) == "closing a profile needs role admin; rita is reviewer"
        assert page.locator("p.msg").is_visible()
        assert not service.store.profile_closed("bad")
        assert httpx.get(f"{base}/v1/uploads/{bad_clean['id']}").status_code == 200

        # an admin closes it: the uploader's queued and public content goes
        sign_out(page)
        sign_in(page, base, adam)
        assert "signed in as adam (admin)" in page.locator("header").inner_text()
        submit(page, page.get_by_role("button", name="Close profile bad"))
        assert message(page) == "closed profile bad: 2 upload(s) removed"
        assert page.locator("section.card").count() == 0
        assert page.locator("p.empty").inner_text() == "Nothing pending review."
        assert service.store.profile_closed("bad")
        assert httpx.get(f"{base}/v1/uploads/{bad_clean['id']}").status_code == 404
        assert {service.store.get_upload(u["id"]).status for u in (bad_pending, bad_clean)} == {"removed"}

        sign_out(page)
        assert page.url == f"{base}/review/login"
        page.context.close()
    assert problems == []
