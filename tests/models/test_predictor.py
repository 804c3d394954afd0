from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from modops.models import MemberSpec, ModelSpec, create_model, save_members
from modops.models.predictor import COMBINERS, Cascade, SingleModel, band_route, build_predictor, fuse, load_predictor

CLASSES = ("clean", "nudity", "violence")


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("cnn_small", num_classes=len(CLASSES)).eval()


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def _single_spec(size: int = 32) -> ModelSpec:
    return ModelSpec(classes=CLASSES, members=(MemberSpec("model", "cnn_small", size),))


def _cascade_spec(*, low: float, high: float = 1.0, fuse: str = "mean", size1: int = 32, size2: int = 32) -> ModelSpec:
    return ModelSpec(
        classes=CLASSES,
        members=(
            MemberSpec("stage1", "cnn_small", size1, weights="stage1.safetensors"),
            MemberSpec("stage2", "cnn_small", size2, weights="stage2.safetensors"),
        ),
        kind="cascade",
        combine={"rule": "band", "low": low, "high": high, "fuse": fuse},
    )


def _mid_band(p1: np.ndarray) -> float:
    """A ``low`` that sends about half of the rows (those with the higher top category score) to stage 2."""
    top = np.sort(p1[:, 1:].max(axis=1))
    half = len(top) // 2
    assert top[half - 1] < top[half], "stage-1 scores tie; pick another seed"
    return float((top[half - 1] + top[half]) / 2)


def test_band_route_on_a_handmade_matrix():
    p = torch.tensor(
        [
            [0.98, 0.01, 0.01],  # both categories below the band
            [0.50, 0.30, 0.20],  # first category inside
            [0.40, 0.05, 0.55],  # second category inside
            [0.02, 0.97, 0.01],  # first category above the band
            [0.80, 0.10, 0.10],  # exactly on the low edge
            [0.25, 0.05, 0.70],  # exactly on the high edge
        ]
    )
    route = band_route(p, low=0.1, high=0.7)
    assert route.dtype == torch.bool
    assert route.tolist() == [False, True, True, False, True, True]
    # Column 0 (the negative class) never routes, even inside the band.
    assert not band_route(torch.tensor([[0.5, 0.0, 0.0]]), low=0.1, high=0.9).item()


@pytest.mark.parametrize("how", ["mean", "geometric", "stage2"])
def test_fuse_rows_sum_to_one(how):
    g = torch.Generator().manual_seed(0)
    p1 = torch.softmax(torch.randn(6, 3, generator=g), dim=1)
    p2 = torch.softmax(torch.randn(6, 3, generator=g), dim=1)
    out = fuse(p1, p2, how=how)
    assert out.shape == (6, 3)
    torch.testing.assert_close(out.sum(dim=1), torch.ones(6))


def test_fuse_values():
    p1 = torch.tensor([[0.2, 0.8, 0.0]])
    p2 = torch.tensor([[0.6, 0.0, 0.4]])
    torch.testing.assert_close(fuse(p1, p2, how="mean"), torch.tensor([[0.4, 0.4, 0.2]]))
    torch.testing.assert_close(fuse(p1, p2, how="stage2"), p2)


def test_geometric_fuse_lets_either_stage_veto():
    p1 = torch.tensor([[0.1, 0.9, 0.0]])  # stage 1 is sure it is not "violence"
    p2 = torch.tensor([[0.1, 0.0, 0.9]])  # stage 2 is sure it is not "nudity"
    geo = fuse(p1, p2, how="geometric")
    assert geo[0, 0] > 0.99
    assert geo[0, 1] < 1e-4 and geo[0, 2] < 1e-4
    mean = fuse(p1, p2, how="mean")
    assert mean[0, 1] == pytest.approx(0.45) and mean[0, 2] == pytest.approx(0.45)


def test_unknown_fuse_raises():
    p = torch.full((1, 3), 1 / 3)
    with pytest.raises(ValueError, match="unknown fuse"):
        fuse(p, p, how="max")


def test_unknown_combine_rule_raises():
    spec = ModelSpec(
        classes=CLASSES,
        members=(MemberSpec("stage1", "cnn_small", 32), MemberSpec("stage2", "cnn_small", 32)),
        kind="cascade",
        combine={"rule": "vote", "low": 0.1, "high": 1.0, "fuse": "mean"},
    )
    assert "vote" not in COMBINERS
    with pytest.raises(ValueError, match="unknown cascade combination rule 'vote'"):
        Cascade(spec, _net(0), _net(1))


def test_single_model_rows_sum_to_one_and_batching_is_invariant():
    model = SingleModel(_single_spec(), _net(0))
    x = _images(8, 32)
    whole = model.predict(x)
    split = [model.predict(x[:3]), model.predict(x[3:])]
    assert whole.probs.shape == (8, 3) and whole.probs.dtype == np.float32
    np.testing.assert_allclose(whole.probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.concatenate([p.probs for p in split]), whole.probs, atol=1e-6)
    assert whole.stage2.dtype == bool and not whole.stage2.any()


@pytest.mark.parametrize("how", ["mean", "geometric", "stage2"])
def test_cascade_routes_only_the_band_to_stage_2(how):
    x = _images(8, 32, seed=1)
    net1, net2 = _net(1), _net(2)
    p1 = SingleModel(_single_spec(), net1).predict(x).probs
    p2 = SingleModel(_single_spec(), net2).predict(x).probs
    low = _mid_band(p1)
    spec = _cascade_spec(low=low, fuse=how)
    cascade = Cascade(spec, net1, net2)
    pred = cascade.predict(x)

    expected_route = band_route(torch.from_numpy(p1), low=low, high=1.0).numpy()
    assert pred.stage2.dtype == bool
    np.testing.assert_array_equal(pred.stage2, expected_route)
    assert 0 < expected_route.sum() < len(x)
    out = ~expected_route
    np.testing.assert_array_equal(pred.probs[out], p1[out])
    fused = fuse(torch.from_numpy(p1[expected_route]), torch.from_numpy(p2[expected_route]), how=how).numpy()
    np.testing.assert_allclose(pred.probs[expected_route], fused, atol=1e-6)
    np.testing.assert_allclose(pred.probs.sum(axis=1), 1.0, rtol=1e-5)


