"""The loss-prediction module of "Learning Loss for Active Learning" (Yoo and Kweon, CVPR 2019).

A small head reads the feature map at the end of each of the backbone's resolution stages
(:attr:`BackboneSpec.stage_layers`): global average pooling, a linear layer to ``hidden``
units and a ReLU per stage, concatenated, then one linear output, the predicted loss of the
image. It trains with the classifier: on each batch, pairs of images (i, B-1-i) are compared and
the head is penalised when it orders their predicted losses against their true
cross-entropies, by at least ``margin`` (:func:`margin_ranking_loss`). Only the ordering matters,
so the output is a ranking score in the model's own units, not a calibrated loss.

The head is attached to the network as its ``loss_head`` submodule, so it is saved, kept at the
best epoch and loaded with the network's own weights; the network's ``forward`` never calls it
(the head reads the stage outputs through forward hooks), so classification is unchanged by its
presence and a model without one loads as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "LossHead",
    "attach_loss_head",
    "get_loss_head",
    "loss_head_units",
    "margin_ranking_loss",
    "stage_features",
    "head_loss",
]


class LossHead(nn.Module):
    """Predicted loss [B] from the stage feature maps [B, C_i, H_i, W_i] named by ``layers``."""

    def __init__(self, channels: Sequence[int], *, layers: Sequence[str], hidden: int = 128) -> None:
        super().__init__()
        if len(channels) != len(layers) or not layers:
            raise ValueError(f"one channel count per stage layer is needed, got {list(channels)} for {list(layers)}")
        self.layers, self.hidden = tuple(layers), hidden
        self.branches = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, hidden), nn.ReLU()) for c in channels
        )
        self.out = nn.Linear(hidden * len(channels), 1)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        if len(features) != len(self.branches):
            raise ValueError(f"the loss head reads {len(self.branches)} stage outputs, got {len(features)}")
        pooled = [branch(f) for branch, f in zip(self.branches, features, strict=True)]
        return self.out(torch.cat(pooled, dim=1)).squeeze(1)

    def extra_repr(self) -> str:
        return f"layers={list(self.layers)}"


def get_loss_head(net: nn.Module) -> LossHead | None:
    """The network's attached :class:`LossHead`, or None."""
    head = getattr(net, "loss_head", None)
    return head if isinstance(head, LossHead) else None


def loss_head_units(net: nn.Module) -> int:
    """Units per branch of the network's loss head (``MemberSpec.loss_head``); 0 without one."""
    head = get_loss_head(net)
    return head.hidden if head is not None else 0


@contextmanager
def stage_features(net: nn.Module, layers: Sequence[str]) -> Iterator[list[Tensor]]:
    """Collect the outputs of ``layers`` (dotted paths) of every forward pass run inside the block.

    Yields the list the hooks fill, in the order the layers run (shallow to deep for a backbone's
    stages); the hooks are removed on exit, even after an error.
    """
    out: list[Tensor] = []
    handles = [net.get_submodule(p).register_forward_hook(lambda _m, _i, o: out.append(o)) for p in layers]
    try:
        yield out
    finally:
        for h in handles:
            h.remove()


def attach_loss_head(net: nn.Module, layers: Sequence[str], *, input_size: int, hidden: int = 128) -> nn.Module:
    """Give ``net`` a fresh ``loss_head`` over ``layers`` (channels read from one dry pass), in place.

    Args:
        net: The classifier (after any CBAM insertion, so the stage outputs are the attended ones).
        layers: Dotted paths of the stage outputs, shallow to deep.
        input_size: Side in pixels of the zero image used for the dry pass.
        hidden: Units per stage branch (128 in the paper).

    Returns:
        ``net``; its ``state_dict`` gains ``loss_head.*`` keys.
    """
    param = next(net.parameters())
    was_training = net.training
    net.eval()
    with torch.no_grad(), stage_features(net, layers) as feats:
        net(torch.zeros(1, 3, input_size, input_size, device=param.device, dtype=param.dtype))
    net.train(was_training)
    if len(feats) != len(layers) or any(f.dim() != 4 for f in feats):
        raise ValueError(f"the stage layers {list(layers)} must each output one 4-D feature map per forward pass")
    # Initialised on a fork of the global generator: a network with a head consumes the same random
    # stream as one without (dropout masks, loader seeds), so a head that sends no gradient into
    # the backbone (train.loss_prediction.detach_after: 0) leaves the classifier's training unchanged.
    with torch.random.fork_rng(devices=[]):
        net.loss_head = LossHead([f.shape[1] for f in feats], layers=layers, hidden=hidden).to(param.device)
    return net


def margin_ranking_loss(predicted: Tensor, target: Tensor, *, margin: float = 1.0) -> Tensor:
    """The paper's pairwise ranking loss between predicted [B] and true [B] per-image losses.

    Image i is paired with image B-1-i (the batch is in random order); for each pair the head
    pays ``max(0, margin - sign(l_i - l_j) * (p_i - p_j))``. Mean over pairs; zero for B < 2. The
    true losses are treated as constants.
    """
    n = predicted.shape[0] // 2
    if n == 0:
        return predicted.sum() * 0.0
    p, t = predicted.float(), target.detach().float()
    dp = p[:n] - p.flip(0)[:n]
    sign = torch.where(t[:n] - t.flip(0)[:n] > 0, 1.0, -1.0)
    return F.relu(margin - sign * dp).mean()


def head_loss(
    head: LossHead, features: Sequence[Tensor], per_image_loss: Tensor, *, margin: float, detach: bool
) -> Tensor:
    """The ranking loss of ``head`` on a batch's stage ``features`` against its true ``per_image_loss`` [B].

    ``detach``: stop the head's gradient at the features, so it no longer shapes the backbone
    (the paper detaches after 60 % of training, once the features settle).
    """
    feats = [f.detach() for f in features] if detach else list(features)
    return margin_ranking_loss(head(feats), per_image_loss, margin=margin)
