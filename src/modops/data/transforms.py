"""Transform presets shared by training, evaluation and serving, so they never drift apart.

In the style of torchvision's ``references/classification/presets.py``: an *eval* preset
(decode, letterbox) and a *train* preset (the eval preset plus augmentation). Letterboxing
keeps the aspect ratio: the longer side is resized to ``image_size`` and the rest padded with
the ImageNet mean colour (zero after normalisation). Neither preset crops by default, because
violations are often small and near the border, where a centre crop would cut them off.

Images stay uint8 until the batch is on its device (4x less to copy than float32);
:func:`normalize` then makes the float, channels-last model input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from modops.config import AugmentConfig
from modops.data.images import DecodeLimits, open_rgb

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RESIZE_MODES",
    "EvalPreset",
    "TrainPreset",
    "letterbox",
    "decode_for_model",
    "color_jitter",
    "normalize",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: ``letterbox`` keeps the aspect ratio (the default); ``stretch`` squashes to a square, as
#: models saved before format 2 were trained.
RESIZE_MODES = ("letterbox", "stretch")
_FILL = tuple(round(255 * m) for m in IMAGENET_MEAN)


def letterbox(img: Image.Image, *, image_size: int) -> Image.Image:
    """Resize so the longer side is ``image_size``, then pad to a centred square.

    Returns:
        An RGB image of ``image_size x image_size`` pixels.
    """
    img = img if img.mode == "RGB" else img.convert("RGB")  # convert() copies even an RGB image
    w, h = img.size
    scale = image_size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=2.0)
    if (nw, nh) == (image_size, image_size):
        return img
    canvas = Image.new("RGB", (image_size, image_size), _FILL)
    canvas.paste(img, ((image_size - nw) // 2, (image_size - nh) // 2))
    return canvas


def _to_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


@dataclass(frozen=True)
class EvalPreset:
    """Bytes -> uint8 [3, S, S]: safe decode, then letterbox (or stretch) to ``image_size``.

    Attributes:
        image_size: Output side S in pixels.
        resize: One of :data:`RESIZE_MODES`.
        limits: Decode caps (bytes, pixels, formats). A model's preset carries the ingest
            limits recorded in its ``model.json`` (:attr:`modops.models.io.ModelSpec.decode_limits`);
            the defaults are :class:`DecodeLimits` ().
    """

    image_size: int
    resize: str = "letterbox"
    limits: DecodeLimits = DecodeLimits()

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")

    def image(self, data: bytes) -> Image.Image:
        """Decode and resize to an RGB PIL image of ``image_size`` squared."""
        return self.fit(open_rgb(data, draft_size=self.image_size, limits=self.limits))

    def fit(self, img: Image.Image) -> Image.Image:
        """Resize a decoded RGB image to ``image_size`` squared (letterbox or stretch)."""
        if self.resize == "stretch":
            return img.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR, reducing_gap=2.0)
        return letterbox(img, image_size=self.image_size)

    def __call__(self, data: bytes) -> torch.Tensor:
        return _to_tensor(self.image(data))

    def tensor(self, img: Image.Image) -> torch.Tensor:
        """A decoded RGB image -> uint8 [3, S, S]."""
        return _to_tensor(self.fit(img))


@dataclass(frozen=True)
class TrainPreset:
    """The eval preset plus geometric augmentation: bytes -> uint8 [3, S, S], different on every call.

    Colour jitter is not here: it runs on whole batches in the training process
    (:func:`color_jitter`), a fraction of the per-image cost in the decoding workers.

    Randomness comes from torch's global generator, which DataLoader seeds per worker from
    the loader's generator, so a seeded run augments identically for a fixed worker count.
    ``limits`` are the decode caps, as in :class:`EvalPreset`.
    """

    image_size: int
    augment: AugmentConfig = AugmentConfig()
    resize: str = "letterbox"
    limits: DecodeLimits = DecodeLimits()

    def __post_init__(self) -> None:
        ops: list = [v2.RandomResizedCrop(self.image_size, scale=self.augment.scale, ratio=(0.8, 1.25), antialias=True)]
        if self.augment.hflip:
            ops.append(v2.RandomHorizontalFlip())
        if self.augment.vflip:
            ops.append(v2.RandomVerticalFlip())
        if self.augment.rotate_degrees:
            ops.append(v2.RandomRotation(self.augment.rotate_degrees, fill=list(_FILL)))
        object.__setattr__(self, "_eval", EvalPreset(self.image_size, resize=self.resize, limits=self.limits))
        object.__setattr__(self, "_ops", v2.Compose(ops))

    def __call__(self, data: bytes) -> torch.Tensor:
        return self._ops(_to_tensor(self._eval.image(data)))


def decode_for_model(
    data: bytes, *, image_size: int, resize: str = "letterbox", limits: DecodeLimits | None = None
) -> torch.Tensor:
    """Image bytes -> model input, uint8 [3, image_size, image_size] (the eval preset, under ``limits``).

    Raises:
        QuarantineError: When the bytes cannot be decoded safely; nothing else.
    """
    return EvalPreset(image_size, resize=resize, limits=limits or DecodeLimits())(data)


def color_jitter(batch: torch.Tensor, *, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Random brightness, contrast and saturation per image, on a whole batch at once.

    Args:
        batch: uint8 or float images [B, 3, H, W] in 0..255.
        strength: Each factor is drawn uniformly from ``[1 - strength, 1 + strength]``.
        generator: CPU generator, so a seeded run jitters identically.

    Returns:
        float32 [B, 3, H, W] in 0..255, on the batch's device.
    """
    x = batch.float()
    if not strength or len(x) == 0:
        return x
    factors = 1 + strength * (2 * torch.rand((3, len(x), 1, 1, 1), generator=generator) - 1)
    b, c, s = (f.to(x.device) for f in factors)
    weights = torch.tensor((0.299, 0.587, 0.114), device=x.device).view(1, 3, 1, 1)
    x = x * b
    gray = (x * weights).sum(dim=1, keepdim=True)
    x = (x - gray.mean(dim=(2, 3), keepdim=True)) * c + gray.mean(dim=(2, 3), keepdim=True)
    gray = (x * weights).sum(dim=1, keepdim=True)
    return (gray + (x - gray) * s).clamp(0, 255)


def normalize(batch: torch.Tensor, *, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (or float 0..255) [B, 3, H, W] -> normalised float32 [B, 3, H, W], channels-last (faster convolutions).

    Runs on the batch's device, so a CUDA run copies uint8 and normalises on the GPU.
    """
    m = torch.tensor(mean, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    x = (batch.float() / 255.0 - m) / s
    return x.contiguous(memory_format=torch.channels_last)
