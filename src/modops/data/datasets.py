"""Streaming datasets over the image store, and the DataLoaders that feed training and scoring.

No split is ever held in memory: a dataset holds image ids (and labels), and each item is
read from the store and decoded by a worker when the loader asks for it, so memory is bounded
by the batch size times the loader's prefetch, whether the pool has a thousand images or a
million. A file that cannot be read or decoded yields a placeholder marked ``ok=False`` with
the reason, so one bad file never stops a run: training skips it (and counts it), scoring
reports it per row.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler, WeightedRandomSampler

from modops.data.images import QuarantineError

__all__ = [
    "ImageReader",
    "MemoryReader",
    "Batch",
    "StoreDataset",
    "collate",
    "make_loader",
    "balanced_sampler",
    "class_weights",
]


class ImageReader(Protocol):
    """Anything that returns the encoded bytes of an image id (``ImageStore`` does)."""

    def get(self, image_id: str) -> bytes: ...


@dataclass
class MemoryReader:
    """An in-memory :class:`ImageReader` (tests, small tools): ``{image_id: bytes}``."""

    images: dict[str, bytes] = field(default_factory=dict)

    def get(self, image_id: str) -> bytes:
        try:
            return self.images[image_id]
        except KeyError:
            raise FileNotFoundError(f"image {image_id} is not in this MemoryReader") from None

    @classmethod
    def from_uint8(cls, images: torch.Tensor, *, prefix: str = "img") -> tuple[MemoryReader, list[str]]:
        """Encode uint8 images [N, 3, H, W] as PNG; returns the reader and the ids in order."""
        reader, ids = cls(), []
        for i, img in enumerate(images):
            buf = io.BytesIO()
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, format="PNG")
            ids.append(f"{prefix}{i:06d}")
            reader.images[ids[-1]] = buf.getvalue()
        return reader, ids


@dataclass(frozen=True)
class Batch:
    """One collated batch.

    Attributes:
        images: uint8 [B, V, 3, S, S] when the dataset has V > 1 views, else [B, 3, S, S].
        labels: int64 [B]; -1 for unlabelled images.
        index: int64 [B], positions in the dataset.
        ok: bool [B]; False where the image could not be read or decoded (placeholder pixels).
        errors: Per item, the reason for ``ok=False`` ("" when fine).
    """

    images: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor
    ok: torch.Tensor
    errors: tuple[str, ...]


class StoreDataset(Dataset):
    """Images by id from an :class:`ImageReader`, decoded with a transform preset.

    Args:
        reader: Where the bytes come from (picklable, so workers can use it).
        ids: Image ids, shape [N].
        labels: Class indices, shape [N]; None for unlabelled images (label -1).
        transform: bytes -> uint8 [3, S, S] (a preset from :mod:`modops.data.transforms`).
        views: Independent transform draws per item (2 for mean teacher's student/teacher).
    """

    def __init__(
        self,
        reader: ImageReader,
        ids: Sequence[str],
        labels: Sequence[int] | np.ndarray | None = None,
        *,
        transform: Callable[[bytes], torch.Tensor],
        views: int = 1,
    ) -> None:
        if labels is not None and len(labels) != len(ids):
            raise ValueError(f"ids and labels differ in length: {len(ids)} vs {len(labels)}")
        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}")
        self.reader, self.ids, self.transform, self.views = reader, list(ids), transform, views
        self.labels = np.full(len(self.ids), -1, dtype=np.int64) if labels is None else np.asarray(labels, np.int64)
        # Placeholders for unreadable images must match the batch, so the output size must be known.
        self._size = getattr(transform, "image_size", None)
        if not isinstance(self._size, int):
            raise ValueError("transform must be a preset with an integer image_size (EvalPreset or TrainPreset)")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, bool, str]:
        try:
            data = self.reader.get(self.ids[i])
            views = [self.transform(data) for _ in range(self.views)]
            error = ""
        except (QuarantineError, OSError, ValueError) as exc:
            # OSError covers a vanished store file; QuarantineError a decode failure.
            views = [torch.zeros((3, self._size, self._size), dtype=torch.uint8) for _ in range(self.views)]
            error = f"{type(exc).__name__}: {exc}"
        x = views[0] if self.views == 1 else torch.stack(views)
        return x, int(self.labels[i]), i, not error, error


def collate(items: Sequence[tuple[torch.Tensor, int, int, bool, str]]) -> Batch:
    """Stack dataset items into a :class:`Batch`."""
    xs, ys, idx, ok, err = zip(*items, strict=True)
    return Batch(
        images=torch.stack(xs),
        labels=torch.tensor(ys, dtype=torch.int64),
        index=torch.tensor(idx, dtype=torch.int64),
        ok=torch.tensor(ok, dtype=torch.bool),
        errors=tuple(err),
    )


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    workers: int = 0,
    sampler: Sampler | None = None,
    shuffle: bool = False,
    seed: int = 0,
    pin_memory: bool = False,
    drop_last: bool = False,
    prefetch: int = 2,
    collate_fn: Callable | None = None,
) -> DataLoader:
    """A DataLoader with modops' collate, seeded, with bounded prefetch.

    Args:
        dataset: A :class:`StoreDataset`.
        batch_size: Items per batch.
        workers: Decoding worker processes; 0 decodes in the calling process.
        sampler: Draw order (e.g. :func:`balanced_sampler`); exclusive with ``shuffle``.
        shuffle: Random order each pass.
        seed: Seeds the order and, through DataLoader's per-worker seeding, the augmentation.
        pin_memory: Page-locked batches for fast copies to CUDA.
        drop_last: Drop a last, smaller batch.
        prefetch: Batches each worker prepares ahead: memory is bounded by
            ``workers * prefetch * batch_size`` decoded images.
        collate_fn: Batch builder (default :func:`collate`, for :class:`StoreDataset` items).
    """
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=shuffle if sampler is None else False,
        num_workers=workers,
        collate_fn=collate_fn or collate,
        generator=gen,
        pin_memory=pin_memory,
        drop_last=drop_last,
        prefetch_factor=prefetch if workers > 0 else None,
        persistent_workers=False,
    )


def class_weights(labels: np.ndarray | torch.Tensor, *, num_classes: int, cap: float) -> torch.Tensor:
    """Inverse-frequency class weights relative to the largest class, capped at ``cap``.

    Full inverse-frequency balancing at 1 % positives would repeat each positive ~100x per
    epoch and overfit them; the cap bounds that (Yelp and Alibaba both balance, not equalise).

    Returns:
        float32 weights, shape [num_classes]; the largest class gets 1.0; absent classes 0.
    """
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    counts = torch.bincount(y, minlength=num_classes).float()
    weights = torch.where(counts > 0, counts.max() / counts.clamp(min=1), torch.zeros_like(counts))
    return weights.clamp(max=cap)


def balanced_sampler(
    labels: np.ndarray,
    *,
    num_classes: int,
    cap: float,
    num_samples: int,
    seed: int,
    item_weight: np.ndarray | None = None,
) -> WeightedRandomSampler:
    """Draw ``num_samples`` items with replacement, each class weighted by :func:`class_weights`.

    ``item_weight`` (float [N], optional) shifts draws *within* each class (a down-weighted,
    likely mislabelled image comes up less often) while every class keeps its share.
    """
    w = class_weights(labels, num_classes=num_classes, cap=cap)[torch.as_tensor(labels)].double()
    if item_weight is not None:
        iw = torch.as_tensor(np.asarray(item_weight, dtype=np.float64))
        lab = torch.as_tensor(labels)
        # Rescale each class's item weights to average 1: the class's total share is unchanged.
        mean = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, lab, iw)
        count = torch.bincount(lab, minlength=num_classes).double().clamp(min=1)
        w = w * iw / (mean / count)[lab]
    return WeightedRandomSampler(
        w.double(), num_samples, replacement=True, generator=torch.Generator().manual_seed(seed)
    )
