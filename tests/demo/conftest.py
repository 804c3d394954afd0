"""Helpers shared by the demo generator tests."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from modops.demo import DemoSummary


def rows(summary: DemoSummary) -> list[dict[str, str]]:
    """The rows of the pool's labels.csv, as dicts keyed by column."""
    with summary.labels_file.open(newline="") as fh:
        return list(csv.DictReader(fh))


def pixels(path: Path) -> np.ndarray:
    """An image as float32 RGB, shape (height, width, 3)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32)


def digests(root: Path, pattern: str) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` matching ``pattern``."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.glob(pattern)}
