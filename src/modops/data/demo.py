"""Synthetic demo content pool: product-photo stand-ins with moderation labels and metadata.

The pool imitates what a marketplace's upload stream looks like to a moderation model: mostly
clean product photos, about 1 % violations (``promo_spam``, ``disgusting``, ``weapon``), and many
*hard negatives* among the clean images (benign text and prices, dotted or porous textures,
dark elongated tools, people) so that a small CNN has to learn the real cue rather than "any
text" or "any dots". Optional label noise imitates reviewer mistakes (mostly missed violations)
and ``drift=True`` imitates a later day on which spammers changed style.

Layout written under ``out_dir``::

    images/d000_000000.jpg ...   RGB JPEG (~85 %) or PNG (~15 %), each side 96-200 px
    labels.csv                   one row per image, columns :data:`COLUMNS`

Everything is deterministic in ``(seed, day, index)``: the same arguments write byte-identical
files whatever the number of worker processes.
"""

from __future__ import annotations

import csv
import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist
from typing import Literal, NamedTuple

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

__all__ = [
    "BUSINESS_CATEGORIES",
    "CATEGORIES",
    "COLUMNS",
    "NEGATIVE",
    "POOL_SIZES",
    "DemoSummary",
    "generate_pool",
]

# Must match the defaults of ``modops.config.LabelsConfig`` (a test checks it); duplicated so
# that spawned workers import only numpy and Pillow.
NEGATIVE = "clean"
CATEGORIES: tuple[str, ...] = ("promo_spam", "disgusting", "weapon")
LABELS: tuple[str, ...] = (NEGATIVE, *CATEGORIES)
BUSINESS_CATEGORIES: tuple[str, ...] = (
    "restaurant",
    "retail",
    "beauty",
    "health",
    "auto",
    "home_services",
)
COLUMNS: tuple[str, ...] = (
    "path",
    "label",
    "true_label",
    "uploader_id",
    "business_category",
    "uploaded_at",
)
POOL_SIZES: dict[str, int] = {"small": 1_500, "default": 20_000}
BASE_DATE = datetime(2026, 11, 1, tzinfo=UTC)

_MIN_SIDE, _MAX_SIDE = 96, 200
_PNG_SHARE = 0.15
# Reviewers miss violations far more often than they invent them.
_FALSE_NEGATIVE_SHARE = 0.75
_SPAMMER_SHARE = 0.85  # of promo_spam posted by the small set of spammer accounts

