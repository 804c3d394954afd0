"""Embedders for small-sample retrieval, by name (``cold_start.embedder``).

- ``seed_contrast``: a small network trained for a few hundred steps to tell the labelled
  examples of each category (seeds first of all) from the rest of the pool, treating random
  unlabelled images as negatives (violations are rare, so that is almost always right). Its
  pooled features put images that share a category's cues close together, and its class
  probabilities are the pre-annotations reviewers see. It needs no downloaded weights.
- ``pretrained``: the pooled features of an ImageNet backbone (``cold_start.pretrained:
  imagenet | path``), untrained here: the classic retrieval platform.

Both return an :class:`Embedding` of the pool, the seeds and their class probabilities.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from modops.config import ColdStartConfig, TrainConfig
from modops.data.datasets import ImageReader, StoreDataset, make_loader
from modops.data.images import DecodeLimits
from modops.models.io import MemberSpec, ModelSpec
from modops.models.predictor import SingleModel
from modops.training.loop import Optimizer, labelled_loader, new_network, setup_runtime, train_step
from modops.training.losses import make_loss

__all__ = ["EMBEDDERS", "Embedding", "embed_ids"]


@dataclass(frozen=True)
class Embedding:
    """Embeddings of images by id.

    Attributes:
        ids: Image ids, shape [N].
        vectors: float32 [N, D].
        probs: float32 [N, C] class probabilities, or None when the embedder has no head.
        info: Figures about how the embedder was made (steps, seconds, ...).
    """

    ids: list[str]
    vectors: np.ndarray
    probs: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        """Vectors of ``ids`` (which must all be embedded), float32 [len(ids), D]."""
        pos = {i: n for n, i in enumerate(self.ids)}
        return self.vectors[[pos[i] for i in ids]]


def embed_ids(predictor: SingleModel, ids: Sequence[str], *, reader: ImageReader, batch_size: int, workers: int):  # noqa: ANN201
    """Pooled features and class probabilities of ``ids``; unreadable images get zero vectors (never retrieved).

    Images are decoded by ``predictor.preset()``, under the limits in ``predictor.spec.decode_limits``;
    one outside them is unreadable.

    Returns:
        ``(vectors float32 [N, D], probs float32 [N, C], ok bool [N])``.
    """
    loader = make_loader(
        StoreDataset(reader, ids, transform=predictor.preset()), batch_size=batch_size, workers=workers
    )
    vectors: np.ndarray | None = None
    probs = np.zeros((len(ids), len(predictor.spec.classes)), dtype=np.float32)
    ok = np.zeros(len(ids), dtype=bool)
    for batch in loader:
        good, idx = batch.ok, batch.index.numpy()
        if not good.any():
            continue
        pred, v = predictor.predict_and_embed(batch.images[good])
        if vectors is None:
            vectors = np.zeros((len(ids), v.shape[1]), dtype=np.float32)
        vectors[idx[good.numpy()]] = v
        probs[idx[good.numpy()]] = pred.probs
        ok[idx[good.numpy()]] = True
    return (vectors if vectors is not None else np.zeros((len(ids), 1), np.float32)), probs, ok


def _train_cfg(cfg: ColdStartConfig) -> TrainConfig:
    return TrainConfig(
        backbone=cfg.backbone,
        pretrained=cfg.pretrained,
        weights_path=cfg.weights_path,
        image_size=cfg.image_size,
        epochs=1,
        batch_size=cfg.batch_size,
        workers=cfg.workers,
        seed=cfg.seed,
    )


def _seed_contrast(
    reader: ImageReader,
    *,
    labelled_ids: Sequence[str],
    labelled_y: np.ndarray,
    pool_ids: Sequence[str],
    classes: tuple[str, ...],
    cfg: ColdStartConfig,
    limits: DecodeLimits,
) -> tuple[SingleModel, dict]:
    """Train the embedding network on labelled images plus random unlabelled images as negatives.

    Images are decoded under ``limits``, in training and (through the returned model's spec) when embedding.
    """
    tcfg = _train_cfg(cfg)
    runtime = setup_runtime(tcfg)
    rng = np.random.default_rng(cfg.seed)
    negatives = rng.choice(len(pool_ids), size=min(cfg.pool_negatives, len(pool_ids)), replace=False)
    ids = [*labelled_ids, *(pool_ids[i] for i in np.sort(negatives))]
    y = np.concatenate([np.asarray(labelled_y, np.int64), np.zeros(len(negatives), np.int64)])
    net = new_network(tcfg, num_classes=len(classes), backbone=cfg.backbone, image_size=cfg.image_size, runtime=runtime)
    opt = Optimizer(net.parameters(), cfg=tcfg, total_steps=cfg.steps, runtime=runtime)
    loss_fn = make_loss("cross_entropy")
    start, seen, jitter = time.perf_counter(), 0, torch.Generator().manual_seed(cfg.seed)
    loader = labelled_loader(
        reader,
        ids,
        y,
        cfg=tcfg,
        image_size=cfg.image_size,
        num_classes=len(classes),
        samples=cfg.steps * cfg.batch_size,
        seed=cfg.seed,
        runtime=runtime,
        limits=limits,
    )
    net.train()
    for batch in loader:
        stepped = train_step(
            net, batch, opt=opt, loss_fn=loss_fn, runtime=runtime, jitter=tcfg.augment.color_jitter, generator=jitter
        )
        if stepped is not None:
            loss, n = stepped
            seen += n
    spec = ModelSpec(
        classes=classes, members=(MemberSpec("model", cfg.backbone, cfg.image_size),), decode_limits=limits
    )
    info = {"steps": cfg.steps, "train_images": len(ids), "seconds": round(time.perf_counter() - start, 1)}
    info["final_loss"] = round(float(loss.detach()), 4) if seen else None
    # Retrieval ranks by similarity, so it can use the fast precision (bf16 where the CPU has it).
    return SingleModel(spec, net.eval(), runtime=runtime), info


def _pretrained(
    reader: ImageReader,
    *,
    labelled_ids: Sequence[str],
    labelled_y: np.ndarray,
    pool_ids: Sequence[str],
    classes: tuple[str, ...],
    cfg: ColdStartConfig,
    limits: DecodeLimits,
) -> tuple[SingleModel, dict]:
    """An ImageNet backbone's features, untrained here (its head is random: no pre-annotation scores).

    The returned model's spec carries ``limits``, so embedding decodes under them.
    """
    if cfg.pretrained == "none":
        raise ValueError(
            "cold_start.embedder 'pretrained' needs cold_start.pretrained: imagenet or path (with weights_path); "
            "without downloadable weights use the 'seed_contrast' embedder"
        )
    tcfg = _train_cfg(cfg)
    runtime = setup_runtime(tcfg)
    net = new_network(tcfg, num_classes=len(classes), backbone=cfg.backbone, image_size=cfg.image_size, runtime=runtime)
    spec = ModelSpec(
        classes=classes, members=(MemberSpec("model", cfg.backbone, cfg.image_size),), decode_limits=limits
    )
    return SingleModel(spec, net.eval(), runtime=runtime), {"steps": 0, "weights": cfg.pretrained, "no_scores": True}


#: Embedders by name: ``build(reader, labelled_ids=, labelled_y=, pool_ids=, classes=, cfg=, limits=)``
#: -> (model, info); the model's spec carries ``limits`` (decode limits), so :func:`embed_ids` decodes under them.
EMBEDDERS: dict[str, Callable[..., tuple[SingleModel, dict]]] = {
    "seed_contrast": _seed_contrast,
    "pretrained": _pretrained,
}


def build_embedding(
    reader: ImageReader,
    *,
    labelled_ids: Sequence[str],
    labelled_y: np.ndarray,
    pool_ids: Sequence[str],
    query_ids: Sequence[str],
    classes: tuple[str, ...],
    cfg: ColdStartConfig,
    limits: DecodeLimits,
) -> Embedding:
    """Make the embedder named in ``cfg`` and embed the pool and the queries (the seed images).

    Every image is decoded under ``limits`` (the limits ingest enforced); one outside them is unreadable.

    Returns:
        An :class:`Embedding` of ``[*pool_ids, *query_ids]`` (unreadable images dropped, and
        listed in ``info["unreadable"]``).
    """
    if cfg.embedder not in EMBEDDERS:
        raise ValueError(f"unknown embedder {cfg.embedder!r}; choose one of {sorted(EMBEDDERS)} (cold_start.embedder)")
    start = time.perf_counter()
    model, info = EMBEDDERS[cfg.embedder](
        reader,
        labelled_ids=labelled_ids,
        labelled_y=labelled_y,
        pool_ids=pool_ids,
        classes=classes,
        cfg=cfg,
        limits=limits,
    )
    # Only the pool (what is retrieved from) and the queries (the seeds) need embedding.
    ids = list(dict.fromkeys([*pool_ids, *query_ids]))
    with torch.inference_mode():
        vectors, probs, ok = embed_ids(model, ids, reader=reader, batch_size=cfg.batch_size * 4, workers=cfg.workers)
    kept = [i for i, good in zip(ids, ok, strict=True) if good]
    info.update(embedded=len(kept), unreadable=[i for i, good in zip(ids, ok, strict=True) if not good])
    info["embed_seconds"] = round(time.perf_counter() - start, 1)
    return Embedding(kept, vectors[ok], None if info.get("no_scores") else probs[ok], info)
