"""Training machinery every trainer shares: runtime, loaders, optimiser, validation, best epoch.

A trainer is a short function over these pieces (see ``supervised.py``); the loop streams
batches from the image store through DataLoader workers, runs forward passes under the
runtime's autocast (bf16 on capable CPUs, AMP on CUDA), and keeps the weights of the epoch
with the best validation macro PR-AUC over the violating categories.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, WeightedRandomSampler

from modops.config import LossPredictionConfig, TrainConfig
from modops.data.datasets import Batch, ImageReader, StoreDataset, balanced_sampler, class_weights, make_loader
from modops.data.images import DecodeLimits
from modops.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalPreset, TrainPreset, color_jitter, normalize
from modops.models.backbones import create_model, get_backbone
from modops.models.loss_head import LossHead, get_loss_head, head_loss, stage_features
from modops.runtime import Runtime, resolve_runtime
from modops.training.base import Progress, TrainData
from modops.training.losses import LossFn
from modops.training.pace import Pacer
from modops.training.sampling import LossMemory, PrioritySampler

__all__ = [
    "setup_runtime",
    "image_size_for",
    "new_network",
    "load_init_state",
    "labelled_loader",
    "endless",
    "inputs",
    "Optimizer",
    "predict_loader",
    "val_stats",
    "BestKeeper",
    "FitResult",
    "fit",
    "budget_left",
    "pace_step",
    "pace_epoch",
]


_HEAD_PREFIX = "loss_head."


def setup_runtime(cfg: TrainConfig) -> Runtime:
    """Seed everything and resolve the device/precision policy for a run."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    random.seed(cfg.seed)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    return resolve_runtime(cfg.device, cfg.precision)


def image_size_for(cfg: TrainConfig, backbone: str, override: int | None = None) -> int:
    """Input side: an explicit override, else ``train.image_size``, else the backbone's default."""
    return override or cfg.image_size or get_backbone(backbone).input_size


def new_network(
    cfg: TrainConfig,
    *,
    num_classes: int,
    backbone: str,
    image_size: int,
    runtime: Runtime,
    loss_head: bool = True,
    init_state: Mapping[str, torch.Tensor] | None = None,
) -> nn.Module:
    """A fresh network (pretrained as configured, CBAM if asked) on the runtime's device, channels-last.

    ``loss_head``: attach the loss-prediction head when ``train.loss_prediction.enabled`` (False
    for networks that never score uploads on their own, such as a cascade's stage 2).
    ``init_state``: a saved member's weights to start from instead (``train.warm_start``); see
    :func:`load_init_state`.
    """
    lp = cfg.loss_prediction
    net = create_model(
        backbone,
        num_classes=num_classes,
        # A warm start replaces every weight, so ImageNet weights would only cost a load.
        pretrained="none" if init_state is not None else cfg.pretrained,
        weights_path=None if init_state is not None else cfg.weights_path,
        cbam=cfg.cbam,
        input_size=image_size,
        loss_head=lp.hidden if lp.enabled and loss_head else 0,
    )
    if init_state is not None:
        load_init_state(net, init_state)
    return net.to(runtime.device, memory_format=torch.channels_last)


