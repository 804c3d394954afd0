"""The cold-start embedder decodes every image, in training and embedding, under the ingest decode limits."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from modops.active.embed import build_embedding
from modops.config import ColdStartConfig
from modops.data.datasets import MemoryReader
from modops.data.images import DecodeLimits
from modops.models.backbones import create_model
from tests.active.test_cold_start import CFG, CLASSES, _pool

#: The pool's images are 32 x 32: exactly at this cap. An image at twice the side is over it.
SMALL_CAP = DecodeLimits(max_pixels=32 * 32)


def _twice_the_side(data: bytes) -> bytes:
    img = Image.open(io.BytesIO(data))
    buf = io.BytesIO()
    img.resize((img.width * 2, img.height * 2), Image.Resampling.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


def _embed(reader: MemoryReader, ids: list[str], y: np.ndarray, cfg: ColdStartConfig):  # noqa: ANN202
    seeds = [ids[i] for i in np.flatnonzero(y)[:5]]
    pool = ids[40:]
    return build_embedding(
        reader,
        labelled_ids=seeds,
        labelled_y=np.ones(len(seeds), np.int64),
        pool_ids=pool,
        query_ids=seeds,
        classes=CLASSES,
        cfg=cfg,
        limits=SMALL_CAP,
    )


def test_a_seed_over_the_ingest_pixel_cap_is_unreadable_exactly_as_a_corrupt_one():
    reader, ids, y = _pool()
    seed = ids[int(np.flatnonzero(y)[0])]  # trained on (a labelled image) and embedded (a query)
    over = MemoryReader({**reader.images, seed: _twice_the_side(reader.images[seed])})
    corrupt = MemoryReader({**reader.images, seed: b"garbage"})
    cfg = CFG.model_copy(update={"steps": 10})
    a, b = _embed(over, ids, y, cfg), _embed(corrupt, ids, y, cfg)
    assert a.info["unreadable"] == b.info["unreadable"] == [seed]
    assert seed not in a.ids and a.ids == b.ids
    # Skipped in training as the corrupt file is: the same network, so the same vectors and scores.
    np.testing.assert_array_equal(a.vectors, b.vectors)
    np.testing.assert_array_equal(a.probs, b.probs)


def test_the_pretrained_embedder_decodes_under_the_limits_too(tmp_path):
    reader, ids, y = _pool()
    big = ids[41]  # an unlabelled pool image
    reader = MemoryReader({**reader.images, big: _twice_the_side(reader.images[big])})
    weights = tmp_path / "weights.pt"
    torch.save(create_model(CFG.backbone, num_classes=len(CLASSES)).state_dict(), weights)
    cfg = CFG.model_copy(update={"embedder": "pretrained", "pretrained": "path", "weights_path": str(weights)})
    emb = _embed(reader, ids, y, cfg)
    assert emb.info["unreadable"] == [big]
