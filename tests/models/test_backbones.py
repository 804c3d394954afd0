from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from modops.models import BACKBONES, create_model


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18", "mobilenet_v3_small"])
def test_create_model_swaps_the_head(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=4).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 4)


def test_registry_lists_the_cascade_backbones_and_the_small_cnn():
    assert {"mobilenet_v2", "resnet50", "densenet161", "cnn_small"} <= set(BACKBONES)


def test_unknown_backbone_lists_choices():
    with pytest.raises(ValueError, match="choose one of") as err:
        create_model("vgg99", num_classes=2)
    assert "cnn_small" in str(err.value)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_spec_layer_path_resolves(name):
    spec = BACKBONES[name]
    # Resolving paths needs no forward pass and no real weights: build on the meta device.
    with torch.device("meta"):
        model = create_model(name, num_classes=3)
    for path in (spec.feature_layer, spec.gradcam_layer, *spec.stage_layers):
        assert isinstance(model.get_submodule(path), nn.Module), path
    assert len(spec.stage_layers) == len(set(spec.stage_layers))


@pytest.mark.parametrize("size", [64, 128])
def test_cnn_small_forward_gives_logits(size):
    torch.manual_seed(0)
    model = create_model("cnn_small", num_classes=3).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 3)


def test_cnn_small_has_no_imagenet_weights():
    with pytest.raises(ValueError, match="cnn_small"):
        create_model("cnn_small", num_classes=2, pretrained="imagenet")


@pytest.mark.parametrize("name", ["cnn_small", "resnet18"])
def test_cbam_adds_parameters_and_keeps_the_output_shape(name):
    torch.manual_seed(0)
    plain = create_model(name, num_classes=3).eval()
    with_cbam = create_model(name, num_classes=3, cbam=True, input_size=64).eval()
    assert _n_params(with_cbam) > _n_params(plain)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert with_cbam(x).shape == plain(x).shape == (2, 3)


def test_local_weights_path_is_loaded(tmp_path):
    torch.manual_seed(1)
    source = create_model("resnet18", num_classes=1000)  # ImageNet-shaped, like a downloaded checkpoint
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model = create_model("resnet18", num_classes=3, pretrained="path", weights_path=str(path))
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert model.fc.out_features == 3


def test_local_torch_checkpoint_loads_weights_only(tmp_path):
    source = create_model("mobilenet_v3_small", num_classes=1000)
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    model = create_model("mobilenet_v3_small", num_classes=2, pretrained="path", weights_path=str(path))
    assert torch.equal(model.features[0][0].weight, source.features[0][0].weight)
    assert model.classifier[-1].out_features == 2


def test_missing_weights_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.weights_path"):
        create_model("resnet18", num_classes=2, pretrained="path", weights_path=str(tmp_path / "none.pth"))
