"""Rendering workers (process pool, chunking, atomic image writes) and writing ``labels.csv``.

Workers are spawn-started and import this module, hence only numpy, Pillow and
``modops.demo``; never torch or the rest of modops.
"""

from __future__ import annotations

import csv
import math
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from modops.demo.clean import render_clean
from modops.demo.constants import COLUMNS
from modops.demo.disgusting import render_disgusting
from modops.demo.plan import Plan, Spec
from modops.demo.scene import camera
from modops.demo.spam import render_spam
from modops.demo.weapon import render_weapon

SEED_SOURCE = "seed"  # label_source of seed rows; pool rows leave it empty (ingest's default)

# --------------------------------------------------------------------------- writing (parent)


def render_all(
    specs: list[Spec],
    out: Path,
    *,
    workers: int,
    progress: Callable[[int], None] | None,
) -> None:
    """Render ``specs`` in chunks, in this process (workers=1) or a spawn-started pool.

    Creates the folders the specs' paths need; ``progress`` gets the cumulative count.
    """
    for folder in sorted({(out / spec.relpath).parent for spec in specs}):
        folder.mkdir(parents=True, exist_ok=True)
    chunk = max(16, min(500, math.ceil(len(specs) / (workers * 4))))
    tasks = [(specs[i : i + chunk], str(out)) for i in range(0, len(specs), chunk)]
    done = 0
    if workers == 1 or len(tasks) == 1:
        for task in tasks:
            done += _render_chunk(task)
            if progress:
                progress(done)
        return
    # spawn, not fork: the caller may hold threads (torch, Airflow) that fork would copy badly.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes=min(workers, len(tasks))) as pool:
        for k in pool.imap_unordered(_render_chunk, tasks):
            done += k
            if progress:
                progress(done)


def write_labels(path: Path, plan: Plan, seeds: list[Spec]) -> None:
    """Write labels.csv (pool rows, then seed rows) under a temporary name, then rename.

    The rename means readers never see half a file. Unlabelled pool rows get an empty
    ``label``; seed rows carry their category as label and true label, no upload metadata,
    and ``label_source`` ``seed``.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        for k, spec in enumerate(plan.specs):
            label = plan.observed[k] if plan.labelled[k] else ""
            writer.writerow(
                [spec.relpath, label, spec.label, plan.uploaders[k], plan.business[k], plan.uploaded_at[k], ""]
            )
        for spec in seeds:
            writer.writerow([spec.relpath, spec.label, spec.label, "", "", "", SEED_SOURCE])
    os.replace(tmp, path)


# --------------------------------------------------------------------------- rendering (worker)


def _render_chunk(task: tuple[list[Spec], str]) -> int:
    """Worker entry point (top level so spawn can import it); returns images written."""
    specs, out_dir = task
    for spec in specs:
        img = _render_image(spec)
        path = Path(out_dir) / spec.relpath
        tmp = path.with_name(f".{path.name}.tmp")
        if spec.fmt == "JPEG":
            img.save(tmp, format="JPEG", quality=spec.quality)
        else:
            img.save(tmp, format="PNG", compress_level=1)  # noise defeats zlib anyway
        os.replace(tmp, path)
    return len(specs)


def _render_image(spec: Spec) -> Image.Image:
    """Render one image of ``spec.width`` x ``spec.height`` px (RGB) from its own stream."""
    rng = np.random.default_rng(list(spec.stream))
    w, h = spec.width, spec.height
    if spec.label == "promo_spam":
        img = render_spam(rng, w, h, spec.variant, spec.drift)
    elif spec.label == "disgusting":
        img = render_disgusting(rng, w, h, spec.variant)
    elif spec.label == "weapon":
        img = render_weapon(rng, w, h, spec.variant)
    else:
        img = render_clean(rng, w, h, spec.variant)
    return camera(img, rng, spec.drift)
