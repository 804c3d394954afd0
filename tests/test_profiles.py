"""Both profiles load, and the production profile (DenseNet-161 -> ResNet-50 cascade at 224 px) trains.

No weights can be downloaded here, so the production run starts from random initialisation on a
tiny pool; everything else (backbones, CBAM, input size, OHEM, mining, stage 2, the combination
rule, saving and loading the cascade) is the profile's own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modops.config import load_params, load_section
from modops.data.datasets import MemoryReader
from modops.models.io import load_members, save_members
from modops.models.predictor import build_predictor
from modops.scoring.batch import score_ids
from modops.training import TrainData, get_trainer

REPO = Path(__file__).resolve().parents[1]
SECTIONS = (
    "labels",
    "ingest",
    "validate",
    "cold_start",
    "split",
    "noise",
    "train",
    "evaluate",
    "gate",
    "score",
    "select",
    "relabel",
    "moderate",
)


@pytest.mark.parametrize("path", [REPO / "params.yaml", REPO / "profiles/production.yaml"], ids=["demo", "production"])
def test_profile_loads_every_section(path):
    params = load_params(path)
    assert set(params) == set(SECTIONS)
    for name in SECTIONS:
        load_section(params, name)


def test_production_profile_holds_the_product_floors_and_the_seed_backbones():
    params = load_params(REPO / "profiles/production.yaml")
    train, gate = load_section(params, "train"), load_section(params, "gate")
    assert (train.trainer, train.backbone, train.ohem_cascade.stage2_backbone) == (
        "ohem_cascade",
        "densenet161",
        "resnet50",
    )
    assert train.image_size == 224 and train.cbam and train.pretrained == "imagenet"
    assert (gate.min_precision, gate.min_recall) == (0.95, 0.94)


@pytest.mark.slow
def test_production_profile_trains_on_a_tiny_pool(tmp_path):
    params = load_params(REPO / "profiles/production.yaml")
    labels = load_section(params, "labels")
    cfg = load_section(params, "train").model_copy(
        update={
            "pretrained": "none",  # no downloads here; the weights API path is the only difference
            "epochs": 1,
            "samples_per_epoch": 8,
            "batch_size": 4,
            "workers": 0,
            "device": "cpu",
        }
    )
    cfg = cfg.model_copy(
        update={
            "ohem_cascade": cfg.ohem_cascade.model_copy(
                update={"stage2_epochs": 1, "stage2_samples_per_epoch": 8, "hard_examples": 4, "balanced_examples": 4}
            )
        }
    )
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (16, 3, 40, 48), generator=g, dtype=torch.uint8)
    reader, ids = MemoryReader.from_uint8(images)
    y = np.arange(16) % 4
    data = TrainData(reader, ids[:12], y[:12], ids[12:], y[12:])
    result = get_trainer(cfg.trainer)(data, cfg=cfg, class_names=labels.all)
    spec = result.spec(labels.all, trainer=cfg.trainer, label_version=None)
    assert [(m.backbone, m.image_size, m.cbam) for m in spec.members] == [
        ("densenet161", 224, True),
        ("resnet50", 224, True),
    ]
    save_members(result.networks, spec, tmp_path / "model")
    networks, loaded = load_members(tmp_path / "model")
    scores = score_ids(build_predictor(networks, loaded), ids[12:], reader=reader, batch_size=4)
    assert scores.ok.all() and np.allclose(scores.probs.sum(axis=1), 1, atol=1e-4)
