"""Loss-prioritised sampling: class shares kept, hard images drawn more, the memory's average."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modops.data.datasets import balanced_sampler, class_weights
from modops.training.sampling import LossMemory, PrioritySampler, priorities

Y = np.array([0] * 90 + [1] * 10)
HARD = np.arange(80, 90)  # ten clean images the model gets wrong


def _sampler(memory: LossMemory, *, n: int = 40_000, mix: float = 0.8, max_ratio: float = 5.0, seed: int = 0):
    weight = class_weights(Y, num_classes=2, cap=20.0)
    return PrioritySampler(
        Y, class_weight=weight, memory=memory, num_samples=n, mix=mix, max_ratio=max_ratio, seed=seed
    )


def _hard_memory() -> LossMemory:
    memory = LossMemory(len(Y))
    memory.update(np.arange(90), np.r_[np.full(80, 0.01), np.full(10, 2.0)])
    return memory


def test_memory_keeps_the_first_loss_then_averages():
    memory = LossMemory(3, decay=0.5)
    memory.update(np.array([0, 2]), np.array([1.0, 4.0]))
    memory.update(np.array([0]), np.array([3.0]))
    assert memory.loss[0] == pytest.approx(2.0)
    assert np.isnan(memory.loss[1])
    assert memory.loss[2] == pytest.approx(4.0)


def test_memory_rejects_a_decay_of_one():
    with pytest.raises(ValueError, match="decay"):
        LossMemory(3, decay=1.0)


def test_unseen_images_are_drawn_like_the_balanced_sampler():
    draws = np.array(list(_sampler(LossMemory(len(Y)))))
    reference = np.array(list(balanced_sampler(Y, num_classes=2, cap=20.0, num_samples=40_000, seed=0)))
    assert len(draws) == 40_000
    assert (Y[draws] == 1).mean() == pytest.approx((Y[reference] == 1).mean(), abs=0.02)
    counts = np.bincount(draws[Y[draws] == 0], minlength=90)
    assert counts.min() > 0.7 * counts.mean()  # uniform within the class


def test_class_shares_stay_while_hard_images_are_drawn_more():
    draws = np.array(list(_sampler(_hard_memory())))
    assert (Y[draws] == 1).mean() == pytest.approx(0.5, abs=0.02)  # class balancing unchanged
    clean = draws[Y[draws] == 0]
    per_hard = np.isin(clean, HARD).sum() / len(HARD)
    per_easy = (~np.isin(clean, HARD)).sum() / 80
    assert per_hard > 10 * per_easy
    assert per_easy > 0  # the uniform share keeps easy images in play


def test_priority_is_capped_and_mixed_with_uniform():
    loss = np.r_[np.full(89, 0.01), 100.0, np.full(10, np.nan)]
    q = priorities(loss, Y, mix=0.8, max_ratio=5.0)
    assert q[89] == pytest.approx(0.2 + 0.8 * 5.0)  # capped at max_ratio times the class mean
    assert q[0] == pytest.approx(0.2 + 0.8 * 0.01 / np.mean(loss[:90]))
    assert np.allclose(q[90:], 1.0)  # a class with nothing seen is drawn uniformly
    assert np.allclose(priorities(loss, Y, mix=0.0, max_ratio=5.0), 1.0)


def test_draws_follow_the_memory_as_it_changes():
    memory = LossMemory(len(Y))
    sampler = _sampler(memory, n=64 * 20)
    drawn = iter(sampler)
    first = [next(drawn) for _ in range(64)]
    memory.update(np.arange(90), np.r_[np.full(80, 0.01), np.full(10, 2.0)])
    later = np.array(list(drawn))
    assert len(first) + len(later) == 64 * 20
    clean = later[Y[later] == 0]
    assert np.isin(clean, HARD).mean() > 0.5  # 10 of 90 clean images, now most of the clean draws


def test_same_seed_same_draws():
    assert list(_sampler(_hard_memory(), n=500, seed=4)) == list(_sampler(_hard_memory(), n=500, seed=4))
    assert list(_sampler(_hard_memory(), n=500, seed=4)) != list(_sampler(_hard_memory(), n=500, seed=5))


def test_memory_must_match_the_dataset():
    with pytest.raises(ValueError, match="loss memory holds 5 images"):
        PrioritySampler(
            Y, class_weight=torch.ones(2), memory=LossMemory(5), num_samples=10, mix=0.5, max_ratio=2, seed=0
        )


def test_source_weights_follow_each_label_source_and_default_to_one():
    from modops.training.sampling import source_weights

    sources = ["upload", "reviewer", None, "retrieval", "reviewer"]
    assert source_weights(sources, {}) is None
    assert source_weights(sources, {"moderation": 3.0}) is None  # no image from that source
    np.testing.assert_array_equal(source_weights(sources, {"reviewer": 4.0}), [1, 4, 1, 1, 4])


def test_reviewer_labels_are_drawn_more_often_within_their_class_and_class_shares_stay():
    from modops.training.sampling import combine_weights, source_weights

    y = np.array([0] * 80 + [1] * 20)
    sources = ["upload"] * 95 + ["reviewer"] * 5  # a round's five labels of a new style
    noise = np.ones(100)
    noise[0] = 0.2
    weight = combine_weights(noise, source_weights(sources, {"reviewer": 4.0}))
    assert weight[0] == pytest.approx(0.2) and weight[-1] == 4.0
    draws = np.bincount(
        list(balanced_sampler(y, num_classes=2, cap=100.0, num_samples=40_000, seed=0, item_weight=weight)),
        minlength=100,
    )
    assert abs(draws[y == 1].sum() - 20_000) < 800  # the positive class keeps its half
    assert draws[95:].mean() > 3 * draws[80:95].mean()  # reviewer positives ~4x their upload peers


def test_combine_weights_refuses_vectors_of_different_lengths():
    from modops.training.sampling import combine_weights

    assert combine_weights(None, None) is None
    with pytest.raises(ValueError, match="differ in length"):
        combine_weights(np.ones(3), np.ones(4))
