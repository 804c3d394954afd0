"""Batch scoring: stored images by id -> class probabilities, streamed through a DataLoader.

Decoding runs in loader workers with the predictor's own eval preset, so scoring a million
images needs memory for a few batches only; the preset enforces the decode limits recorded in
the model's ``model.json`` (those its training data was ingested under). An image that cannot
be read or decoded gets a row of NaN probabilities and its reason in ``errors``: callers
decide (evaluation refuses, scoring logs it), nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from modops.data.datasets import ImageReader, StoreDataset, make_loader
from modops.models.predictor import Predictor

__all__ = ["Scores", "score_ids"]


@dataclass(frozen=True)
class Scores:
    """Scores of many images, in input order.

    Attributes:
        probs: float32 [N, C]; NaN rows where ``ok`` is False.
        stage2: bool [N], True where a cascade's stage 2 contributed.
        ok: bool [N], False where the image could not be read or decoded.
        errors: Per image, why it failed ("" when fine).
    """

    probs: np.ndarray
    stage2: np.ndarray
    ok: np.ndarray
    errors: tuple[str, ...]

    @property
    def stage2_share(self) -> float:
        """Fraction of scored images that reached a cascade's stage 2."""
        return float(self.stage2[self.ok].mean()) if self.ok.any() else 0.0


def score_ids(
    predictor: Predictor,
    image_ids: Sequence[str],
    *,
    reader: ImageReader,
    batch_size: int = 256,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Scores:
    """Decode stored images by id with the predictor's preset and score them.

    Args:
        predictor: A single model or a cascade.
        image_ids: Ids to score, shape [N].
        reader: Returns an id's bytes (``ImageStore``).
        batch_size: Images per forward pass.
        workers: Decoding worker processes (0 = in this process).
        progress: Called with the number of images scored per batch.
    """
    n_classes = len(predictor.spec.classes)
    probs = np.full((len(image_ids), n_classes), np.nan, dtype=np.float32)
    stage2 = np.zeros(len(image_ids), dtype=bool)
    ok = np.zeros(len(image_ids), dtype=bool)
    errors = [""] * len(image_ids)
    dataset = StoreDataset(reader, image_ids, transform=predictor.preset())
    loader = make_loader(dataset, batch_size=batch_size, workers=workers if len(image_ids) > batch_size else 0)
    for batch in loader:
        idx = batch.index.numpy()
        good = batch.ok.numpy()
        if good.any():
            pred = predictor.predict(batch.images[batch.ok])
            probs[idx[good]], stage2[idx[good]] = pred.probs, pred.stage2
        ok[idx] = good
        for i, err in zip(idx, batch.errors, strict=True):
            errors[i] = err
        if progress:
            progress(len(idx))
    return Scores(probs, stage2, ok, tuple(errors))
