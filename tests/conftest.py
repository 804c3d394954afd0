"""Shared fixtures: isolated state, tiny seeded images, a small demo pool."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

# Keep every test offline and quiet, whatever the developer's shell has set.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own state folder, so no test touches the developer's .modops/."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("MODOPS_STATE_DIR", str(state))
    for key in (
        "MODOPS_TRACKING_URI",
        "MODOPS_ARTIFACT_ROOT",
        "MODOPS_SETTINGS_FILE",
        "MODOPS_MODEL_NAME",
        "MODOPS_ALERT_WEBHOOK_URL",
    ):
        monkeypatch.delenv(key, raising=False)


def image_bytes(seed: int, *, size: tuple[int, int] = (48, 40), fmt: str = "JPEG") -> bytes:
    """A random RGB image, encoded; different seeds give different content."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="session")
def small_pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 600-image demo pool with 15 % violations, 80 % of it labelled, and 5 seed images per category."""
    from modops.demo import generate_pool

    out = tmp_path_factory.mktemp("pool")
    generate_pool(
        out,
        size="small",
        n_images=600,
        seed=7,
        positive_rate=0.15,
        labelled_fraction=0.8,
        seeds_per_category=5,
        workers=1,
    )
    return out


DEMO_CLASSES = ("clean", "promo_spam", "disgusting", "weapon")


def register_champion(tmp_path: Path, *, seed: int = 0, sha: str = "a" * 64) -> str:
    """Register a tiny random model under MODOPS_MODEL_NAME and make it champion; returns its version."""
    import torch

    from modops.config import load_settings
    from modops.models import MemberSpec, ModelSpec, create_model, save_members
    from modops.registry.promotion import register_candidate
    from modops.registry.tracking import configure_mlflow

    torch.manual_seed(seed)
    d = tmp_path / f"model{seed}"
    spec = ModelSpec(DEMO_CLASSES, (MemberSpec("model", "cnn_small", 32),))
    save_members({"model": create_model("cnn_small", num_classes=len(DEMO_CLASSES))}, spec, d)
    configure_mlflow(load_settings())
    reg = register_candidate(
        d,
        eval_dir=None,
        name=load_settings().model_name,
        thresholds={"promo_spam": 0.3, "disgusting": 0.3, "weapon": 0.3},
        weights_sha=sha,
        passed=True,
        reasons=("test",),
        tags={},
        metrics={},
    )
    return str(reg.version)