Color = tuple[int, int, int]
Point = tuple[float, float]
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`generate_pool` wrote.

    Attributes:
        out_dir: The pool folder.
        n_images: Number of images written (= rows of ``labels.csv``).
        counts: Observed label (after noise) -> count; every label present, zeros included.
        true_counts: True label -> count; every label present, zeros included.
        n_flipped: Rows whose observed label differs from the true label.
        labels_file: Path of ``labels.csv``.
    """

    out_dir: Path
    n_images: int
    counts: dict[str, int]
    true_counts: dict[str, int]
    n_flipped: int
    labels_file: Path


class _Spec(NamedTuple):
    """Everything a worker needs to render one image (cheap to pickle)."""

    index: int
    label: str  # the *true* label: pixels always show the truth, noise only touches labels.csv
    variant: str
    width: int
    height: int
    fmt: str  # "JPEG" or "PNG"
    quality: int
    relpath: str


@dataclass(frozen=True)
class _Plan:
    specs: list[_Spec]
    observed: list[str]
    uploaders: list[str]
    business: list[str]
    uploaded_at: list[str]


# --------------------------------------------------------------------------- public entry point


def generate_pool(
    out_dir: Path,
    *,
    size: Literal["small", "default"] = "default",
    n_images: int | None = None,
    seed: int = 0,
    positive_rate: float = 0.01,
    noise_rate: float = 0.0,
    day: int = 0,
    drift: bool = False,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
) -> DemoSummary:
    """Generate a labelled demo pool of synthetic product photos.

    Args:
        out_dir: Folder to write ``images/`` and ``labels.csv`` into (created if missing).
            Files of an earlier, larger pool in the same folder are left in place.
        size: ``"small"`` (1,500 images, seconds) or ``"default"`` (20,000 images).
        n_images: Number of images; overrides ``size``.
        seed: Non-negative seed; with ``day`` and the image index it fixes every byte.
        positive_rate: Fraction of violating images, in [0, 1), split evenly over the three
            categories; the counts are exact, so every category has at least one image once
            ``n_images * positive_rate >= 3``.
        noise_rate: Fraction of images, in [0, 1), whose observed ``label`` is flipped
            (mostly violations marked clean); ``true_label`` keeps the truth.
        day: Day offset from 2026-11-01 (UTC) for ``uploaded_at`` and the per-image seeds.
        drift: Render the later-day distribution: new promo_spam style, darker photos,
            a different business mix and some new spammer accounts.
        workers: Worker processes; 0 = one per available CPU core, 1 = in this process.
            Workers are spawned, so a script calling this at top level needs the usual
            ``if __name__ == "__main__":`` guard.
        progress: Called in this process with the cumulative number of images written,
            after each chunk.

    Returns:
        A :class:`DemoSummary` of what was written.

    Raises:
        ValueError: On an unknown ``size`` or an out-of-range argument.
    """
    n = _validate(size, n_images, seed, positive_rate, noise_rate, day, workers)
    out = Path(out_dir)
    plan = _plan(n, seed=seed, day=day, positive_rate=positive_rate, noise_rate=noise_rate, drift=drift)
    (out / "images").mkdir(parents=True, exist_ok=True)
    n_workers = workers or _available_cpus()
    _render_all(plan.specs, out, seed=seed, day=day, drift=drift, workers=n_workers, progress=progress)
    labels_file = out / "labels.csv"
    _write_labels(labels_file, plan)
    true = [s.label for s in plan.specs]
    return DemoSummary(
        out_dir=out,
        n_images=n,
        counts={lab: plan.observed.count(lab) for lab in LABELS},
        true_counts={lab: true.count(lab) for lab in LABELS},
        n_flipped=sum(o != t for o, t in zip(plan.observed, true, strict=True)),
        labels_file=labels_file,
    )


def _validate(
    size: str, n_images: int | None, seed: int, positive_rate: float, noise_rate: float, day: int, workers: int
) -> int:
    """Check the arguments of :func:`generate_pool`; returns the number of images."""
    if size not in POOL_SIZES:
        raise ValueError(f"size must be one of {sorted(POOL_SIZES)}, got {size!r}")
    if n_images is not None and (not _is_int(n_images) or n_images <= 0):
        raise ValueError(f"n_images must be a positive integer or None, got {n_images!r}")
    for name, value in (("seed", seed), ("day", day), ("workers", workers)):
        if not _is_int(value) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    for name, rate in (("positive_rate", positive_rate), ("noise_rate", noise_rate)):
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < 1:
            raise ValueError(f"{name} must be a number in [0, 1), got {rate!r}")
    return int(n_images) if n_images is not None else POOL_SIZES[size]


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _available_cpus() -> int:
    # sched_getaffinity respects container CPU pinning, unlike os.cpu_count().
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


# --------------------------------------------------------------------------- planning (parent)

_CLEAN_VARIANTS = {"product": 0.44, "text": 0.17, "texture": 0.15, "people": 0.08, "tool": 0.16}
_VARIANTS: dict[tuple[str, bool], dict[str, float]] = {
    ("promo_spam", False): {"banner": 0.4, "overlay": 0.4, "logos": 0.2},
    ("promo_spam", True): {"vertical": 0.35, "qr": 0.35, "banner": 0.15, "overlay": 0.15},
    ("disgusting", False): {"holes": 0.6, "lesions": 0.4},
    ("weapon", False): {"knife": 0.55, "pistol": 0.45},
}
# Which violation a hard negative is mistaken for, when a reviewer flags clean content.
_CONFUSED_WITH = {"text": "promo_spam", "texture": "disgusting", "tool": "weapon"}

# Business-category weights (order of BUSINESS_CATEGORIES) per true label: a mild correlation.
_BUSINESS_WEIGHTS: dict[str, tuple[float, ...]] = {
    "clean": (0.24, 0.28, 0.14, 0.10, 0.10, 0.14),
    "promo_spam": (0.08, 0.17, 0.20, 0.25, 0.08, 0.22),
    "disgusting": (0.34, 0.14, 0.18, 0.20, 0.04, 0.10),
    "weapon": (0.10, 0.36, 0.04, 0.06, 0.22, 0.22),
}
_DRIFT_CLEAN_WEIGHTS = (0.14, 0.22, 0.26, 0.16, 0.08, 0.14)
# Uploads per hour of day (UTC): quiet at night, peaks at lunch and in the evening.
_HOURLY = np.array([2, 1, 1, 1, 1, 2, 3, 5, 6, 7, 8, 9, 10, 9, 8, 7, 7, 8, 9, 10, 10, 8, 5, 3], dtype=float)


def _round(x: float) -> int:
    """Round half up (Python's round() rounds half to even)."""
    return int(math.floor(x + 0.5 + 1e-9))


def _plan(n: int, *, seed: int, day: int, positive_rate: float, noise_rate: float, drift: bool) -> _Plan:
    """Decide every label, variant, size, format and metadata value, without rendering."""
    # Separate streams, so that noise_rate changes labels.csv only, never an image.
    rng, noise_rng, meta_rng = (np.random.default_rng([seed, day, k]) for k in (0, 2, 3))
    true = _true_labels(n, positive_rate, rng)
    variants = [_pick(rng, _variant_weights(lab, drift)) for lab in true]
    observed = _flip_labels(true, variants, noise_rate, noise_rng)
    widths = rng.integers(_MIN_SIDE, _MAX_SIDE + 1, size=n)
    heights = rng.integers(_MIN_SIDE, _MAX_SIDE + 1, size=n)
    is_png = rng.random(n) < _PNG_SHARE
    quality = rng.integers(85, 96, size=n)
    specs = [
        _Spec(
            i,
            true[i],
            variants[i],
            int(widths[i]),
            int(heights[i]),
            "PNG" if is_png[i] else "JPEG",
            int(quality[i]),
            f"images/d{day:03d}_{i:06d}.{'png' if is_png[i] else 'jpg'}",
        )
        for i in range(n)
    ]
    return _Plan(
        specs=specs,
        observed=observed,
        uploaders=_uploaders(true, seed=seed, drift=drift, rng=meta_rng),
        business=_business(true, drift=drift, rng=meta_rng),
        uploaded_at=_timestamps(n, day=day, rng=meta_rng),
    )


def _label_counts(n: int, positive_rate: float) -> dict[str, int]:
    """Exact per-label counts: violations split evenly, the first categories get the rest."""
    n_pos = min(n, _round(n * positive_rate))
    base, extra = divmod(n_pos, len(CATEGORIES))
    counts = {cat: base + (k < extra) for k, cat in enumerate(CATEGORIES)}
    return {NEGATIVE: n - n_pos, **counts}


def _true_labels(n: int, positive_rate: float, rng: np.random.Generator) -> list[str]:
    labels = [lab for lab, k in _label_counts(n, positive_rate).items() for _ in range(k)]
    return [labels[i] for i in rng.permutation(n)]


def _variant_weights(label: str, drift: bool) -> dict[str, float]:
    if label == NEGATIVE:
        return _CLEAN_VARIANTS
    return _VARIANTS.get((label, drift)) or _VARIANTS[(label, False)]


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    p = np.array([weights[k] for k in keys])
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _shuffled(rng: np.random.Generator, items: Sequence[int]) -> list[int]:
    return [int(items[i]) for i in rng.permutation(len(items))]


def _flip_labels(true: list[str], variants: list[str], noise_rate: float, rng: np.random.Generator) -> list[str]:
    """Flip exactly ``round(n * noise_rate)`` labels, mostly violations marked clean.

    At most half of each category is flipped to clean before false positives take over, so
    every category stays learnable; false positives prefer the hard negative that looks like
    the violation (benign text -> promo_spam, dotted texture -> disgusting, tool -> weapon).
    """
    observed = list(true)
    n_flip = _round(len(true) * noise_rate)
    if n_flip == 0:
        return observed
    first, rest = [], []
    for cat in CATEGORIES:
        idx = _shuffled(rng, [i for i, lab in enumerate(true) if lab == cat])
        first += idx[: len(idx) // 2]
        rest += idx[len(idx) // 2 :]
    positives = _shuffled(rng, first) + _shuffled(rng, rest)
    clean = [i for i, lab in enumerate(true) if lab == NEGATIVE]
    lookalikes = _shuffled(rng, [i for i in clean if variants[i] in _CONFUSED_WITH])
    others = _shuffled(rng, [i for i in clean if variants[i] not in _CONFUSED_WITH])
    n_fn = min(_round(_FALSE_NEGATIVE_SHARE * n_flip), len(first))
    n_fp = min(n_flip - n_fn, len(clean))
    n_fn = n_flip - n_fp  # when clean images run out, the rest come from violations
    for i in positives[:n_fn]:
        observed[i] = NEGATIVE
    for i in (lookalikes + others)[:n_fp]:
        guess = _CONFUSED_WITH.get(variants[i])
        observed[i] = guess or CATEGORIES[int(rng.integers(len(CATEGORIES)))]
    return observed


def _uploaders(true: list[str], *, seed: int, drift: bool, rng: np.random.Generator) -> list[str]:
    """Uploader ids: a long-tailed population, and a few spammer accounts posting most spam."""
    n = len(true)
    n_pool = max(12, n // 20)
    # The population and the spammer accounts depend on the seed only, so they persist
    # across days; on a drifted day half the spammers are fresh accounts.
    pop = np.random.default_rng([seed, 1])
    weights = 1.0 / (np.arange(n_pool) + 3.0)
    pop.shuffle(weights)
    n_spam = max(2, n_pool // 150)
    spammers = pop.choice(n_pool, size=n_spam, replace=False)
    if drift:
        spammers[: n_spam // 2 + 1] = n_pool + np.arange(n_spam // 2 + 1)
    general = rng.choice(n_pool, size=n, p=weights / weights.sum())
    spam_pick = rng.choice(spammers, size=n)
    is_spam = np.array([lab == "promo_spam" for lab in true]) & (rng.random(n) < _SPAMMER_SHARE)
    ids = np.where(is_spam, spam_pick, general)
    return [f"u{int(i):04d}" for i in ids]


def _business(true: list[str], *, drift: bool, rng: np.random.Generator) -> list[str]:
    out = [""] * len(true)
    for label in LABELS:
        idx = [i for i, lab in enumerate(true) if lab == label]
        w = np.array(_DRIFT_CLEAN_WEIGHTS if drift and label == NEGATIVE else _BUSINESS_WEIGHTS[label])
        for i, k in zip(idx, rng.choice(len(w), size=len(idx), p=w / w.sum()), strict=True):
            out[i] = BUSINESS_CATEGORIES[int(k)]
    return out


def _timestamps(n: int, *, day: int, rng: np.random.Generator) -> list[str]:
    start = BASE_DATE + timedelta(days=day)
    hours = rng.choice(24, size=n, p=_HOURLY / _HOURLY.sum())
    secs = hours * 3600 + rng.integers(0, 3600, size=n)
    return [(start + timedelta(seconds=int(s))).strftime("%Y-%m-%dT%H:%M:%SZ") for s in secs]


# --------------------------------------------------------------------------- writing


def _render_all(
    specs: list[_Spec],
    out: Path,
    *,
    seed: int,
    day: int,
    drift: bool,
    workers: int,
    progress: Callable[[int], None] | None,
) -> None:
    """Render ``specs`` in chunks, in this process (workers=1) or a spawn-started pool."""
    chunk = max(16, min(500, math.ceil(len(specs) / (workers * 4))))
    tasks = [(specs[i : i + chunk], str(out), seed, day, drift) for i in range(0, len(specs), chunk)]
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


def _render_chunk(task: tuple[list[_Spec], str, int, int, bool]) -> int:
    """Worker entry point (top level so spawn can import it); returns images written."""
    specs, out_dir, seed, day, drift = task
    for spec in specs:
        img = _render_image(spec, seed=seed, day=day, drift=drift)
        path = Path(out_dir) / spec.relpath
        tmp = path.with_name(f".{path.name}.tmp")
        if spec.fmt == "JPEG":
            img.save(tmp, format="JPEG", quality=spec.quality)
        else:
            img.save(tmp, format="PNG", compress_level=1)  # noise defeats zlib anyway
        os.replace(tmp, path)
    return len(specs)


def _write_labels(path: Path, plan: _Plan) -> None:
    """Write labels.csv under a temporary name, then rename, so readers never see half."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        for k, spec in enumerate(plan.specs):
            writer.writerow(
                [spec.relpath, plan.observed[k], spec.label, plan.uploaders[k], plan.business[k], plan.uploaded_at[k]]
            )
    os.replace(tmp, path)


# --------------------------------------------------------------------------- rendering (worker)


def _render_image(spec: _Spec, *, seed: int, day: int, drift: bool) -> Image.Image:
    """Render one image of ``spec.width`` x ``spec.height`` px (RGB) from its own seed."""
    rng = np.random.default_rng([seed, day, 1, spec.index])
    w, h = spec.width, spec.height
    if spec.label == "promo_spam":
        img = _render_spam(rng, w, h, spec.variant, drift)
    elif spec.label == "disgusting":
        img = _render_disgusting(rng, w, h, spec.variant)
    elif spec.label == "weapon":
        img = _render_weapon(rng, w, h, spec.variant)
    else:
        img = _render_clean(rng, w, h, spec.variant)
    return _camera(img, rng, drift)


# ---- small helpers


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(6, int(size)))  # type: ignore[return-value]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _color(rng: np.random.Generator, lo: int = 0, hi: int = 255) -> Color:
    r, g, b = rng.integers(lo, hi + 1, size=3)
    return int(r), int(g), int(b)


def _shade(c: Color, f: float) -> Color:
    r, g, b = (max(0, min(255, int(v * f))) for v in c)
    return r, g, b


def _mix(a: Color, b: Color, t: float) -> Color:
    r, g, bb = (int(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return r, g, bb


def _choice(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[int(rng.integers(len(items)))]


def _object_color(rng: np.random.Generator) -> Color:
    """A product colour: half saturated, half muted/neutral."""
    c = _color(rng, 30, 240)
    if rng.random() < 0.5:
        g = sum(c) // 3
        c = _mix(c, (g, g, g), _u(rng, 0.4, 0.9))
    return c


def _rotate(
    points: Sequence[Point], cx: float, cy: float, scale: float, angle: float, flip: bool = False
) -> list[Point]:
    """Map shape-local points (unit scale, centred on 0) to image coordinates."""
    ca, sa = math.cos(angle), math.sin(angle)
    out = []
    for x, y in points:
        y = -y if flip else y
        out.append((cx + scale * (x * ca - y * sa), cy + scale * (x * sa + y * ca)))
    return out


def _blob(
    rng: np.random.Generator, cx: float, cy: float, r: float, *, k: int = 9, jitter: float = 0.3, aspect: float = 1.0
) -> list[Point]:
    """An irregular closed polygon of mean radius ``r`` px."""
    phase = _u(rng, 0, 2 * math.pi)
    radii = r * (1 + jitter * (rng.random(k) * 2 - 1))
    return [
        (
            cx + radii[j] * math.cos(phase + 2 * math.pi * j / k),
            cy + aspect * radii[j] * math.sin(phase + 2 * math.pi * j / k),
        )
        for j in range(k)
    ]


def _ellipse_box(cx: float, cy: float, rx: float, ry: float) -> Box:
    return cx - rx, cy - ry, cx + rx, cy + ry


def _shaded_ellipse(
    d: ImageDraw.ImageDraw, cx: float, cy: float, rx: float, ry: float, color: Color, steps: int = 6
) -> None:
    """Concentric ellipses drifting toward an upper-left highlight: cheap 3-D shading."""
    for k in range(steps):
        t = k / steps
        hx, hy = cx - 0.35 * rx * t, cy - 0.35 * ry * t
        d.ellipse(_ellipse_box(hx, hy, rx * (1 - 0.8 * t), ry * (1 - 0.8 * t)), fill=_shade(color, 0.72 + 0.6 * t))


def _shadow(d: ImageDraw.ImageDraw, cx: float, cy: float, rx: float, ry: float) -> None:
    d.ellipse(_ellipse_box(cx, cy, rx, max(1.0, ry)), fill=(0, 0, 0, 55))


def _fit_font(text: str, max_w: float, max_size: float) -> ImageFont.FreeTypeFont:
    """The largest default font (<= max_size px) whose rendering of ``text`` fits max_w px."""
    size = max(6, int(max_size))
    length = _font(size).getlength(text)
    if length > max_w > 0:
        size = max(6, int(size * max_w / length))
    return _font(size)


def _text_lines(
    d: ImageDraw.ImageDraw,
    lines: Sequence[str],
    box: Box,
    fills: Sequence[Color],
    *,
    stroke: Color | None = None,
    align: str = "center",
) -> None:
    """Stack ``lines`` inside ``box``, each as large as fits its share of the height."""
    x0, y0, x1, y1 = box
    line_h = (y1 - y0) / max(1, len(lines))
    for k, line in enumerate(lines):
        font = _fit_font(line, x1 - x0, line_h * 0.8)
        cy = y0 + line_h * (k + 0.5)
        x, anchor = {"center": ((x0 + x1) / 2, "mm"), "left": (x0, "lm")}[align]
        sw = 1 if stroke is not None and font.size >= 12 else 0
        d.text((x, cy), line, font=font, fill=fills[k % len(fills)], anchor=anchor, stroke_width=sw, stroke_fill=stroke)


def _paste_rotated_text(img: Image.Image, text: str, size: float, fill: Color, angle: float, center: Point) -> None:
    """Draw ``text`` rotated by ``angle`` degrees, centred on ``center``."""
    font = _font(int(size))
    left, top, right, bottom = font.getbbox(text)
    layer = Image.new("RGBA", (int(right - left) + 4, int(bottom - top) + 4), (0, 0, 0, 0))
    ImageDraw.Draw(layer).text((2 - left, 2 - top), text, font=font, fill=(*fill, 255))
    layer = layer.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
    img.paste(layer, (int(center[0] - layer.width / 2), int(center[1] - layer.height / 2)), layer)


# ---- backgrounds


def _lowres_noise(rng: np.random.Generator, w: int, h: int, cell: int, ch: int = 1) -> np.ndarray:
    """Smooth noise in [0, 1] of shape (h, w, ch): random cells upsampled bilinearly."""
    small = (rng.random((h // cell + 2, w // cell + 2, ch)) * 255).astype(np.uint8)
    mode = "L" if ch == 1 else "RGB"
    im = Image.fromarray(small[..., 0] if ch == 1 else small, mode=mode)
    arr = np.asarray(im.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    return arr.reshape(h, w, ch)


def _muted(rng: np.random.Generator, lo: int = 80, hi: int = 250) -> Color:
    c = _color(rng, lo, hi)
    g = sum(c) // 3
    return _mix(c, (g, g, g), _u(rng, 0.2, 0.85))


def _surface(rng: np.random.Generator, w: int, h: int, kind: str) -> np.ndarray:
    """One surface texture as float32 (h, w, 3) in 0-255."""
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    if kind == "gradient":
        a = _u(rng, 0, 2 * math.pi)
        t = xx * math.cos(a) + yy * math.sin(a)
        t = (t - t.min()) / max(1.0, float(t.max() - t.min()))
        c1, c2 = np.array(_muted(rng), np.float32), np.array(_muted(rng), np.float32)
        return c1 + (c2 - c1) * t[..., None]
    base = np.array(_muted(rng), dtype=np.float32)
    if kind == "blotch":
        return base * (0.8 + 0.4 * _lowres_noise(rng, w, h, int(rng.integers(4, 15)), 3))
    if kind == "wood":
        base = np.array(_color(rng, 90, 200), dtype=np.float32) * (1.0, 0.68, 0.42)
        warp = _lowres_noise(rng, w, h, 12)[..., 0] * _u(rng, 2, 6)
        grain = np.sin(2 * math.pi * (yy + warp * 2) / _u(rng, 2, 5))
        return base * (0.88 + 0.07 * grain[..., None] + 0.1 * _lowres_noise(rng, w, h, 8))
    if kind == "tiles":
        p = int(rng.integers(7, 20))
        lines = ((xx % p) < 1) | ((yy % p) < 1)
        return base * np.where(lines, 0.7, 1.0)[..., None] * (0.95 + 0.1 * _lowres_noise(rng, w, h, p))
    return np.broadcast_to(base, (h, w, 3)).astype(np.float32)  # solid


def _background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A wall, a tabletop or both, lit from one side (a product-photo backdrop).

    Rendered at half resolution and upsampled: backdrops are smooth, and it saves about a
    quarter of the time per image.
    """
    w2, h2 = (w + 1) // 2, (h + 1) // 2
    kind = _choice(rng, ("solid", "gradient", "blotch", "wood", "tiles", "tabletop", "tabletop"))
    if kind == "tabletop":
        wall = _surface(rng, w2, h2, _choice(rng, ("solid", "gradient", "tiles")))
        table = _surface(rng, w2, h2, _choice(rng, ("wood", "solid", "blotch"))) * 0.85
        horizon = int(h2 * _u(rng, 0.45, 0.75))
        arr = np.concatenate([wall[:horizon], table[horizon:]], axis=0)
    else:
        arr = _surface(rng, w2, h2, kind)
    yy = np.arange(h2, dtype=np.float32)[:, None]
    xx = np.arange(w2, dtype=np.float32)[None, :]
    lx, ly = _u(rng, -0.2, 1.2) * w2, _u(rng, -0.2, 1.2) * h2
    dist = np.hypot(xx - lx, yy - ly) / math.hypot(w2, h2)
    arr = arr * (1.08 - _u(rng, 0.1, 0.35) * dist)[..., None]
    small = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return small.resize((w, h), Image.Resampling.BILINEAR)


# ---- products (clean objects)


def _bottle(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, s: float) -> Box:
    c = _object_color(rng)
    bw, top, bot = s * _u(rng, 0.3, 0.45), cy - s / 2, cy + s / 2
    neck = bw * _u(rng, 0.28, 0.42)
    shoulder = top + s * _u(rng, 0.25, 0.38)
    _shadow(d, cx + bw * 0.2, bot, bw * 0.7, s * 0.05)
    d.rounded_rectangle((cx - bw / 2, shoulder, cx + bw / 2, bot), radius=bw * 0.15, fill=c)
    d.polygon(
        [
            (cx - bw / 2, shoulder + bw * 0.2),
            (cx - neck / 2, shoulder - s * 0.06),
            (cx + neck / 2, shoulder - s * 0.06),
            (cx + bw / 2, shoulder + bw * 0.2),
        ],
        fill=c,
    )
    d.rectangle((cx - neck / 2, top + s * 0.07, cx + neck / 2, shoulder - s * 0.05), fill=c)
    d.rectangle((cx - neck * 0.6, top, cx + neck * 0.6, top + s * 0.09), fill=_color(rng, 10, 240))
    d.rectangle((cx - bw * 0.33, shoulder + s * 0.05, cx - bw * 0.22, bot - s * 0.05), fill=(255, 255, 255, 80))
    d.rectangle((cx + bw * 0.22, shoulder + s * 0.03, cx + bw / 2, bot - s * 0.02), fill=(0, 0, 0, 50))
    label = (cx - bw / 2, shoulder + (bot - shoulder) * 0.3, cx + bw / 2, shoulder + (bot - shoulder) * 0.72)
    d.rectangle(label, fill=_color(rng, 140, 255))
    return label


def _carton(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, s: float) -> Box:
    c = _object_color(rng)
    fw, fh = s * _u(rng, 0.5, 0.8), s * _u(rng, 0.4, 0.7)
    dx, dy = fw * _u(rng, 0.15, 0.35), fh * _u(rng, 0.15, 0.3)
    x0, y1 = cx - (fw + dx) / 2, cy + (fh + dy) / 2
    x1, y0 = x0 + fw, y1 - fh
    _shadow(d, cx + dx * 0.5, y1, (fw + dx) * 0.6, s * 0.05)
    d.polygon([(x0, y0), (x0 + dx, y0 - dy), (x1 + dx, y0 - dy), (x1, y0)], fill=_shade(c, 1.25))
    d.polygon([(x1, y0), (x1 + dx, y0 - dy), (x1 + dx, y1 - dy), (x1, y1)], fill=_shade(c, 0.68))
    d.rectangle((x0, y0, x1, y1), fill=c)
    if rng.random() < 0.5:  # a printed stripe
        d.rectangle((x0, y0 + fh * 0.75, x1, y0 + fh * 0.88), fill=_object_color(rng))
    return x0 + fw * 0.08, y0 + fh * 0.25, x1 - fw * 0.08, y0 + fh * 0.65


_FOOD = ((70, 140, 50), (140, 90, 45), (220, 180, 60), (190, 50, 40), (235, 225, 200), (100, 60, 30))


def _plate(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, s: float) -> Box:
    rx = s * 0.55
    ry = rx * _u(rng, 0.45, 0.85)  # a plate seen at an angle
    _shadow(d, cx + rx * 0.05, cy + ry * 0.15, rx, ry)
    rim = _mix(_color(rng, 200, 255), (245, 245, 245), 0.6)
    d.ellipse(_ellipse_box(cx, cy, rx, ry), fill=rim)
    d.ellipse(_ellipse_box(cx, cy, rx * 0.72, ry * 0.72), fill=_shade(rim, 0.92))
    for _ in range(int(rng.integers(1, 6))):
        fx, fy = cx + _u(rng, -0.35, 0.35) * rx, cy + _u(rng, -0.35, 0.35) * ry
        food = _shade(_FOOD[int(rng.integers(len(_FOOD)))], _u(rng, 0.8, 1.15))
        d.polygon(_blob(rng, fx, fy, rx * _u(rng, 0.1, 0.25), aspect=ry / rx), fill=food)
    return _ellipse_box(cx, cy, rx * 0.6, ry * 0.45)


_SHOE = (
    (0.0, 0.62),
    (0.08, 0.40),
    (0.32, 0.30),
    (0.42, 0.02),
    (0.70, 0.0),
    (0.74, 0.28),
    (0.98, 0.50),
    (1.0, 0.80),
    (0.0, 0.80),
)


def _shoe(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, s: float) -> Box:
    length, height = s * 1.1, s * 0.5
    sign = 1 if rng.random() < 0.5 else -1

    def pt(px: float, py: float) -> Point:
        return cx + sign * (px - 0.5) * length, cy + (py - 0.5) * height

    c = _object_color(rng)
    _shadow(d, cx, cy + height * 0.45, length * 0.55, s * 0.05)
    d.polygon([pt(px, py) for px, py in _SHOE], fill=c)
    d.polygon(
        [pt(0, 0.78), pt(1, 0.78), pt(1, 0.95), pt(0, 0.95)],
        fill=_color(rng, 200, 250) if rng.random() < 0.6 else _shade(c, 0.5),
    )
    for k in range(3):
        a, b = pt(0.45 + 0.08 * k, 0.12 + 0.07 * k), pt(0.55 + 0.08 * k, 0.2 + 0.07 * k)
        d.line([a, b], fill=_color(rng, 200, 255), width=max(1, int(s * 0.03)))
    x0, y0 = pt(0.1, 0.45)
    x1, y1 = pt(0.9, 0.75)
    return min(x0, x1), y0, max(x0, x1), y1


def _cup(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, s: float) -> Box:
    c = _object_color(rng)
    w, h = s * _u(rng, 0.45, 0.6), s * _u(rng, 0.5, 0.65)
    _shadow(d, cx, cy + h / 2, w * 0.65, s * 0.05)
    d.arc((cx + w * 0.3, cy - h * 0.3, cx + w * 0.8, cy + h * 0.2), 270, 90, fill=c, width=max(2, int(s * 0.07)))
    d.polygon(
        [(cx - w / 2, cy - h / 2), (cx + w / 2, cy - h / 2), (cx + w * 0.4, cy + h / 2), (cx - w * 0.4, cy + h / 2)],
        fill=c,
    )
    d.ellipse((cx - w / 2, cy - h / 2 - h * 0.08, cx + w / 2, cy - h / 2 + h * 0.08), fill=_shade(c, 0.8))
    d.ellipse(
        (cx - w * 0.42, cy - h / 2 - h * 0.05, cx + w * 0.42, cy - h / 2 + h * 0.06),
        fill=(90, 55, 30) if rng.random() < 0.6 else _shade(c, 0.5),
    )
    return cx - w * 0.38, cy - h * 0.2, cx + w * 0.38, cy + h * 0.25


def _fruit(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, s: float) -> Box:
    r = s * _u(rng, 0.25, 0.35)
    c = _shade(
        _choice_color(rng, ((200, 40, 35), (240, 170, 40), (120, 180, 50), (230, 210, 80), (150, 60, 120))),
        _u(rng, 0.8, 1.1),
    )
    _shadow(d, cx + r * 0.15, cy + r * 0.95, r * 0.9, r * 0.2)
    _shaded_ellipse(d, cx, cy, r, r * _u(rng, 0.85, 1.05), c)
    d.line([(cx, cy - r), (cx + r * 0.1, cy - r * 1.3)], fill=(90, 60, 30), width=max(1, int(r * 0.1)))
    return _ellipse_box(cx, cy, r * 0.6, r * 0.4)


def _choice_color(rng: np.random.Generator, colors: Sequence[Color]) -> Color:
    return colors[int(rng.integers(len(colors)))]


_PRODUCTS = (_bottle, _carton, _plate, _shoe, _cup, _fruit)


def _place_products(
    d: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int, k: int, scale: tuple[float, float] = (0.45, 0.8)
) -> list[Box]:
    """Draw ``k`` products side by side; returns each product's label area."""
    boxes = []
    for j in range(k):
        s = min(w, h) * _u(rng, *scale) / (1 + 0.35 * (k - 1))
        cx = w * ((j + 0.5) / k + _u(rng, -0.08, 0.08))
        cy = h * _u(rng, 0.42, 0.6)
        boxes.append(_PRODUCTS[int(rng.integers(len(_PRODUCTS)))](d, rng, cx, cy, s))
    return boxes


def _product_scene(
    rng: np.random.Generator, w: int, h: int, scale: tuple[float, float] = (0.45, 0.8)
) -> tuple[Image.Image, list[Box]]:
    img = _background(rng, w, h)
    d = ImageDraw.Draw(img, "RGBA")
    k = 1 if rng.random() < 0.65 else 2
    return img, _place_products(d, rng, w, h, k, scale)


# ---- clean scenes (including hard negatives)


_BRANDS = (
    "ACME",
    "Nordic Brew",
    "FreshCo",
    "Lumen",
    "Oak&Co",
    "PURE",
    "Velvet",
    "Bistro 21",
    "GreenLeaf",
    "Polar",
    "Zest",
    "Kettle",
    "Maison",
    "Sunny",
    "Koda",
)
_BENIGN = (
    "SALE 20%",
    "NEW",
    "Organic",
    "Fresh daily",
    "Open 9-18",
    "Est. 1998",
    "Today's special",
    "2 for 1",
    "Handmade",
    "Free parking",
    "Grand opening",
    "Gift cards",
    "Family owned",
    "Lunch menu",
    "Pick up in store",
    "50% OFF",
    "Summer collection",
    "Thank you!",
    "Best seller",
    "Since 2004",
)
_PALETTE = ((220, 30, 40), (250, 210, 30), (30, 90, 200), (250, 250, 250), (20, 150, 70), (250, 120, 20), (20, 20, 20))


def _price(rng: np.random.Generator) -> str:
    return f"${int(rng.integers(1, 300))}.{_choice(rng, ('99', '49', '95', '00', '50'))}"


def _render_clean(rng: np.random.Generator, w: int, h: int, variant: str) -> Image.Image:
    if variant == "text":
        return _clean_text(rng, w, h)
    if variant == "texture":
        return _dotted(rng, w, h)
    if variant == "people":
        return _people(rng, w, h)
    if variant == "tool":
        return _tool_scene(rng, w, h)
    return _product_scene(rng, w, h)[0]


def _clean_text(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Benign text: brand labels and price tags, menu boards, or a plain sale banner."""
    kind = int(rng.integers(3))
    if kind == 0:
        img, boxes = _product_scene(rng, w, h)
        d = ImageDraw.Draw(img, "RGBA")
        for box in boxes:
            _text_lines(d, [_choice(rng, _BRANDS)], box, [_color(rng, 0, 90)])
        tx, ty = _u(rng, 0.05, 0.55) * w, _u(rng, 0.05, 0.75) * h
        tag = (tx, ty, tx + w * _u(rng, 0.3, 0.42), ty + h * _u(rng, 0.12, 0.2))
        d.rectangle(
            tag, fill=_choice_color(rng, ((255, 255, 255), (250, 220, 40), (220, 40, 40))), outline=(40, 40, 40)
        )
        text = _price(rng) if rng.random() < 0.6 else _choice(rng, _BENIGN)
        _text_lines(d, [text], tag, [(20, 20, 20)])
        return img
    if kind == 1:  # chalkboard or shop sign with a short menu
        img = _background(rng, w, h)
        d = ImageDraw.Draw(img, "RGBA")
        board = (w * 0.08, h * 0.08, w * 0.92, h * 0.92)
        dark = rng.random() < 0.6
        d.rectangle(board, fill=(35, 45, 40) if dark else (240, 235, 220), outline=(120, 80, 40), width=max(2, w // 30))
        n = int(rng.integers(2, 5))
        lines = [_choice(rng, _BRANDS)] + [
            f"{_choice(rng, ('Soup', 'Latte', 'Bagel', 'Salad', 'Cake', 'Tea'))} {_price(rng)}"
            if rng.random() < 0.6
            else _choice(rng, _BENIGN)
            for _ in range(n - 1)
        ]
        ink = [(235, 235, 225)] if dark else [(30, 30, 30), (180, 30, 30)]
        pad = w * 0.05
        _text_lines(
            d,
            lines,
            (board[0] + pad, board[1] + pad, board[2] - pad, board[3] - pad),
            ink,
            align="center" if rng.random() < 0.5 else "left",
        )
        return img
    img = _banner_background(rng, w, h, drift=False)  # a sale banner without contact details
    d = ImageDraw.Draw(img, "RGBA")
    lines = [_choice(rng, ("SUMMER SALE", "NEW ARRIVALS", "SALE", "GRAND OPENING", "WELCOME")), _choice(rng, _BENIGN)]
    if rng.random() < 0.5:
        lines.append(_choice(rng, ("In store now", "This weekend", "Ends Sunday", "Sat 10-16")))
    _text_lines(d, lines, (w * 0.08, h * 0.1, w * 0.92, h * 0.9), _text_colors(rng, drift=False))
    return img


def _dotted(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Hard negatives for 'disgusting': sponge, bread, polka dots, gravel, perforation, berry."""
    kind = _choice(rng, ("sponge", "bread", "polka", "gravel", "perforated", "strawberry"))
    if kind in ("polka", "gravel", "perforated"):
        img = Image.new("RGB", (w, h), _muted(rng, 60, 240))
        d = ImageDraw.Draw(img, "RGBA")
        {"polka": _polka, "gravel": _gravel, "perforated": _perforated}[kind](d, rng, w, h)
        return img
    img = _background(rng, w, h)
    d = ImageDraw.Draw(img, "RGBA")
    cx, cy = w * _u(rng, 0.35, 0.65), h * _u(rng, 0.4, 0.6)
    s = min(w, h) * _u(rng, 0.4, 0.75)
    if kind == "strawberry":
        _strawberry(d, rng, cx, cy, s)
    else:
        _porous(d, rng, cx, cy, s, sponge=kind == "sponge")
    return img


def _polka(d: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int) -> None:
    p = _u(rng, 8, 22)
    r = p * _u(rng, 0.15, 0.35)
    dot = _color(rng, 0, 255) if rng.random() < 0.6 else (25, 20, 20)
    for row, y in enumerate(np.arange(-p, h + p, p)):
        for x in np.arange(-p + (p / 2) * (row % 2), w + p, p):
            d.ellipse(_ellipse_box(float(x), float(y), r, r), fill=dot)


def _gravel(d: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int) -> None:
    n = int(w * h / _u(rng, 25, 60))
    xs, ys = rng.uniform(0, w, n), rng.uniform(0, h, n)
    base = _muted(rng, 90, 190)
    for x, y in zip(xs, ys, strict=True):
        c = _shade(base, _u(rng, 0.6, 1.3))
        d.polygon(_blob(rng, float(x), float(y), _u(rng, 2.5, 6), k=6, jitter=0.35), fill=c)


def _perforated(d: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int) -> None:
    p = _u(rng, 6, 14)
    r = p * _u(rng, 0.2, 0.33)
    for y in np.arange(p / 2, h, p):
        for x in np.arange(p / 2, w, p):
            d.ellipse(_ellipse_box(float(x), float(y), r, r), fill=(15, 15, 18))


def _porous(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, s: float, *, sponge: bool) -> None:
    """A sponge block or bread slice: many irregular but lighter, rimless holes."""
    if sponge:
        c = _choice_color(rng, ((240, 210, 60), (90, 170, 80), (230, 120, 60), (80, 140, 210)))
        box = (cx - s * 0.6, cy - s * 0.35, cx + s * 0.6, cy + s * 0.35)
        _shadow(d, cx, box[3], s * 0.6, s * 0.06)
        d.rounded_rectangle(box, radius=s * 0.06, fill=c)
    else:
        c = (int(rng.integers(215, 245)), int(rng.integers(190, 220)), int(rng.integers(140, 175)))
        box = (cx - s * 0.55, cy - s * 0.45, cx + s * 0.55, cy + s * 0.45)
        d.rounded_rectangle(box, radius=s * 0.2, fill=(150, 95, 45))  # crust
        box = (box[0] + s * 0.06, box[1] + s * 0.06, box[2] - s * 0.06, box[3] - s * 0.06)
        d.rounded_rectangle(box, radius=s * 0.16, fill=c)
    for _ in range(int(rng.integers(25, 70))):
        x, y = _u(rng, box[0] + 3, box[2] - 3), _u(rng, box[1] + 3, box[3] - 3)
        d.polygon(_blob(rng, x, y, s * _u(rng, 0.015, 0.05), k=7, jitter=0.35), fill=_shade(c, _u(rng, 0.55, 0.8)))


def _strawberry(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, s: float) -> None:
    r = s * 0.45
    red = (int(rng.integers(180, 230)), int(rng.integers(20, 50)), int(rng.integers(30, 50)))
    d.polygon(
        [
            (cx - r, cy - r * 0.5),
            (cx + r, cy - r * 0.5),
            (cx + r * 0.5, cy + r * 0.6),
            (cx, cy + r * 1.1),
            (cx - r * 0.5, cy + r * 0.6),
        ],
        fill=red,
    )
    d.ellipse(_ellipse_box(cx, cy - r * 0.45, r, r * 0.45), fill=red)
    for _ in range(int(rng.integers(20, 40))):
        x, y = cx + _u(rng, -0.7, 0.7) * r, cy + _u(rng, -0.6, 0.6) * r
        d.ellipse(_ellipse_box(x, y, r * 0.04, r * 0.06), fill=(240, 220, 90))
    d.polygon(_blob(rng, cx, cy - r * 0.85, r * 0.45, k=7, jitter=0.5, aspect=0.4), fill=(50, 140, 50))


def _people(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Simple blob figures: a people-like scene that is acceptable."""
    img = _background(rng, w, h)
    d = ImageDraw.Draw(img, "RGBA")
    k = int(rng.integers(1, 5))
    for j in range(k):
        s = h * _u(rng, 0.45, 0.8) / (1 + 0.2 * (k - 1))
        cx, base = w * ((j + 0.5) / k + _u(rng, -0.05, 0.05)), h * _u(rng, 0.8, 0.97)
        skin = _choice_color(rng, ((240, 200, 170), (200, 150, 110), (140, 95, 65), (90, 60, 40)))
        shirt, pants = _object_color(rng), _object_color(rng)
        limb = max(2, int(s * 0.07))
        hip, neck = base - s * 0.42, base - s * 0.78
        for dx in (-0.08, 0.08):
            d.line([(cx + s * dx * 0.5, hip), (cx + s * dx, base)], fill=pants, width=limb)
        for dx in (-0.22, 0.22):
            d.line(
                [(cx + s * dx * 0.5, neck + s * 0.05), (cx + s * dx, neck + s * _u(rng, 0.15, 0.4))],
                fill=shirt,
                width=limb,
            )
        d.rounded_rectangle((cx - s * 0.12, neck, cx + s * 0.12, hip), radius=s * 0.05, fill=shirt)
        _shaded_ellipse(d, cx, neck - s * 0.11, s * 0.1, s * 0.12, skin, steps=3)
    return img


# ---- elongated shapes: tools (clean) and weapons, in unit coordinates along +x


def _tool_parts(rng: np.random.Generator, kind: str) -> list[tuple[list[Point], str]]:
    """Polygons (unit length, centred) and their roles ('body', 'metal', 'accent')."""

    def rect(x0: float, x1: float, y0: float, y1: float) -> list[Point]:
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]

    def ell(cx: float, cy: float, rx: float, ry: float, k: int = 14) -> list[Point]:
        return [(cx + rx * math.cos(2 * math.pi * j / k), cy + ry * math.sin(2 * math.pi * j / k)) for j in range(k)]

    if kind == "spoon":
        return [(rect(-0.5, 0.15, -0.03, 0.03), "metal"), (ell(0.3, 0, 0.19, 0.1), "metal")]
    if kind == "pen":
        return [
            (rect(-0.5, 0.4, -0.035, 0.035), "body"),
            ([(0.4, -0.03), (0.5, 0), (0.4, 0.03)], "metal"),
            (rect(-0.45, -0.1, -0.055, -0.035), "accent"),
        ]
    if kind == "hammer":
        return [(rect(-0.5, 0.35, -0.04, 0.04), "body"), (rect(0.3, 0.46, -0.22, 0.2), "metal")]
    if kind == "wrench":
        return [
            (rect(-0.4, 0.33, -0.05, 0.05), "metal"),
            (
                [
                    (0.3, -0.12),
                    (0.5, -0.12),
                    (0.5, -0.04),
                    (0.4, -0.04),
                    (0.4, 0.04),
                    (0.5, 0.04),
                    (0.5, 0.12),
                    (0.3, 0.12),
                ],
                "metal",
            ),
            (ell(-0.42, 0, 0.1, 0.1), "metal"),
        ]
    if kind == "screwdriver":
        return [
            (rect(-0.5, -0.08, -0.07, 0.07), "accent"),
            (rect(-0.08, 0.45, -0.015, 0.015), "metal"),
            ([(0.45, -0.03), (0.5, -0.01), (0.5, 0.01), (0.45, 0.03)], "metal"),
        ]
    if kind == "drill":  # pistol-like silhouette, a deliberate look-alike
        return [
            (rect(-0.35, 0.3, -0.25, 0.0), "accent"),
            (rect(0.3, 0.38, -0.18, -0.07), "metal"),
            (rect(0.38, 0.55, -0.135, -0.115), "metal"),
            ([(-0.15, 0.0), (0.05, 0.0), (0.0, 0.4), (-0.2, 0.4)], "body"),
            (rect(-0.3, 0.1, 0.4, 0.52), "accent"),
        ]
    if kind == "hairdryer":
        return [
            (rect(-0.3, 0.25, -0.3, -0.05), "accent"),
            (rect(0.25, 0.42, -0.26, -0.09), "body"),
            ([(-0.12, -0.05), (0.05, -0.05), (0.02, 0.45), (-0.12, 0.45)], "accent"),
        ]
    # spatula
    return [(rect(-0.5, 0.1, -0.035, 0.035), "body"), (rect(0.1, 0.5, -0.13, 0.13), "metal")]


_TOOLS = ("spoon", "pen", "hammer", "wrench", "screwdriver", "drill", "hairdryer", "spatula")


def _part_colors(rng: np.random.Generator, dark_bias: float) -> dict[str, Color]:
    """Colours by role; dark tools on purpose, so darkness alone does not mean 'weapon'."""
    dark = rng.random() < dark_bias
    body = _color(rng, 10, 60) if dark else _object_color(rng)
    metal = _shade((190, 192, 198), _u(rng, 0.45, 1.15)) if rng.random() < 0.7 else body
    accent = _object_color(rng) if rng.random() < 0.5 else body
    return {"body": body, "metal": metal, "accent": accent}


def _draw_parts(
    d: ImageDraw.ImageDraw,
    parts: list[tuple[list[Point], str]],
    colors: dict[str, Color],
    cx: float,
    cy: float,
    length: float,
    angle: float,
    flip: bool,
) -> None:
    for pts, role in parts:
        d.polygon(_rotate(pts, cx, cy, length, angle, flip), fill=colors[role])


def _scene_with_clutter(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Backdrop, sometimes with a small product, for tools and weapons to lie on."""
    if rng.random() < 0.5:
        return _product_scene(rng, w, h, scale=(0.25, 0.45))[0]
    return _background(rng, w, h)


def _tool_scene(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    img = _scene_with_clutter(rng, w, h)
    d = ImageDraw.Draw(img, "RGBA")
    for _ in range(1 if rng.random() < 0.75 else 2):
        kind = _choice(rng, _TOOLS)
        length = min(w, h) * _u(rng, 0.45, 0.9)
        _draw_parts(
            d,
            _tool_parts(rng, kind),
            _part_colors(rng, 0.6),
            w * _u(rng, 0.3, 0.7),
            h * _u(rng, 0.3, 0.7),
            length,
            _u(rng, 0, 2 * math.pi),
            rng.random() < 0.5,
        )
    return img


def _knife_parts(rng: np.random.Generator) -> list[tuple[list[Point], str]]:
    bh = _u(rng, 0.07, 0.13)  # blade half-height, relative to length
    if rng.random() < 0.65:  # kitchen/hunting knife: straight spine, edge curving to the tip
        blade = [
            (-0.08, -bh),
            (0.38, -bh),
            (0.5, -bh * 0.9),
            (0.42, -bh * 0.1),
            (0.25, bh * 0.7),
            (0.0, bh),
            (-0.08, bh),
        ]
    else:  # dagger: symmetric, double-edged
        blade = [(-0.08, -bh), (0.3, -bh * 0.8), (0.5, 0.0), (0.3, bh * 0.8), (-0.08, bh)]
    hh = bh * _u(rng, 0.6, 0.9)
    handle = [(-0.5, -hh), (-0.1, -hh), (-0.1, hh), (-0.5, hh * 1.1)]
    guard = [(-0.11, -bh * 1.4), (-0.07, -bh * 1.4), (-0.07, bh * 1.4), (-0.11, bh * 1.4)]
    parts = [(blade, "metal"), (handle, "body")]
    if rng.random() < 0.5:
        parts.append((guard, "metal"))
    parts.append(
        ([(-0.08, -bh * 0.8), (0.36, -bh * 0.8), (0.36, -bh * 0.55), (-0.08, -bh * 0.55)], "accent")
    )  # spine bevel highlight
    return parts


def _pistol_parts(rng: np.random.Generator) -> list[tuple[list[Point], str]]:
    grip_back = _u(rng, 0.08, 0.16)
    return [
        ([(-0.5, -0.3), (0.5, -0.3), (0.5, -0.08), (-0.5, -0.08)], "metal"),  # slide
        ([(-0.4, -0.08), (0.3, -0.08), (0.3, 0.0), (-0.4, 0.0)], "body"),  # frame
        ([(-0.48, -0.08), (-0.2, -0.08), (-0.28 - grip_back, 0.52), (-0.56 - grip_back, 0.48)], "accent"),  # grip
        ([(0.44, -0.26), (0.5, -0.26), (0.5, -0.13), (0.44, -0.13)], "body"),  # muzzle
    ]


def _render_weapon(rng: np.random.Generator, w: int, h: int, variant: str) -> Image.Image:
    img = _scene_with_clutter(rng, w, h)
    d = ImageDraw.Draw(img, "RGBA")
    length = min(w, h) * _u(rng, 0.35, 0.85)
    cx, cy = w * _u(rng, 0.3, 0.7), h * _u(rng, 0.3, 0.7)
    angle, flip = _u(rng, 0, 2 * math.pi), rng.random() < 0.5
    colors = _part_colors(rng, 0.7)
    if variant == "pistol":
        colors["metal"] = colors["body"] if rng.random() < 0.6 else colors["metal"]
        colors["accent"] = (
            colors["body"]
            if rng.random() < 0.5
            else _shade(_choice_color(rng, ((120, 80, 45), (160, 140, 100), (40, 40, 40))), _u(rng, 0.8, 1.2))
        )
        _draw_parts(d, _pistol_parts(rng), colors, cx, cy, length, angle, flip)
        guard = [
            (-0.18 + 0.26 * (1 - math.cos(math.pi * t)) / 2, 0.2 * math.sin(math.pi * t)) for t in np.linspace(0, 1, 9)
        ]
        d.line(
            _rotate(guard, cx, cy, length, angle, flip),
            fill=colors["body"],
            width=max(2, int(length * 0.035)),
            joint="curve",
        )
    else:
        colors["accent"] = _shade(colors["metal"], 1.25)
        _draw_parts(d, _knife_parts(rng), colors, cx, cy, length, angle, flip)
    return img


# ---- promo spam


def _phone(rng: np.random.Generator) -> str:
    n4 = f"{int(rng.integers(0, 10000)):04d}"
    area = _choice(rng, ("800", "888", "877", "866", "855"))
    return _choice(
        rng,
        (
            f"+1 ({area}) 555-{n4}",
            f"CALL 1-{area}-555-{n4}",
            f"Tel: 0{int(rng.integers(100, 999))} 555 {n4}",
            f"+44 7700 900{n4[:3]}",
        ),
    )


def _contact(rng: np.random.Generator, drift: bool) -> str:
    """A phone number, URL, messaging handle or support line; Telegram-style on drift days."""
    word = _choice(rng, ("deals", "cheap", "promo", "bestbuy", "shop", "gift", "cash", "vip"))
    nn = int(rng.integers(1, 99))
    if drift:
        options = (
            f"t.me/{word}_{nn}",
            f"tg: @{word}{nn}",
            f"t.me/+{word[:3]}X{nn}k",
            f"signal +44 7700 9{int(rng.integers(10000, 99999))}",
            f"join t.me/{word}hub",
            _phone(rng),
        )
        return _choice(rng, options)
    site = f"{_choice(rng, ('deals', 'outlet', 'store'))}.{_choice(rng, ('biz', 'info', 'xyz'))}"
    options = (
        _phone(rng),
        _phone(rng),
        f"www.{word}-{site}",
        f"bit.ly/{word}{nn}x",
        f"WhatsApp: +1 {int(rng.integers(200, 999))} 555 {nn:02d}{nn:02d}",
        f"@{word}_4u",
        f"@{word}_{nn}",
        "CUSTOMER SUPPORT 24/7",
        "HELPLINE 24/7",
    )
    return _choice(rng, options)


_SPAM_HEADLINES = (
    "CALL NOW",
    "BEST PRICE",
    "100% ORIGINAL",
    "CHEAP!!!",
    "FREE SHIPPING",
    "LIMITED OFFER",
    "EARN $500/DAY",
    "LOANS FAST",
    "DM TO ORDER",
    "WHOLESALE",
    "ORDER NOW",
    "CUSTOMER SUPPORT",
    "REFUND DESK",
    "50% OFF",
)
_NEON_BG = ((30, 10, 50), (10, 35, 45), (45, 10, 40), (15, 15, 30))
_NEON_TEXT = ((255, 60, 200), (40, 240, 255), (180, 255, 60), (255, 240, 80))


def _banner_background(rng: np.random.Generator, w: int, h: int, *, drift: bool) -> Image.Image:
    """A flat or gradient graphic background: classic bright palette, or dark neon on drift."""
    pal = _NEON_BG if drift else _PALETTE
    c1 = _shade(_choice_color(rng, pal), _u(rng, 0.8, 1.1))
    c2 = _mix(c1, _choice_color(rng, pal), _u(rng, 0.0, 0.5))
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    arr = np.array(c1, np.float32) + (np.array(c2, np.float32) - np.array(c1, np.float32)) * yy
    return Image.fromarray(np.ascontiguousarray(np.broadcast_to(arr, (h, w, 3)), dtype=np.uint8))


def _text_colors(rng: np.random.Generator, *, drift: bool) -> list[Color]:
    if drift:
        return [_choice_color(rng, _NEON_TEXT), _choice_color(rng, _NEON_TEXT)]
    return [
        _choice_color(rng, ((255, 255, 255), (20, 20, 20), (255, 230, 0))),
        _choice_color(rng, ((255, 255, 255), (20, 20, 20), (200, 0, 0))),
    ]


def _starburst(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, r: float, color: Color) -> None:
    k = int(rng.integers(10, 18))
    pts = [
        (
            cx + (r if j % 2 == 0 else r * 0.72) * math.cos(math.pi * j / k),
            cy + (r if j % 2 == 0 else r * 0.72) * math.sin(math.pi * j / k),
        )
        for j in range(2 * k)
    ]
    d.polygon(pts, fill=color)


def _render_spam(rng: np.random.Generator, w: int, h: int, variant: str, drift: bool) -> Image.Image:
    if variant == "overlay":
        return _spam_overlay(rng, w, h, drift)
    if variant == "logos":
        return _spam_logos(rng, w, h, drift)
    if variant == "vertical":
        return _spam_vertical(rng, w, h)
    if variant == "qr":
        return _spam_qr(rng, w, h)
    return _spam_banner(rng, w, h, drift)


def _spam_banner(rng: np.random.Generator, w: int, h: int, drift: bool) -> Image.Image:
    img = _banner_background(rng, w, h, drift=drift)
    d = ImageDraw.Draw(img, "RGBA")
    colors = _text_colors(rng, drift=drift)
    if rng.random() < 0.5:
        d.rectangle((2, 2, w - 3, h - 3), outline=colors[0], width=max(2, w // 40))
    top = h * 0.08
    if rng.random() < 0.4:
        r = min(w, h) * 0.2
        _starburst(d, rng, w - r * 1.1, r * 1.1, r, _choice_color(rng, ((255, 230, 0), (230, 20, 30))))
        top = r * 2.2
    lines = [_choice(rng, _SPAM_HEADLINES), _contact(rng, drift)]
    lines += [_contact(rng, drift) for _ in range(int(rng.integers(0, 3)))]
    _text_lines(d, lines, (w * 0.06, top, w * 0.94, h * 0.94), colors, stroke=(0, 0, 0) if rng.random() < 0.4 else None)
    return img


def _spam_overlay(rng: np.random.Generator, w: int, h: int, drift: bool) -> Image.Image:
    """A product photo with contact details stamped over it."""
    img, _ = _product_scene(rng, w, h)
    d = ImageDraw.Draw(img, "RGBA")
    colors = _text_colors(rng, drift=drift)
    lines = [_contact(rng, drift)] + ([_choice(rng, _SPAM_HEADLINES)] if rng.random() < 0.5 else [])
    if rng.random() < 0.6:  # a translucent band at the top or bottom
        bh = h * _u(rng, 0.18, 0.34)
        y0 = 0.0 if rng.random() < 0.5 else h - bh
        band = _choice_color(rng, _NEON_BG if drift else _PALETTE)
        d.rectangle((0, y0, w, y0 + bh), fill=(*band, int(rng.integers(150, 240))))
        _text_lines(d, lines, (w * 0.04, y0, w * 0.96, y0 + bh), colors)
    else:  # large outlined text across the picture, sometimes tilted
        angle = _u(rng, -35, 35) if rng.random() < 0.5 else 0.0
        for k, line in enumerate(lines):
            size = _fit_font(line, w * 0.9, h * 0.16).size
            _paste_rotated_text(img, line, size, colors[k % 2], angle, (w / 2, h * (0.4 + 0.25 * k)))
    return img


def _spam_logos(rng: np.random.Generator, w: int, h: int, drift: bool) -> Image.Image:
    """Several messenger/brand-like round logos with handles beside them."""
    if rng.random() < 0.5:
        img = _banner_background(rng, w, h, drift=drift)
    else:
        img, _ = _product_scene(rng, w, h, scale=(0.3, 0.5))
    d = ImageDraw.Draw(img, "RGBA")
    k = int(rng.integers(2, 5))
    r = min(h / (2.6 * k), w * 0.12)
    for j in range(k):
        cy = h * (j + 0.5) / k
        logo = _choice_color(rng, ((37, 211, 102), (0, 136, 204), (225, 48, 108), (255, 0, 0), (59, 89, 152)))
        d.ellipse(_ellipse_box(w * 0.06 + r, cy, r, r), fill=logo)
        _text_lines(
            d,
            [_choice(rng, ("W", "T", "@", "$", "f", "IG"))],
            _ellipse_box(w * 0.06 + r, cy, r * 0.7, r * 0.7),
            [(255, 255, 255)],
        )
        _text_lines(
            d,
            [_contact(rng, drift)],
            (w * 0.1 + 2.2 * r, cy - r, w * 0.97, cy + r),
            [(255, 255, 255)],
            stroke=(0, 0, 0),
            align="left",
        )
    return img


def _spam_vertical(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Drift style: dark neon graphic with rotated/vertical contact text."""
    img = _banner_background(rng, w, h, drift=True)
    colors = _text_colors(rng, drift=True)
    angle = _choice_color(rng, ((90, 0, 0), (270, 0, 0)))[0] if rng.random() < 0.6 else _u(rng, -30, 30)
    vertical = abs(angle) >= 90
    n = int(rng.integers(1, 4))
    for k in range(n):
        text = _contact(rng, drift=True) if k % 2 == 0 else _choice(rng, _SPAM_HEADLINES)
        span = (h if vertical else w) * 0.9
        cross = (w if vertical else h) / n
        size = min(_fit_font(text, span, cross * 0.7).size, 28)
        center = ((k + 0.5) * cross, h / 2) if vertical else (w / 2, (k + 0.5) * cross)
        _paste_rotated_text(img, text, size, colors[k % 2], angle, center)
    return img


def _qr(rng: np.random.Generator, modules: int = 21) -> np.ndarray:
    """A QR-code-like block pattern (random data, three finder squares), 1 = dark."""
    grid = (rng.random((modules, modules)) < 0.5).astype(np.uint8)
    finder = np.ones((7, 7), np.uint8)
    finder[1:6, 1:6] = 0
    finder[2:5, 2:5] = 1
    for y, x in ((0, 0), (0, modules - 7), (modules - 7, 0)):
        grid[y : y + 7, x : x + 7] = finder
    return np.pad(grid, 2)  # quiet zone


def _spam_qr(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Drift style: a QR-like block with 'scan to chat' and a t.me handle."""
    if rng.random() < 0.6:
        img = _banner_background(rng, w, h, drift=True)
    else:
        img, _ = _product_scene(rng, w, h, scale=(0.3, 0.5))
    grid = _qr(rng)
    side = int(min(w, h) * _u(rng, 0.45, 0.65))
    dark, light = _choice_color(rng, _NEON_BG), _choice_color(rng, _NEON_TEXT)
    pix = np.where(grid[..., None] == 1, np.array(dark, np.uint8), np.array(light, np.uint8))
    block = Image.fromarray(pix.astype(np.uint8)).resize((side, side), Image.Resampling.NEAREST)
    x0 = int(_u(rng, 0.05, 0.95) * (w - side))
    img.paste(block, (x0, int(h * 0.06)))
    d = ImageDraw.Draw(img, "RGBA")
    lines = [_choice(rng, ("SCAN TO CHAT", "SCAN ME", "SCAN & EARN")), _contact(rng, drift=True)]
    _text_lines(
        d, lines, (w * 0.04, h * 0.06 + side, w * 0.96, h * 0.97), _text_colors(rng, drift=True), stroke=(0, 0, 0)
    )
    return img


# ---- disgusting: local clusters of holes or lesions on a normal photo


def _render_disgusting(rng: np.random.Generator, w: int, h: int, variant: str) -> Image.Image:
    img, boxes = _product_scene(rng, w, h)
    d = ImageDraw.Draw(img, "RGBA")
    # Centre the cluster on the product most of the time; it covers only 6-30 % of the image.
    if rng.random() < 0.7:
        bx = boxes[int(rng.integers(len(boxes)))]
        cx, cy = (bx[0] + bx[2]) / 2, (bx[1] + bx[3]) / 2
    else:
        cx, cy = w * _u(rng, 0.2, 0.8), h * _u(rng, 0.2, 0.8)
    radius = math.sqrt(_u(rng, 0.06, 0.3) * w * h / math.pi)
    if rng.random() < 0.6:  # a skin- or flesh-toned patch under the cluster
        tone = _choice_color(rng, ((225, 180, 150), (200, 140, 120), (230, 200, 160), (170, 110, 90)))
        d.polygon(_blob(rng, cx, cy, radius * 1.05, k=12, jitter=0.25), fill=(*tone, int(rng.integers(120, 230))))
    if variant == "lesions":
        _lesions(d, rng, cx, cy, radius)
    else:
        _holes(d, rng, cx, cy, radius)
    return img


def _cluster_points(rng: np.random.Generator, cx: float, cy: float, radius: float, n: int) -> list[Point]:
    r = radius * np.sqrt(rng.random(n))
    a = rng.random(n) * 2 * math.pi
    return [(cx + float(r[j] * math.cos(a[j])), cy + float(r[j] * math.sin(a[j]))) for j in range(n)]


def _holes(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, radius: float) -> None:
    """Trypophobia-style irregular dark holes with raised rims, of mixed sizes."""
    rim = _choice_color(rng, ((200, 150, 130), (190, 170, 120), (160, 110, 90), (210, 190, 160)))
    for x, y in _cluster_points(rng, cx, cy, radius, int(rng.integers(12, 45))):
        r = radius * _u(rng, 0.05, 0.15)
        d.polygon(_blob(rng, x, y, r * 1.45, k=8, jitter=0.2), fill=(*_shade(rim, 0.85), 220))
        d.polygon(_blob(rng, x, y, r, k=8, jitter=0.3), fill=_color(rng, 15, 55))
        d.polygon(_blob(rng, x, y, r * 0.5, k=6, jitter=0.3), fill=(10, 5, 5, 200))


def _lesions(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, radius: float) -> None:
    """Reddish, irregular lesion-like blobs with a halo and a pale or crusted centre."""
    for x, y in _cluster_points(rng, cx, cy, radius, int(rng.integers(5, 18))):
        r = radius * _u(rng, 0.07, 0.22)
        red = (int(rng.integers(140, 210)), int(rng.integers(25, 70)), int(rng.integers(25, 60)))
        d.polygon(_blob(rng, x, y, r * 1.5, k=10, jitter=0.3), fill=(*red, 90))
        d.polygon(_blob(rng, x, y, r, k=10, jitter=0.35), fill=red)
        centre = (235, 215, 120) if rng.random() < 0.5 else (70, 25, 20)
        d.polygon(_blob(rng, x, y, r * 0.4, k=7, jitter=0.4), fill=(*centre, 210))


# ---- camera


# Byte -> N(0, 1) quantile: turns uniform random bytes into Gaussian noise entirely in Pillow.
_GAUSS_QUANTILES = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)], dtype=np.float32)


def _camera(img: Image.Image, rng: np.random.Generator, drift: bool) -> Image.Image:
    """Lens blur, exposure/contrast jitter and sensor noise; drift = darker, warmer photos.

    Uses lookup tables and Pillow's C operations rather than float arrays: this step runs on
    every pixel of every image and dominated the generation time.
    """
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.BoxBlur(_u(rng, 0.3, 0.8)))
    contrast, offset = _u(rng, 0.85, 1.12), _u(rng, -12, 12)
    gain = np.full(3, 1.0, np.float32)
    if drift:  # a new default phone camera: underexposed with a warm cast
        gain = np.array([0.84, 0.78, 0.70], np.float32)
    levels = ((np.arange(256, dtype=np.float32) - 128) * contrast + 128 + offset)[None, :]
    lut = np.clip(levels * gain[:, None], 0, 255).round().astype(np.uint8)
    img = img.point(lut.ravel().tolist())
    sigma = _u(rng, 1.0, 4.0)
    noise_lut = np.clip(128 + sigma * _GAUSS_QUANTILES, 0, 255).round().astype(np.uint8)
    noise = Image.frombytes("RGB", img.size, rng.bytes(img.width * img.height * 3))
    noise = noise.point(noise_lut.tolist() * 3)
    return ImageChops.add(img, noise, scale=1.0, offset=-128)
