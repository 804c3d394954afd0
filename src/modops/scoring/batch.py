"""Batch inference: uint8 images in, softmax probabilities out."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from modops.data.transforms import load_uint8_batch, normalize
from modops.models.io import ModelSpec

__all__ = ["predict_probs", "score_ids"]


@torch.inference_mode()
def predict_probs(
    model: nn.Module,
    images: torch.Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Softmax probabilities for uint8 images.

    Args:
        model: A classifier returning logits [B, C].
        images: uint8, shape [N, 3, S, S].
        mean, std: Normalisation used in training.
        batch_size: Images per forward pass.
        progress: Called with the number of images scored per batch.

    Returns:
        float32 probabilities, shape [N, C]; rows sum to 1.
    """
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = normalize(images[start : start + batch_size], mean=mean, std=std)
        out.append(torch.softmax(model(x).float(), dim=1).numpy())
        if progress:
            progress(len(x))
    model.train(was_training)
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def score_ids(
    model: nn.Module,
    spec: ModelSpec,
    image_ids: Sequence[str],
    *,
    read: Callable[[str], bytes],
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Decode stored images by id and score them; probabilities of shape [N, len(spec.classes)]."""
    probs = []
    for start in range(0, len(image_ids), batch_size):
        chunk = image_ids[start : start + batch_size]
        x = load_uint8_batch(read, chunk, image_size=spec.image_size)
        probs.append(predict_probs(model, x, mean=spec.mean, std=spec.std, batch_size=batch_size))
        if progress:
            progress(len(chunk))
    if not probs:
        return np.zeros((0, len(spec.classes)), dtype=np.float32)
    return np.concatenate(probs)
