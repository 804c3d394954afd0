from __future__ import annotations

import io

import pytest
import torch
from torch import nn
from torchvision.models import mobilenet_v2, resnet18

from modops.models.cbam import CBAM, GATE_INIT_LOGIT, insert_cbam

RESNET_PATHS = ["layer1", "layer2", "layer3", "layer4"]
MOBILENET_PATHS = ["features.3", "features.13"]


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("c", "h", "w"), [(3, 5, 7), (16, 8, 8), (64, 4, 9), (130, 1, 1)])
@pytest.mark.parametrize("identity_init", [True, False])
def test_cbam_keeps_shape_and_gates_are_in_the_unit_interval(c, h, w, identity_init):
    torch.manual_seed(0)
    cbam = CBAM(c, reduction=16, identity_init=identity_init)
    x = torch.randn(2, c, h, w)
    assert cbam(x).shape == x.shape
    channel, spatial = cbam.gates(x)
    assert channel.shape == (2, c, 1, 1)
    assert spatial.shape == (2, 1, h, w)
    for gate in (channel, spatial):
        assert torch.all(gate > 0) and torch.all(gate < 1)


def _reference_gates(cbam: CBAM, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's definitions written plainly: mean and max pooling (Eq. 2 and 3)."""
    mlp = cbam.channel_gate.mlp
    b, c = x.shape[:2]
    channel = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3)))).view(b, c, 1, 1)
    y = x * channel
    pooled = torch.cat([y.mean(dim=1, keepdim=True), y.amax(dim=1, keepdim=True)], dim=1)
    sg = cbam.spatial_gate
    return channel, torch.sigmoid(sg.bn(sg.conv(pooled)))


@pytest.mark.parametrize("channels_last", [False, True])
def test_fast_pooling_matches_the_papers_mean_and_max_with_gradients(channels_last):
    torch.manual_seed(1)
    cbam = CBAM(24, identity_init=False).eval()
    x = torch.randn(3, 24, 9, 7)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    fast_in, ref_in = x.clone().requires_grad_(), x.clone().requires_grad_()
    fast, ref = cbam.gates(fast_in), _reference_gates(cbam, ref_in)
    for a, b in zip(fast, ref, strict=True):
        torch.testing.assert_close(a, b)
    (fast[0].sum() + fast[1].sum()).backward()
    (ref[0].sum() + ref[1].sum()).backward()
    torch.testing.assert_close(fast_in.grad, ref_in.grad)


def test_hidden_width_has_a_floor_for_thin_layers():
    assert CBAM(16, reduction=16).channel_gate.mlp[0].out_features == 8
    assert CBAM(512, reduction=16).channel_gate.mlp[0].out_features == 32


def test_identity_init_starts_as_a_uniform_near_one_scale_and_still_learns():
    torch.manual_seed(0)
    cbam = CBAM(32, spatial_kernel=3).train()
    x = torch.randn(4, 32, 6, 6)
    scale = torch.sigmoid(torch.tensor(GATE_INIT_LOGIT)) ** 2
    out = cbam(x)
    torch.testing.assert_close(out, x * scale)
    out.pow(2).sum().backward()
    # The zeroed last layers get gradients at once, so attention can be learnt from the first step.
    assert cbam.channel_gate.mlp[-1].weight.grad.abs().sum() > 0
    assert cbam.spatial_gate.bn.weight.grad.abs().sum() > 0


def test_even_spatial_kernel_is_refused():
    with pytest.raises(ValueError, match="odd"):
        CBAM(8, spatial_kernel=4)


def _resnet() -> nn.Module:
    return insert_cbam(resnet18(weights=None, num_classes=4), RESNET_PATHS, input_size=32)


def _mobilenet() -> nn.Module:
    return insert_cbam(mobilenet_v2(weights=None, num_classes=4), MOBILENET_PATHS, input_size=32)


