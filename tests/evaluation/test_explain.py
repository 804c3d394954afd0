from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from modops.evaluation.explain import GAP, gradcam, image_grid, overlay, select_examples

SIZE = 32
SQUARE = 8


class TinyCNN(nn.Module):
    """conv -> BN -> ReLU -> strided conv -> ReLU -> global pool -> linear; the Grad-CAM layer is 16 x 16."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv1(x)))
        x = self.act(self.conv2(x))
        return self.head(x.mean(dim=(2, 3)))


def square_detector() -> TinyCNN:
    """Random weights, except one channel path that fires only on bright pixels and alone drives class 1.

    conv1 channel 0 averages the 3 x 3 x 3 neighbourhood minus 0.6 (so only pixels brighter than the dark
    background pass the ReLU); conv2 channel 0 copies it; class 1's logit reads only channel 0 and class 0's
    logit reads nothing (all-zero weights: its Grad-CAM map is all zero).
    """
    torch.manual_seed(0)
    model = TinyCNN()
    with torch.no_grad():
        model.conv1.weight[0].fill_(1 / 27)
        model.conv1.bias[0] = -0.6
        model.conv2.weight[0].zero_()
        model.conv2.weight[0, 0, 1, 1] = 1.0
        model.conv2.bias[0] = 0.0
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.weight[1, 0] = 1.0
    return model


def square_images(n: int, *, seed: int = 0) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Dark noise in [0, 0.3] with one bright SQUARE x SQUARE patch at a random place per image."""
    gen = torch.Generator().manual_seed(seed)
    images = 0.3 * torch.rand(n, 3, SIZE, SIZE, generator=gen)
    corners = []
    for i in range(n):
        top, left = (int(v) for v in torch.randint(0, SIZE - SQUARE + 1, (2,), generator=gen))
        images[i, :, top : top + SQUARE, left : left + SQUARE] = 1.0
        corners.append((top, left))
    return images, corners


def test_heatmap_shape_range_and_finiteness():
    model = square_detector()
    images, _ = square_images(5)
    heat = gradcam(model, model.conv2, images, [1, 1, 0, 1, 0])
    assert heat.shape == (5, SIZE, SIZE) and heat.dtype == np.float32
    assert np.isfinite(heat).all()
    assert heat.min() >= 0 and heat.max() <= 1
    assert np.allclose(heat[[0, 1, 3]].max(axis=(1, 2)), 1.0)  # min-max normalised
    assert not heat[[2, 4]].any()  # class 0 has no evidence anywhere: all zero, no NaN


def test_heat_concentrates_on_the_cue_region():
    model = square_detector()
    images, corners = square_images(6, seed=1)
    heat = gradcam(model, model.act, images, torch.ones(6, dtype=torch.long))
    for h, (top, left) in zip(heat, corners, strict=True):
        inside = np.zeros_like(h, dtype=bool)
        inside[top : top + SQUARE, left : left + SQUARE] = True
        assert h[inside].mean() > 5 * h[~inside].mean() + 0.2
        peak = np.unravel_index(h.argmax(), h.shape)
        assert top - 1 <= peak[0] <= top + SQUARE and left - 1 <= peak[1] <= left + SQUARE


@pytest.mark.parametrize("context", ["inference_mode", "no_grad"])
def test_works_under_inference_mode_and_no_grad(context):
    model = square_detector()
    images, _ = square_images(3)
    expected = gradcam(model, model.conv2, images, [1, 1, 1])
    ctx = torch.inference_mode() if context == "inference_mode" else torch.no_grad()
    with ctx:
        frozen = images.clone()  # an inference tensor under inference_mode
        heat = gradcam(model, model.conv2, frozen, torch.ones(3, dtype=torch.long))
    np.testing.assert_array_equal(heat, expected)


def test_batches_of_at_most_32_give_the_same_maps():
    model = square_detector()
    images, _ = square_images(35, seed=2)
    calls = []
    handle = model.conv2.register_forward_hook(lambda _m, inp, _out: calls.append(inp[0].shape[0]))
    heat = gradcam(model, model.conv2, images, [1] * 35)
    handle.remove()
    assert calls == [32, 3]
    np.testing.assert_allclose(heat[30:], gradcam(model, model.conv2, images[30:], [1] * 5), atol=1e-5)


def test_model_modes_stats_and_grads_are_left_alone():
    model = square_detector().train()
    model.bn.eval()  # a mixed-mode model must come back mixed
    model.conv1.train()
    stats = (model.bn.running_mean.clone(), model.bn.running_var.clone(), model.bn.num_batches_tracked.clone())
    images, _ = square_images(2)
    gradcam(model, model.conv2, images, [1, 1])
    assert model.training and model.conv1.training and model.head.training
    assert not model.bn.training
    assert all(
        torch.equal(a, b)
        for a, b in zip(stats, (model.bn.running_mean, model.bn.running_var, model.bn.num_batches_tracked), strict=True)
    )
    assert all(p.grad is None for p in model.parameters())

    model.train()
    with pytest.raises(ValueError, match="targets"):
        gradcam(model, model.conv2, images, [1])
    assert model.training and model.bn.training  # restored on the error path too


