from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modops.config import LabelsConfig, SplitConfig
from modops.data.split import near_duplicate_groups, split_manifest

LABELS = LabelsConfig()


def _manifest(n_clean=300, n_each=12, seed=0):
    rng = np.random.default_rng(seed)
    labels = ["clean"] * n_clean + [c for c in LABELS.categories for _ in range(n_each)]
    hashes = [f"{int(h):016x}" for h in rng.integers(0, 2**63, len(labels), dtype=np.int64)]
    return pd.DataFrame({"image_id": [f"{i:064x}" for i in range(len(labels))], "phash": hashes, "label": labels})


def test_near_duplicate_groups_are_transitive():
    hashes = pd.Series(["0000000000000000", "0000000000000003", "000000000000000f", "ffffffffffffffff"])
    groups = near_duplicate_groups(hashes, max_distance=2)
    assert groups[0] == groups[1] == groups[2]  # 0-1 differ by 2 bits, 1-2 by 2 bits
    assert groups[3] != groups[0]


def test_split_is_stratified_and_covers_every_category():
    result = split_manifest(_manifest(), SplitConfig(), labels=LABELS)
    counts = result.counts()
    for split in ("train", "val", "holdout"):
        for cat in LABELS.categories:
            assert counts[split].get(cat, 0) >= 1
    assert abs(counts["holdout"]["clean"] / 300 - SplitConfig().holdout_fraction) < 0.03


def test_near_duplicates_never_cross_splits():
    m = _manifest()
    m.loc[1:20, "phash"] = m.loc[0, "phash"]  # 21 copies of one image
    s = split_manifest(m, SplitConfig(), labels=LABELS).splits
    assert s.groupby("group")["split"].nunique().max() == 1


def test_holdout_is_frozen_and_new_duplicates_are_excluded():
    m = _manifest()
    first = split_manifest(m, SplitConfig(seed=1), labels=LABELS)
    # New images arrive, one a re-upload of a holdout image; the seed changes too.
    held = first.holdout["image_id"].iloc[0]
    extra = pd.DataFrame(
        {
            "image_id": ["f" * 64, "e" * 64],
            "phash": [m.set_index("image_id").loc[held, "phash"], "0123456789abcdef"],
            "label": ["clean", "clean"],
        }
    )
    second = split_manifest(pd.concat([m, extra]), SplitConfig(seed=99), labels=LABELS, frozen_holdout=first.holdout)
    assert not second.created_holdout
    s = second.splits.set_index("image_id")
    assert set(s.index[s["split"] == "holdout"]) == set(first.holdout["image_id"])
    assert s.loc["f" * 64, "split"] == "excluded" and "holdout" in s.loc["f" * 64, "note"]
    assert s.loc["e" * 64, "split"] in ("train", "val")


def test_images_arriving_later_never_move_a_training_image_into_val():
    # A relabel round's reviewer labels (train only) and a new day's uploads arrive; neither may
    # redraw val, or a model warm-started from the first split's model would pick its
    # thresholds on images it trained on.
    m = _manifest().assign(source="upload")
    first = split_manifest(m, SplitConfig(), labels=LABELS)
    rng = np.random.default_rng(1)
    extra = pd.DataFrame(
        {
            "image_id": [f"{i:064x}" for i in range(10_000, 10_150)],
            "phash": [f"{int(h):016x}" for h in rng.integers(0, 2**63, 150, dtype=np.int64)],
            "label": ["clean"] * 100 + ["promo_spam"] * 50,
            "source": ["upload"] * 100 + ["reviewer"] * 50,
        }
    )
    second = split_manifest(pd.concat([m, extra]), SplitConfig(), labels=LABELS, frozen_holdout=first.holdout)
    before = first.splits.set_index("image_id")["split"]
    after = second.splits.set_index("image_id")["split"].loc[before.index]
    assert not ((before == "train") & (after == "val")).any()
    assert (before == after).all()  # no group changed, so nothing moved at all
    n_val = int((second.splits["split"] == "val").sum())
    assert abs(n_val / len(second.splits) - SplitConfig().val_fraction) < 0.05


def test_unlabeled_rows_are_kept_aside():
    m = _manifest()
    m.loc[0, "label"] = None
    s = split_manifest(m, SplitConfig(), labels=LABELS).splits
    assert s.loc[s["image_id"] == m.loc[0, "image_id"], "split"].item() == "unlabeled"


def test_too_few_positives_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 3 distinct"):
        split_manifest(_manifest(n_each=2), SplitConfig(), labels=LABELS)


def test_unknown_label_is_rejected():
    m = _manifest()
    m.loc[0, "label"] = "nsfw"
    with pytest.raises(ValueError, match="outside params labels"):
        split_manifest(m, SplitConfig(), labels=LABELS)


def test_three_positives_are_enough_for_every_split():
    result = split_manifest(_manifest(n_each=3), SplitConfig(), labels=LABELS)
    for split in ("train", "val", "holdout"):
        assert {c: result.counts()[split].get(c, 0) for c in LABELS.categories} == dict.fromkeys(LABELS.categories, 1)
