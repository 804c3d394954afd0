"""The per-image plan, decided in the parent process before anything is rendered.

Labels (exact counts), variants, sizes, formats, label-noise flips, the labelled subset,
uploaders, business categories, timestamps, and the seed images. Each concern draws from its
own random stream, so that e.g. ``noise_rate`` or ``labelled_fraction`` change ``labels.csv``
only and never an image.

Random streams (``numpy.random.default_rng`` entropy words):

* pool, per ``(seed, day)``: ``[seed, day, 0]`` labels/variants/sizes, ``[seed, day, 2]`` label
  noise, ``[seed, day, 3]`` metadata, ``[seed, day, 4]`` the labelled subset, and
  ``[seed, day, 1, index]`` the pixels of pool image ``index``; ``[seed, 1]`` the uploader
  population (shared by all days).
* seeds: ``[seed, SEED_TAG, category index, k, 1]`` the plan and ``[..., 2]`` the pixels of seed
  ``k``. Five words where every pool stream has at most four (for seed and day below 2**32),
  so a seed never shares a stream with a pool image (SeedSequence hashes every word, trailing
  ones included); no day, ``n_images``, ``positive_rate`` or ``labelled_fraction`` enters them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

import numpy as np

from modops.demo.constants import BASE_DATE, BUSINESS_CATEGORIES, CATEGORIES, LABELS, NEGATIVE

_MIN_SIDE, _MAX_SIDE = 96, 200
_PNG_SHARE = 0.15
# Reviewers miss violations far more often than they invent them.
_FALSE_NEGATIVE_SHARE = 0.75
_SPAMMER_SHARE = 0.85  # of promo_spam posted by the small set of spammer accounts
SEED_TAG = 0x5EED  # second entropy word of every seed-image stream


class Spec(NamedTuple):
    """Everything a worker needs to render one image (cheap to pickle)."""

    stream: tuple[int, ...]  # entropy of the image's own random stream: it fixes every pixel
    label: str  # the *true* label: pixels always show the truth, noise only touches labels.csv
    variant: str
    width: int  # px
    height: int  # px
    fmt: str  # "JPEG" or "PNG"
    quality: int  # JPEG quality (unused for PNG)
    relpath: str  # POSIX path under the pool folder
    drift: bool  # render the later-day style


@dataclass(frozen=True)
class Plan:
    """The pool's rows, index-aligned: ``specs[i]`` and the metadata of image ``i``.

    ``observed`` is the label after noise for every row; ``labelled[i]`` says whether
    ``labels.csv`` shows it (False = an unlabelled upload, written with an empty label).
    """

    specs: list[Spec]
    observed: list[str]
    labelled: list[bool]
    uploaders: list[str]
    business: list[str]
    uploaded_at: list[str]


_CLEAN_VARIANTS = {"product": 0.44, "text": 0.17, "texture": 0.15, "people": 0.08, "tool": 0.16}
_VARIANTS: dict[tuple[str, bool], dict[str, float]] = {
    ("promo_spam", False): {"banner": 0.4, "overlay": 0.4, "logos": 0.2},
    ("promo_spam", True): {"vertical": 0.35, "qr": 0.35, "banner": 0.15, "overlay": 0.15},
    ("disgusting", False): {"holes": 0.6, "lesions": 0.4},
    ("weapon", False): {"knife": 0.55, "pistol": 0.45},
}


def category_of(variant: str | None) -> str | None:
    """The true label a generator variant renders (``"qr"`` -> ``"promo_spam"``); None for an unknown one."""
    if variant in _CLEAN_VARIANTS:
        return NEGATIVE
    for (label, _), weights in _VARIANTS.items():
        if variant in weights:
            return label
    return None


# Which violation a hard negative is mistaken for, when a reviewer flags clean content.
CONFUSED_WITH = {"text": "promo_spam", "texture": "disgusting", "tool": "weapon"}

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


def plan_pool(
    n: int,
    *,
    seed: int,
    day: int,
    positive_rate: float,
    noise_rate: float,
    drift: bool,
    labelled_fraction: float = 1.0,
) -> Plan:
    """Decide every label, variant, size, format and metadata value of ``n`` pool images, without rendering."""
    # Separate streams, so that noise_rate and labelled_fraction change labels.csv only, never an image.
    rng, noise_rng, meta_rng, label_rng = (np.random.default_rng([seed, day, k]) for k in (0, 2, 3, 4))
    true = _true_labels(n, positive_rate, rng)
    variants = [_pick(rng, _variant_weights(lab, drift)) for lab in true]
    observed = _flip_labels(true, variants, noise_rate, noise_rng)
    widths = rng.integers(_MIN_SIDE, _MAX_SIDE + 1, size=n)
    heights = rng.integers(_MIN_SIDE, _MAX_SIDE + 1, size=n)
    is_png = rng.random(n) < _PNG_SHARE
    quality = rng.integers(85, 96, size=n)
    specs = [
        Spec(
            (seed, day, 1, i),
            true[i],
            variants[i],
            int(widths[i]),
            int(heights[i]),
            "PNG" if is_png[i] else "JPEG",
            int(quality[i]),
            f"images/d{day:03d}_{i:06d}.{'png' if is_png[i] else 'jpg'}",
            drift,
        )
        for i in range(n)
    ]
    return Plan(
        specs=specs,
        observed=observed,
        labelled=_labelled_mask(n, labelled_fraction, label_rng),
        uploaders=_uploaders(true, seed=seed, drift=drift, rng=meta_rng),
        business=_business(true, drift=drift, rng=meta_rng),
        uploaded_at=_timestamps(n, day=day, rng=meta_rng),
    )


def plan_seeds(per_category: int, *, seed: int) -> list[Spec]:
    """Seed images: ``per_category`` JPEGs of every category, in :data:`CATEGORIES` order, then by ``k``.

    Each seed is planned like a pool positive of its category (variant, size, quality) but
    from its own streams (see the module docstring), always in the base (non-drift) style:
    the same seeds come out for any pool, day or drift flag of the same ``seed``.
    """
    specs = []
    for c, cat in enumerate(CATEGORIES):
        for k in range(per_category):
            rng = np.random.default_rng([seed, SEED_TAG, c, k, 1])
            variant = _pick(rng, _variant_weights(cat, drift=False))
            width, height = (int(v) for v in rng.integers(_MIN_SIDE, _MAX_SIDE + 1, size=2))
            quality = int(rng.integers(85, 96))
            relpath = f"seeds/{cat}/{cat}_{k:02d}.jpg"
            specs.append(Spec((seed, SEED_TAG, c, k, 2), cat, variant, width, height, "JPEG", quality, relpath, False))
    return specs


def _labelled_mask(n: int, fraction: float, rng: np.random.Generator) -> list[bool]:
    """Exactly ``round(n * fraction)`` (half up) rows labelled, drawn uniformly over all rows.

    The first rows of one permutation are labelled, so for the same pool a larger fraction
    labels a superset of the rows of a smaller one.
    """
    labelled = np.zeros(n, dtype=bool)
    labelled[rng.permutation(n)[: _round(n * fraction)]] = True
    return labelled.tolist()


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
    lookalikes = _shuffled(rng, [i for i in clean if variants[i] in CONFUSED_WITH])
    others = _shuffled(rng, [i for i in clean if variants[i] not in CONFUSED_WITH])
    n_fn = min(_round(_FALSE_NEGATIVE_SHARE * n_flip), len(first))
    n_fp = min(n_flip - n_fn, len(clean))
    n_fn = n_flip - n_fp  # when clean images run out, the rest come from violations
    for i in positives[:n_fn]:
        observed[i] = NEGATIVE
    for i in (lookalikes + others)[:n_fp]:
        guess = CONFUSED_WITH.get(variants[i])
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