def test_forward_wrapper_for_models_that_do_not_return_logits():
    class DictModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = square_detector()

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"logits": self.inner(x)}

    wrapped = DictModel()
    images, _ = square_images(2)
    heat = gradcam(wrapped, wrapped.inner.conv2, images, [1, 1], forward=lambda x: wrapped(x)["logits"])
    np.testing.assert_allclose(heat, gradcam(wrapped.inner, wrapped.inner.conv2, images, [1, 1]), atol=1e-6)


def test_overlay_accepts_tensor_array_and_pil():
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (40, 24, 3), dtype=np.uint8)  # H=40, W=24
    heat = rng.random((10, 6)).astype(np.float32)
    results = [
        overlay(torch.from_numpy(array).permute(2, 0, 1), heat),
        overlay(array, heat),
        overlay(Image.fromarray(array), heat, alpha=0.3, colormap="inferno"),
    ]
    for img in results:
        assert img.mode == "RGB" and img.size == (24, 40)
    np.testing.assert_array_equal(np.asarray(results[0]), np.asarray(results[1]))
    # alpha = 0 gives the image back; alpha = 1 gives pure colormap colours.
    np.testing.assert_array_equal(np.asarray(overlay(array, heat, alpha=0.0)), array)
    assert not np.array_equal(np.asarray(overlay(array, heat, alpha=1.0)), array)
    with pytest.raises(ValueError, match="uint8"):
        overlay(array.astype(np.float32) / 255, heat)


def test_image_grid_size_math():
    tiles = [Image.new("RGB", (20 + i, 10), (i * 20, 0, 0)) for i in range(5)]
    grid = image_grid(tiles, columns=3, tile_size=32)
    assert grid.mode == "RGB" and grid.size == (3 * 32 + 4 * GAP, 2 * 32 + 3 * GAP)

    captioned = image_grid(tiles, captions=[f"p={i / 10:.2f}" for i in range(5)], columns=3, tile_size=32)
    titled = image_grid(
        tiles, captions=[f"p={i / 10:.2f}" for i in range(5)], columns=3, tile_size=32, title="false positives"
    )
    assert captioned.width == grid.width and titled.width == grid.width
    caption_h = (captioned.height - grid.height) // 2  # one strip per row
    assert caption_h > 0 and captioned.height == grid.height + 2 * caption_h
    assert titled.height > captioned.height

    two_line = image_grid(tiles[:2], captions=["a\nb", "c"], columns=8, tile_size=32)
    one_line = image_grid(tiles[:2], captions=["a", "c"], columns=8, tile_size=32)
    assert two_line.size[0] == 2 * 32 + 3 * GAP and two_line.height > one_line.height
    image_grid(tiles[:1], captions=["a very long caption that cannot fit in a tiny tile"], tile_size=16)

    with pytest.raises(ValueError, match="captions"):
        image_grid(tiles, captions=["only one"])


def test_image_grid_empty_says_no_examples():
    empty = image_grid([], title="false negatives")
    assert empty.mode == "RGB" and 0 < empty.width <= 512 and 0 < empty.height <= 128
    assert np.asarray(empty).min() < 128  # some text was drawn


def test_select_examples_on_a_handmade_case():
    #                 0     1     2     3     4     5     6     7     8     9
    y = np.array([True, True, False, False, True, False, True, True, False, True])
    s = np.array([0.95, 0.60, 0.80, 0.50, 0.10, 0.20, 0.30, 0.95, 0.80, np.nan])
    out = select_examples(y, s, threshold=0.5, k=8)
    np.testing.assert_array_equal(out["top_positives"], [0, 7, 1])  # tie 0.95: lower index first
    np.testing.assert_array_equal(out["false_positives"], [2, 8, 3])  # 0.5 is at the threshold: predicted
    np.testing.assert_array_equal(out["false_negatives"], [4, 6])  # lowest first; NaN never picked
    assert all(v.dtype == np.int64 for v in out.values())

    top1 = select_examples(y.astype(int), s, threshold=0.5, k=1)
    assert [v.tolist() for v in top1.values()] == [[0], [2], [4]]
    assert all(len(v) == 0 for v in select_examples(y, s, threshold=0.5, k=0).values())
    with pytest.raises(ValueError):
        select_examples(y, s[:3], threshold=0.5)
