from __future__ import annotations

import numpy as np
import torch

from modops.data.store import ImageStore
from modops.models import ModelSpec, create_model
from modops.scoring.batch import predict_probs, score_ids
from tests.conftest import image_bytes


def test_predict_probs_rows_sum_to_one_and_batching_is_invariant():
    torch.manual_seed(0)
    model = create_model("mobilenet_v3_small", num_classes=3).eval()
    x = torch.randint(0, 255, (10, 3, 48, 48), dtype=torch.uint8)
    spec = ModelSpec(backbone="mobilenet_v3_small", classes=("a", "b", "c"), image_size=48)
    p1 = predict_probs(model, x, mean=spec.mean, std=spec.std, batch_size=3)
    p2 = predict_probs(model, x, mean=spec.mean, std=spec.std, batch_size=10)
    assert p1.shape == (10, 3)
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(p1, p2, atol=1e-5)


def test_score_ids_reads_the_store(tmp_path):
    store = ImageStore(tmp_path)
    ids = [store.put(image_bytes(i, size=(60 + i, 50)))[0] for i in range(5)]
    model = create_model("mobilenet_v3_small", num_classes=2).eval()
    spec = ModelSpec(backbone="mobilenet_v3_small", classes=("a", "b"), image_size=32)
    probs = score_ids(model, spec, ids, read=store.get, batch_size=2)
    assert probs.shape == (5, 2)
