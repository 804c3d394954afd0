"""Names shared by the whole generator: labels, business categories, ``labels.csv`` columns, sizes."""

from __future__ import annotations

from datetime import UTC, datetime

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
    "label_source",  # empty for pool rows (ingest's default), "seed" for seed images
)
POOL_SIZES: dict[str, int] = {"small": 1_500, "default": 20_000}
MAX_SEEDS_PER_CATEGORY = 50  # seed file names have two digits
BASE_DATE = datetime(2026, 11, 1, tzinfo=UTC)
