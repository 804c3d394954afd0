from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from modops.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from modops.models import MemberSpec, ModelSpec, create_model, load_members, read_spec, save_members

CLASSES = ("clean", "nudity", "violence")
COMBINE = {"rule": "band", "low": 0.05, "high": 1.0, "fuse": "mean"}


def _net(backbone: str = "cnn_small", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(backbone, num_classes=len(CLASSES)).eval()


def _single_spec(**kw) -> ModelSpec:
    return ModelSpec(classes=CLASSES, members=(MemberSpec("model", "cnn_small", 32),), **kw)


def _cascade_spec() -> ModelSpec:
    return ModelSpec(
        classes=CLASSES,
        members=(
            MemberSpec("stage1", "cnn_small", 32, weights="stage1.safetensors"),
            MemberSpec("stage2", "cnn_small", 48, weights="stage2.safetensors"),
        ),
        kind="cascade",
        combine=COMBINE,
    )


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module, size: int) -> None:
    x = torch.randn(2, 3, size, size)
    with torch.inference_mode():
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


def test_single_model_round_trip(tmp_path):
    net = _net()
    spec = _single_spec(thresholds={"nudity": 0.4, "violence": 0.6}, label_version="v3")
    save_members({"model": net}, spec, tmp_path)
    networks, loaded = load_members(tmp_path)
    assert loaded == spec
    assert list(networks) == ["model"]
    assert not networks["model"].training
    _same_outputs(net, networks["model"], 32)


def test_cascade_round_trip(tmp_path):
    nets = {"stage1": _net(seed=1), "stage2": _net(seed=2)}
    spec = _cascade_spec()
    save_members(nets, spec, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"model.json", "stage1.safetensors", "stage2.safetensors"}
    networks, loaded = load_members(tmp_path)
    assert loaded == spec
    assert loaded.image_size == 48
    _same_outputs(nets["stage1"], networks["stage1"], 32)
    _same_outputs(nets["stage2"], networks["stage2"], 48)


def test_cbam_member_round_trip(tmp_path):
    torch.manual_seed(0)
    net = create_model("cnn_small", num_classes=3, cbam=True, input_size=32).eval()
    spec = ModelSpec(classes=CLASSES, members=(MemberSpec("model", "cnn_small", 32, cbam=True),))
    save_members({"model": net}, spec, tmp_path)
    networks, _ = load_members(tmp_path)
    _same_outputs(net, networks["model"], 32)


def test_model_json_is_format_2_and_lists_members(tmp_path):
    save_members({"stage1": _net(), "stage2": _net()}, _cascade_spec(), tmp_path)
    data = json.loads((tmp_path / "model.json").read_text())
    assert data["format_version"] == 2
    assert data["kind"] == "cascade"
    assert data["combine"] == COMBINE
    assert [(m["name"], m["backbone"], m["image_size"], m["weights"]) for m in data["members"]] == [
        ("stage1", "cnn_small", 32, "stage1.safetensors"),
        ("stage2", "cnn_small", 48, "stage2.safetensors"),
    ]
    assert read_spec(tmp_path) == _cascade_spec()


def test_save_members_refuses_networks_that_do_not_match(tmp_path):
    with pytest.raises(ValueError, match="do not match"):
        save_members({"stage1": _net()}, _cascade_spec(), tmp_path)


def test_format_1_model_loads_as_a_single_stretched_model(tmp_path):
    torch.manual_seed(0)
    net = create_model("mobilenet_v3_small", num_classes=3).eval()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "model.safetensors"))
    v1 = {
        "format_version": 1,
        "backbone": "mobilenet_v3_small",
        "classes": list(CLASSES),
        "image_size": 32,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "thresholds": {"nudity": 0.5, "violence": 0.7},
    }
    (tmp_path / "model.json").write_text(json.dumps(v1))
    networks, spec = load_members(tmp_path)
    assert spec.kind == "single"
    assert spec.resize == "stretch"
    assert spec.members == (MemberSpec("model", "mobilenet_v3_small", 32),)
    assert spec.classes == CLASSES
    assert spec.image_size == 32
    assert spec.thresholds == {"nudity": 0.5, "violence": 0.7}
    _same_outputs(net, networks["model"], 32)


def test_unknown_format_version_is_refused(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"format_version": 9}))
    with pytest.raises(ValueError, match="format_version 9"):
        read_spec(tmp_path)


def test_missing_model_json_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="modops model folder") as err:
        load_members(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_missing_weights_file_names_the_folder(tmp_path):
    save_members({"stage1": _net(), "stage2": _net()}, _cascade_spec(), tmp_path)
    (tmp_path / "stage2.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="stage2.safetensors") as err:
        load_members(tmp_path)
    assert "incomplete" in str(err.value)
    assert str(tmp_path) in str(err.value)


def test_cascade_without_combine_is_invalid():
    members = (MemberSpec("stage1", "cnn_small", 32), MemberSpec("stage2", "cnn_small", 32))
    with pytest.raises(ValueError, match="combine"):
        ModelSpec(classes=CLASSES, members=members, kind="cascade")


@pytest.mark.parametrize(("kind", "n"), [("single", 0), ("single", 2), ("cascade", 1), ("cascade", 3)])
def test_wrong_member_count_is_invalid(kind, n):
    members = tuple(MemberSpec(f"m{i}", "cnn_small", 32) for i in range(n))
    with pytest.raises(ValueError, match=f"has {1 if kind == 'single' else 2} member"):
        ModelSpec(classes=CLASSES, members=members, kind=kind, combine=COMBINE)


def test_bad_kind_is_invalid():
    with pytest.raises(ValueError, match="kind"):
        ModelSpec(classes=CLASSES, members=(MemberSpec("model", "cnn_small", 32),), kind="ensemble")


def test_bad_resize_is_invalid():
    with pytest.raises(ValueError, match="resize"):
        _single_spec(resize="crop")
