"""Fuzzing the safe decode: whatever the bytes, the outcome is a decoded image or a QuarantineError.

Samples of every format Pillow can write from RGB are truncated at many points and mutated with
seeded random byte flips, then decoded with every decoder allowed (the widest attack surface);
hypothesis adds arbitrary bytes and its own flips and cuts. Seeded and derandomized, so the suite
is deterministic, and bounded to a few seconds.
"""

from __future__ import annotations

import io
import random
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile, PngImagePlugin

from modops.data.images import QUARANTINE_REASONS, DecodedImage, DecodeLimits, QuarantineError, decode_image, open_rgb

# Damaged TIFF and EXIF headers make Pillow warn before it fails or recovers: expected here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# Pillow decodes EPS by running Ghostscript, a full PostScript interpreter: random flips can make
# a program that never ends. modops never allows EPS; fuzzing it would test Ghostscript.
EXTERNAL_DECODERS = ("EPS",)


def _writable_samples() -> dict[str, bytes]:
    """One small RGB noise image per format Pillow can save from RGB, encoded."""
    Image.init()
    pixels = np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    rgb = Image.fromarray(pixels)
    samples = {}
    for fmt in sorted(Image.SAVE):
        if fmt in EXTERNAL_DECODERS:
            continue
        buf = io.BytesIO()
        try:
            rgb.save(buf, format=fmt)
        except (OSError, ValueError, KeyError):  # no RGB writer (XBM, MSP, BLP) or no handler (BUFR, HDF5)
            continue
        samples[fmt] = buf.getvalue()
    return samples


SAMPLES = _writable_samples()
ALL_DECODERS = DecodeLimits(
    max_pixels=4_000_000,  # ICNS opens at 1024 x 1024; mutated headers claiming more are refused unread
    max_bytes=2 << 20,  # ICNS stores every size up to 1024 x 1024: about 1.3 MB
    allowed_formats=tuple(sorted({*Image.OPEN, *SAMPLES} - set(EXTERNAL_DECODERS))),
)


def _outcome(data: bytes) -> DecodedImage | QuarantineError:
    """Decode as ingest and as training do; any exception but QuarantineError fails the test."""
    try:
        decoded = decode_image(data, limits=ALL_DECODERS, min_side=1)
    except QuarantineError as exc:
        assert exc.reason in QUARANTINE_REASONS
        return exc
    assert isinstance(decoded, DecodedImage) and decoded.width * decoded.height <= ALL_DECODERS.max_pixels
    assert open_rgb(data, limits=ALL_DECODERS, draft_size=32).mode == "RGB"  # what ingest accepts, training reads
    return decoded


def _cuts(n: int) -> list[int]:
    powers = [2**k for k in range(n.bit_length()) if 2**k < n]
    return sorted({0, *powers, *(n * k // 10 for k in range(1, 10)), n - 1})


def _flips(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] ^= rng.randint(1, 255)
    return bytes(out)


def test_samples_cover_the_common_formats_and_decode():
    assert {"JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"} <= set(SAMPLES)
    readable = {fmt for fmt in SAMPLES if fmt != "PDF"}  # Pillow writes PDF but cannot read it
    decoded = {fmt: _outcome(SAMPLES[fmt]) for fmt in readable}
    assert all(isinstance(d, DecodedImage) for d in decoded.values()), decoded


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_truncated_and_mutated_files_are_decoded_or_quarantined(fmt):
    data = SAMPLES[fmt]
    outcomes = [_outcome(data[:cut]) for cut in _cuts(len(data))]
    rng = random.Random(f"modops-fuzz-{fmt}")  # str seeds are stable across runs
    outcomes += [_outcome(_flips(data, rng)) for _ in range(40)]
    assert isinstance(outcomes[0], QuarantineError) and outcomes[0].reason == "empty_file"
    assert any(isinstance(o, QuarantineError) and o.reason != "empty_file" for o in outcomes)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_are_decoded_or_quarantined(data):
    _outcome(data)


@settings(
    max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    fmt=st.sampled_from(sorted(SAMPLES)),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), max_size=6),
    cut=st.none() | st.integers(min_value=0),
)
def test_flipped_and_cut_samples_are_decoded_or_quarantined(fmt, flips, cut):
    data = bytearray(SAMPLES[fmt])
    for position, xor in flips:
        data[position % len(data)] ^= xor
    _outcome(bytes(data if cut is None else data[: cut % (len(data) + 1)]))


class PluginExploded(MemoryError):
    """What a buggy decoder might raise: not an exception class any caller expects."""


@pytest.mark.parametrize(
    ("method", "exc", "name"),
    [
        ("_open", RuntimeError("plugin bug"), "RuntimeError"),
        ("load", struct.error("unpack requires a buffer of 4 bytes"), "struct.error"),
        ("load", PluginExploded("cannot allocate"), "PluginExploded"),
        ("load", ZeroDivisionError("division by zero"), "ZeroDivisionError"),
    ],
)
def test_an_unexpected_exception_class_becomes_decoder_error(monkeypatch, method, exc, name):
    def boom(self, *args, **kwargs):
        raise exc

    monkeypatch.setattr(PngImagePlugin.PngImageFile, method, boom)
    png = SAMPLES["PNG"]
    for decode in (
        lambda: decode_image(png, limits=DecodeLimits(), min_side=1),
        lambda: open_rgb(png, limits=DecodeLimits()),
    ):
        with pytest.raises(QuarantineError) as err:
            decode()
        assert err.value.reason == "decoder_error" and name in err.value.detail


def test_interrupts_are_not_quarantined(monkeypatch):
    def interrupt(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", interrupt)
    with pytest.raises(KeyboardInterrupt):
        decode_image(SAMPLES["PNG"], limits=DecodeLimits(), min_side=1)


def test_truncated_loading_stays_refused(monkeypatch):
    # A setup error, not a bad file: it must stop the run, not quarantine every image.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        decode_image(SAMPLES["PNG"], limits=DecodeLimits(), min_side=1)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        open_rgb(SAMPLES["PNG"])


def test_only_allowed_decoders_see_the_bytes(monkeypatch):
    """decode_image (ingest) passes the allow-list to Image.open: a refused format's plugin never runs."""
    opened = []
    real_open = PngImagePlugin.PngImageFile._open

    def spy(self):
        opened.append(True)
        return real_open(self)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "_open", spy)
    with pytest.raises(QuarantineError) as err:
        decode_image(SAMPLES["PNG"], limits=DecodeLimits(allowed_formats=("JPEG",)), min_side=1)
    assert err.value.reason == "unsupported_format" and not opened
    decode_image(SAMPLES["PNG"], limits=DecodeLimits(allowed_formats=("PNG",)), min_side=1)
    assert opened
