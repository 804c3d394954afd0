"""Cold start by small-sample retrieval: from a handful of seed images to hundreds of labelled examples.

Alibaba's first model had a few seed images of each kind of disgusting image; a retrieval
platform found hundreds more in the content pool, people confirmed them, and the model
trained on the result. Here:

1. the seeds are the labelled images whose label source is ``seed`` (5 to 20 per category);
2. an embedder (:mod:`modops.active.embed`) embeds the unlabelled pool and the seeds;
3. faiss retrieves, per category, the unlabelled images nearest to its seeds;
4. the candidates are exported for confirmation: Label Studio import JSON with the
   embedder's class probabilities as pre-annotations, its labelling config, and a CSV;
5. a reviewer (:mod:`modops.active.reviewers`) returns decisions, which become ``retrieval``
   label events; precision at K says how well retrieval did.

Pure orchestration over arrays and frames: the stage writes the files.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modops.active.embed import build_embedding
from modops.active.labelstudio import export_csv, import_tasks, labeling_config, local_files_url, parse_export
from modops.active.retrieval import build_index, precision_at_k, retrieve_candidates
from modops.active.reviewers import ReviewContext, get_reviewer
from modops.config import ColdStartConfig
from modops.data.datasets import ImageReader
from modops.data.images import DecodeLimits
from modops.data.labelstore import BATCH_COLUMNS, events_from_frame

__all__ = ["ColdStartResult", "run_cold_start", "store_url"]


@dataclass
class ColdStartResult:
    """What a cold-start round produced.

    Attributes:
        candidates: category, image_id, score, rank, best_seed, n_seeds_hit.
        tasks: Label Studio import tasks.
        labeling_config: The Label Studio labelling config XML.
        candidates_csv: The candidates as CSV (for reviewers without Label Studio).
        export: What the reviewer returned (a Label Studio export), or None.
        confirmed: image_id, label, who, when of the decisions imported.
        events: The ``retrieval`` label events (:data:`BATCH_COLUMNS`).
        metrics: Counts, precision at K per category, embedder figures, notes.
    """

    candidates: pd.DataFrame
    tasks: list[dict[str, Any]]
    labeling_config: str
    candidates_csv: str
    export: list[dict[str, Any]] | pd.DataFrame | None
    confirmed: pd.DataFrame
    events: pd.DataFrame
    metrics: dict[str, Any] = field(default_factory=dict)


def store_url(prefix: str) -> Any:  # noqa: ANN401
    """Image URL for Label Studio's local-files storage rooted at the image store (``ab/abcdef...``)."""
    return lambda image_id: local_files_url(f"{image_id[:2]}/{image_id}", prefix=prefix)


def _seeds(snapshot: pd.DataFrame, categories: tuple[str, ...]) -> dict[str, list[str]]:
    seeds = snapshot[snapshot["source"] == "seed"]
    return {c: sorted(seeds.loc[seeds["label"] == c, "image_id"]) for c in categories if (seeds["label"] == c).any()}


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in BATCH_COLUMNS}).astype(
        {"when": "datetime64[ns, UTC]", "round": "int64"}
    )


