from __future__ import annotations

import numpy as np
import pytest
import torch

from modops.data.datasets import (
    Batch,
    MemoryReader,
    StoreDataset,
    balanced_sampler,
    class_weights,
    collate,
    make_loader,
)
from modops.data.transforms import EvalPreset, TrainPreset
from tests.conftest import image_bytes

S = 24


@pytest.fixture
def reader() -> MemoryReader:
    return MemoryReader({f"id{i}": image_bytes(i, size=(20 + 4 * i, 30)) for i in range(6)})


def test_item_shape_and_labels(reader):
    ds = StoreDataset(reader, ["id0", "id1"], [1, 0], transform=EvalPreset(S))
    x, y, i, ok, err = ds[0]
    assert x.shape == (3, S, S) and x.dtype == torch.uint8
    assert (y, i, ok, err) == (1, 0, True, "")
    assert len(ds) == 2


def test_unlabelled_items_get_label_minus_one(reader):
    ds = StoreDataset(reader, ["id0", "id1"], transform=EvalPreset(S))
    assert ds[1][1] == -1


def test_two_views_are_stacked_and_differ(reader):
    ds = StoreDataset(reader, ["id0"], transform=TrainPreset(S), views=2)
    torch.manual_seed(0)
    x = ds[0][0]
    assert x.shape == (2, 3, S, S)
    assert not torch.equal(x[0], x[1])


def test_bad_arguments_are_refused(reader):
    with pytest.raises(ValueError, match="differ in length"):
        StoreDataset(reader, ["id0", "id1"], [0], transform=EvalPreset(S))
    with pytest.raises(ValueError, match="views"):
        StoreDataset(reader, ["id0"], transform=EvalPreset(S), views=0)


def test_a_missing_id_gives_a_placeholder_not_an_exception(reader):
    ds = StoreDataset(reader, ["nope"], [1], transform=EvalPreset(S), views=2)
    x, y, _, ok, err = ds[0]
    assert not ok and "FileNotFoundError" in err and "nope" in err
    assert x.shape == (2, 3, S, S) and not x.any()
    assert y == 1


def test_undecodable_bytes_give_a_placeholder_not_an_exception(reader):
    reader.images["bad"] = b"\xff\xd8\xff garbage"
    x, _, _, ok, err = StoreDataset(reader, ["bad"], transform=EvalPreset(S))[0]
    assert not ok and "QuarantineError" in err
    assert x.shape == (3, S, S)


def test_memory_reader_from_uint8_round_trips():
    images = torch.randint(0, 256, (3, 3, S, S), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    reader, ids = MemoryReader.from_uint8(images)
    assert len(ids) == 3 == len(set(ids))
    ds = StoreDataset(reader, ids, transform=EvalPreset(S))
    for k in range(3):
        assert torch.equal(ds[k][0], images[k])


def test_collate_builds_a_batch(reader):
    reader.images["bad"] = b"garbage"
    ds = StoreDataset(reader, ["id0", "bad", "id2"], [0, 1, 2], transform=EvalPreset(S))
    batch = collate([ds[k] for k in range(3)])
    assert isinstance(batch, Batch)
    assert batch.images.shape == (3, 3, S, S) and batch.images.dtype == torch.uint8
    assert batch.labels.tolist() == [0, 1, 2] and batch.labels.dtype == torch.int64
    assert batch.index.tolist() == [0, 1, 2]
    assert batch.ok.tolist() == [True, False, True]
    assert batch.errors[0] == batch.errors[2] == "" and batch.errors[1]


def test_one_worker_yields_the_same_batches_as_none(reader):
    ds = StoreDataset(reader, sorted(reader.images), list(range(6)), transform=EvalPreset(S))
    in_process = list(make_loader(ds, batch_size=4, workers=0))
    one_worker = list(make_loader(ds, batch_size=4, workers=1))
    assert [len(b.index) for b in in_process] == [4, 2]
    assert len(one_worker) == len(in_process)
    for a, b in zip(in_process, one_worker, strict=True):
        assert torch.equal(a.images, b.images)
        assert torch.equal(a.labels, b.labels) and torch.equal(a.index, b.index) and torch.equal(a.ok, b.ok)


def test_shuffled_loader_is_seeded(reader):
    ds = StoreDataset(reader, sorted(reader.images), transform=EvalPreset(S))

    def order(seed: int) -> list[int]:
        return torch.cat([b.index for b in make_loader(ds, batch_size=4, shuffle=True, seed=seed)]).tolist()

    assert order(3) == order(3)
    assert sorted(order(3)) == list(range(6))


def test_class_weights_are_inverse_frequency_and_capped():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    w = class_weights(labels, num_classes=4, cap=20.0)
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, torch.tensor([1.0, 10.0, 20.0, 0.0]))


def test_balanced_sampler_over_samples_the_rare_class():
    labels = np.array([0] * 95 + [1] * 5)
    sampler = balanced_sampler(labels, num_classes=2, cap=10.0, num_samples=2000, seed=0)
    drawn = labels[list(sampler)]
    assert len(drawn) == 2000
    share = (drawn == 1).mean()
    # Weight 10 per positive: expected share 50 / (95 + 50) ~ 0.34, against a prevalence of 0.05.
    assert 0.28 < share < 0.41
    assert list(balanced_sampler(labels, num_classes=2, cap=10.0, num_samples=50, seed=1)) == list(
        balanced_sampler(labels, num_classes=2, cap=10.0, num_samples=50, seed=1)
    )


def test_loader_with_a_sampler_draws_from_it(reader):
    labels = np.array([0, 0, 0, 0, 0, 1])
    ds = StoreDataset(reader, sorted(reader.images), labels, transform=EvalPreset(S))
    sampler = balanced_sampler(labels, num_classes=2, cap=5.0, num_samples=12, seed=0)
    batches = list(make_loader(ds, batch_size=4, sampler=sampler))
    assert sum(len(b.index) for b in batches) == 12
