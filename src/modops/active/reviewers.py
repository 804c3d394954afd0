"""Who confirms retrieved candidates, by name (``cold_start.reviewer``).

A reviewer receives the Label Studio import tasks and returns a Label Studio JSON *export*
(tasks with annotations), or None when no decisions exist yet. Every reviewer goes through
the same importer (:func:`modops.active.labelstudio.parse_export`), so the demo's stand-in
exercises the exact path real reviewers' exports take.

- ``label_studio``: the export the reviewers downloaded from Label Studio, at
  ``cold_start.confirmations`` (JSON, JSON_MIN, or CSV with image_id and label); when that file
  does not exist yet, nothing is imported and the candidates wait for review.
- ``none``: export candidates only.
- ``demo_oracle``: the demo pool's ground truth answers (``modops.demo.oracle``); for the demo only.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["REVIEWERS", "ReviewContext", "get_reviewer"]


@dataclass(frozen=True)
class ReviewContext:
    """What a reviewer may need besides the tasks.

    Attributes:
        classes: Every label, negative first.
        confirmations: Path of an export file (``label_studio``), or None.
        source: The ingest source (``demo_oracle`` reads the demo pool's ground truth there).
        labels_file: The labels file name inside the source.
        when: Timestamp given to decisions that carry none (deterministic, so re-runs agree).
    """

    classes: tuple[str, ...]
    confirmations: str | None
    source: str
    labels_file: str
    when: pd.Timestamp


Reviewer = Callable[[list[dict[str, Any]], ReviewContext], "list[dict[str, Any]] | pd.DataFrame | None"]


def _label_studio(tasks: list[dict[str, Any]], ctx: ReviewContext) -> list[dict[str, Any]] | pd.DataFrame | None:
    from modops.active.labelstudio import parse_export_csv

    if not ctx.confirmations:
        return None
    path = Path(ctx.confirmations)
    if not path.is_file():
        return None
    if path.suffix.lower() == ".csv":
        return parse_export_csv(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not a Label Studio JSON export: {exc}") from exc


def _none(tasks: list[dict[str, Any]], ctx: ReviewContext) -> None:
    return None


REVIEWERS: dict[str, Reviewer | str] = {
    "label_studio": _label_studio,
    "none": _none,
    # Imported on use: the demo package is not part of the core (nor of registered models).
    "demo_oracle": "modops.demo.oracle:review",
}


def get_reviewer(name: str) -> Reviewer:
    """Look up a reviewer by name, importing lazily registered ones."""
    if name not in REVIEWERS:
        raise ValueError(f"unknown reviewer {name!r}; choose one of {sorted(REVIEWERS)} (cold_start.reviewer)")
    entry = REVIEWERS[name]
    if isinstance(entry, str):
        module, attr = entry.split(":")
        entry = getattr(importlib.import_module(module), attr)
    return entry
