"""Training decodes every image under the ingest decode limits (``TrainData.decode_limits``).

An image outside them (here: over a small pixel cap) is unreadable, exactly as a corrupt file
is: the loaders mark it ``ok=False``, the trainers skip and count it, mining gives it no loss.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
from PIL import Image

from modops.config import CascadeConfig
from modops.data.datasets import MemoryReader
from modops.data.images import DecodeLimits, QuarantineError
from modops.data.transforms import EvalPreset
from modops.training.cascade import _losses
from modops.training.loop import labelled_loader, new_network, setup_runtime, val_loader

TRAINER_NAMES = ("supervised", "mean_teacher", "ohem_cascade")
#: The tiny images are 32 x 32: exactly at this cap. An image at twice the side is over it.
SMALL_CAP = DecodeLimits(max_pixels=32 * 32)


def _twice_the_side(data: bytes) -> bytes:
    """The same picture at twice the side (4x the pixels), as PNG."""
    img = Image.open(io.BytesIO(data))
    buf = io.BytesIO()
    img.resize((img.width * 2, img.height * 2), Image.Resampling.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


def _with_images(data, replace: dict[str, bytes]):  # noqa: ANN001, ANN202
    return dataclasses.replace(data, reader=MemoryReader({**data.reader.images, **replace}), decode_limits=SMALL_CAP)


def test_the_enlarged_image_is_fine_by_default_and_over_the_small_cap(tiny):
    data = tiny.make_data()
    big = _twice_the_side(data.reader.images[data.train_ids[0]])
    assert EvalPreset(32)(big).shape == (3, 32, 32)  # readable under the default limits
    with pytest.raises(QuarantineError) as exc:
        EvalPreset(32, limits=SMALL_CAP)(big)
    assert exc.value.reason == "over_pixel_cap"


def test_loaders_mark_an_image_over_the_ingest_pixel_cap_unreadable(tiny):
    data = tiny.make_data()
    first_train, first_val = data.train_ids[0], data.val_ids[0]
    data = _with_images(
        data,
        {
            first_train: _twice_the_side(data.reader.images[first_train]),
            first_val: _twice_the_side(data.reader.images[first_val]),
        },
    )
    cfg = tiny.make_cfg("supervised", imbalance="none")
    train = labelled_loader(
        data.reader,
        data.train_ids,
        data.train_y,
        cfg=cfg,
        image_size=32,
        num_classes=2,
        samples=len(data.train_ids),
        seed=0,
        runtime=setup_runtime(cfg),
        limits=data.decode_limits,
    )
    for loader, n in ((train, tiny.n_train), (val_loader(data, image_size=32, cfg=cfg), tiny.n_val)):
        ok = np.zeros(n, dtype=bool)
        for batch in loader:
            ok[batch.index.numpy()] = batch.ok.numpy()
            for i, good, error in zip(batch.index.tolist(), batch.ok.tolist(), batch.errors, strict=True):
                assert good == (i != 0)
                assert ("over_pixel_cap" in error) == (i == 0)
        assert not ok[0] and ok[1:].all()


@pytest.mark.parametrize("name", TRAINER_NAMES)
def test_an_image_over_the_ingest_pixel_cap_trains_exactly_as_a_corrupt_one(name, tiny):
    data = tiny.make_data()
    first_train, first_val = data.train_ids[0], data.val_ids[0]  # both positives (every 4th image is one)
    over = _with_images(
        data,
        {
            first_train: _twice_the_side(data.reader.images[first_train]),
            first_val: _twice_the_side(data.reader.images[first_val]),
        },
    )
    corrupt = _with_images(data, {first_train: b"garbage", first_val: b"garbage"})
    # imbalance "none" draws every training image once per epoch, so the bad one is met for sure
    settings = {
        "epochs": 1,
        "imbalance": "none",
        "ohem_cascade": CascadeConfig(stage2_epochs=1, hard_examples=16, balanced_examples=16),
    }
    a, b = tiny.train(name, data=over, **settings), tiny.train(name, data=corrupt, **settings)
    assert a.result.info["skipped_images"] == b.result.info["skipped_images"] >= 1
    # Same skipped images, same val images scored: the same run, to the bit.
    drop = {"seconds"}
    assert [{k: v for k, v in h.items() if k not in drop} for h in a.result.history] == [
        {k: v for k, v in h.items() if k not in drop} for h in b.result.history
    ]
    assert a.states.keys() == b.states.keys()
    for member, state in a.states.items():
        for key, tensor in state.items():
            assert torch.equal(tensor, b.states[member][key]), (member, key)


def test_cascade_mining_gives_an_image_over_the_ingest_pixel_cap_no_loss(tiny):
    data = tiny.make_data()
    first = data.train_ids[0]
    data = _with_images(data, {first: _twice_the_side(data.reader.images[first])})
    cfg = tiny.make_cfg("ohem_cascade")
    runtime = setup_runtime(cfg)
    net = new_network(cfg, num_classes=2, backbone=cfg.backbone, image_size=32, runtime=runtime)
    losses = _losses(net, data, np.arange(4), size=32, cfg=cfg, runtime=runtime)
    assert np.isnan(losses[0]) and np.isfinite(losses[1:]).all()
