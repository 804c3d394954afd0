"""Duplicate-aware, stratified train/val/holdout splitting with a frozen holdout.

Near-duplicates (perceptual-hash Hamming distance <= ``near_dup_max_distance``) are
grouped, and a group never straddles splits, so a re-upload of a training image cannot
inflate holdout metrics. The holdout is frozen the first time it is made: later runs keep
it exactly and send new images to train/val only, so every model is judged on the same images.
Val membership is a hash of each group's id, not a shuffle, so images that arrive later never
move a training image into val (a warm-started model never picks thresholds on its parent's
training images).

Labels come with a *source*. Only sources in ``split.eval_sources`` (by default ``upload``, a
random sample) may enter val or the holdout; seed images and retrieval-confirmed candidates
were chosen because they look like violations, so they train only. Unlabelled images that
are near-duplicates of a val or holdout image are ``excluded``: a semi-supervised trainer
would otherwise learn from a copy of an evaluation image.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from modops.config import LabelsConfig, SplitConfig

__all__ = ["SplitResult", "near_duplicate_groups", "split_manifest", "stable_unit", "SPLITS"]

SPLITS = ("train", "val", "holdout", "unlabeled", "excluded")


@dataclass(frozen=True)
class SplitResult:
    """Split assignment for every manifest row.

    Attributes:
        splits: Columns ``image_id``, ``label``, ``source`` (the label's source, None when
            unlabelled), ``split`` (one of :data:`SPLITS`), ``group``, ``note`` (why an image is
            excluded or train-only, else empty).
        holdout: Columns ``image_id``, ``label`` — the frozen holdout as first made.
        created_holdout: True when this run froze a new holdout.
    """

    splits: pd.DataFrame
    holdout: pd.DataFrame
    created_holdout: bool

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {label: count}}`` for reporting."""
        table = self.splits.groupby(["split", "label"], dropna=False).size()
        out: dict[str, dict[str, int]] = {}
        for (split, label), n in table.items():
            out.setdefault(split, {})[str(label)] = int(n)
        return out


def near_duplicate_groups(phashes: pd.Series, *, max_distance: int, block: int = 2048) -> np.ndarray:
    """Group images whose perceptual hashes are within ``max_distance`` bits (transitively).

    All pairs are compared in blocks with vectorised XOR + popcount: O(N^2 / 64) words,
    about a second for 20k images. Past a few hundred thousand images, swap in a faiss
    binary index (``IndexBinaryHash``) behind this same function.

    Args:
        phashes: 16-hex-character hashes, shape [N].
        max_distance: Largest Hamming distance (bits) that counts as a near duplicate.

    Returns:
        Group ids, shape [N]: the index of each group's first member.
    """
    values = np.array([int(h, 16) for h in phashes], dtype=np.uint64)
    parent = np.arange(len(values))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, len(values), block):
        chunk = values[start : start + block]
        dist = np.bitwise_count(chunk[:, None] ^ values[None, :])
        rows, cols = np.nonzero(dist <= max_distance)
        for r, c in zip(rows + start, cols, strict=True):
            if c > r:
                a, b = find(int(r)), find(int(c))
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return np.array([find(i) for i in range(len(values))])


def split_manifest(
    manifest: pd.DataFrame, cfg: SplitConfig, *, labels: LabelsConfig, frozen_holdout: pd.DataFrame | None = None
) -> SplitResult:
    """Assign each manifest row to a split.

    Args:
        manifest: Rows with ``image_id``, ``phash``, ``label`` (None = unlabelled) and optionally
            ``source`` (the label's source; without it every label counts as an eval source).
        cfg: Fractions, near-duplicate distance, eval sources and seed.
        labels: The label space; labels outside it are rejected.
        frozen_holdout: A previous run's holdout (``image_id``, ``label``); None to make one.

    Returns:
        The assignment; labelled images land in train/val/holdout (train only for non-eval
        sources), unlabelled ones in ``unlabeled``, and near-duplicates of frozen holdout images
        (labelled or not) and unlabelled near-duplicates of val images in ``excluded``.

    Raises:
        ValueError: On unknown labels, or when a violating category has too few groups to
            appear in every split.
    """
    unknown = sorted(set(manifest["label"].dropna()) - set(labels.all))
    if unknown:
        raise ValueError(
            f"manifest has labels {unknown} outside params labels {list(labels.all)}; fix labels.csv or params.yaml"
        )
    cols = ["image_id", "phash", "label"] + (["source"] if "source" in manifest.columns else [])
    frame = manifest[cols].sort_values("image_id").reset_index(drop=True)
    if "source" not in frame.columns:
        frame["source"] = np.where(frame["label"].isna(), None, "upload")
    frame["group"] = near_duplicate_groups(frame["phash"], max_distance=cfg.near_dup_max_distance)
    frame["group"] = frame["image_id"].to_numpy()[frame["group"].to_numpy()]  # stable id: first member's image id
    frame["split"] = np.where(frame["label"].isna(), "unlabeled", "")
    frame["note"] = ""
    _train_only(frame, cfg)
    if frozen_holdout is not None:
        _apply_frozen(frame, frozen_holdout)
        created = False
    else:
        _assign_fresh_holdout(frame, cfg, labels=labels)
        created = True
    _assign_train_val(frame, cfg, labels=labels)
    _exclude_unlabelled_leaks(frame)
    holdout = (
        frozen_holdout.sort_values("image_id").reset_index(drop=True)
        if frozen_holdout is not None
        else frame.loc[frame["split"] == "holdout", ["image_id", "label"]].reset_index(drop=True)
    )
    frame.loc[frame["split"] == "train_only", "split"] = "train"
    _check_coverage(frame, labels=labels)
    return SplitResult(frame[["image_id", "label", "source", "split", "group", "note"]], holdout, created)


