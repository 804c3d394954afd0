from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from modops.data.images import DecodeLimits
from modops.models import MemberSpec, ModelSpec, create_model
from modops.models.predictor import SingleModel
from modops.scoring.daily import (
    embedding_projection,
    parse_day,
    read_partition,
    score_uploads,
    write_partition,
)
from modops.scoring.uploads import SourceReader
from tests.conftest import image_bytes

CLASSES = ("clean", "spam", "weapon")


@pytest.fixture
def predictor() -> SingleModel:
    torch.manual_seed(0)
    net = create_model("cnn_small", num_classes=len(CLASSES)).eval()
    spec = ModelSpec(classes=CLASSES, members=(MemberSpec("model", "cnn_small", 32),), thresholds={"spam": 0.0})
    return SingleModel(replace(spec, decode_limits=DecodeLimits(max_bytes=20_000)), net)


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    day = tmp_path / "uploads" / "2026-12-01"
    (day / "sub").mkdir(parents=True)
    (day / "a.jpg").write_bytes(image_bytes(1, size=(60, 30)))
    (day / "b.png").write_bytes(image_bytes(2, size=(20, 40), fmt="PNG"))
    (day / "sub" / "c.jpg").write_bytes(image_bytes(3))
    (day / "broken.jpg").write_bytes(image_bytes(4)[:200])
    (day / "notes.txt").write_text("not an image")
    (day / "tiny.png").write_bytes(image_bytes(5, size=(4, 4), fmt="PNG"))
    (day / "huge.png").write_bytes(image_bytes(6, size=(200, 200), fmt="PNG"))  # over max_bytes
    return day


def _score(predictor, day: Path, **kw):  # noqa: ANN001, ANN202
    from modops.data.sources import list_source

    uris = [item.uri for item in list_source(str(day))]
    reader = SourceReader(str(day), max_bytes=predictor.spec.decode_limits.max_bytes)
    return score_uploads(predictor, reader, uris, min_side=8, batch_size=2, embedding_dims=4, **kw)


def test_every_upload_is_scored_or_quarantined_with_its_reason(predictor, uploads):
    progress: list[int] = []
    scored = _score(predictor, uploads, progress=progress.append)
    p, q = scored.predictions, scored.quarantine
    assert p["uri"].tolist() == ["a.jpg", "b.png", "sub/c.jpg"]
    reasons = dict(zip(q["uri"], q["reason"], strict=True))
    assert reasons.pop("broken.jpg") in {"truncated", "corrupt"}
    assert reasons == {
        "huge.png": "file_too_large",
        "notes.txt": "not_an_image",
        "tiny.png": "too_small",
    }
    assert sum(progress) == 7
    assert p["image_id"][0] == hashlib.sha256((uploads / "a.jpg").read_bytes()).hexdigest()
    assert (p[["width", "height", "format"]].values.tolist()) == [[60, 30, "JPEG"], [20, 40, "PNG"], [48, 40, "JPEG"]]
    np.testing.assert_allclose(p["aspect_ratio"], [2.0, 0.5, 1.2])
    assert p["brightness"].between(0, 1).all() and (p["file_bytes"] > 0).all()
    np.testing.assert_allclose(p[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1.0, rtol=1e-5)
    assert [c for c in p.columns if c.startswith("emb_")] == ["emb_00", "emb_01", "emb_02", "emb_03"]
    # spam's threshold is 0, so everything flags spam; weapon has no threshold, so nothing flags it.
    assert p["flag_spam"].all() and not p["flag_weapon"].any()
    assert p["flagged"].all() and (p["category"] == "spam").all()


def test_scores_match_the_predictor_one_image_at_a_time(predictor, uploads):
    scored = _score(predictor, uploads)
    preset = predictor.preset()
    for row in scored.predictions.itertuples():
        probs = predictor.predict(preset((uploads / row.uri).read_bytes())[None]).probs[0]
        np.testing.assert_allclose([row.p_clean, row.p_spam, row.p_weapon], probs, atol=1e-5)


def test_a_partition_is_rewritten_identically_and_versions_sit_side_by_side(predictor, uploads, tmp_path):
    log = tmp_path / "log"
    first = write_partition(log, _score(predictor, uploads), day="2026-12-01", model_version="3")
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    again = write_partition(log, _score(predictor, uploads), day="2026-12-01", model_version="3")
    assert {p.name: p.read_bytes() for p in again.iterdir()} == before
    write_partition(log, _score(predictor, uploads), day="2026-12-01", model_version="4")
    assert sorted(p.name for p in (log / "day=2026-12-01").iterdir()) == ["model_version=3", "model_version=4"]
    back = read_partition(log, day="2026-12-01", model_version="3")
    assert (back.predictions["model_version"] == "3").all() and (back.predictions["day"] == "2026-12-01").all()
    assert len(back.quarantine) == 4
    with pytest.raises(FileNotFoundError, match=r"model_version=3.*modops score"):
        read_partition(log, day="2026-12-01", model_version="9")


def test_an_empty_day_writes_an_empty_partition(predictor, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    scored = _score(predictor, empty)
    assert scored.predictions.empty and scored.quarantine.empty
    assert "p_spam" in scored.predictions.columns and "emb_03" in scored.predictions.columns
    out = write_partition(tmp_path / "log", scored, day="2026-12-02", model_version="1")
    assert pd.read_parquet(out / "predictions.parquet").empty


def test_projection_is_fixed_by_its_seed():
    a = embedding_projection(64, dims=8, seed=3)
    np.testing.assert_array_equal(a, embedding_projection(64, dims=8, seed=3))
    assert a.shape == (64, 8) and not np.array_equal(a, embedding_projection(64, dims=8, seed=4))
    np.testing.assert_array_equal(embedding_projection(8, dims=32, seed=0), np.eye(8, dtype=np.float32))


@pytest.mark.parametrize("bad", ["2026-13-01", "yesterday", "2026-1-1", ""])
def test_a_bad_day_says_the_expected_form(bad):
    with pytest.raises(ValueError, match="YYYY-MM-DD|calendar date"):
        parse_day(bad)
