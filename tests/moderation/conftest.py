"""Fixtures of the moderation tests: a model whose promo_spam score is the image's redness, images,
a service on a temporary SQLite store and label store."""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from torch import nn

from modops.config import LabelsConfig, ModerateConfig, parse_section
from modops.models.io import MemberSpec, ModelSpec
from modops.models.predictor import SingleModel

# The PostgreSQL the tests use (here and in CI: trust auth on localhost). Set MODOPS_TEST_PG_REQUIRED=1
# to make an unreachable server a failure instead of a skip.
PG_URL = os.environ.get("MODOPS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CLASSES = ("clean", "promo_spam", "disgusting", "weapon")


class RednessNet(nn.Module):
    """logits: clean 0, promo_spam 12 * (mean R - mean G) in normalised units, others -8.

    A red picture scores promo_spam near 1, a green or grey one near 0: tests choose decisions by colour.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        redness = (x[:, 0] - x[:, 1]).mean(dim=(1, 2))
        zeros = torch.zeros_like(redness)
        return torch.stack([zeros, 12 * redness, zeros - 8, zeros - 8], dim=1)


def redness_model() -> SingleModel:
    spec = ModelSpec(CLASSES, (MemberSpec("model", "cnn_small", 32),), thresholds={c: 0.5 for c in CLASSES[1:]})
    return SingleModel(spec, RednessNet())


def picture(seed: int, *, tint: str = "red", size: int = 192) -> Image.Image:
    """A distinct picture per seed: coarse random blocks (robust perceptual hashes) in a tint."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(6, 6, 3)).astype(np.float32)
    base = {"red": (230, 20, 20), "green": (20, 200, 40), "grey": (128, 128, 128)}[tint]
    mixed = (0.55 * np.array(base, dtype=np.float32) + 0.45 * blocks).clip(0, 255).astype(np.uint8)
    return Image.fromarray(mixed).resize((size, size), Image.NEAREST)


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:  # noqa: ANN003
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def moderate_cfg(**overrides) -> ModerateConfig:  # noqa: ANN003
    raw = {"ocr": {"engine": "none"}, **overrides}
    return parse_section(ModerateConfig, raw, name="moderate")


@pytest.fixture
def service_factory(tmp_path: Path):  # noqa: ANN201
    """``make(cfg=None, ocr=None)`` -> a ModerationService on fresh stores under tmp_path."""
    from modops.moderation.service import FixedModel, ModerationService
    from modops.moderation.store import ReviewStore

    made = []

    def make(cfg: ModerateConfig | None = None, *, ocr=None, db_url: str | None = None):  # noqa: ANN001, ANN202
        store = ReviewStore(db_url or f"sqlite:///{tmp_path / 'review.db'}")
        service = ModerationService(
            cfg or moderate_cfg(),
            store,
            model=FixedModel("7", redness_model()),
            images_dir=tmp_path / "images",
            labels=LabelsConfig(),
            labels_dir=tmp_path / "labels",
            reviewed_dir=str(tmp_path / "reviewed"),
            ocr=ocr,
        )
        made.append(store)
        return service

    yield make
    for store in made:
        store.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards; skips if the server is down."""
    schema = f"modops_t_{secrets.token_hex(6)}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        shown = make_url(PG_URL).render_as_string(hide_password=True)
        reason = f"PostgreSQL at {shown} unreachable ({exc.orig}); start it or set MODOPS_TEST_PG_URL"
        if os.environ.get("MODOPS_TEST_PG_REQUIRED"):
            pytest.fail(reason)
        pytest.skip(reason)
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state/review/review.db"  # parent folders do not exist yet
    return request.getfixturevalue("pg_url")
