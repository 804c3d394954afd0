"""Synthetic demo content pool: product-photo stand-ins with moderation labels and metadata.

The pool imitates what a marketplace's upload stream looks like to a moderation model: mostly
clean product photos, about 1 % violations (``promo_spam``, ``disgusting``, ``weapon``), and many
*hard negatives* among the clean images (benign text and prices, dotted or porous textures,
dark elongated tools, people) so that a small CNN has to learn the real cue rather than "any
text" or "any dots". Optional label noise imitates reviewer mistakes (mostly missed violations)
and ``drift=True`` imitates a later day on which spammers changed style.

Layout written under ``out_dir``::

    images/d000_000000.jpg ...        RGB JPEG (~85 %) or PNG (~15 %), each side 96-200 px
    seeds/weapon/weapon_00.jpg ...    RGB JPEG seed images per violating category (optional)
    labels.csv                        one row per image, pool then seeds, columns :data:`COLUMNS`

Pool images are deterministic in ``(seed, day, index)``, seeds in ``(seed, category, k)``: the
same arguments write byte-identical files whatever the number of worker processes. Only a
``labelled_fraction`` of the pool keeps its label in ``labels.csv`` (default: all of it).

Only the names below are public; the submodules (``constants``, ``plan``, ``scene``, ``clean``, ``spam``,
``disgusting``, ``shapes``, ``weapon``, ``writer``, ``pool``) are implementation details.
They import only numpy, Pillow and each other, because rendering workers are spawned and
must start fast (no torch, nothing else from modops).
"""

from modops.demo.constants import BASE_DATE, BUSINESS_CATEGORIES, CATEGORIES, COLUMNS, LABELS, NEGATIVE, POOL_SIZES
from modops.demo.pool import DemoSummary, generate_pool

__all__ = [
    "BASE_DATE",
    "BUSINESS_CATEGORIES",
    "CATEGORIES",
    "COLUMNS",
    "LABELS",
    "NEGATIVE",
    "POOL_SIZES",
    "DemoSummary",
    "generate_pool",
]
