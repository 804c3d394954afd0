"""A tiny separable problem for the trainers, read lazily from an in-memory image store.

Clean images are dark noise; the violating class ("red") has a bright red square somewhere.
Everything is sized to keep a whole training run around a second on one CPU thread:
32 px images, tens of images, ``cnn_small``, batch 16, no loader workers, fp32 on the CPU.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from modops.config import CascadeConfig, MeanTeacherConfig, TrainConfig
from modops.data.datasets import MemoryReader
from modops.training import TrainData, TrainResult, get_trainer

CLASSES = ("clean", "red")
N_TRAIN, N_VAL, N_UNLABELED = 64, 32, 32


def make_images(n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """uint8 [n, 3, 32, 32] and int64 labels [n]: every 4th image (25 %) has a red square."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 90, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = (torch.arange(n) % 4 == 0).long()
    for i in torch.nonzero(y).flatten():
        r, c = torch.randint(0, 16, (2,), generator=g)
        x[i, 0, r : r + 14, c : c + 14] = 255
    return x, y.numpy()


def make_data() -> TrainData:
    """A fresh TrainData (its own reader, so a test may corrupt images in it)."""
    reader = MemoryReader()
    parts = {}
    for prefix, n, seed in (("train", N_TRAIN, 0), ("val", N_VAL, 1), ("unl", N_UNLABELED, 2)):
        x, y = make_images(n, seed)
        part, ids = MemoryReader.from_uint8(x, prefix=prefix)
        reader.images.update(part.images)
        parts[prefix] = (ids, y)
    return TrainData(
        reader=reader,
        train_ids=parts["train"][0],
        train_y=parts["train"][1],
        val_ids=parts["val"][0],
        val_y=parts["val"][1],
        unlabeled_ids=parts["unl"][0],
    )


def make_cfg(trainer: str, **update: Any) -> TrainConfig:
    """A tiny TrainConfig; ``update`` overrides any field (sub-configs as config objects)."""
    fields: dict[str, Any] = {
        "trainer": trainer,
        "backbone": "cnn_small",
        "image_size": 32,
        "epochs": 3,
        "batch_size": 16,
        "lr": 3e-3,
        "seed": 3,
        "workers": 0,
        "num_threads": 1,  # the machine is shared: one thread is several times faster here
        "device": "cpu",
        "precision": "fp32",
        "mean_teacher": MeanTeacherConfig(unlabeled_batch_size=16),
        "ohem_cascade": CascadeConfig(stage2_epochs=2, hard_examples=16, balanced_examples=16),
    }
    fields.update(update)
    return TrainConfig(**fields)


@dataclass(frozen=True)
class Trained:
    """A training run, with a copy of its state dicts taken right after training."""

    cfg: TrainConfig
    data: TrainData
    result: TrainResult
    states: dict[str, dict[str, torch.Tensor]]


def train(trainer: str, *, data: TrainData | None = None, **update: Any) -> Trained:
    cfg = make_cfg(trainer, **update)
    data = data or make_data()
    result = get_trainer(trainer)(data, cfg=cfg, class_names=CLASSES)
    states = {name: copy.deepcopy(net.state_dict()) for name, net in result.networks.items()}
    return Trained(cfg, data, result, states)


@pytest.fixture(autouse=True)
def _restore_num_threads():
    """Trainers call ``torch.set_num_threads``; leave the process as it was."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def trained() -> Callable[[str], Trained]:
    """``trained(name)``: the default tiny run of a trainer, trained once per session."""
    cache: dict[str, Trained] = {}

    def get(name: str) -> Trained:
        if name not in cache:
            before = torch.get_num_threads()
            try:
                cache[name] = train(name)
            finally:
                torch.set_num_threads(before)
        return cache[name]

    return get


@pytest.fixture
def tiny() -> Any:
    """The helpers above, for the test modules (conftest modules are not imported directly)."""
    return _Helpers()


class _Helpers:
    classes = CLASSES
    n_train, n_val, n_unlabeled = N_TRAIN, N_VAL, N_UNLABELED
    make_images = staticmethod(make_images)
    make_data = staticmethod(make_data)
    make_cfg = staticmethod(make_cfg)
    train = staticmethod(train)
