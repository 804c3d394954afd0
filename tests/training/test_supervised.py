"""The supervised trainer learns a tiny separable problem, deterministically."""

from __future__ import annotations

import pytest
import torch

from modops.config import TrainConfig
from modops.training import TRAINERS, TrainData, get_trainer
from modops.training.base import class_weights

CLASSES = ("clean", "red")


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean = dark noise; 'red' = a bright red square somewhere. uint8 [n, 3, 32, 32]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 90, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = (torch.arange(n) % 4 == 0).long()  # 25 % positives
    for i in torch.nonzero(y).flatten():
        r, c = torch.randint(0, 16, (2,), generator=g)
        x[i, 0, r : r + 14, c : c + 14] = 255
    return x, y


CFG = TrainConfig(backbone="resnet18", image_size=32, epochs=3, batch_size=16, lr=3e-3, seed=3)


def test_trainer_registry():
    assert "supervised" in TRAINERS
    with pytest.raises(ValueError, match="choose one of"):
        get_trainer("nope")


@pytest.mark.parametrize("imbalance", ["balanced_sampler", "weighted_loss"])
def test_supervised_learns_and_is_seeded(imbalance):
    (tx, ty), (vx, vy) = _data(96, 0), _data(48, 1)
    cfg = CFG.model_copy(update={"imbalance": imbalance})
    a = get_trainer("supervised")(TrainData(tx, ty, vx, vy), cfg=cfg, class_names=CLASSES)
    assert len(a.history) == 3 and 1 <= a.best_epoch <= 3
    assert max(h["val_macro_pr_auc"] for h in a.history) > 0.9
    b = get_trainer("supervised")(TrainData(tx, ty, vx, vy), cfg=cfg, class_names=CLASSES)
    assert [h["loss"] for h in a.history] == pytest.approx([h["loss"] for h in b.history], rel=1e-4)


def test_class_weights_are_capped():
    y = torch.tensor([0] * 1000 + [1] * 10 + [2] * 500)
    w = class_weights(y, num_classes=4, cap=20.0)
    assert w.tolist() == pytest.approx([1.0, 20.0, 2.0, 0.0])


def test_empty_split_is_rejected():
    x, y = _data(8, 0)
    with pytest.raises(ValueError, match="non-empty"):
        TrainData(x, y, x[:0], y[:0])
