"""Mean teacher's pieces: the EMA update, the sigmoid ramp-up and the consistency cost."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from modops.config import MeanTeacherConfig
from modops.data.datasets import MemoryReader
from modops.training.mean_teacher import consistency_loss, ema_update, sigmoid_rampup


def _linear(seed: int, fan_in: int = 4, fan_out: int = 3) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(fan_in, fan_out)


def _params(net: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


# --- ema_update -------------------------------------------------------------------------------


@pytest.mark.parametrize("decay", [0.9, 0.5, 0.99, 0.25])
def test_ema_moves_teacher_by_one_minus_decay_towards_student(decay):
    teacher, student = _linear(0), _linear(1)
    t0, s0 = _params(teacher), _params(student)
    ema_update(teacher, student, decay=decay)
    for t_old, t_new, s in zip(t0, teacher.parameters(), s0, strict=True):
        torch.testing.assert_close(t_new.detach() - t_old, (1 - decay) * (s - t_old), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(t_new.detach(), decay * t_old + (1 - decay) * s, rtol=1e-5, atol=1e-6)
    for s_old, s_new in zip(s0, student.parameters(), strict=True):
        assert torch.equal(s_old, s_new.detach())  # the student is never touched


def test_ema_decay_one_leaves_teacher_unchanged():
    teacher, student = _linear(0), _linear(1)
    t0 = _params(teacher)
    ema_update(teacher, student, decay=1.0)
    for old, new in zip(t0, teacher.parameters(), strict=True):
        assert torch.equal(old, new.detach())


def test_ema_decay_zero_copies_student():
    teacher, student = _linear(0), _linear(1)
    ema_update(teacher, student, decay=0.0)
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        assert torch.equal(t.detach(), s.detach())


def test_ema_works_on_teacher_params_that_require_grad():
    teacher, student = _linear(0), _linear(1)
    assert all(p.requires_grad for p in teacher.parameters())
    ema_update(teacher, student, decay=0.5)
    assert all(p.grad is None for p in teacher.parameters())


def test_ema_leaves_buffers_untouched():
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    student[1].running_mean.fill_(5.0)
    student[1].running_var.fill_(7.0)
    student[1].num_batches_tracked.fill_(9)
    before = {k: v.clone() for k, v in teacher.named_buffers()}
    params_before = _params(teacher)
    ema_update(teacher, student, decay=0.5)
    for key, value in teacher.named_buffers():
        assert torch.equal(value, before[key]), key
    for old, new in zip(params_before, teacher.parameters(), strict=True):  # the parameters did move
        torch.testing.assert_close(new.detach(), old + 0.5)


@pytest.mark.parametrize("decay", [-0.1, 1.1, math.nan])
def test_ema_rejects_decay_outside_unit_interval(decay):
    with pytest.raises(ValueError, match="decay"):
        ema_update(_linear(0), _linear(1), decay=decay)


def test_ema_rejects_a_different_number_of_parameters():
    teacher = nn.Linear(3, 2)
    student = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="same architecture"):
        ema_update(teacher, student, decay=0.5)


def test_ema_rejects_incompatible_parameter_shapes():
    teacher, student = nn.Linear(3, 2), nn.Linear(4, 2)
    before = _params(teacher)
    with pytest.raises((ValueError, RuntimeError)):
        ema_update(teacher, student, decay=0.5)
    for old, new in zip(before, teacher.parameters(), strict=True):
        assert torch.equal(old, new.detach())


def test_ema_rejects_broadcastable_but_different_shapes():
    teacher, student = nn.Linear(3, 2), nn.Linear(1, 2)
    with pytest.raises(ValueError, match="same architecture"):
        ema_update(teacher, student, decay=0.5)


# --- sigmoid_rampup ---------------------------------------------------------------------------


def test_rampup_end_points():
    assert sigmoid_rampup(0.0) == pytest.approx(math.exp(-5.0), rel=1e-12)
    assert sigmoid_rampup(1.0) == 1.0
    assert sigmoid_rampup(0.5) == pytest.approx(math.exp(-5.0 * 0.25), rel=1e-12)


def test_rampup_is_monotone_increasing():
    values = [sigmoid_rampup(t) for t in np.linspace(0.0, 1.0, 101)]
    assert all(b > a for a, b in zip(values, values[1:], strict=False))
    assert all(0.0 < v <= 1.0 for v in values)


@pytest.mark.parametrize(("progress", "expected"), [(-1.0, 0.0), (-0.01, 0.0), (1.01, 1.0), (5.0, 1.0)])
def test_rampup_is_clipped_outside_unit_interval(progress, expected):
    assert sigmoid_rampup(progress) == sigmoid_rampup(expected)


# --- consistency_loss -------------------------------------------------------------------------


def test_consistency_is_zero_for_equal_logits():
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    assert consistency_loss(logits, logits.clone()).item() == 0.0


def test_consistency_is_mean_squared_probability_difference():
    g = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    loss = consistency_loss(student, teacher)
    expected = ((student.softmax(1) - teacher.softmax(1)) ** 2).mean()
    assert loss.item() > 0
    torch.testing.assert_close(loss, expected)


def test_consistency_gives_no_gradient_to_the_teacher():
    g = torch.Generator().manual_seed(2)
    student = torch.randn(5, 4, generator=g, requires_grad=True)
    teacher = torch.randn(5, 4, generator=g, requires_grad=True)
    consistency_loss(student, teacher).backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_consistency_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shapes differ"):
        consistency_loss(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="shapes differ"):
        consistency_loss(torch.zeros(4, 3), torch.zeros(3, 3))


# --- the trainer ------------------------------------------------------------------------------


def test_unlabelled_pool_is_unlabelled_plus_train(trained, tiny):
    run = trained("mean_teacher")
    assert run.result.info["unlabeled_pool"] == tiny.n_unlabeled + tiny.n_train


def test_unlabelled_pool_is_capped(tiny):
    run = tiny.train(
        "mean_teacher", epochs=1, mean_teacher=MeanTeacherConfig(unlabeled_batch_size=16, max_unlabeled=20)
    )
    assert run.result.info["unlabeled_pool"] == 20


def test_labelled_batch_without_readable_image_keeps_history_finite(tiny):
    data = tiny.make_data()
    images = dict(data.reader.images)
    images[data.train_ids[0]] = b"garbage"
    data = dataclasses.replace(
        data, reader=MemoryReader(images), train_ids=data.train_ids[:8], train_y=data.train_y[:8], unlabeled_ids=()
    )
    run = tiny.train(
        "mean_teacher",
        data=data,
        epochs=1,
        batch_size=1,
        imbalance="none",
        mean_teacher=MeanTeacherConfig(unlabeled_batch_size=4),
    )
    assert run.result.info["skipped_images"] >= 1
    assert all(np.isfinite(h["loss"]) for h in run.result.history)