def run_cold_start(
    image_ids: list[str],
    snapshot: pd.DataFrame,
    *,
    reader: ImageReader,
    classes: tuple[str, ...],
    cfg: ColdStartConfig,
    source: str,
    labels_file: str,
    limits: DecodeLimits | None = None,
    exclude: Collection[str] = frozenset(),
) -> ColdStartResult:
    """One cold-start round over the ingested images.

    Args:
        image_ids: Every ingested image id (the manifest), shape [N].
        snapshot: The label store's current labels (``image_id``, ``label``, ``source``, ``when``).
        reader: Returns an image's bytes.
        classes: Every label, negative first.
        cfg: The ``cold_start`` section.
        source, labels_file: The ingest source and labels file (for the demo oracle).
        limits: Decode limits for every image the embedder reads: those ingest enforced
            (:func:`modops.data.ingest.read_decode_limits`); defaults to :class:`DecodeLimits` ().
            An image outside them is unreadable (counted in ``metrics["unreadable"]``, never retrieved).
        exclude: Image ids labelled outside ``snapshot`` (relabel rounds, reviews): never
            retrieved, since someone already looked at them, and not used for training.

    Returns:
        The round's candidates, exports, confirmed decisions, events and metrics. Without seed
        images nothing is retrieved, and the metrics say so.
    """
    index = {c: i for i, c in enumerate(classes)}
    seeds = _seeds(snapshot, classes[1:])
    labelled = snapshot[snapshot["label"].isin(classes) & snapshot["image_id"].isin(image_ids)]
    pool = sorted(set(image_ids) - set(labelled["image_id"]) - set(exclude))
    metrics: dict[str, Any] = {
        "seeds": {c: len(v) for c, v in seeds.items()},
        "unlabelled_pool": len(pool),
        "labelled": int(len(labelled)),
    }
    config_xml = labeling_config(classes)
    if not seeds or not pool:
        metrics["note"] = "no seed images (label_source=seed)" if not seeds else "no unlabelled images to retrieve from"
        empty = pd.DataFrame(columns=["category", "image_id", "score", "rank", "best_seed", "n_seeds_hit"])
        return ColdStartResult(empty, [], config_xml, "", None, _confirmed_frame(), _empty_events(), metrics)
    emb = build_embedding(
        reader,
        labelled_ids=labelled["image_id"].tolist(),
        labelled_y=labelled["label"].map(index).to_numpy(np.int64),
        pool_ids=pool,
        query_ids=[i for ids in seeds.values() for i in ids],
        classes=classes,
        cfg=cfg,
        limits=limits or DecodeLimits(),
    )
    metrics["embedder"] = {k: v for k, v in emb.info.items() if k != "unreadable"}
    metrics["unreadable"] = len(emb.info.get("unreadable", []))
    pool_ok = [i for i in pool if i not in set(emb.info.get("unreadable", []))]
    seed_vectors = {c: emb.rows([i for i in ids if i in set(emb.ids)]) for c, ids in seeds.items()}
    pool_vectors = emb.rows(pool_ok)
    candidates = retrieve_candidates(
        pool_ok,
        pool_vectors,
        seed_vectors,
        per_category=cfg.per_category,
        index=build_index(pool_vectors, kind=cfg.index, seed=cfg.seed),
    )
    scores = _score_frame(emb, candidates, classes)
    url = store_url(cfg.image_url_prefix)
    tasks = import_tasks(candidates, image_url=url, model_version=f"cold_start/{cfg.embedder}", scores=scores)
    when = _decision_time(snapshot)
    ctx = ReviewContext(classes, cfg.confirmations, source, labels_file, when)
    export = get_reviewer(cfg.reviewer)(tasks, ctx)
    confirmed = _confirmed(export, classes=classes, candidates=candidates, when=when)
    events = (
        events_from_frame(confirmed, source="retrieval", who="who", when="when", round=0)
        if len(confirmed)
        else _empty_events()
    )
    metrics.update(_review_metrics(candidates, confirmed, classes=classes, reviewer=cfg.reviewer))
    return ColdStartResult(
        candidates, tasks, config_xml, export_csv(candidates, image_url=url), export, confirmed, events, metrics
    )


def _score_frame(emb, candidates: pd.DataFrame, classes: tuple[str, ...]) -> pd.DataFrame | None:  # noqa: ANN001
    if emb.probs is None:
        return None
    ids = sorted(set(candidates["image_id"]))
    pos = {i: n for n, i in enumerate(emb.ids)}
    probs = emb.probs[[pos[i] for i in ids]]
    return pd.DataFrame({"image_id": ids, **{f"p_{c}": probs[:, k] for k, c in enumerate(classes)}})


def _decision_time(snapshot: pd.DataFrame) -> pd.Timestamp:
    """A deterministic time for decisions that carry none: just after the newest label."""
    latest = pd.to_datetime(snapshot["when"], utc=True).max() if len(snapshot) else pd.Timestamp(0, tz="UTC")
    return latest + pd.Timedelta(seconds=1)


def _confirmed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": pd.Series(dtype=object),
            "label": pd.Series(dtype=object),
            "who": pd.Series(dtype=object),
            "when": pd.Series(dtype="datetime64[ns, UTC]"),
        }
    )


def _confirmed(export, *, classes: tuple[str, ...], candidates: pd.DataFrame, when: pd.Timestamp) -> pd.DataFrame:  # noqa: ANN001
    """Decisions on candidate images, with known labels only (unknown ones are an error that names them)."""
    if export is None:
        return _confirmed_frame()
    frame = export if isinstance(export, pd.DataFrame) else parse_export(export)
    frame = frame[frame["image_id"].isin(set(candidates["image_id"]))].copy()
    unknown = sorted(set(frame["label"]) - set(classes))
    if unknown:
        raise ValueError(f"the reviewers' export has labels {unknown} outside params labels {list(classes)}")
    frame["who"] = frame["who"].fillna("").replace("", "unknown") if "who" in frame else "unknown"
    frame["when"] = pd.to_datetime(frame["when"], utc=True).fillna(when) if "when" in frame else when
    return frame[["image_id", "label", "who", "when"]].sort_values("image_id").reset_index(drop=True)


def _review_metrics(candidates: pd.DataFrame, confirmed: pd.DataFrame, *, classes, reviewer: str) -> dict[str, Any]:  # noqa: ANN001
    out: dict[str, Any] = {
        "reviewer": reviewer,
        "candidates": {c: int((candidates["category"] == c).sum()) for c in classes[1:]},
        "distinct_candidates": int(candidates["image_id"].nunique()),
        "confirmed": int(len(confirmed)),
        "confirmed_by_label": {c: int((confirmed["label"] == c).sum()) for c in classes},
    }
    if len(confirmed):
        ks = sorted({10, 50, 100, int(candidates.groupby("category").size().max())})
        out["precision_at_k"] = precision_at_k(candidates, confirmed[["image_id", "label"]], ks=ks)
    else:
        out["note"] = "candidates exported; no confirmations imported yet"
    return out
