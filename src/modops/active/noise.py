"""Noisy-label identification by confident learning (Northcutt et al. 2021, cleanlab).

Labels come from uploaders, retrieval confirmations and reviewers, and some are wrong. Before
a model trains on them, every labelled image is predicted *out of fold* (by a classifier that
never saw its label) and cleanlab's confident learning flags the labels those predictions
contradict. The flagged images go to a review list; training excludes or down-weights them as
``params.yaml: noise.action`` says.

The out-of-fold classifier is a multinomial logistic regression on an embedding (an embedder of
:mod:`modops.active.embed`, the cold start's small network by default): cheap enough for every
run on a CPU. The embedder itself is trained on the given labels for a few hundred steps,
far less than an epoch, so it has not memorised them; a stronger, label-free embedding
(``noise.embedder: pretrained`` with ImageNet weights) is the production choice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from modops.config import NoiseConfig
from modops.data.datasets import ImageReader
from modops.data.images import DecodeLimits

__all__ = ["ISSUE_COLUMNS", "NoiseResult", "check_labels", "find_issues", "out_of_fold_probs", "sample_weights"]

ISSUE_COLUMNS = ("image_id", "label", "suggested_label", "label_quality", "issue")


@dataclass(frozen=True)
class NoiseResult:
    """The check's verdict on every image it saw.

    Attributes:
        issues: One row per checked image: ``image_id``, ``label`` (given), ``suggested_label``
            (the out-of-fold prediction), ``label_quality`` (cleanlab's self-confidence, 0..1,
            low = likely wrong), ``issue`` (flagged).
        info: Figures about the run (folds, seconds, counts).
    """

    issues: pd.DataFrame
    info: dict = field(default_factory=dict)


def out_of_fold_probs(
    features: np.ndarray, labels: np.ndarray, *, num_classes: int, folds: int, seed: int
) -> np.ndarray:
    """Class probabilities of each row from a model trained on the other folds.

    Args:
        features: float [N, D].
        labels: int [N], class indices in ``0..num_classes-1``.
        num_classes: C.
        folds: Folds wanted; lowered to the smallest class's size (at least 2).
        seed: Seed of the fold assignment.

    Returns:
        float32 [N, C]; a class absent from a fold's training part gets probability 0 there.

    Raises:
        ValueError: When a label has fewer than 2 images (no fold could hold it out and train on it).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(labels, dtype=np.int64)
    present, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2:
        rare = present[counts < 2].tolist()
        raise ValueError(
            f"classes {rare} have fewer than 2 labelled images: the noise check cannot predict them out of fold. "
            "Label more images of them, or set noise.enabled: false"
        )
    k = max(2, min(folds, int(counts.min())))
    probs = np.zeros((len(labels), num_classes), dtype=np.float32)
    for train, held in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(features, labels):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        model.fit(features[train], labels[train])
        probs[np.ix_(held, model[-1].classes_)] = model.predict_proba(features[held])
    return probs


