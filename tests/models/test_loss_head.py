"""The loss-prediction head: shapes, the pairwise ranking loss, detaching, learning to rank, saving."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from modops.models import MemberSpec, ModelSpec, create_model, save_members
from modops.models.backbones import get_backbone
from modops.models.io import load_members
from modops.models.loss_head import (
    LossHead,
    attach_loss_head,
    get_loss_head,
    head_loss,
    loss_head_units,
    margin_ranking_loss,
    stage_features,
)
from modops.models.predictor import load_predictor

CLASSES = ("clean", "spam", "weapon")


def _images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("backbone", ["cnn_small", "resnet18"])
def test_head_reads_every_stage_and_predicts_one_loss_per_image(backbone):
    torch.manual_seed(0)
    net = create_model(backbone, num_classes=3, input_size=64, loss_head=16).eval()
    head = get_loss_head(net)
    assert head is not None and head.layers == get_backbone(backbone).stage_layers
    x = torch.randn(5, 3, 64, 64)
    with torch.no_grad(), stage_features(net, head.layers) as feats:
        logits = net(x)
        predicted = head(feats)
    assert logits.shape == (5, 3) and predicted.shape == (5,)
    assert len(feats) == len(head.layers) and all(f.dim() == 4 for f in feats)
    assert any(k.startswith("loss_head.") for k in net.state_dict())
    assert loss_head_units(net) == 16


def test_head_does_not_change_the_classifier():
    torch.manual_seed(1)
    plain = create_model("cnn_small", num_classes=3, cbam=True, input_size=32).eval()
    with_head = attach_loss_head(
        create_model("cnn_small", num_classes=3, cbam=True, input_size=32),
        get_backbone("cnn_small").stage_layers,
        input_size=32,
    )
    state = {k: v for k, v in with_head.state_dict().items() if not k.startswith("loss_head.")}
    plain.load_state_dict(state)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(plain(x), with_head.eval()(x))
    assert get_loss_head(plain) is None and loss_head_units(plain) == 0


def test_ranking_loss_follows_the_paper():
    # Pairs (0, 3) and (1, 2): true losses say l0 > l3 and l1 < l2.
    target = torch.tensor([2.0, 0.1, 0.5, 0.3])
    right = torch.tensor([3.0, 0.0, 2.0, 1.0])  # p0 - p3 = 2 (>= margin), p1 - p2 = -2: no penalty
    assert margin_ranking_loss(right, target).item() == 0.0
    wrong = torch.tensor([1.0, 2.0, 0.0, 1.5])  # p0 - p3 = -0.5 -> 1.5; p1 - p2 = 2 -> 3.0
    assert margin_ranking_loss(wrong, target).item() == pytest.approx((1.5 + 3.0) / 2)
    assert margin_ranking_loss(wrong, target, margin=0.5).item() == pytest.approx((1.0 + 2.5) / 2)
    assert margin_ranking_loss(torch.tensor([1.0]), torch.tensor([1.0])).item() == 0.0


def test_ranking_loss_treats_true_losses_as_constants():
    predicted = torch.tensor([0.0, 1.0], requires_grad=True)
    target = torch.tensor([1.0, 0.0], requires_grad=True)
    margin_ranking_loss(predicted, target).backward()
    assert predicted.grad is not None and predicted.grad.abs().sum() > 0
    assert target.grad is None


def test_detached_head_sends_no_gradient_into_the_backbone():
    torch.manual_seed(2)
    net = create_model("cnn_small", num_classes=3, input_size=32, loss_head=8)
    head = get_loss_head(net)
    x = torch.randn(6, 3, 32, 32)
    for detach, reaches in ((True, False), (False, True)):
        net.zero_grad(set_to_none=True)
        with stage_features(net, head.layers) as feats:
            net(x)
            head_loss(head, feats, torch.rand(6), margin=1.0, detach=detach).backward()
        backbone_grads = [p.grad for n, p in net.named_parameters() if not n.startswith("loss_head.")]
        assert any(g is not None and g.abs().sum() > 0 for g in backbone_grads) is reaches
        assert all(p.grad is not None for p in head.parameters())


def test_head_learns_to_rank_losses():
    """On fixed features whose true loss grows with one channel's mean, the head learns the order."""
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(512, 4, 3, 3, generator=g), torch.randn(512, 8, 2, 2, generator=g)]
    true_loss = feats[1][:, 2].mean(dim=(1, 2)).exp()
    head = LossHead([4, 8], layers=("a", "b"), hidden=16)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(300):
        idx = torch.randperm(512)[:64]
        loss = margin_ranking_loss(head([f[idx] for f in feats]), true_loss[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        rho = spearmanr(head(feats).numpy(), true_loss.numpy()).statistic
    assert rho > 0.9


def test_head_is_saved_and_loaded_with_the_model(tmp_path):
    torch.manual_seed(3)
    net = create_model("cnn_small", num_classes=3, input_size=32, loss_head=8).eval()
    spec = ModelSpec(classes=CLASSES, members=(MemberSpec("model", "cnn_small", 32, loss_head=8),))
    save_members({"model": net}, spec, tmp_path)
    networks, loaded = load_members(tmp_path)
    assert loaded.members[0].loss_head == 8
    assert torch.equal(networks["model"].loss_head.out.weight, net.loss_head.out.weight)
    pred, emb = load_predictor(tmp_path).predict_and_embed(_images(7))
    assert pred.loss is not None and pred.loss.shape == (7,) and np.isfinite(pred.loss).all()
    assert emb.shape[0] == 7
    # The plain predict path does not run the head.
    assert load_predictor(tmp_path).predict(_images(2)).loss is None


def test_model_without_head_predicts_no_loss(tmp_path):
    net = create_model("cnn_small", num_classes=3, input_size=32).eval()
    spec = ModelSpec(classes=CLASSES, members=(MemberSpec("model", "cnn_small", 32),))
    save_members({"model": net}, spec, tmp_path)
    pred, _ = load_predictor(tmp_path).predict_and_embed(_images(3))
    assert pred.loss is None
    assert '"loss_head": 0' in (tmp_path / "model.json").read_text()


def test_head_needs_one_channel_count_per_layer():
    with pytest.raises(ValueError, match="one channel count per stage layer"):
        LossHead([4], layers=("a", "b"))
