"""Losses by name: cross-entropy, and online hard example mining with its warm-up."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

from modops.training.losses import LOSSES, make_loss, ohem_cross_entropy, ohem_select


def _distinct_losses(n: int, seed: int = 0) -> torch.Tensor:
    """n distinct losses in a random order (no ties, so the top-k order is unambiguous)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g).float() * 0.37 + 0.01


def _k(fraction: str, batch: int) -> int:
    """The exact ceil(f * B), at least one (decimal fractions, no float rounding)."""
    return max(1, math.ceil(Fraction(fraction) * batch))


def _logits_targets(n: int = 12, c: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g) * 2, torch.randint(0, c, (n,), generator=g)


# --- ohem_select ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fraction", "batch"),
    [("0.5", 16), ("0.25", 10), ("0.3", 10), ("0.7", 10), ("0.1", 30), ("0.34", 3), ("0.9", 7), ("0.6", 1)],
)
def test_ohem_select_keeps_the_k_hardest_hardest_first(fraction, batch):
    losses = _distinct_losses(batch)
    idx = ohem_select(losses, keep_fraction=float(fraction))
    k = _k(fraction, batch)
    assert idx.dtype == torch.int64
    assert len(idx) == k
    assert idx.tolist() == torch.argsort(losses, descending=True)[:k].tolist()
    kept = losses[idx]
    assert torch.all(kept[:-1] > kept[1:])  # hardest first
    if k < batch:
        assert kept.min() > losses[torch.ones(batch, dtype=torch.bool).index_fill_(0, idx, False)].max()


@pytest.mark.parametrize(("fraction", "batch"), [(0.01, 5), (1e-6, 64), (0.05, 1)])
def test_ohem_select_keeps_at_least_one(fraction, batch):
    losses = _distinct_losses(batch)
    idx = ohem_select(losses, keep_fraction=fraction)
    assert idx.tolist() == [int(torch.argmax(losses))]


@pytest.mark.parametrize("batch", [1, 2, 9, 32])
def test_ohem_select_full_fraction_keeps_all(batch):
    losses = _distinct_losses(batch)
    idx = ohem_select(losses, keep_fraction=1.0)
    assert sorted(idx.tolist()) == list(range(batch))
    assert idx.tolist() == torch.argsort(losses, descending=True).tolist()


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.0001, 2.0, math.nan])
def test_ohem_select_rejects_bad_fractions(fraction):
    with pytest.raises(ValueError, match="keep_fraction"):
        ohem_select(_distinct_losses(8), keep_fraction=fraction)


# --- ohem_cross_entropy -----------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.25, 0.5, 1.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_ohem_cross_entropy_is_mean_of_top_k_per_sample_ce(fraction, weighted):
    logits, targets = _logits_targets()
    weight = torch.tensor([1.0, 3.0, 0.5]) if weighted else None
    per_sample = F.cross_entropy(logits, targets, weight=weight, reduction="none")
    k = math.ceil(fraction * len(per_sample))
    top = per_sample.topk(k)
    denominator = weight[targets[top.indices]].sum() if weighted else k
    expected = top.values.sum() / denominator
    got = ohem_cross_entropy(logits, targets, keep_fraction=fraction, weight=weight)
    torch.testing.assert_close(got, expected)
    if fraction == 1.0:  # keeping everything is exactly (weighted) cross-entropy
        torch.testing.assert_close(got, F.cross_entropy(logits, targets, weight=weight))


def test_ohem_cross_entropy_only_the_kept_samples_get_gradient():
    logits, targets = _logits_targets()
    logits.requires_grad_(True)
    ohem_cross_entropy(logits, targets, keep_fraction=0.25).backward()
    per_sample = F.cross_entropy(logits.detach(), targets, reduction="none")
    kept = set(per_sample.topk(3).indices.tolist())
    for i, row in enumerate(logits.grad):
        assert (row.abs().sum() > 0) == (i in kept), i


# --- make_loss --------------------------------------------------------------------------------


def test_registry_names():
    assert set(LOSSES) == {"cross_entropy", "ohem"}


@pytest.mark.parametrize("weighted", [False, True])
def test_ohem_loss_is_plain_ce_during_warmup_then_ohem(weighted):
    logits, targets = _logits_targets()
    weight = torch.tensor([1.0, 2.0, 4.0]) if weighted else None
    loss = make_loss("ohem", weight=weight, keep_fraction=0.25, warmup_fraction=0.3)
    plain = F.cross_entropy(logits, targets, weight=weight)
    ohem = ohem_cross_entropy(logits, targets, keep_fraction=0.25, weight=weight)
    assert not torch.allclose(plain, ohem)  # so the two regimes are told apart
    for progress in (0.0, 0.1, 0.299):
        torch.testing.assert_close(loss(logits, targets, progress), plain)
    for progress in (0.3, 0.5, 1.0):
        torch.testing.assert_close(loss(logits, targets, progress), ohem)


def test_ohem_loss_without_warmup_mines_from_the_start():
    logits, targets = _logits_targets()
    loss = make_loss("ohem", keep_fraction=0.5, warmup_fraction=0.0)
    torch.testing.assert_close(loss(logits, targets, 0.0), ohem_cross_entropy(logits, targets, keep_fraction=0.5))


def test_cross_entropy_ignores_ohem_settings():
    logits, targets = _logits_targets()
    loss = make_loss("cross_entropy", weight=None, keep_fraction=0.1, warmup_fraction=0.0)
    for progress in (0.0, 0.5, 1.0):
        torch.testing.assert_close(loss(logits, targets, progress), F.cross_entropy(logits, targets))


def test_make_loss_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="unknown loss 'focal'") as exc:
        make_loss("focal")
    assert "cross_entropy" in str(exc.value) and "ohem" in str(exc.value)
