"""Mean teacher (Tarvainen and Valpola 2017): semi-supervised training on unlabelled uploads.

A student learns from labelled images (cross-entropy, class-balanced) and, on unlabelled
images, to agree with a teacher whose weights are an exponential moving average of the
student's. Student and teacher see two independently augmented views of each unlabelled
image; the consistency cost is the mean squared difference of their class probabilities,
weighted up along a sigmoid ramp. The teacher, a temporal ensemble of students, is the model
evaluated and registered: it is smoother and more accurate than any single student.

Alibaba's cold start trained MobileNet-V2 this way on a few hundred retrieved seeds plus the
unlabelled content pool.
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import RandomSampler

from modops.config import LossPredictionConfig, TrainConfig
from modops.data.datasets import StoreDataset, make_loader
from modops.data.transforms import TrainPreset
from modops.models.io import MemberSpec
from modops.models.loss_head import get_loss_head, loss_head_units, stage_features
from modops.training.base import InitStates, Progress, TrainData, TrainResult, member_init, register_trainer
from modops.training.loop import (
    BestKeeper,
    Optimizer,
    budget_left,
    class_weight_tensor,
    endless,
    image_size_for,
    inputs,
    labelled_loader,
    loss_memory,
    new_network,
    pace_epoch,
    pace_step,
    predict_loader,
    predicted_loss_term,
    remember_losses,
    setup_runtime,
    steps_per_epoch,
    val_loader,
    val_stats,
)
from modops.training.pace import Pacer
from modops.training.sampling import LossMemory

__all__ = ["ema_update", "sigmoid_rampup", "consistency_loss", "train_mean_teacher"]


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, *, decay: float) -> None:
    """``teacher <- decay * teacher + (1 - decay) * student`` for every parameter.

    Buffers (BatchNorm running statistics) are not averaged: the teacher runs its own forward
    passes in train mode and keeps its own statistics, as in the reference implementation.
    """
    if not 0 <= decay <= 1:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    t_params = list(teacher.parameters())
    s_params = [p.detach() for p in student.parameters()]
    if len(t_params) != len(s_params) or any(t.shape != s.shape for t, s in zip(t_params, s_params, strict=True)):
        raise ValueError("teacher and student must have the same architecture (parameter shapes differ)")
    torch._foreach_lerp_(t_params, s_params, 1.0 - decay)


def sigmoid_rampup(progress: float) -> float:
    """The ramp ``exp(-5 (1 - t)^2)`` for ``t`` clipped to [0, 1]: 0.0067 at 0, 1.0 from 1 on."""
    t = min(max(progress, 0.0), 1.0)
    return float(math.exp(-5.0 * (1.0 - t) ** 2))


def consistency_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of softmax probabilities, averaged over batch and classes.

    The teacher side carries no gradient (it is a target, not a model being trained).
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"logit shapes differ: {tuple(student_logits.shape)} vs {tuple(teacher_logits.shape)}")
    return F.mse_loss(torch.softmax(student_logits, dim=1), torch.softmax(teacher_logits.detach(), dim=1))


def _unlabelled_pool(data: TrainData, cfg: TrainConfig) -> list[str]:
    # Labelled training images take part in the consistency cost too (their labels are
    # ignored there): with few unlabelled uploads the method still regularises.
    pool = list(dict.fromkeys([*data.unlabeled_ids, *data.train_ids]))
    cap = cfg.mean_teacher.max_unlabeled
    if cap and len(pool) > cap:
        rng = np.random.default_rng(cfg.seed)
        pool = sorted(rng.choice(pool, size=cap, replace=False).tolist())
    return pool


@register_trainer("mean_teacher")
def train_mean_teacher(
    data: TrainData,
    *,
    cfg: TrainConfig,
    class_names: tuple[str, ...],
    progress: Progress | None = None,
    init: InitStates | None = None,
) -> TrainResult:
    """Train a student and its EMA teacher; return the teacher (best epoch by val macro PR-AUC).

    With ``init`` (a warm start) student and teacher both start from the saved model.
    """
    start = time.perf_counter()
    runtime = setup_runtime(cfg)
    mt, k = cfg.mean_teacher, len(class_names)
    size = image_size_for(cfg, cfg.backbone)
    student = new_network(
        cfg,
        num_classes=k,
        backbone=cfg.backbone,
        image_size=size,
        runtime=runtime,
        init_state=member_init(init, "model", members=("model",)),
    )
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    steps = steps_per_epoch(cfg, n_train=len(data.train_ids))
    total = cfg.epochs * steps
    weight = class_weight_tensor(np.asarray(data.train_y), cfg=cfg, num_classes=k, runtime=runtime)
    pool = _unlabelled_pool(data, cfg)
    preset = TrainPreset(size, augment=cfg.augment, limits=data.decode_limits)
    two_views = StoreDataset(data.reader, pool, transform=preset, views=2)
    unlabelled = endless(
        lambda s: make_loader(
            two_views,
            batch_size=mt.unlabeled_batch_size,
            workers=cfg.workers,
            sampler=RandomSampler(two_views, generator=torch.Generator().manual_seed(s)),
            seed=s,
        ),
        seed=cfg.seed + 10_000,
    )
    opt = Optimizer(student.parameters(), cfg=cfg, total_steps=total, runtime=runtime)
    pacer = Pacer(budget_left(cfg, start=start), epochs=cfg.epochs, steps=steps)
    jitter = torch.Generator().manual_seed(cfg.seed)
    val = val_loader(data, image_size=size, cfg=cfg)
    memory = loss_memory(cfg, n=len(data.train_ids))
    best, history, samples, skipped = BestKeeper(), [], 0, 0
    for epoch in range(1, cfg.epochs + 1):
        t0, done = time.perf_counter(), 0
        sums = {"loss": 0.0, "class_loss": 0.0, "consistency": 0.0, "n": 0}
        student.train()
        teacher.train()
        labelled = labelled_loader(
            data.reader,
            data.train_ids,
            np.asarray(data.train_y),
            cfg=cfg,
            image_size=size,
            num_classes=k,
            samples=steps * cfg.batch_size,
            seed=cfg.seed + epoch,
            runtime=runtime,
            limits=data.decode_limits,
            memory=memory,
            item_weight=data.train_weight,
        )
        for step, batch in enumerate(labelled, start=1):
            if step > pacer.steps:  # shortened to fit train.max_minutes
                break
            done = step
            ubatch = next(unlabelled)
            skipped += int((~batch.ok).sum() + (~ubatch.ok).sum())
            if not batch.ok.any():  # nothing readable to classify: skip the step, as fit() does
                continue
            ramp = (
                sigmoid_rampup(opt.steps / max(mt.rampup_fraction * opt.total_steps, 1e-9))
                if mt.rampup_fraction
                else 1.0
            )
            losses = _step(
                student,
                teacher,
                batch,
                ubatch,
                runtime=runtime,
                weight=weight,
                cons_weight=mt.consistency_weight * ramp,
                jitter=cfg.augment.color_jitter,
                generator=jitter,
                memory=memory,
                loss_prediction=cfg.loss_prediction,
                progress=opt.steps / opt.total_steps,
            )
            opt.step(losses["loss"])
            pace_step(pacer, opt, epoch=epoch, step=step)
            decay = mt.rampup_ema_decay if ramp < 1.0 else mt.ema_decay
            ema_update(teacher, student, decay=decay)
            n = int(batch.ok.sum())
            for key in ("loss", "class_loss", "consistency"):
                sums[key] += float(losses[key].detach()) * n
            sums["n"] += n
            if progress:
                progress(f"mean teacher epoch {epoch}/{cfg.epochs}", step, pacer.steps)
        samples += sums["n"] + done * mt.unlabeled_batch_size
        teacher.eval()
        v0 = time.perf_counter()
        probs, ok = predict_loader(teacher, val, runtime=runtime, n=len(data.val_ids))
        stats = val_stats(probs, np.asarray(data.val_y), ok)
        seconds = time.perf_counter() - t0
        pace_epoch(pacer, opt, epoch=epoch, epoch_s=seconds, val_s=time.perf_counter() - v0, steps_done=done)
        n = max(sums.pop("n"), 1)
        stats.update({key: value / n for key, value in sums.items()})
        stats.update(epoch=epoch, phase="mean_teacher", seconds=seconds, lr=opt.lr, steps=done)
        history.append(stats)
        best.offer(teacher, score=stats["val_macro_pr_auc"], epoch=epoch)
    teacher = best.restore(teacher)
    seconds = time.perf_counter() - start
    return TrainResult(
        networks={"model": teacher.cpu()},
        members=(MemberSpec("model", cfg.backbone, size, cbam=cfg.cbam, loss_head=loss_head_units(teacher)),),
        history=history,
        best_epoch=best.epoch,
        seconds=seconds,
        train_images_per_s=samples / max(seconds, 1e-9),
        info={
            "precision": runtime.precision,
            "device": str(runtime.device),
            "unlabeled_pool": len(pool),
            "skipped_images": skipped,
            "pace": pacer.summary(),
        },
    )


def _step(
    student: nn.Module,
    teacher: nn.Module,
    batch,  # noqa: ANN001 - a labelled Batch
    ubatch,  # noqa: ANN001 - an unlabelled two-view Batch
    *,
    runtime,  # noqa: ANN001
    weight: torch.Tensor | None,
    cons_weight: float,
    jitter: float,
    generator: torch.Generator,
    memory: LossMemory | None = None,
    loss_prediction: LossPredictionConfig | None = None,
    progress: float = 0.0,
) -> dict[str, torch.Tensor]:
    """One mean-teacher step's losses: classification on labelled, consistency on unlabelled views.

    With a loss ``memory``, the labelled images' cross-entropies are recorded under their positions.
    A student with a loss-prediction head trains it on the labelled images (the teacher follows
    it by EMA, as it follows every other weight).
    """
    j = {"jitter": jitter, "generator": generator}
    x_l, y = inputs(batch.images[batch.ok], runtime, **j), batch.labels[batch.ok].to(runtime.device)
    views = ubatch.images[ubatch.ok]  # [U, 2, 3, S, S]
    x_s, x_t = inputs(views[:, 0], runtime, **j), inputs(views[:, 1], runtime, **j)
    head = get_loss_head(student)
    with runtime.autocast():
        with stage_features(student, head.layers if head else ()) as feats:
            logits = student(torch.cat([x_l, x_s]))
            ranking = predicted_loss_term(head, feats, logits[: len(y)], y, cfg=loss_prediction, progress=progress)
        with torch.no_grad():
            t_logits = teacher(x_t)
    logits, t_logits = logits.float(), t_logits.float()
    class_loss = F.cross_entropy(logits[: len(y)], y, weight=weight)
    remember_losses(memory, batch, logits[: len(y)], y)
    cons = consistency_loss(logits[len(y) :], t_logits) if len(x_t) else torch.zeros((), device=runtime.device)
    loss = class_loss + cons_weight * cons + (ranking if ranking is not None else 0.0)
    return {"loss": loss, "class_loss": class_loss.detach(), "consistency": cons.detach()}
