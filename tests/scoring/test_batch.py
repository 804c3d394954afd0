from __future__ import annotations

import numpy as np
import pytest
import torch

from modops.data.store import ImageStore
from modops.models import MemberSpec, ModelSpec, create_model
from modops.models.predictor import Cascade, SingleModel
from modops.scoring.batch import score_ids
from tests.conftest import image_bytes

CLASSES = ("clean", "nudity", "violence")
SIZES = [(40, 24), (24, 40), (32, 32), (48, 20), (17, 45)]


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("cnn_small", num_classes=len(CLASSES)).eval()


@pytest.fixture
def predictor() -> SingleModel:
    return SingleModel(ModelSpec(classes=CLASSES, members=(MemberSpec("model", "cnn_small", 32),)), _net(0))


@pytest.fixture
def store_ids(tmp_path) -> tuple[ImageStore, list[str]]:
    store = ImageStore(tmp_path / "store")
    fmts = ["JPEG", "PNG"]
    ids = [store.put(image_bytes(i, size=s, fmt=fmts[i % 2]))[0] for i, s in enumerate(SIZES)]
    return store, ids


def test_score_ids_matches_scoring_one_by_one_in_input_order(predictor, store_ids):
    store, ids = store_ids
    ids = ids[::-1]  # input order, not store order
    scores = score_ids(predictor, ids, reader=store, batch_size=2)
    assert scores.probs.shape == (len(ids), 3) and scores.probs.dtype == np.float32
    assert scores.ok.all() and scores.errors == ("",) * len(ids)
    preset = predictor.preset()
    one_by_one = np.concatenate([predictor.predict(preset(store.get(i))[None]).probs for i in ids])
    np.testing.assert_allclose(scores.probs, one_by_one, atol=1e-6)
    np.testing.assert_allclose(scores.probs.sum(axis=1), 1.0, rtol=1e-5)


def test_a_corrupt_stored_file_gets_a_nan_row_and_an_error(predictor, store_ids):
    store, ids = store_ids
    store.path(ids[2]).write_bytes(b"this is not an image at all")
    progress: list[int] = []
    scores = score_ids(predictor, ids, reader=store, batch_size=2, progress=progress.append)
    assert scores.ok.tolist() == [True, True, False, True, True]
    assert np.isnan(scores.probs[2]).all()
    assert "not_an_image" in scores.errors[2]
    good = [0, 1, 3, 4]
    assert np.isfinite(scores.probs[good]).all()
    assert all(scores.errors[i] == "" for i in good)
    assert sum(progress) == len(ids)
    clean = score_ids(predictor, [ids[i] for i in good], reader=store, batch_size=2)
    np.testing.assert_allclose(scores.probs[good], clean.probs, atol=1e-6)


def test_a_missing_stored_file_is_reported(predictor, store_ids):
    store, ids = store_ids
    store.path(ids[0]).unlink()
    scores = score_ids(predictor, ids, reader=store, batch_size=4)
    assert not scores.ok[0] and scores.ok[1:].all()
    assert "FileNotFoundError" in scores.errors[0]


def test_workers_do_not_change_the_scores(predictor, store_ids):
    store, ids = store_ids
    # More ids than batch_size, or score_ids decodes in-process whatever ``workers`` says.
    in_process = score_ids(predictor, ids, reader=store, batch_size=2, workers=0)
    one_worker = score_ids(predictor, ids, reader=store, batch_size=2, workers=1)
    np.testing.assert_array_equal(one_worker.probs, in_process.probs)
    np.testing.assert_array_equal(one_worker.ok, in_process.ok)


def test_stage2_share(predictor, store_ids):
    store, ids = store_ids
    assert score_ids(predictor, ids, reader=store).stage2_share == 0.0
    spec = ModelSpec(
        classes=CLASSES,
        members=(MemberSpec("stage1", "cnn_small", 32), MemberSpec("stage2", "cnn_small", 32)),
        kind="cascade",
        combine={"rule": "band", "low": 0.0, "high": 1.0, "fuse": "mean"},
    )
    scores = score_ids(Cascade(spec, _net(1), _net(2)), ids, reader=store)
    assert scores.stage2.all() and scores.stage2_share == 1.0


def test_no_ids_gives_empty_scores(predictor, store_ids):
    store, _ = store_ids
    scores = score_ids(predictor, [], reader=store)
    assert scores.probs.shape == (0, 3) and scores.stage2_share == 0.0
