"""The cold-start round: seeds -> embedder -> retrieval -> export -> reviewers -> retrieval events."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from modops.active.cold_start import run_cold_start
from modops.active.labelstudio import parse_export
from modops.config import ColdStartConfig
from modops.data.datasets import MemoryReader
from modops.data.images import DecodeLimits, open_rgb

CLASSES = ("clean", "red")
T0 = pd.Timestamp("2026-11-01T00:00:00Z")


def _pool(n: int = 80, seed: int = 0) -> tuple[MemoryReader, list[str], np.ndarray]:
    """Dark noise, 1 in 4 images with a bright red square (the 'red' category)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 90, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = (torch.arange(n) % 4 == 0).long()
    for i in torch.nonzero(y).flatten():
        r, c = torch.randint(0, 16, (2,), generator=g)
        x[i, 0, r : r + 14, c : c + 14] = 255
    reader, ids = MemoryReader.from_uint8(x)
    hashed = {hashlib.sha256(v).hexdigest(): v for v in reader.images.values()}
    order = [hashlib.sha256(reader.images[i]).hexdigest() for i in ids]
    return MemoryReader(hashed), order, y.numpy()


def _snapshot(ids: list[str], y: np.ndarray, *, seeds: int, labelled: int) -> pd.DataFrame:
    rows = [{"image_id": ids[i], "label": "red", "source": "seed", "when": T0} for i in np.flatnonzero(y)[:seeds]]
    rows += [
        {"image_id": ids[i], "label": CLASSES[y[i]], "source": "upload", "when": T0} for i in range(40, 40 + labelled)
    ]
    return pd.DataFrame(rows, columns=["image_id", "label", "source", "when"])


CFG = ColdStartConfig(
    per_category=10, steps=30, image_size=32, batch_size=16, pool_negatives=20, workers=0, reviewer="label_studio"
)


def test_without_seeds_nothing_is_retrieved_and_the_metrics_say_why():
    reader, ids, y = _pool()
    result = run_cold_start(
        ids,
        _snapshot(ids, y, seeds=0, labelled=10),
        reader=reader,
        classes=CLASSES,
        cfg=CFG,
        source="x",
        labels_file="l.csv",
    )
    assert result.candidates.empty and result.events.empty and "no seed images" in result.metrics["note"]


def test_candidates_wait_for_review_until_an_export_exists(tmp_path):
    reader, ids, y = _pool()
    snap = _snapshot(ids, y, seeds=5, labelled=10)
    cfg = CFG.model_copy(update={"confirmations": str(tmp_path / "export.csv")})
    waiting = run_cold_start(ids, snap, reader=reader, classes=CLASSES, cfg=cfg, source="x", labels_file="l.csv")
    assert len(waiting.candidates) == 10 and waiting.events.empty and waiting.export is None
    assert "no confirmations" in waiting.metrics["note"]
    labelled = set(snap["image_id"])
    assert not labelled & set(waiting.candidates["image_id"])  # only unlabelled images are retrieved
    tasks = waiting.tasks
    assert {t["data"]["image_id"] for t in tasks} == set(waiting.candidates["image_id"])
    assert tasks[0]["predictions"][0]["result"][0]["value"]["choices"][0] in CLASSES
    truth = dict(zip(ids, y, strict=True))
    (tmp_path / "export.csv").write_text(
        "image_id,label,annotator\n"
        + "".join(f"{i},{CLASSES[truth[i]]},rev@example.com\n" for i in waiting.candidates["image_id"])
    )
    done = run_cold_start(ids, snap, reader=reader, classes=CLASSES, cfg=cfg, source="x", labels_file="l.csv")
    assert len(done.events) == 10 and set(done.events["source"]) == {"retrieval"}
    assert (done.events["when"] > T0).all()  # after the labels the round started from
    hits = done.metrics["precision_at_k"]["red"]
    assert hits["hits@10"] == int(sum(truth[i] for i in done.candidates["image_id"]))


def test_an_image_over_the_ingest_pixel_cap_is_unreadable_and_never_retrieved():
    reader, ids, y = _pool()
    snap = _snapshot(ids, y, seeds=5, labelled=10)
    big = ids[60]  # an unlabelled red image (every 4th is red), a likely candidate while readable
    img = Image.open(io.BytesIO(reader.images[big]))
    buf = io.BytesIO()
    img.resize((64, 64), Image.Resampling.NEAREST).save(buf, format="PNG")
    reader.images[big] = buf.getvalue()
    limits = DecodeLimits(max_pixels=32 * 32)  # the pool's 32 x 32 images are exactly at the cap
    assert open_rgb(reader.images[big]).size == (64, 64)  # readable under the default limits
    result = run_cold_start(
        ids, snap, reader=reader, classes=CLASSES, cfg=CFG, source="x", labels_file="l.csv", limits=limits
    )
    assert result.metrics["unreadable"] == 1
    assert big not in set(result.candidates["image_id"]) and len(result.candidates) == CFG.per_category


def test_an_export_with_unknown_labels_is_refused(tmp_path):
    reader, ids, y = _pool()
    snap = _snapshot(ids, y, seeds=5, labelled=10)
    cfg = CFG.model_copy(update={"confirmations": str(tmp_path / "export.csv")})
    first = run_cold_start(ids, snap, reader=reader, classes=CLASSES, cfg=cfg, source="x", labels_file="l.csv")
    (tmp_path / "export.csv").write_text(f"image_id,label\n{first.candidates['image_id'].iloc[0]},kitten\n")
    with pytest.raises(ValueError, match="kitten"):
        run_cold_start(ids, snap, reader=reader, classes=CLASSES, cfg=cfg, source="x", labels_file="l.csv")


def test_demo_oracle_answers_in_label_studio_export_format(small_pool):
    from modops.active.reviewers import ReviewContext, get_reviewer

    rows = pd.read_csv(small_pool / "labels.csv").head(5)
    image_ids = [hashlib.sha256((small_pool / p).read_bytes()).hexdigest() for p in rows["path"]]
    tasks = [{"data": {"image": "u", "image_id": i}} for i in [*image_ids, "0" * 64]]
    ctx = ReviewContext(("clean", "promo_spam", "disgusting", "weapon"), None, str(small_pool), "labels.csv", T0)
    export = get_reviewer("demo_oracle")(tasks, ctx)
    parsed = parse_export(export).set_index("image_id")
    assert len(parsed) == 5  # the unknown image gets no annotation
    assert parsed.loc[image_ids, "label"].tolist() == rows["true_label"].tolist()
    assert set(parsed["who"]) == {"demo-oracle"}
