"""EXIF orientation: the model sees an upload as reviewers' browsers show it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from modops.data.images import DecodeLimits, decode_image, open_rgb, open_rgb_with_properties


def _photo(*, orientation: int | None, exif: bytes | None = None, fmt: str = "JPEG") -> tuple[bytes, np.ndarray]:
    """A 40x24 image, left half black and right half white, saved with an EXIF orientation tag."""
    pixels = np.zeros((24, 40, 3), dtype=np.uint8)
    pixels[:, 20:] = 255
    buf = io.BytesIO()
    kw = {}
    if orientation is not None:
        tags = Image.Exif()
        tags[0x0112] = orientation
        kw["exif"] = tags.tobytes()
    if exif is not None:
        kw["exif"] = exif
    Image.fromarray(pixels).save(buf, format=fmt, **kw)
    return buf.getvalue(), pixels


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_an_exif_rotated_upload_is_decoded_upright(fmt):
    data, _ = _photo(orientation=6, fmt=fmt)  # 6: the viewer turns it 90 degrees clockwise
    img, props = open_rgb_with_properties(data)
    assert img.size == (24, 40) and (props.width, props.height) == (40, 24)  # properties stay as stored
    grey = np.asarray(img.convert("L"), dtype=np.float32)
    # Turned clockwise, the black left half becomes the top half.
    assert grey[:18].mean() < 30 and grey[22:].mean() > 225
    width, height = open_rgb(data, draft_size=8).size  # a JPEG's draft (DCT-scaled) decode turns it too
    assert width < height


def test_the_perceptual_hash_is_of_the_upright_image():
    rotated, pixels = _photo(orientation=6, fmt="PNG")
    upright = io.BytesIO()
    Image.fromarray(np.rot90(pixels, k=-1).copy()).save(upright, format="PNG")
    limits = {"limits": DecodeLimits(), "min_side": 8}
    decoded = decode_image(rotated, **limits)
    assert decoded.phash == decode_image(upright.getvalue(), **limits).phash
    assert (decoded.width, decoded.height) == (40, 24)


@pytest.mark.parametrize("orientation", [None, 1, 0, 9, 300])
def test_no_or_a_meaningless_orientation_leaves_the_image_as_stored(orientation):
    data, _ = _photo(orientation=orientation)
    assert open_rgb(data).size == (40, 24)


def test_a_damaged_exif_block_is_ignored_not_quarantined():
    data, _ = _photo(orientation=None, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff")
    assert open_rgb(data).size == (40, 24)


def test_pixels_hidden_under_transparency_do_not_change_the_perceptual_hash():
    rng = np.random.default_rng(0)
    visible = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    alpha = np.full((32, 32, 1), 255, dtype=np.uint8)
    alpha[:, 16:] = 0  # the right half is transparent: shown as white
    hashes = []
    for hidden in (0, 255):  # what a tool happened to leave under the transparent half
        rgba = np.concatenate([visible, alpha], axis=2)
        rgba[:, 16:, :3] = hidden
        buf = io.BytesIO()
        Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
        hashes.append(decode_image(buf.getvalue(), limits=DecodeLimits(), min_side=8).phash)
    assert hashes[0] == hashes[1]