def _train_only(frame: pd.DataFrame, cfg: SplitConfig) -> None:
    """Mark labels from non-eval sources (and their whole near-duplicate groups) as train-only."""
    biased = frame["label"].notna() & ~frame["source"].isin(cfg.eval_sources)
    groups = set(frame.loc[biased, "group"])
    rows = frame["group"].isin(groups) & (frame["split"] == "")
    frame.loc[rows, "split"] = "train_only"
    frame.loc[rows & biased, "note"] = "label source not in split.eval_sources: train only"


def _exclude_unlabelled_leaks(frame: pd.DataFrame) -> None:
    evaluated = set(frame.loc[frame["split"].isin(["val", "holdout"]), "group"])
    leak = (frame["split"] == "unlabeled") & frame["group"].isin(evaluated)
    frame.loc[leak, "split"] = "excluded"
    frame.loc[leak, "note"] = "unlabelled near-duplicate of a val or holdout image"


def _group_strata(frame: pd.DataFrame, labels: LabelsConfig) -> pd.Series:
    """One stratum per group: its rarest (most severe) label, so positives are never hidden in a clean group."""
    rank = {name: i for i, name in enumerate(labels.all)}  # negative = 0, categories after
    labelled = frame[frame["label"].notna()]
    return labelled.groupby("group")["label"].agg(lambda s: max(s, key=lambda x: rank[x]))


def _assign_fresh_holdout(frame: pd.DataFrame, cfg: SplitConfig, *, labels: LabelsConfig) -> None:
    strata = _group_strata(frame[frame["split"] == ""], labels)
    rng = np.random.default_rng(cfg.seed)
    chosen: list[str] = []
    for label in labels.all:
        groups = np.sort(strata.index[strata == label].to_numpy())
        rng.shuffle(groups)
        chosen.extend(groups[: _quota(len(groups), cfg.holdout_fraction, keep=2)])
    frame.loc[frame["group"].isin(chosen) & (frame["split"] == ""), "split"] = "holdout"


def _apply_frozen(frame: pd.DataFrame, frozen: pd.DataFrame) -> None:
    in_holdout = frame["image_id"].isin(frozen["image_id"])
    frame.loc[in_holdout, "split"] = "holdout"
    # New images that are near-duplicates of frozen holdout images may not enter training.
    holdout_groups = set(frame.loc[in_holdout, "group"])
    leak = (~in_holdout) & frame["group"].isin(holdout_groups) & frame["split"].isin(["", "train_only"])
    frame.loc[leak, "split"] = "excluded"
    frame.loc[leak, "note"] = "near-duplicate of a frozen holdout image"


def _assign_train_val(frame: pd.DataFrame, cfg: SplitConfig, *, labels: LabelsConfig) -> None:
    """Send each open group to val or train by a hash of its id, so later runs keep the choice.

    A group goes to val when ``stable_unit(group id, seed) < share``: the choice depends on the
    group alone, not on which other images exist, so images arriving later (a relabel round's,
    a new day's) never move a training image into val. A shuffle over all groups would redraw
    the whole val set whenever the group list changes, and a model warm-started from its
    predecessor would then pick its thresholds on images that predecessor trained on. Per
    stratum the count is clamped as in :func:`_quota` (at least one val group while one is
    left for train), which only touches strata of a handful of groups.
    """
    open_rows = frame["split"] == ""
    strata = _group_strata(frame[open_rows], labels)
    # val's share of what is left after the holdout, so val ends near val_fraction of the whole.
    share = cfg.val_fraction / (1 - cfg.holdout_fraction)
    chosen: list[str] = []
    for label in labels.all:
        groups = strata.index[strata == label].to_numpy()
        u = stable_unit(groups, seed=cfg.seed)
        order = np.argsort(u, kind="stable")
        k = _clamp(int((u < share).sum()), len(groups), keep=1)
        chosen.extend(groups[order[:k]])
    frame.loc[open_rows & frame["group"].isin(chosen), "split"] = "val"
    frame.loc[frame["split"] == "", "split"] = "train"


def stable_unit(keys: np.ndarray | list[str], *, seed: int) -> np.ndarray:
    """A number in [0, 1) per key that depends only on the key and ``seed`` (BLAKE2b), shape [N]."""
    digests = (hashlib.blake2b(f"{seed}:{k}".encode(), digest_size=8).digest() for k in keys)
    return np.array([int.from_bytes(d, "big") for d in digests], dtype=np.float64) / 2.0**64


def _quota(n_groups: int, fraction: float, *, keep: int) -> int:
    """Groups to take: the rounded fraction, at least one, while ``keep`` remain for later splits."""
    return _clamp(int(round(n_groups * fraction)), n_groups, keep=keep)


def _clamp(k: int, n_groups: int, *, keep: int) -> int:
    """``k`` groups, but at least one while more than ``keep`` exist, and never fewer than ``keep`` left."""
    if k == 0 and n_groups > keep:
        k = 1
    return min(k, max(n_groups - keep, 0))


def _check_coverage(frame: pd.DataFrame, *, labels: LabelsConfig) -> None:
    missing = []
    for split in ("train", "val", "holdout"):
        present = set(frame.loc[frame["split"] == split, "label"])
        missing += [f"{cat} in {split}" for cat in labels.categories if cat not in present]
    if missing:
        raise ValueError(
            f"not enough labelled examples to cover every split: no {', '.join(missing)}. "
            "Each violating category needs at least 3 distinct (non-near-duplicate) images; "
            "add seed images for it or lower split.near_dup_max_distance."
        )
