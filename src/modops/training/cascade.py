"""The OHEM cascade (Alibaba's stage 1 -> stage 2 design; Yelp's recall-then-precision stages).

Stage 1 (``train.backbone``) trains with online hard example mining: after a warm-up, only the
hardest fraction of each batch carries the loss. Stage 1 then scores the training images;
its highest-loss samples (look-alike negatives, missed or odd positives, sometimes mislabelled
images) plus a class-balanced sample train stage 2 (``train.ohem_cascade.stage2_backbone``).
At inference stage 2 re-scores only what stage 1 is unsure about, under the combination rule
of ``train.ohem_cascade.combine``; the cascade is saved, evaluated and registered as one model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from modops.config import TrainConfig
from modops.data.datasets import StoreDataset, make_loader
from modops.data.transforms import EvalPreset
from modops.models.io import MemberSpec, ModelSpec
from modops.models.loss_head import loss_head_units
from modops.models.predictor import COMBINERS, build_predictor
from modops.runtime import Runtime
from modops.scoring.batch import score_ids
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
from modops.training.losses import make_loss
from modops.training.supervised import fit_supervised

__all__ = ["train_ohem_cascade", "mine_hard_examples", "stage2_training_set", "routing_threshold"]


def mine_hard_examples(losses: np.ndarray, *, n: int) -> np.ndarray:
    """Positions of the ``n`` highest losses, hardest first (ties by position).

    Args:
        losses: Per-sample losses [N]; NaN (unreadable images) never counts as hard.
    """
    finite = np.where(np.isfinite(losses), losses, -np.inf)
    order = np.lexsort((np.arange(len(finite)), -finite))
    order = order[np.isfinite(finite[order])]
    return order[:n]


def stage2_training_set(
    y: np.ndarray, hard: np.ndarray, *, balanced: int, num_classes: int, seed: int, classes: list[int] | None = None
) -> np.ndarray:
    """Positions for stage 2: the hard examples plus up to ``balanced`` others, spread evenly over classes.

    ``classes`` (violating class indices) restricts the balanced draw to the negatives and those
    classes: a specialist stage 2.

    Returns:
        Sorted unique positions into ``y``.
    """
    rng = np.random.default_rng(seed)
    chosen = set(hard.tolist())
    drawn = list(range(num_classes)) if classes is None else [0, *classes]
    per_class = balanced // max(len(drawn), 1)
    for c in drawn:
        pool = np.setdiff1d(np.flatnonzero(y == c), hard)
        take = min(per_class, len(pool))
        if take:
            chosen.update(rng.choice(pool, size=take, replace=False).tolist())
    return np.array(sorted(chosen), dtype=np.int64)


def routing_threshold(scores: np.ndarray, y: np.ndarray, *, recall: float, columns: list[int] | None = None) -> float:
    """The highest stage-1 score that still routes ``recall`` of every category's positives to stage 2.

    Args:
        scores: Stage-1 probabilities [N, C] (column 0 the negative class).
        y: Class indices [N].
        recall: Fraction of each category's positives that must score at or above the result.
        columns: The categories stage 2 re-scores (default: every violating category).

    Returns:
        The band's lower edge; 0.0 when a category has no positives (route everything).
    """
    lows = []
    for c in columns if columns is not None else range(1, scores.shape[1]):
        s = np.sort(scores[y == c, c])
        if len(s) == 0:
            return 0.0
        lows.append(float(s[int(np.floor((1 - recall) * len(s)))]))
    return min(lows)


def _routing_low(
    net: nn.Module,
    data: TrainData,
    *,
    size: int,
    recall: float,
    columns: list[int] | None,
    cfg: TrainConfig,
    runtime: Runtime,
) -> float:
    net.eval()
    probs, ok = predict_loader(net, val_loader(data, image_size=size, cfg=cfg), runtime=runtime, n=len(data.val_ids))
    return routing_threshold(probs[ok], np.asarray(data.val_y)[ok], recall=recall, columns=columns)


def _mining_pool(y: np.ndarray, *, cap: int, seed: int, classes: list[int] | None = None) -> np.ndarray:
    """Training positions stage 1 scores: every violation (of ``classes``, if given), and negatives up to ``cap``."""
    allowed = np.isin(y, [0, *classes]) if classes is not None else np.ones(len(y), dtype=bool)
    positives, negatives = np.flatnonzero((y != 0) & allowed), np.flatnonzero(y == 0)
    if not cap or cap >= len(positives) + len(negatives):
        return np.sort(np.concatenate([positives, negatives]))
    room = max(cap - len(positives), 0)
    rng = np.random.default_rng(seed)
    picked = rng.choice(negatives, size=min(room, len(negatives)), replace=False)
    return np.sort(np.concatenate([positives, picked]))


def _losses(
    net: nn.Module, data: TrainData, positions: np.ndarray, *, size: int, cfg: TrainConfig, runtime: Runtime
) -> np.ndarray:
    """Stage-1 cross-entropy [len(positions)] of training images (eval preset, no augmentation); NaN if unreadable."""
    ids = [data.train_ids[i] for i in positions]
    y = np.asarray(data.train_y)[positions]
    dataset = StoreDataset(data.reader, ids, y, transform=EvalPreset(size, limits=data.decode_limits))
    loader = make_loader(dataset, batch_size=cfg.batch_size * 2, workers=cfg.workers)
    net.eval()
    probs, ok = predict_loader(net, loader, runtime=runtime, n=len(ids))
    losses = np.full(len(ids), np.nan)
    if ok.any():
        losses[ok] = F.nll_loss(
            torch.log(torch.from_numpy(probs[ok]).clamp(min=1e-8)), torch.from_numpy(y[ok]), reduction="none"
        ).numpy()
    return losses


@register_trainer("ohem_cascade")
def train_ohem_cascade(
    data: TrainData,
    *,
    cfg: TrainConfig,
    class_names: tuple[str, ...],
    progress: Progress | None = None,
    init: InitStates | None = None,
) -> TrainResult:
    """Train stage 1 with OHEM, mine its hardest training samples, train stage 2 on them.

    ``init`` (a warm start) may hold ``stage1`` and ``stage2`` weights; stage 2 still trains
    ``stage2_epochs`` on what the new stage 1 finds hard.
    """
    start = time.perf_counter()
    runtime = setup_runtime(cfg)
    cc, k = cfg.ohem_cascade, len(class_names)
    if cc.combine.rule not in COMBINERS:
        raise ValueError(f"unknown combine rule {cc.combine.rule!r}; choose one of {sorted(COMBINERS)}")
    unknown = sorted(set(cc.combine.categories or ()) - set(class_names[1:]))
    if unknown:
        raise ValueError(f"train.ohem_cascade.combine.categories {unknown} are not in labels.categories")
    y = np.asarray(data.train_y)
    weight = class_weight_tensor(y, cfg=cfg, num_classes=k, runtime=runtime)
    size1 = image_size_for(cfg, cfg.backbone)
    stage1 = fit_supervised(
        data,
        cfg=cfg,
        num_classes=k,
        backbone=cfg.backbone,
        image_size=size1,
        epochs=cfg.epochs,
        samples_per_epoch=None,
        loss=make_loss(
            "ohem", weight=weight, keep_fraction=cc.ohem_keep_fraction, warmup_fraction=cc.ohem_warmup_fraction
        ),
        runtime=runtime,
        phase="stage1",
        progress=progress,
        budget_s=budget_left(cfg, start=start, share=_stage1_share(cfg, n_train=len(y))),
        init_state=member_init(init, "stage1", members=_MEMBERS),
    )
    columns = [class_names.index(c) for c in cc.combine.categories] if cc.combine.categories else None
    pool = _mining_pool(y, cap=cc.mine_max_images, seed=cfg.seed, classes=columns)
    losses = _losses(stage1.net, data, pool, size=size1, cfg=cfg, runtime=runtime)
    hard = pool[mine_hard_examples(losses, n=cc.hard_examples)]
    chosen = stage2_training_set(
        y, hard, balanced=cc.balanced_examples, num_classes=k, seed=cfg.seed + 1, classes=columns
    )
    backbone2 = cc.stage2_backbone or cfg.backbone
    size2 = image_size_for(cfg, backbone2, cc.stage2_image_size)
    combine = cc.combine.model_dump()
    if combine["low"] is None:
        combine["low"] = _routing_low(
            stage1.net, data, size=size1, recall=cc.combine.route_recall, columns=columns, cfg=cfg, runtime=runtime
        )
    members = (
        MemberSpec(
            "stage1",
            cfg.backbone,
            size1,
            cbam=cfg.cbam,
            weights="stage1.safetensors",
            loss_head=loss_head_units(stage1.net),
        ),
        MemberSpec("stage2", backbone2, size2, cbam=cfg.cbam, weights="stage2.safetensors"),
    )
    # Validation scores the cascade through its predictor, whose preset decodes under the spec's limits.
    spec = ModelSpec(
        classes=class_names, members=members, kind="cascade", combine=combine, decode_limits=data.decode_limits
    )

    def cascade_val(stage2_net: nn.Module) -> dict[str, float]:
        return _cascade_val_stats({"stage1": stage1.net, "stage2": stage2_net}, spec, data, cfg=cfg, runtime=runtime)

    stage2 = _fit_stage2(
        data,
        chosen,
        cfg=cfg,
        k=k,
        backbone=backbone2,
        size=size2,
        weight=weight,
        runtime=runtime,
        progress=progress,
        validate=cascade_val,
        budget_s=budget_left(cfg, start=start),
        init_state=member_init(init, "stage2", members=_MEMBERS),
    )
    final = cascade_val(stage2.net)
    seconds = time.perf_counter() - start
    hard_y = np.bincount(y[hard], minlength=k)
    return TrainResult(
        networks={"stage1": stage1.net.cpu(), "stage2": stage2.net.cpu()},
        members=members,
        kind="cascade",
        combine=combine,
        history=stage1.history + stage2.history,
        best_epoch=stage2.best_epoch,
        seconds=seconds,
        train_images_per_s=(stage1.samples + stage2.samples) / max(stage1.seconds + stage2.seconds, 1e-9),
        info={
            "precision": runtime.precision,
            "device": str(runtime.device),
            "stage1_best_epoch": stage1.best_epoch,
            "stage1_val_macro_pr_auc": max(h["val_macro_pr_auc"] for h in stage1.history),
            "mined_images": int(len(pool)),
            "hard_examples": int(len(hard)),
            "hard_examples_by_class": {c: int(n) for c, n in zip(class_names, hard_y, strict=True)},
            "stage2_train_images": int(len(chosen)),
            "val_stage2_share": final["val_stage2_share"],
            "route_low": combine["low"],
            "skipped_images": stage1.skipped_images + stage2.skipped_images,
            "pace": {"stage1": stage1.pace, "stage2": stage2.pace},
        },
    )


_MEMBERS = ("stage1", "stage2")


def _stage1_share(cfg: TrainConfig, *, n_train: int) -> float:
    """Stage 1's share of a time budget: its planned training samples over both stages'."""
    cc = cfg.ohem_cascade
    s1 = cfg.epochs * (cfg.samples_per_epoch or n_train)
    s2 = cc.stage2_epochs * (cc.stage2_samples_per_epoch or cc.hard_examples + cc.balanced_examples)
    return s1 / max(s1 + s2, 1)


def _fit_stage2(
    data: TrainData,
    chosen: np.ndarray,
    *,
    cfg: TrainConfig,
    k: int,
    backbone: str,
    size: int,
    weight: torch.Tensor | None,
    runtime: Runtime,
    progress: Progress | None,
    validate: Callable[[nn.Module], dict[str, float]],
    budget_s: float | None = None,
    init_state: Mapping[str, torch.Tensor] | None = None,
) -> FitResult:
    """Stage 2: plain cross-entropy on the mined set, epochs selected on the cascade's val score."""
    cc = cfg.ohem_cascade
    if cc.stage2_augment is not None:
        cfg = cfg.model_copy(update={"augment": cc.stage2_augment})
    ids = [data.train_ids[i] for i in chosen]
    y = np.asarray(data.train_y)[chosen]
    # Only stage 1 sees every upload, so only it predicts its own loss for active learning.
    net = new_network(
        cfg, num_classes=k, backbone=backbone, image_size=size, runtime=runtime, loss_head=False, init_state=init_state
    )
    steps = steps_per_epoch(cfg, n_train=len(ids), samples_per_epoch=cc.stage2_samples_per_epoch)
    memory = loss_memory(cfg, n=len(ids))

    def batches(epoch: int) -> DataLoader:
        return labelled_loader(
            data.reader,
            ids,
            y,
            cfg=cfg,
            image_size=size,
            num_classes=k,
            samples=steps * cfg.batch_size,
            seed=cfg.seed + 1000 + epoch,
            runtime=runtime,
            limits=data.decode_limits,
            memory=memory,
        )

    return fit(
        net,
        batches=batches,
        loss_fn=make_loss("cross_entropy", weight=weight),
        cfg=cfg,
        epochs=cc.stage2_epochs,
        steps=steps,
        runtime=runtime,
        validate=validate,
        phase="stage2",
        progress=progress,
        budget_s=budget_s,
        memory=memory,
    )


def _cascade_val_stats(
    networks: dict[str, nn.Module], spec: ModelSpec, data: TrainData, *, cfg: TrainConfig, runtime: Runtime
) -> dict[str, float]:
    """Val metrics of the combined cascade, scored exactly as evaluation will score it."""
    scores = score_ids(
        build_predictor(networks, spec, runtime=runtime),
        data.val_ids,
        reader=data.reader,
        batch_size=cfg.batch_size * 2,
        workers=cfg.workers,
    )
    stats = val_stats(scores.probs, np.asarray(data.val_y), scores.ok)
    stats["val_stage2_share"] = scores.stage2_share
    return stats