def load_init_state(net: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Load a saved member's weights into ``net`` (same backbone, input size, CBAM and classes), in place.

    The loss-prediction head (``loss_head.*``) may differ: one saved with the model but not wanted
    now is dropped, one wanted but not saved (or of another size) starts fresh.

    Returns:
        ``{"loaded": tensors loaded, "fresh_head": loss-head tensors left at their init}``.

    Raises:
        ValueError: When the classifier's tensors differ in names or shapes, with the first differences.
    """
    own = net.state_dict()
    body = {k for k in own if not k.startswith(_HEAD_PREFIX)}
    saved = {k for k in state if not k.startswith(_HEAD_PREFIX)}
    shapes = sorted(k for k in body & saved if tuple(own[k].shape) != tuple(state[k].shape))
    if body != saved or shapes:
        detail = {
            "missing from the saved weights": sorted(body - saved)[:3],
            "not in this network": sorted(saved - body)[:3],
            "different shapes": [f"{k}: {tuple(state[k].shape)} saved, {tuple(own[k].shape)} here" for k in shapes[:3]],
        }
        raise ValueError(
            "the warm-start weights do not fit this network "
            f"({ {k: v for k, v in detail.items() if v} }): the model was trained with another backbone, "
            "image size, CBAM setting or label set; train from scratch once (train.warm_start.init: none)"
        )
    head = {k for k in own if k.startswith(_HEAD_PREFIX)}
    same_head = bool(head) and all(k in state and tuple(state[k].shape) == tuple(own[k].shape) for k in head)
    keep = body | (head if same_head else set())
    net.load_state_dict({k: state[k] for k in keep}, strict=False)
    return {"loaded": len(keep), "fresh_head": 0 if same_head else len(head)}


def loss_memory(cfg: TrainConfig, *, n: int) -> LossMemory | None:
    """A per-image loss memory for ``n`` training images when ``train.sampling.priority`` is ``loss``."""
    return LossMemory(n, decay=cfg.sampling.decay) if cfg.sampling.priority == "loss" else None


def labelled_loader(
    reader: ImageReader,
    ids: Sequence[str],
    y: np.ndarray,
    *,
    cfg: TrainConfig,
    image_size: int,
    num_classes: int,
    samples: int,
    seed: int,
    runtime: Runtime,
    limits: DecodeLimits,
    memory: LossMemory | None = None,
    item_weight: np.ndarray | None = None,
) -> DataLoader:
    """Augmented training batches: ``samples`` draws, class-balanced (capped) or uniform.

    ``item_weight`` (float [N]) makes some images come up less often within their class (the
    noise check's ``downweight``); it cannot be combined with a loss ``memory``.

    With a loss ``memory`` (``train.sampling.priority: loss``) images within a class are drawn
    by their recent loss (:class:`modops.training.sampling.PrioritySampler`). Images are
    decoded under ``limits`` (the ingest limits); one outside them comes as ``ok=False``.
    """
    dataset = StoreDataset(reader, ids, y, transform=TrainPreset(image_size, augment=cfg.augment, limits=limits))
    if memory is not None and item_weight is not None:
        raise ValueError("noise.action: downweight cannot be combined with train.sampling.priority: loss; pick one")
    if memory is not None:
        balanced = cfg.imbalance == "balanced_sampler"
        weight = class_weights(y, num_classes=num_classes, cap=cfg.max_positive_weight if balanced else 1.0)
        sampler = PrioritySampler(
            y,
            class_weight=weight,
            memory=memory,
            num_samples=samples,
            mix=cfg.sampling.mix,
            max_ratio=cfg.sampling.max_ratio,
            seed=seed,
            chunk=cfg.batch_size,
        )
    elif cfg.imbalance == "balanced_sampler":
        sampler = balanced_sampler(
            y,
            num_classes=num_classes,
            cap=cfg.max_positive_weight,
            num_samples=samples,
            seed=seed,
            item_weight=item_weight,
        )
    elif item_weight is not None:
        sampler = WeightedRandomSampler(
            torch.as_tensor(np.asarray(item_weight, dtype=np.float64)),
            samples,
            replacement=True,
            generator=torch.Generator().manual_seed(seed),
        )
    else:
        sampler = RandomSampler(
            dataset, replacement=samples > len(y), num_samples=samples, generator=torch.Generator().manual_seed(seed)
        )
    return make_loader(
        dataset,
        batch_size=cfg.batch_size,
        workers=cfg.workers,
        sampler=sampler,
        seed=seed,
        pin_memory=runtime.device.type == "cuda",
    )


def endless(make: Callable[[int], DataLoader], *, seed: int) -> Iterator[Batch]:
    """Batches forever: a fresh pass of ``make(pass_seed)`` each time one runs out."""
    n = 0
    while True:
        yield from make(seed + n)
        n += 1


def inputs(
    batch_images: torch.Tensor, runtime: Runtime, *, jitter: float = 0.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """uint8 images -> normalised float input on the runtime's device, colour-jittered for training."""
    x = batch_images.to(runtime.device, non_blocking=True)
    if jitter:
        x = color_jitter(x, strength=jitter, generator=generator or torch.Generator().manual_seed(0))
    return normalize(x, mean=IMAGENET_MEAN, std=IMAGENET_STD)


class Optimizer:
    """AdamW with a one-cycle schedule and, for fp16, a gradient scaler: ``opt.step(loss)``."""

    def __init__(self, params: Sequence[nn.Parameter], *, cfg: TrainConfig, total_steps: int, runtime: Runtime):
        self.opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(
            self.opt, max_lr=cfg.lr, total_steps=max(total_steps, 1), pct_start=0.15
        )
        self.scaler = runtime.grad_scaler()
        self.steps, self.total_steps = 0, max(total_steps, 1)
        self.max_lr = cfg.lr

    def resize(self, total_steps: int) -> None:
        """Re-plan the one-cycle schedule for ``total_steps`` in all, keeping the steps already taken.

        Used when a run is shortened to fit its time budget: the new schedule is the one a run of
        ``total_steps`` would have had, fast-forwarded to where this one stands, so it still ends
        annealed.
        """
        self.total_steps = max(total_steps, self.steps + 1)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(
            self.opt, max_lr=self.max_lr, total_steps=self.total_steps, pct_start=0.15
        )
        for _ in range(self.steps):
            self.sched.step()

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        if self.steps < self.total_steps:  # OneCycleLR raises past its last step
            self.sched.step()
        self.steps += 1

    @property
    def lr(self) -> float:
        return float(self.opt.param_groups[0]["lr"])


@torch.no_grad()
def predict_loader(
    forward: Callable[[torch.Tensor], torch.Tensor], loader: DataLoader, *, runtime: Runtime, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax of ``forward`` over a loader of a dataset of size ``n``.

    Returns:
        probs float32 [n, C] (NaN rows for unreadable images) and ok bool [n].
    """
    probs: np.ndarray | None = None
    ok = np.zeros(n, dtype=bool)
    for batch in loader:
        good = batch.ok
        if not good.any():
            continue
        with runtime.autocast():
            logits = forward(inputs(batch.images[good], runtime))
        p = torch.softmax(logits.float(), dim=1).cpu().numpy()
        if probs is None:
            probs = np.full((n, p.shape[1]), np.nan, dtype=np.float32)
        idx = batch.index[good].numpy()
        probs[idx], ok[idx] = p, True
    return (probs if probs is not None else np.zeros((n, 0), np.float32)), ok


def val_loader(data: TrainData, *, image_size: int, cfg: TrainConfig) -> DataLoader:
    """Val images through the eval preset under ``data.decode_limits``, in order."""
    preset = EvalPreset(image_size, limits=data.decode_limits)
    dataset = StoreDataset(data.reader, data.val_ids, data.val_y, transform=preset)
    return make_loader(dataset, batch_size=cfg.batch_size * 2, workers=cfg.workers)


def val_stats(probs: np.ndarray, y: np.ndarray, ok: np.ndarray) -> dict[str, float]:
    """Val loss and macro PR-AUC over the violating classes (index >= 1) present in ``y``."""
    p, t = probs[ok], y[ok]
    if len(t) == 0:
        return {"val_loss": float("nan"), "val_macro_pr_auc": 0.0}
    loss = float(F.nll_loss(torch.log(torch.from_numpy(p).clamp(min=1e-8)), torch.from_numpy(t)).item())
    aps = [float(average_precision_score(t == c, p[:, c])) for c in range(1, p.shape[1]) if (t == c).any()]
    return {"val_loss": loss, "val_macro_pr_auc": float(np.mean(aps)) if aps else 0.0}


@dataclass
class BestKeeper:
    """Keeps a copy of the weights of the best epoch by a score (higher is better)."""

    score: float = -math.inf
    epoch: int = 0
    state: dict | None = None

    def offer(self, net: nn.Module, *, score: float, epoch: int) -> None:
        if score > self.score:
            self.score, self.epoch = score, epoch
            self.state = copy.deepcopy(net.state_dict())

    def restore(self, net: nn.Module) -> nn.Module:
        if self.state is not None:
            net.load_state_dict(self.state)
        return net.eval()


@dataclass
class FitResult:
    """One network's training: the best-epoch network and its history."""

    net: nn.Module
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    samples: int = 0
    skipped_images: int = 0
    pace: dict = field(default_factory=dict)


def pace_step(pacer: Pacer, opt: Optimizer, *, epoch: int, step: int) -> None:
    """After step ``step`` of ``epoch``: let the pacer plan (epoch 1), and resize the schedule if it shrank."""
    if epoch == 1 and pacer.after_step(step) is not None:
        # The rest of epoch 1 at the new length, then the remaining epochs.
        opt.resize(opt.steps + (pacer.steps - step) + (pacer.epochs - 1) * pacer.steps)


def pace_epoch(pacer: Pacer, opt: Optimizer, *, epoch: int, epoch_s: float, val_s: float, steps_done: int) -> None:
    """After ``epoch`` (``epoch_s`` seconds, ``val_s`` of them validating): re-plan, resize if it shrank."""
    if pacer.after_epoch(epoch, epoch_s=epoch_s, val_s=val_s, steps_done=steps_done) is not None:
        opt.resize(opt.steps + (pacer.epochs - epoch) * pacer.steps)


def budget_left(cfg: TrainConfig, *, start: float, share: float = 1.0) -> float | None:
    """Seconds of ``train.max_minutes`` left since ``start`` (``perf_counter``), times ``share``; None = no cap."""
    if cfg.max_minutes is None:
        return None
    return max(cfg.max_minutes * 60.0 - (time.perf_counter() - start), 0.0) * share


def steps_per_epoch(cfg: TrainConfig, *, n_train: int, samples_per_epoch: int | None = None) -> int:
    n = samples_per_epoch if samples_per_epoch is not None else cfg.samples_per_epoch
    return max(1, math.ceil((n or n_train) / cfg.batch_size))


def remember_losses(memory: LossMemory | None, batch: Batch, logits: torch.Tensor, y: torch.Tensor) -> None:
    """Record the cross-entropy of ``logits`` [B_ok, C] vs ``y`` [B_ok] for the batch's readable images."""
    if memory is None:
        return
    per_sample = F.cross_entropy(logits.detach().float(), y, reduction="none")
    memory.update(batch.index[batch.ok].numpy(), per_sample.cpu().numpy())


def predicted_loss_term(
    head: LossHead | None,
    features: list[torch.Tensor],
    logits: torch.Tensor,
    y: torch.Tensor,
    *,
    cfg: LossPredictionConfig | None,
    progress: float,
) -> torch.Tensor | None:
    """The weighted ranking loss of a loss-prediction head, or None for a network without one.

    ``features``: the stage outputs of the forward pass that gave ``logits`` [B, C]; only their
    first B rows (the labelled images) are read. ``progress``: the fraction of training done.
    """
    if head is None:
        return None
    cfg = cfg or LossPredictionConfig()
    per_image = F.cross_entropy(logits.float(), y, reduction="none")
    feats = [f[: len(y)] for f in features]
    return cfg.weight * head_loss(head, feats, per_image, margin=cfg.margin, detach=progress >= cfg.detach_after)


def train_step(
    net: nn.Module,
    batch: Batch,
    *,
    opt: Optimizer,
    loss_fn: LossFn,
    runtime: Runtime,
    jitter: float,
    generator: torch.Generator,
    memory: LossMemory | None = None,
    loss_prediction: LossPredictionConfig | None = None,
) -> tuple[torch.Tensor, int] | None:
    """One optimiser step on a batch's readable images; returns (loss, images) or None if none were readable.

    With a loss ``memory``, each image's cross-entropy is recorded under its dataset position.
    A network with a loss-prediction head also trains the head (``loss_prediction`` settings).
    """
    if not batch.ok.any():
        return None
    x = inputs(batch.images[batch.ok], runtime, jitter=jitter, generator=generator)
    y = batch.labels[batch.ok].to(runtime.device)
    progress = opt.steps / opt.total_steps
    head = get_loss_head(net)
    with runtime.autocast(), stage_features(net, head.layers if head else ()) as feats:
        logits = net(x)
        ranking = predicted_loss_term(head, feats, logits[: len(y)], y, cfg=loss_prediction, progress=progress)
    loss = loss_fn(logits.float(), y, progress)
    if ranking is not None:
        loss = loss + ranking
    remember_losses(memory, batch, logits, y)
    opt.step(loss)
    return loss, len(y)


def fit(
    net: nn.Module,
    *,
    batches: Callable[[int], DataLoader],
    loss_fn: LossFn,
    cfg: TrainConfig,
    epochs: int,
    steps: int,
    runtime: Runtime,
    validate: Callable[[nn.Module], dict[str, float]],
    phase: str,
    progress: Progress | None = None,
    budget_s: float | None = None,
    memory: LossMemory | None = None,
) -> FitResult:
    """Train ``net`` for ``epochs`` x ``steps`` supervised steps; keep the best epoch by validation.

    Args:
        net: The network, on the runtime's device.
        batches: ``batches(epoch)`` -> a loader yielding ``steps`` batches for that epoch.
        loss_fn: ``loss(logits, targets, progress)``.
        validate: Scores the network after each epoch; must return ``val_macro_pr_auc``.
        phase: Name used in progress and history (``train``, ``stage1``, ...).
        budget_s: Wall-clock budget of this call; when the planned steps would overrun it,
            every epoch is shortened evenly and the schedule resized (``modops.training.pace``).
            ``batches(epoch)`` may then yield more batches than are used.
        memory: Per-image loss memory that the steps update (loss-prioritised sampling).
    """
    opt = Optimizer(net.parameters(), cfg=cfg, total_steps=epochs * steps, runtime=runtime)
    pacer = Pacer(budget_s, epochs=epochs, steps=steps)
    jitter = torch.Generator().manual_seed(cfg.seed)
    best, history = BestKeeper(), []
    start, samples, skipped = time.perf_counter(), 0, 0
    for epoch in range(1, epochs + 1):
        t0, total, seen, done = time.perf_counter(), 0.0, 0, 0
        net.train()
        for step, batch in enumerate(batches(epoch), start=1):
            if step > pacer.steps:  # shortened to fit the budget
                break
            skipped += int((~batch.ok).sum())
            stepped = train_step(
                net,
                batch,
                opt=opt,
                loss_fn=loss_fn,
                runtime=runtime,
                jitter=cfg.augment.color_jitter,
                generator=jitter,
                memory=memory,
                loss_prediction=cfg.loss_prediction,
            )
            done = step
            pace_step(pacer, opt, epoch=epoch, step=step)
            if stepped is None:
                continue
            loss, n = stepped
            total, seen = total + loss.item() * n, seen + n
            if progress:
                progress(f"{phase} epoch {epoch}/{epochs}", step, pacer.steps)
        samples += seen
        v0 = time.perf_counter()
        stats = validate(net)
        seconds = time.perf_counter() - t0
        pace_epoch(pacer, opt, epoch=epoch, epoch_s=seconds, val_s=time.perf_counter() - v0, steps_done=done)
        stats.update(epoch=epoch, phase=phase, loss=total / max(seen, 1), seconds=seconds, lr=opt.lr, steps=done)
        history.append(stats)
        best.offer(net, score=stats["val_macro_pr_auc"], epoch=epoch)
    net = best.restore(net)
    return FitResult(net, history, best.epoch, time.perf_counter() - start, samples, skipped, pace=pacer.summary())


def class_weight_tensor(y: np.ndarray, *, cfg: TrainConfig, num_classes: int, runtime: Runtime) -> torch.Tensor | None:
    """Loss class weights for ``imbalance: weighted_loss``, else None."""
    if cfg.imbalance != "weighted_loss":
        return None
    return class_weights(y, num_classes=num_classes, cap=cfg.max_positive_weight).to(runtime.device)
