"""Uploads as a Dataset: raw files (a folder or an S3 prefix) or stored images, decoded once.

Scoring new uploads needs, per file, the model input, the image's properties (for drift on
size, aspect, brightness, format and file size) and, for a file that cannot be used, the
quarantine reason. :class:`UploadDataset` gets all three from one read and one decode in the
DataLoader's workers, through the same safe decode as ingest (size before reading, allowed
decoders only, pixel cap), so a hostile file becomes a reason, never a crash.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from modops.data.datasets import ImageReader
from modops.data.images import FileTooLargeError, QuarantineError, describe_error, open_rgb_with_properties
from modops.data.sources import read_uri
from modops.data.store import sha256_hex
from modops.data.transforms import EvalPreset

__all__ = ["SourceReader", "UploadItem", "UploadBatch", "UploadDataset", "collate_uploads"]


@dataclass(frozen=True)
class SourceReader:
    """An :class:`~modops.data.datasets.ImageReader` over a source's uris (picklable for workers).

    Attributes:
        root: The local source folder relative uris resolve against (unused for ``s3://`` uris).
        max_bytes: Larger files are refused from their size, before they are read.
        s3_endpoint_url: S3-compatible endpoint (None = AWS).
    """

    root: str
    max_bytes: int
    s3_endpoint_url: str | None = None

    def get(self, uri: str) -> bytes:
        return read_uri(uri, root=self.root, max_bytes=self.max_bytes, s3_endpoint_url=self.s3_endpoint_url)


@dataclass(frozen=True)
class UploadItem:
    """One decoded (or refused) upload: what :class:`UploadDataset` yields."""

    image: torch.Tensor  # uint8 [3, S, S]; zeros when not ok
    index: int
    image_id: str  # sha256 of the bytes; "" when they could not be read
    width: int
    height: int
    format: str
    nbytes: int
    brightness: float  # mean luma of the decoded image in [0, 1]; NaN when not ok
    reason: str  # quarantine reason code ("" when ok)
    detail: str


@dataclass(frozen=True)
class UploadBatch:
    """A collated batch of :class:`UploadItem` (``images`` uint8 [B, 3, S, S], the rest per item)."""

    images: torch.Tensor
    items: tuple[UploadItem, ...]

    @property
    def ok(self) -> torch.Tensor:
        """bool [B]: the images that decoded."""
        return torch.tensor([not it.reason for it in self.items], dtype=torch.bool)


class UploadDataset(Dataset):
    """Uploads by key (a uri, or a stored image id) through a reader, decoded with a model's preset.

    Args:
        reader: Returns a key's bytes (:class:`SourceReader` or an ``ImageStore``).
        keys: The keys to read, shape [N].
        preset: The model's eval preset (its decode limits are enforced).
        min_side: Images with a shorter side are quarantined (``too_small``), as at ingest.
    """

    def __init__(self, reader: ImageReader, keys: Sequence[str], *, preset: EvalPreset, min_side: int = 1) -> None:
        self.reader, self.keys, self.preset, self.min_side = reader, list(keys), preset, min_side

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> UploadItem:
        size = self.preset.image_size
        blank = _blank(size)
        try:
            data = self.reader.get(self.keys[i])
        except FileTooLargeError as exc:
            return UploadItem(blank, i, "", 0, 0, "", exc.size, float("nan"), exc.reason, exc.detail)
        except Exception as exc:  # noqa: BLE001 - a vanished or special file is a reason, not a crash
            return UploadItem(blank, i, "", 0, 0, "", 0, float("nan"), "read_error", describe_error(exc))
        image_id = sha256_hex(data)
        try:
            img, props = open_rgb_with_properties(
                data, draft_size=size, limits=self.preset.limits, min_side=self.min_side
            )
        except QuarantineError as exc:  # open_rgb_with_properties raises nothing else
            return UploadItem(blank, i, image_id, 0, 0, "", len(data), float("nan"), exc.reason, exc.detail)
        return UploadItem(
            self.preset.tensor(img),
            i,
            image_id,
            props.width,
            props.height,
            props.format,
            props.nbytes,
            _brightness(img),
            "",
            "",
        )


@functools.cache
def _blank(size: int) -> torch.Tensor:
    """uint8 [3, size, size] zeros, the image of a refused upload (shared: collation copies it)."""
    return torch.zeros((3, size, size), dtype=torch.uint8)


def _brightness(img) -> float:  # noqa: ANN001 - a PIL image
    """Mean ITU-R 601 luma of an RGB image, in [0, 1]."""
    return float(np.asarray(img.convert("L"), dtype=np.float32).mean() / 255.0)


def collate_uploads(items: Sequence[UploadItem]) -> UploadBatch:
    """Stack :class:`UploadItem` s into an :class:`UploadBatch`."""
    return UploadBatch(images=torch.stack([it.image for it in items]), items=tuple(items))
