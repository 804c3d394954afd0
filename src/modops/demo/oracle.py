"""The demo's stand-in for human reviewers: the generator's ground truth answers review tasks.

It reads ``true_label`` from the demo pool's ``labels.csv`` (the column ingest ignores), finds
each task's image by the sha256 of its bytes (the image store key), and answers in Label
Studio's JSON *export* format, so its answers go through the same importer as real reviewers'.
Only the cold-start stage of the demo uses it (``cold_start.reviewer: demo_oracle``).
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

__all__ = ["truth_by_image_id", "review"]

WHO = "demo-oracle"


def truth_by_image_id(source: str | Path, *, labels_file: str = "labels.csv") -> dict[str, str]:
    """``{sha256 of image bytes: true label}`` for every image listed in a demo pool's labels file.

    Raises:
        FileNotFoundError: When the source is not a local demo pool.
        ValueError: When the labels file has no ``true_label`` column (not a demo pool).
    """
    root = Path(str(source))
    path = root / labels_file
    if not path.is_file():
        raise FileNotFoundError(
            f"demo_oracle needs the demo pool's {labels_file} at {path}; it only works on `modops demo-data` pools"
        )
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and "true_label" not in rows[0]:
        raise ValueError(f"{path} has no true_label column: it is not a demo pool, so demo_oracle cannot answer")
    truth = {}
    for row in rows:
        image = root / row["path"]
        if image.is_file():
            truth[hashlib.sha256(image.read_bytes()).hexdigest()] = row["true_label"]
    return truth


def review(tasks: list[dict[str, Any]], ctx: Any) -> list[dict[str, Any]]:  # noqa: ANN401 - a ReviewContext
    """Answer Label Studio tasks with the ground truth, as a Label Studio JSON export.

    Args:
        tasks: Import tasks (``data.image_id`` identifies the image).
        ctx: A :class:`modops.active.reviewers.ReviewContext` (source, labels file, timestamp).

    Returns:
        The tasks with one annotation each (``completed_by`` = ``demo-oracle``); images the
        pool does not know are left unannotated.
    """
    truth = truth_by_image_id(ctx.source, labels_file=ctx.labels_file)
    when = ctx.when.isoformat().replace("+00:00", "Z")
    exported = []
    for n, task in enumerate(tasks, start=1):
        label = truth.get(task["data"]["image_id"])
        annotations = []
        if label is not None:
            annotations.append(
                {
                    "id": n,
                    "completed_by": {"email": WHO},
                    "was_cancelled": False,
                    "created_at": when,
                    "updated_at": when,
                    "result": [
                        {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}
                    ],
                }
            )
        exported.append(
            {"id": n, "data": task["data"], "annotations": annotations, "predictions": task.get("predictions", [])}
        )
    return exported