def test_cascade_scores_nothing_with_stage_2_when_the_band_is_empty():
    x = _images(4, 32)
    net1 = _net(1)
    cascade = Cascade(_cascade_spec(low=1.0, high=1.0), net1, _net(2))
    pred = cascade.predict(x)
    assert not pred.stage2.any()
    np.testing.assert_array_equal(pred.probs, SingleModel(_single_spec(), net1).predict(x).probs)


def test_cascade_stage_2_with_another_input_size():
    net1, net2 = _net(1), _net(2)
    spec = _cascade_spec(low=0.0, size1=32, size2=48)  # low=0: every row reaches stage 2
    assert spec.image_size == 48
    cascade = Cascade(spec, net1, net2)
    assert cascade.preset().image_size == 48
    x = _images(5, 48)
    pred = cascade.predict(x)
    assert pred.probs.shape == (5, 3) and pred.stage2.all()
    # Stage 1 sees the images resized to 32 px, stage 2 sees them at 48 px.
    p1 = SingleModel(_single_spec(32), net1).predict(x).probs
    p2 = SingleModel(_single_spec(48), net2).predict(x).probs
    expected = fuse(torch.from_numpy(p1), torch.from_numpy(p2), how="mean").numpy()
    np.testing.assert_allclose(pred.probs, expected, atol=1e-6)


def test_embed_returns_the_pooled_feature_layer():
    net = _net(0)
    model = SingleModel(_single_spec(), net)
    x = _images(3, 32)
    emb = model.embed(x)
    channels = net.features.stage4[-1][0].out_channels
    assert emb.shape == (3, channels) and emb.dtype == np.float32
    assert np.isfinite(emb).all()
    cascade = Cascade(_cascade_spec(low=0.1), net, _net(1))
    np.testing.assert_allclose(cascade.embed(x), emb, atol=1e-6)


def test_embed_of_a_torchvision_backbone():
    torch.manual_seed(0)
    net = create_model("mobilenet_v3_small", num_classes=3).eval()
    spec = ModelSpec(classes=CLASSES, members=(MemberSpec("model", "mobilenet_v3_small", 32),))
    emb = SingleModel(spec, net).embed(_images(2, 32))
    assert emb.shape == (2, net.classifier[0].in_features) and emb.dtype == np.float32


@pytest.mark.parametrize("kind", ["single", "cascade"])
def test_load_predictor_matches_the_in_memory_predictor(tmp_path, kind):
    if kind == "single":
        spec, networks = _single_spec(), {"model": _net(0)}
    else:
        spec, networks = _cascade_spec(low=0.3, size2=48), {"stage1": _net(1), "stage2": _net(2)}
    save_members(networks, spec, tmp_path)
    in_memory = build_predictor(networks, spec)
    loaded = load_predictor(tmp_path)
    assert type(loaded) is type(in_memory)
    assert loaded.spec == spec
    x = _images(6, spec.image_size)
    a, b = in_memory.predict(x), loaded.predict(x)
    np.testing.assert_allclose(b.probs, a.probs, atol=1e-6)
    np.testing.assert_array_equal(b.stage2, a.stage2)


def test_a_format_1_model_is_served_with_stretched_inputs(tmp_path):
    net = _net(0)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "model.safetensors"))
    v1 = {"format_version": 1, "backbone": "cnn_small", "classes": list(CLASSES), "image_size": 32}
    v1 |= {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "thresholds": {}}
    (tmp_path / "model.json").write_text(json.dumps(v1))
    predictor = load_predictor(tmp_path)
    assert isinstance(predictor, SingleModel)
    assert predictor.preset().resize == "stretch" and predictor.preset().image_size == 32
    x = _images(3, 32)
    spec = ModelSpec(classes=CLASSES, members=(MemberSpec("model", "cnn_small", 32),), mean=(0.5,) * 3, std=(0.25,) * 3)
    np.testing.assert_allclose(predictor.predict(x).probs, SingleModel(spec, net).predict(x).probs, atol=1e-6)


def test_fuse_columns_rescores_only_the_specialist_categories():
    from modops.models.predictor import fuse_columns

    p1 = torch.tensor([[0.5, 0.2, 0.3], [0.1, 0.1, 0.8]])
    p2 = torch.tensor([[0.9, 0.05, 0.05], [0.0, 0.0, 1.0]])
    out = fuse_columns(p1, p2, columns=[2], how="geometric")
    assert torch.allclose(out.sum(dim=1), torch.ones(2))
    assert torch.allclose(out[:, 1], p1[:, 1])  # the other category keeps stage 1's score
    assert torch.allclose(out[0, 2], torch.sqrt(torch.tensor(0.3 * 0.05)))
    assert torch.allclose(out[1, 2], torch.sqrt(torch.tensor(0.8)))


def test_band_route_can_watch_only_some_categories():
    from modops.models.predictor import band_route

    p = torch.tensor([[0.2, 0.7, 0.1], [0.5, 0.05, 0.45]])
    assert band_route(p, low=0.3, high=1.0).tolist() == [True, True]
    assert band_route(p, low=0.3, high=1.0, columns=[2]).tolist() == [False, True]
