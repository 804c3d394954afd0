from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from modops.config import AugmentConfig
from modops.data.images import DecodeLimits, QuarantineError
from modops.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalPreset, TrainPreset, letterbox, normalize
from tests.conftest import image_bytes

RED = (255, 0, 0)


def _solid(size: tuple[int, int], colour: tuple[int, int, int] = RED, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


def _red_rows(x: torch.Tensor) -> torch.Tensor:
    """bool [S]: rows of a uint8 [3, S, S] image that are entirely pure red."""
    r, g, b = x.int()
    return ((r == 255) & (g == 0) & (b == 0)).all(dim=1)


def test_letterbox_keeps_the_aspect_ratio():
    x = EvalPreset(32)(_solid((100, 50)))
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8
    red = _red_rows(x)
    assert not red[0] and not red[-1]  # padding top and bottom
    assert red.sum().item() == pytest.approx(16, abs=1)
    assert red[12:20].all()  # the band is centred
    # The padding is the ImageNet mean colour, i.e. zero after normalisation.
    assert x[:, 0, 0].tolist() == [round(255 * m) for m in IMAGENET_MEAN]


def test_letterbox_of_a_tall_image_pads_left_and_right():
    out = letterbox(Image.new("RGB", (20, 40), RED), image_size=32)
    assert out.size == (32, 32)
    assert out.getpixel((16, 0)) == RED and out.getpixel((0, 16)) != RED


def test_letterbox_of_a_square_image_is_just_a_resize():
    out = letterbox(Image.new("RGB", (64, 64), RED), image_size=32)
    assert out.size == (32, 32) and out.getcolors() == [(32 * 32, RED)]


def test_stretch_fills_the_square():
    x = EvalPreset(32, resize="stretch")(_solid((100, 50)))
    assert x.shape == (3, 32, 32)
    assert _red_rows(x).all()


def test_unknown_resize_mode_is_refused():
    with pytest.raises(ValueError, match="resize"):
        EvalPreset(32, resize="crop")


def test_eval_preset_is_deterministic():
    data = image_bytes(0, size=(40, 30))
    assert torch.equal(EvalPreset(24)(data), EvalPreset(24)(data))


def test_train_preset_shape_randomness_and_seeding():
    data = image_bytes(1, size=(48, 36))
    preset = TrainPreset(32)
    torch.manual_seed(0)
    a, b = preset(data), preset(data)
    assert a.shape == (3, 32, 32) and a.dtype == torch.uint8
    assert not torch.equal(a, b)
    torch.manual_seed(0)
    assert torch.equal(preset(data), a)
    assert torch.equal(preset(data), b)


def test_train_preset_with_rotation_and_vertical_flips():
    augment = AugmentConfig(hflip=False, vflip=True, rotate_degrees=180, color_jitter=0.0, scale=(0.5, 1.0))
    preset = TrainPreset(24, augment=augment, resize="stretch")
    torch.manual_seed(0)
    outs = [preset(image_bytes(2, size=(30, 40))) for _ in range(3)]
    assert all(o.shape == (3, 24, 24) and o.dtype == torch.uint8 for o in outs)


def test_train_preset_enforces_the_decode_limits():
    preset = TrainPreset(32, limits=DecodeLimits(max_bytes=10))
    with pytest.raises(QuarantineError) as err:
        preset(image_bytes(0, size=(20, 20)))
    assert err.value.reason == "file_too_large"


def test_eval_preset_refuses_files_over_max_bytes():
    data = image_bytes(0, size=(20, 20))
    with pytest.raises(QuarantineError) as err:
        EvalPreset(16, limits=DecodeLimits(max_bytes=len(data) - 1))(data)
    assert err.value.reason == "file_too_large"
    assert EvalPreset(16, limits=DecodeLimits(max_bytes=len(data)))(data).shape == (3, 16, 16)


def test_eval_preset_refuses_formats_outside_the_allow_list():
    jpeg_only = EvalPreset(16, limits=DecodeLimits(allowed_formats=("JPEG",)))
    with pytest.raises(QuarantineError) as err:
        jpeg_only(_solid((20, 20), fmt="PNG"))
    # With only the JPEG decoder allowed to look, a PNG is unrecognised bytes.
    assert err.value.reason == "unsupported_format"
    assert jpeg_only(_solid((20, 20), fmt="JPEG")).shape == (3, 16, 16)


def test_eval_preset_refuses_images_over_the_pixel_cap():
    data = _solid((40, 30))
    with pytest.raises(QuarantineError) as err:
        EvalPreset(16, limits=DecodeLimits(max_pixels=40 * 30 - 1))(data)
    assert err.value.reason == "over_pixel_cap"
    assert EvalPreset(16, limits=DecodeLimits(max_pixels=40 * 30))(data).shape == (3, 16, 16)


def test_eval_preset_refuses_garbage():
    with pytest.raises(QuarantineError) as err:
        EvalPreset(16)(b"garbage bytes")
    assert err.value.reason == "not_an_image"


def test_transparent_pixels_become_white():
    buf = io.BytesIO()
    Image.new("RGBA", (16, 16), (255, 0, 0, 0)).save(buf, format="PNG")
    x = EvalPreset(16)(buf.getvalue())
    assert (x == 255).all()


def test_normalize_is_channels_last_imagenet_normalisation():
    batch = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    batch[1, :, 2, 3] = torch.tensor([255, 128, 0], dtype=torch.uint8)
    x = normalize(batch, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    assert x.dtype == torch.float32 and x.shape == (2, 3, 4, 4)
    assert x.is_contiguous(memory_format=torch.channels_last)
    expected = [(v / 255 - m) / s for v, m, s in zip((255, 128, 0), IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    torch.testing.assert_close(x[1, :, 2, 3], torch.tensor(expected))
    torch.testing.assert_close(x[0, 0, 0, 0], torch.tensor(-IMAGENET_MEAN[0] / IMAGENET_STD[0]))


def test_the_letterbox_fill_normalises_to_about_zero():
    fill = EvalPreset(32)(_solid((64, 16)))[:, :1, :1][None]
    x = normalize(fill, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    assert x.abs().max().item() < 0.01


def test_color_jitter_is_batched_seeded_and_bounded():
    from modops.data.transforms import color_jitter

    batch = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    a = color_jitter(batch, strength=0.3, generator=torch.Generator().manual_seed(1))
    b = color_jitter(batch, strength=0.3, generator=torch.Generator().manual_seed(1))
    assert a.shape == batch.shape and a.dtype == torch.float32 and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 255 and not torch.equal(a, batch.float())
    assert torch.equal(color_jitter(batch, strength=0.0, generator=torch.Generator()), batch.float())
