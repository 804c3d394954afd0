"""The supervised baseline: one backbone, imbalance handling, best-epoch selection."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from modops.config import TrainConfig
from modops.models.io import MemberSpec
from modops.models.loss_head import loss_head_units
from modops.runtime import Runtime
from modops.training.base import InitStates, Progress, TrainData, TrainResult, member_init, register_trainer
from modops.training.loop import (
    FitResult,
    budget_left,
    class_weight_tensor,
    fit,
    image_size_for,
    labelled_loader,
    loss_memory,
    new_network,
    predict_loader,
    setup_runtime,
    steps_per_epoch,
    val_loader,
    val_stats,
)
from modops.training.losses import LossFn, make_loss

__all__ = ["train_supervised", "fit_supervised"]


def fit_supervised(
    data: TrainData,
    *,
    ids: list[str] | None = None,
    y: np.ndarray | None = None,
    cfg: TrainConfig,
    num_classes: int,
    backbone: str,
    image_size: int,
    epochs: int,
    samples_per_epoch: int | None,
    loss: LossFn,
    runtime: Runtime,
    phase: str,
    progress: Progress | None = None,
    seed_offset: int = 0,
    budget_s: float | None = None,
    init_state: Mapping[str, torch.Tensor] | None = None,
) -> FitResult:
    """Train one network on ``ids``/``y`` (default: the train split), validating on val each epoch.

    ``budget_s``: wall-clock budget of the fit (see :func:`modops.training.loop.fit`).
    ``init_state``: saved weights to start from (:func:`modops.training.loop.load_init_state`).
    """
    # The noise check's sampling weights belong to the train split; a mined subset draws evenly.
    item_weight = data.train_weight if ids is None else None
    ids = list(data.train_ids) if ids is None else ids
    y = np.asarray(data.train_y) if y is None else y
    net = new_network(
        cfg, num_classes=num_classes, backbone=backbone, image_size=image_size, runtime=runtime, init_state=init_state
    )
    steps = steps_per_epoch(cfg, n_train=len(ids), samples_per_epoch=samples_per_epoch)
    val = val_loader(data, image_size=image_size, cfg=cfg)
    memory = loss_memory(cfg, n=len(ids))

    def batches(epoch: int):  # noqa: ANN202
        return labelled_loader(
            data.reader,
            ids,
            y,
            cfg=cfg,
            image_size=image_size,
            num_classes=num_classes,
            samples=steps * cfg.batch_size,
            seed=cfg.seed + seed_offset + epoch,
            runtime=runtime,
            limits=data.decode_limits,
            memory=memory,
            item_weight=item_weight,
        )

    def validate(model: nn.Module) -> dict[str, float]:
        model.eval()
        probs, ok = predict_loader(model, val, runtime=runtime, n=len(data.val_ids))
        return val_stats(probs, np.asarray(data.val_y), ok)

    return fit(
        net,
        batches=batches,
        loss_fn=loss,
        cfg=cfg,
        epochs=epochs,
        steps=steps,
        runtime=runtime,
        validate=validate,
        phase=phase,
        progress=progress,
        budget_s=budget_s,
        memory=memory,
    )


@register_trainer("supervised")
def train_supervised(
    data: TrainData,
    *,
    cfg: TrainConfig,
    class_names: tuple[str, ...],
    progress: Progress | None = None,
    init: InitStates | None = None,
) -> TrainResult:
    """Train a classifier over ``class_names`` with the loss named in ``train.supervised.loss``.

    Imbalance: ``balanced_sampler`` over-samples rare classes (capped), ``weighted_loss``
    weights the loss instead, ``none`` does neither. The kept weights are those of the epoch
    with the best val macro PR-AUC over the violating classes.
    """
    start = time.perf_counter()
    runtime = setup_runtime(cfg)
    k, size = len(class_names), image_size_for(cfg, cfg.backbone)
    sup = cfg.supervised
    loss = make_loss(
        sup.loss,
        weight=class_weight_tensor(np.asarray(data.train_y), cfg=cfg, num_classes=k, runtime=runtime),
        keep_fraction=sup.ohem_keep_fraction,
        warmup_fraction=sup.ohem_warmup_fraction,
    )
    fitted = fit_supervised(
        data,
        cfg=cfg,
        num_classes=k,
        backbone=cfg.backbone,
        image_size=size,
        epochs=cfg.epochs,
        samples_per_epoch=None,
        loss=loss,
        runtime=runtime,
        phase="train",
        progress=progress,
        budget_s=budget_left(cfg, start=start),
        init_state=member_init(init, "model", members=("model",)),
    )
    seconds = time.perf_counter() - start
    return TrainResult(
        networks={"model": fitted.net.cpu()},
        members=(MemberSpec("model", cfg.backbone, size, cbam=cfg.cbam, loss_head=loss_head_units(fitted.net)),),
        history=fitted.history,
        best_epoch=fitted.best_epoch,
        seconds=seconds,
        train_images_per_s=fitted.samples / max(fitted.seconds, 1e-9),
        info={
            "precision": runtime.precision,
            "device": str(runtime.device),
            "skipped_images": fitted.skipped_images,
            "pace": fitted.pace,
        },
    )
