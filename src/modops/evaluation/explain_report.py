"""Grad-CAM for models: grids of each category's top positives and worst errors, and one-image heatmaps.

Glue between the predictor seam and :mod:`modops.evaluation.explain` (captum). A cascade is
explained through stage 1, which sees every image; ``explain_image`` adds stage 2's map when
the image reached it. No files and no tracking here: callers save and log the images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image

from modops.data.datasets import ImageReader
from modops.evaluation.explain import gradcam, image_grid, overlay, select_examples
from modops.models.backbones import get_backbone

__all__ = ["member_heatmaps", "explanation_grids", "explain_image"]

_KINDS = (
    ("top_positives", "top positives"),
    ("false_positives", "false positives (highest-scored negatives)"),
    ("false_negatives", "false negatives (lowest-scored positives)"),
)


def member_heatmaps(predictor, member_index: int, images: torch.Tensor, targets: Sequence[int]) -> np.ndarray:  # noqa: ANN001
    """Grad-CAM of one predictor member for uint8 images [N, 3, S, S]; float32 [N, size, size] in [0, 1]."""
    member = predictor.members[member_index]
    layer = member.net.get_submodule(get_backbone(member.backbone).gradcam_layer)
    x = member.inputs(images, spec=predictor.spec, runtime=predictor.runtime)
    return gradcam(member.net, layer, x, list(targets))


def explanation_grids(
    predictor,  # noqa: ANN001 - a modops Predictor
    scores: pd.DataFrame,
    thresholds: dict[str, float],
    *,
    reader: ImageReader,
    k: int = 8,
) -> dict[str, Image.Image]:
    """One grid per category and kind: top positives, false positives, false negatives.

    Args:
        predictor: The evaluated model.
        scores: Holdout scores: ``image_id``, ``label``, ``p_<class>`` and optionally ``stage2``.
        thresholds: Category -> decision threshold (from val).
        reader: Returns an image's bytes.
        k: Examples per grid.

    Returns:
        ``{"<category>_<kind>": grid image}``; a kind without examples gets a "no examples" grid.
    """
    classes, preset = predictor.spec.classes, predictor.preset()
    grids: dict[str, Image.Image] = {}
    for cat in classes[1:]:
        col = f"p_{cat}"
        picked = select_examples(
            (scores["label"] == cat).to_numpy(), scores[col].to_numpy(), threshold=thresholds[cat], k=k
        )
        for kind, title in _KINDS:
            rows = scores.iloc[picked[kind]]
            images = torch.stack([preset(reader.get(i)) for i in rows["image_id"]]) if len(rows) else None
            tiles, captions = [], []
            if images is not None:
                heat = member_heatmaps(predictor, 0, images, [classes.index(cat)] * len(rows))
                for img, h, (_, row) in zip(images, heat, rows.iterrows(), strict=True):
                    tiles.append(overlay(img, h))
                    routed = " s2" if bool(row.get("stage2", False)) else ""
                    captions.append(f"{row['label']} {row[col]:.3f}{routed}")
            grids[f"{cat}_{kind}"] = image_grid(
                tiles, captions=captions, columns=min(k, 8), title=f"{cat}: {title} (threshold {thresholds[cat]:.3f})"
            )
    return grids


def explain_image(predictor, data: bytes, *, category: str | None = None) -> tuple[Image.Image, dict]:  # noqa: ANN001
    """Heatmap of why the model scores one image as it does.

    Args:
        predictor: A single model or a cascade.
        data: The image's bytes (decoded with the model's own safe preset).
        category: The category to explain; default the highest-scored violating category.

    Returns:
        The input, its stage-1 overlay and, when the image reached a cascade's stage 2, its
        stage-2 overlay, side by side; and ``{"category", "scores", "stage2"}``.
    """
    classes = predictor.spec.classes
    if category is not None and category not in classes[1:]:
        raise ValueError(f"unknown category {category!r}; choose one of {list(classes[1:])}")
    image = predictor.preset()(data)
    pred = predictor.predict(image[None])
    probs = pred.probs[0]
    cat = category or classes[1 + int(np.argmax(probs[1:]))]
    target = classes.index(cat)
    tiles = [
        Image.fromarray(image.permute(1, 2, 0).numpy()),
        overlay(image, member_heatmaps(predictor, 0, image[None], [target])[0]),
    ]
    captions = ["input", f"{predictor.members[0].name}: {cat} {probs[target]:.3f}"]
    if bool(pred.stage2[0]):
        tiles.append(overlay(image, member_heatmaps(predictor, 1, image[None], [target])[0]))
        captions.append(f"{predictor.members[1].name} (reached)")
    grid = image_grid(tiles, captions=captions, columns=len(tiles), tile_size=max(160, predictor.spec.image_size))
    info = {
        "category": cat,
        "scores": {c: float(p) for c, p in zip(classes, probs, strict=True)},
        "stage2": bool(pred.stage2[0]),
    }
    return grid, info