def find_issues(labels: np.ndarray, pred_probs: np.ndarray, *, filter_by: str, max_fraction: float) -> pd.DataFrame:
    """cleanlab's confident learning on out-of-fold probabilities, capped per label.

    Args:
        labels: int [N] given class indices.
        pred_probs: float [N, C] out-of-fold probabilities (rows sum to 1).
        filter_by: cleanlab's ``filter_by``.
        max_fraction: At most ``ceil(max_fraction * n_label)`` images of each given label are
            flagged, those of lowest label quality first.

    Returns:
        Columns ``label`` (index), ``suggested`` (index), ``label_quality`` and ``issue``, in row order.
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(labels, dtype=np.int64)
    # cleanlab wants every class to appear among the given labels; check the ones that do.
    present = np.unique(labels)
    remap = {int(c): i for i, c in enumerate(present)}
    local = np.array([remap[int(c)] for c in labels], dtype=np.int64)
    probs = pred_probs[:, present].astype(np.float64) + 1e-12
    probs /= probs.sum(axis=1, keepdims=True)
    flagged = find_label_issues(local, probs, filter_by=filter_by)
    quality = get_label_quality_scores(local, probs, method="self_confidence")
    frame = pd.DataFrame(
        {"label": labels, "suggested": present[probs.argmax(axis=1)], "label_quality": quality, "issue": flagged}
    )
    for rows in frame.groupby("label").groups.values():
        cap = int(np.ceil(max_fraction * len(rows)))
        hit = frame.loc[rows][frame.loc[rows, "issue"]].sort_values("label_quality", kind="stable")
        frame.loc[hit.index[cap:], "issue"] = False
    return frame


def check_labels(
    reader: ImageReader,
    ids: Sequence[str],
    labels: np.ndarray,
    *,
    classes: tuple[str, ...],
    cfg: NoiseConfig,
    limits: DecodeLimits,
) -> NoiseResult:
    """Embed ``ids``, predict them out of fold and flag the labels confident learning doubts.

    Args:
        reader: The image store.
        ids: Labelled image ids, shape [N].
        labels: Their class indices, int [N].
        classes: Every label, negative first.
        cfg: The ``noise`` section.
        limits: Decode limits (ingest's); an image outside them is not checked (kept, not flagged).

    Returns:
        A :class:`NoiseResult` with a row for every id.
    """
    import torch

    from modops.active.embed import EMBEDDERS, embed_ids

    if cfg.embedder not in EMBEDDERS:
        raise ValueError(f"unknown embedder {cfg.embedder!r}; choose one of {sorted(EMBEDDERS)} (noise.embedder)")
    start = time.perf_counter()
    labels = np.asarray(labels, dtype=np.int64)
    ecfg = cfg.embedder_config()
    model, info = EMBEDDERS[cfg.embedder](
        reader, labelled_ids=ids, labelled_y=labels, pool_ids=[], classes=classes, cfg=ecfg, limits=limits
    )
    with torch.inference_mode():
        vectors, _, ok = embed_ids(model, list(ids), reader=reader, batch_size=cfg.batch_size * 4, workers=cfg.workers)
    embed_s = time.perf_counter() - start
    probs = out_of_fold_probs(vectors[ok], labels[ok], num_classes=len(classes), folds=cfg.folds, seed=cfg.seed)
    verdict = find_issues(labels[ok], probs, filter_by=cfg.filter_by, max_fraction=cfg.max_fraction)
    issues = pd.DataFrame(
        {
            "image_id": list(ids),
            "label": [classes[c] for c in labels],
            "suggested_label": [classes[c] for c in labels],
            "label_quality": np.nan,
            "issue": False,
        }
    )
    issues.loc[ok, "suggested_label"] = [classes[c] for c in verdict["suggested"]]
    issues.loc[ok, "label_quality"] = verdict["label_quality"].to_numpy()
    issues.loc[ok, "issue"] = verdict["issue"].to_numpy()
    info = {
        **{k: v for k, v in info.items() if k in ("steps", "train_images", "final_loss")},
        "checked": int(ok.sum()),
        "unreadable": int((~ok).sum()),
        "flagged": int(issues["issue"].sum()),
        "flagged_by_label": {str(k): int(v) for k, v in issues.loc[issues["issue"], "label"].value_counts().items()},
        "embed_seconds": round(embed_s, 1),
        "seconds": round(time.perf_counter() - start, 1),
    }
    return NoiseResult(issues.astype({"issue": bool}), info)


def sample_weights(ids: Sequence[str], issues: pd.DataFrame | None, *, weight: float) -> np.ndarray | None:
    """Per-image sampling weights for training: ``weight`` for flagged images, 1 elsewhere.

    Returns None when nothing in ``ids`` is flagged (training draws as usual).
    """
    if issues is None or not issues["issue"].any():
        return None
    flagged = set(issues.loc[issues["issue"], "image_id"])
    w = np.array([weight if i in flagged else 1.0 for i in ids], dtype=np.float64)
    return None if (w == 1.0).all() else w
