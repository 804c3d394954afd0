from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from modops.models import BACKBONES, ModelSpec, create_model, load_model, save_model


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18", "mobilenet_v3_small"])
def test_create_model_swaps_the_head(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=4).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 4)


def test_registry_lists_the_cascade_backbones():
    assert {"mobilenet_v2", "resnet50", "densenet161"} <= set(BACKBONES)


def test_unknown_backbone_lists_choices():
    with pytest.raises(ValueError, match="choose one of"):
        create_model("vgg99", num_classes=2)


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


def test_missing_weights_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.weights_path"):
        create_model("resnet18", num_classes=2, pretrained="path", weights_path=str(tmp_path / "none.pth"))


def test_save_and_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = create_model("mobilenet_v3_small", num_classes=4).eval()
    spec = ModelSpec(backbone="mobilenet_v3_small", classes=("clean", "a", "b", "c"), image_size=64)
    save_model(model, spec, tmp_path)
    loaded, spec2 = load_model(tmp_path)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(model(x), loaded(x))
    assert spec2 == spec


def test_load_model_explains_a_wrong_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="modops model folder"):
        load_model(tmp_path)
