"""The public entry point :func:`generate_pool`: validates, plans, renders, writes ``labels.csv``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from modops.demo.constants import LABELS, MAX_SEEDS_PER_CATEGORY, POOL_SIZES
from modops.demo.plan import plan_pool, plan_seeds
from modops.demo.writer import render_all, write_labels


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`generate_pool` wrote.

    ``counts``, ``true_counts`` and ``n_flipped`` cover the pool rows only (never the seeds),
    and all of them, labelled or not.

    Attributes:
        out_dir: The pool folder.
        n_images: Number of pool images written (``labels.csv`` has ``n_images + n_seeds`` rows).
        counts: Observed label (after noise) -> count; every label present, zeros included.
            Rows left unlabelled by ``labelled_fraction`` count under the label they would have.
        true_counts: True label -> count; every label present, zeros included.
        n_flipped: Rows whose observed label differs from the true label.
        labels_file: Path of ``labels.csv``.
        n_seeds: Number of seed images written (``seeds_per_category`` x number of categories).
        n_labelled: Pool rows written with a non-empty ``label``.
    """

    out_dir: Path
    n_images: int
    counts: dict[str, int]
    true_counts: dict[str, int]
    n_flipped: int
    labels_file: Path
    n_seeds: int
    n_labelled: int


# --------------------------------------------------------------------------- public entry point


def generate_pool(
    out_dir: Path,
    *,
    size: Literal["small", "default"] = "default",
    n_images: int | None = None,
    seed: int = 0,
    positive_rate: float = 0.01,
    noise_rate: float = 0.0,
    labelled_fraction: float = 1.0,
    day: int = 0,
    drift: bool = False,
    seeds_per_category: int = 0,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
) -> DemoSummary:
    """Generate a labelled demo pool of synthetic product photos.

    Args:
        out_dir: Folder to write ``images/``, ``seeds/`` and ``labels.csv`` into (created if
            missing). Files of an earlier, larger pool in the same folder are left in place.
        size: ``"small"`` (1,500 images, seconds) or ``"default"`` (20,000 images).
        n_images: Number of images; overrides ``size``.
        seed: Non-negative seed; with ``day`` and the image index it fixes every byte.
        positive_rate: Fraction of violating images, in [0, 1), split evenly over the three
            categories; the counts are exact, so every category has at least one image once
            ``n_images * positive_rate >= 3``.
        noise_rate: Fraction of images, in [0, 1), whose observed ``label`` is flipped
            (mostly violations marked clean); ``true_label`` keeps the truth.
        labelled_fraction: Fraction of pool images, in (0, 1], that keep their observed
            ``label``: exactly ``round(n_images * labelled_fraction)`` (half up), drawn
            uniformly over the pool from a stream of their own; the others are written with an
            empty ``label`` (unlabelled uploads). Never changes an image.
        day: Day offset from 2026-11-01 (UTC) for ``uploaded_at`` and the per-image seeds.
        drift: Render the later-day distribution: new promo_spam style, darker photos,
            a different business mix and some new spammer accounts.
        seeds_per_category: Seed images per violating category, 0 to 50, written as
            ``seeds/<category>/<category>_<NN>.jpg`` and listed in ``labels.csv`` with
            ``label_source`` ``seed``. Painted like pool positives but from their own random
            streams, so never a copy of a pool image; they depend on ``seed`` only (not on
            ``day``, ``drift`` or the pool's size and rates: always the base style).
        workers: Worker processes; 0 = one per available CPU core, 1 = in this process.
            Workers are spawned, so a script calling this at top level needs the usual
            ``if __name__ == "__main__":`` guard.
        progress: Called in this process with the cumulative number of images written
            (pool and seeds), after each chunk.

    Returns:
        A :class:`DemoSummary` of what was written.

    Raises:
        ValueError: On an unknown ``size`` or an out-of-range argument (before writing anything).
    """
    n = _validate(size, n_images, seed=seed, day=day, workers=workers)
    _validate_rates(positive_rate, noise_rate, labelled_fraction)
    _validate_seeds(seeds_per_category)
    out = Path(out_dir)
    plan = plan_pool(
        n,
        seed=seed,
        day=day,
        positive_rate=positive_rate,
        noise_rate=noise_rate,
        drift=drift,
        labelled_fraction=labelled_fraction,
    )
    seeds = plan_seeds(seeds_per_category, seed=seed)
    render_all(plan.specs + seeds, out, workers=workers or _available_cpus(), progress=progress)
    labels_file = out / "labels.csv"
    write_labels(labels_file, plan, seeds)
    true = [s.label for s in plan.specs]
    return DemoSummary(
        out_dir=out,
        n_images=n,
        counts={lab: plan.observed.count(lab) for lab in LABELS},
        true_counts={lab: true.count(lab) for lab in LABELS},
        n_flipped=sum(o != t for o, t in zip(plan.observed, true, strict=True)),
        labels_file=labels_file,
        n_seeds=len(seeds),
        n_labelled=sum(plan.labelled),
    )


def _validate(size: str, n_images: int | None, *, seed: int, day: int, workers: int) -> int:
    """Check the size and integer arguments of :func:`generate_pool`; returns the number of images."""
    if size not in POOL_SIZES:
        raise ValueError(f"size must be one of {sorted(POOL_SIZES)}, got {size!r}")
    if n_images is not None and (not _is_int(n_images) or n_images <= 0):
        raise ValueError(f"n_images must be a positive integer or None, got {n_images!r}")
    for name, value in (("seed", seed), ("day", day), ("workers", workers)):
        if not _is_int(value) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(n_images) if n_images is not None else POOL_SIZES[size]


def _validate_rates(positive_rate: float, noise_rate: float, labelled_fraction: float) -> None:
    """Check the fractions of :func:`generate_pool` (bools and strings are not numbers here)."""
    for name, rate in (("positive_rate", positive_rate), ("noise_rate", noise_rate)):
        if not _is_number(rate) or not 0 <= rate < 1:
            raise ValueError(f"{name} must be a number in [0, 1), got {rate!r}")
    if not _is_number(labelled_fraction) or not 0 < labelled_fraction <= 1:
        raise ValueError(f"labelled_fraction must be a number in (0, 1], got {labelled_fraction!r}")


def _validate_seeds(seeds_per_category: int) -> None:
    if not _is_int(seeds_per_category) or not 0 <= seeds_per_category <= MAX_SEEDS_PER_CATEGORY:
        raise ValueError(
            f"seeds_per_category must be an integer in [0, {MAX_SEEDS_PER_CATEGORY}], got {seeds_per_category!r}"
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _available_cpus() -> int:
    # sched_getaffinity respects container CPU pinning, unlike os.cpu_count().
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