@pytest.mark.parametrize(
    ("build", "factory", "paths", "channels"),
    [
        (_resnet, lambda: resnet18(weights=None, num_classes=4), RESNET_PATHS, [64, 128, 256, 512]),
        (_mobilenet, lambda: mobilenet_v2(weights=None, num_classes=4), MOBILENET_PATHS, [24, 96]),
    ],
)
def test_insert_cbam_round_trips_through_a_strict_state_dict(build, factory, paths, channels):
    torch.manual_seed(0)
    plain = factory()
    torch.manual_seed(0)
    model = build()
    assert _n_params(model) > _n_params(plain)
    for path, c in zip(paths, channels, strict=True):
        wrapped = model.get_submodule(path)
        assert isinstance(wrapped, nn.Sequential) and isinstance(wrapped[1], CBAM)
        assert wrapped[1].channels == c

    # Make the CBAM weights non-trivial, so the reload check is not passed by two identical fresh inits.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, CBAM):
                for p in module.parameters():
                    p.add_(0.1 * torch.randn_like(p))
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)

    torch.manual_seed(123)  # a different init: only the loaded weights can make the outputs agree
    fresh = build()
    assert list(fresh.state_dict()) == list(model.state_dict())
    fresh.load_state_dict(torch.load(buf, weights_only=True), strict=True)

    x = torch.randn(2, 3, 32, 32)
    model.eval()
    fresh.eval()
    with torch.inference_mode():
        out = model(x)
        assert out.shape == (2, 4)
        torch.testing.assert_close(fresh(x), out, rtol=0, atol=0)


def test_insert_cbam_trains_end_to_end():
    torch.manual_seed(0)
    model = _resnet().train()
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    grad = model.layer4[1].channel_gate.mlp[-1].weight.grad
    assert grad is not None and grad.abs().sum() > 0  # the zero-initialised gate still learns


@pytest.mark.parametrize("path", ["layer9", "layer1.7", "fc.weight_typo", ""])
def test_bad_path_raises_value_error_naming_it(path):
    model = resnet18(weights=None, num_classes=4)
    keys = list(model.state_dict())
    with pytest.raises(ValueError, match=repr(path) if path else "model itself"):
        insert_cbam(model, ["layer1", path], input_size=32)
    assert list(model.state_dict()) == keys  # nothing was wrapped


def test_non_feature_map_output_raises():
    with pytest.raises(ValueError, match=r"'fc' outputs shape \[1, 4\], not a 4-D"):
        insert_cbam(resnet18(weights=None, num_classes=4), ["fc"], input_size=32)
    flat = nn.Sequential()
    flat.add_module("conv", nn.Conv2d(3, 4, 3))
    flat.add_module("flat", nn.Flatten())
    with pytest.raises(ValueError, match="'flat' outputs"):
        insert_cbam(flat, ["conv", "flat"], input_size=16)
    assert isinstance(flat.conv, nn.Conv2d)  # the good path was not wrapped either


def test_unused_module_raises():
    model = resnet18(weights=None, num_classes=4)
    model.spare = nn.Conv2d(3, 3, 1)  # registered but never called in forward
    with pytest.raises(ValueError, match="'spare' did not run"):
        insert_cbam(model, ["spare"], input_size=32)


@pytest.mark.parametrize("training", [True, False])
def test_dry_pass_leaves_batchnorm_stats_and_modes_unchanged(training):
    torch.manual_seed(0)
    model = resnet18(weights=None, num_classes=4).train(training)
    model.layer1.eval()  # a mixed-mode model (a frozen stage) must come back mixed
    # Non-default running stats, so the check would catch a pass that updated them.
    model(torch.randn(4, 3, 32, 32))
    model.train(training)
    model.layer1.eval()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    modes = {name: m.training for name, m in model.named_modules()}

    insert_cbam(model, RESNET_PATHS, input_size=32)

    after = model.state_dict()
    for key, value in before.items():
        new_key = key
        for path in RESNET_PATHS:
            new_key = new_key.replace(f"{path}.", f"{path}.0.", 1) if new_key.startswith(f"{path}.") else new_key
        assert torch.equal(after[new_key], value), key
    assert model.training is training
    assert model.layer1[0].training is False and model.layer1[1].training is False
    assert model.layer2[0].training is training and model.layer2[1].training is training
    assert model.conv1.training is training
    assert modes["layer3.0.bn1"] == model.get_submodule("layer3.0.0.bn1").training
