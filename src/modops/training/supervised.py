"""The supervised baseline: a torchvision backbone, imbalance handling, best-epoch selection."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score
from torch import nn
from torchvision.transforms import v2

from modops.config import TrainConfig
from modops.data.transforms import normalize
from modops.models.backbones import create_model
from modops.models.io import IMAGENET_MEAN, IMAGENET_STD
from modops.scoring.batch import predict_probs
from modops.training.base import TrainData, TrainResult, class_weights, register_trainer

__all__ = ["train_supervised", "seed_everything", "augment"]


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy; return a dedicated generator for sampling."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return torch.Generator().manual_seed(seed)


def augment(batch: torch.Tensor, *, image_size: int) -> torch.Tensor:
    """Light train-time augmentation on uint8 [B, 3, S, S]: flip, mild crop-resize, colour jitter.

    Crops stay mild (scale >= 0.75) because violations are often small local patches that
    an aggressive crop would remove while keeping the label.
    """
    t = v2.Compose(
        [
            v2.RandomHorizontalFlip(),
            v2.RandomResizedCrop(image_size, scale=(0.75, 1.0), ratio=(0.8, 1.25), antialias=True),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        ]
    )
    return torch.stack([t(img) for img in batch])


def _sampler_indices(y: torch.Tensor, *, cfg: TrainConfig, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """Indices for one epoch: ``samples_per_epoch`` draws (default len(y)).

    Balanced sampling draws with replacement by capped class weight; otherwise a random
    permutation (truncated when ``samples_per_epoch`` is smaller than the split).
    """
    n = cfg.samples_per_epoch or len(y)
    if cfg.imbalance != "balanced_sampler":
        return torch.randperm(len(y), generator=gen)[:n]
    w = class_weights(y, num_classes=num_classes, cap=cfg.max_positive_weight)[y]
    return torch.multinomial(w, n, replacement=True, generator=gen)


def _epoch_cap(data: TrainData, cfg: TrainConfig) -> int:
    # Without replacement an epoch cannot exceed the split itself.
    return len(data.train_y) if cfg.imbalance != "balanced_sampler" else 10**12


@register_trainer("supervised")
def train_supervised(
    data: TrainData,
    *,
    cfg: TrainConfig,
    class_names: tuple[str, ...],
    progress: Callable[[str, int, int], None] | None = None,
) -> TrainResult:
    """Train a classifier over ``class_names`` with cross-entropy.

    Imbalance: ``balanced_sampler`` over-samples rare classes (capped), ``weighted_loss``
    weights the loss instead, ``none`` does neither. The kept weights are those of the epoch
    with the best val macro PR-AUC over the violating classes.

    Args:
        data: Preloaded uint8 tensors.
        cfg: Hyper-parameters.
        class_names: Output classes; index 0 is the negative class.
        progress: Called as ``progress(phase, done, total)`` per batch.

    Returns:
        The trained model and per-epoch history.
    """
    gen = seed_everything(cfg.seed)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    k = len(class_names)
    model = create_model(cfg.backbone, num_classes=k, pretrained=cfg.pretrained, weights_path=cfg.weights_path)
    model = model.to(memory_format=torch.channels_last)
    loss_weight = (
        class_weights(data.train_y, num_classes=k, cap=cfg.max_positive_weight)
        if cfg.imbalance == "weighted_loss"
        else None
    )
    steps_per_epoch = math.ceil(min(cfg.samples_per_epoch or len(data.train_y), _epoch_cap(data, cfg)) / cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
    )
    history: list[dict] = []
    best = (-1.0, 0, copy.deepcopy(model.state_dict()))
    start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = _sampler_indices(data.train_y, cfg=cfg, num_classes=k, gen=gen)
        total, seen = 0.0, 0
        for step in range(steps_per_epoch):
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            x = normalize(augment(data.train_x[idx], image_size=cfg.image_size), mean=IMAGENET_MEAN, std=IMAGENET_STD)
            loss = F.cross_entropy(model(x), data.train_y[idx], weight=loss_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
            if progress:
                progress(f"epoch {epoch}/{cfg.epochs}", step + 1, steps_per_epoch)
        stats = _val_stats(model, data, num_classes=k, batch_size=cfg.batch_size * 2)
        stats.update(
            epoch=epoch, loss=total / max(seen, 1), seconds=time.perf_counter() - t0, lr=sched.get_last_lr()[0]
        )
        history.append(stats)
        if stats["val_macro_pr_auc"] > best[0]:
            best = (stats["val_macro_pr_auc"], epoch, copy.deepcopy(model.state_dict()))
    seconds = time.perf_counter() - start
    model.load_state_dict(best[2])
    return TrainResult(
        model=model.eval(),
        history=history,
        best_epoch=best[1],
        seconds=seconds,
        train_images_per_s=cfg.epochs * steps_per_epoch * cfg.batch_size / seconds,
    )


def _val_stats(model: nn.Module, data: TrainData, *, num_classes: int, batch_size: int) -> dict:
    probs = predict_probs(model, data.val_x, mean=IMAGENET_MEAN, std=IMAGENET_STD, batch_size=batch_size)
    y = data.val_y.numpy()
    val_loss = float(F.nll_loss(torch.log(torch.from_numpy(probs).clamp(min=1e-8)), data.val_y).item())
    aps = [float(average_precision_score(y == c, probs[:, c])) for c in range(1, num_classes) if (y == c).any()]
    return {"val_loss": val_loss, "val_macro_pr_auc": float(np.mean(aps)) if aps else 0.0}
