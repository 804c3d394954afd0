"""Hash banks: perceptual hashes of copies match, other pictures do not; the bank's bookkeeping."""

from __future__ import annotations

import io
from pathlib import Path

import imagehash
import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from modops.config import BankConfig
from modops.data.images import open_rgb
from modops.moderation.hashbank import (
    DEFAULT_METHOD,
    DEFAULT_MIN_QUALITY,
    HashBank,
    Match,
    bank_codes,
    hash_quality,
    perceptual_hash,
)

MAX_DISTANCE = BankConfig().max_distance  # the service's default


def _picture(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A product-photo stand-in: a gradient backdrop with a few filled shapes."""
    rng = np.random.default_rng(seed)
    width, height = size
    ramp = np.linspace(0, 1, height)[:, None, None] * rng.integers(60, 200, 3) + rng.integers(0, 50, 3)
    image = Image.fromarray(np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, width * 2 // 3)), int(rng.integers(0, height * 2 // 3))
        box = (x0, y0, x0 + int(rng.integers(20, width // 2)), y0 + int(rng.integers(20, height // 2)))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    return image


def _reencoded(image: Image.Image, fmt: str, **save: object) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return open_rgb(buffer.getvalue())


def _code(bits: str) -> np.ndarray:
    return np.packbits(np.array([int(b) for b in bits], dtype=np.uint8))


def _flipped(code: np.ndarray, n: int) -> np.ndarray:
    bits = np.unpackbits(code)
    bits[:n] ^= 1
    return np.packbits(bits)


@pytest.fixture(params=["multihash", "flat"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def test_copies_match_within_the_default_distance_and_another_picture_does_not() -> None:
    picture = _picture(1)
    bank = HashBank(256)
    bank.add("spam-1", bank_codes(picture))
    bank.add("other-bank-entry", bank_codes(_picture(7)))
    width, height = picture.size
    copies = {
        "jpeg q60": _reencoded(picture, "JPEG", quality=60),
        "0.5x png": _reencoded(picture.resize((width // 2, height // 2), Image.Resampling.BICUBIC), "PNG"),
        "3-4 % crop": _reencoded(picture.crop((5, 4, width - 6, height - 5)), "JPEG", quality=75),
    }
    for name, copy in copies.items():
        found = bank.match(perceptual_hash(copy), max_distance=MAX_DISTANCE)
        assert [m.key for m in found][:1] == ["spam-1"], name
    other = perceptual_hash(_picture(2))
    assert bank.match(other, max_distance=MAX_DISTANCE) == []


def test_png_with_alpha_hashes_as_its_flattened_jpeg() -> None:
    pixels = np.array(_picture(3).convert("RGBA"))
    pixels[:30, :, 3] = 0  # a transparent band: white once flattened, as open_rgb flattens it
    rgba = Image.fromarray(pixels)
    png = perceptual_hash(rgba)
    jpeg = perceptual_hash(_reencoded(_reencoded(rgba, "PNG"), "JPEG", quality=90))
    assert int(np.unpackbits(png ^ jpeg).sum()) <= 8


def test_perceptual_hash_is_imagehash_phash_packed() -> None:
    picture = _picture(4)
    code = perceptual_hash(picture, method="phash", hash_size=16)
    assert code.dtype == np.uint8 and code.shape == (32,)
    expected = np.packbits(imagehash.phash(picture.convert("L"), hash_size=16).hash.reshape(-1))
    np.testing.assert_array_equal(code, expected)
    assert perceptual_hash(picture, method="dhash", hash_size=8).shape == (8,)
    with pytest.raises(ValueError, match="unknown hash method"):
        perceptual_hash(picture, method="nope")
    with pytest.raises(ValueError, match="multiple of 8"):
        perceptual_hash(picture, hash_size=6)


def _dots(period: int, *, radius: int, size: tuple[int, int] = (150, 170)) -> Image.Image:
    """A finely periodic picture: dark dots on a coloured ground (its low frequencies are flat)."""
    image = Image.new("RGB", size, (150, 120, 170))
    draw = ImageDraw.Draw(image)
    for y in range(period // 2, size[1], period):
        for x in range(period // 2, size[0], period):
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(20, 20, 20))
    return image


def _near_black(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A near-black picture: gray levels 0-3 of noise with a faint disc (9 gray levels)."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 4, (size[1], size[0], 3)).astype(np.uint8))
    ImageDraw.Draw(image).ellipse((40, 30, 90, 80), fill=(9, 8, 10))
    return image


def _nearest(copy: Image.Image, codes: np.ndarray, *, method: str) -> int:
    return int(np.unpackbits(codes ^ perceptual_hash(copy, method=method), axis=1).sum(axis=1).min())


def test_the_default_method_is_phash_stable_in_code_and_config() -> None:
    assert DEFAULT_METHOD == BankConfig().method == "phash_stable"
    root = Path(__file__).resolve().parents[2]
    for name in ("params.yaml", "profiles/production.yaml"):
        assert yaml.safe_load((root / name).read_text())["moderate"]["banks"]["method"] == DEFAULT_METHOD, name
    np.testing.assert_array_equal(perceptual_hash(_picture(8)), perceptual_hash(_picture(8), method="phash_stable"))


def test_phash_stable_finds_copies_of_a_finely_periodic_picture() -> None:
    picture = _dots(9, radius=3)
    assert hash_quality(picture) < DEFAULT_MIN_QUALITY  # phash's bits are noise here
    width, height = picture.size
    copies = {
        "0.5x png": _reencoded(picture.resize((width // 2, height // 2), Image.Resampling.BICUBIC), "PNG"),
        "3-4 % crop": _reencoded(picture.crop((5, 4, width - 6, height - 5)), "PNG"),
    }
    for name, copy in copies.items():
        assert _nearest(copy, bank_codes(picture, method="phash_stable"), method="phash_stable") <= 12, name
        assert _nearest(copy, bank_codes(picture, method="phash"), method="phash") > MAX_DISTANCE, name


def test_phash_stable_finds_a_jpeg_copy_of_a_near_black_picture() -> None:
    picture = _near_black(0)
    assert hash_quality(picture) < DEFAULT_MIN_QUALITY
    copy = _reencoded(picture, "JPEG", quality=50)
    assert _nearest(copy, bank_codes(picture, method="phash_stable"), method="phash_stable") <= MAX_DISTANCE - 8
    bank = HashBank(256)
    bank.add("spam-dark", bank_codes(picture))
    bank.add("other", bank_codes(_picture(3)))
    assert [m.key for m in bank.match(perceptual_hash(copy), max_distance=MAX_DISTANCE)] == ["spam-dark"]


def test_phash_stable_tells_flat_pictures_apart_by_brightness() -> None:
    def flat(gray: int) -> np.ndarray:
        return perceptual_hash(Image.new("RGB", (120, 90), (gray, gray, gray)), method="phash_stable")

    np.testing.assert_array_equal(flat(40), flat(40))  # deterministic: no random state
    assert int(np.unpackbits(flat(40) ^ flat(41)).sum()) <= 12  # a copy's mean moves by ~1 level
    for other in (80, 140, 220):
        assert int(np.unpackbits(flat(40) ^ flat(other)).sum()) > 3 * MAX_DISTANCE, other


def test_phash_stable_is_phash_where_margins_are_clear() -> None:
    for seed in range(6):
        picture = _picture(seed)
        assert hash_quality(picture) >= DEFAULT_MIN_QUALITY
        phash, stable = perceptual_hash(picture, method="phash"), perceptual_hash(picture, method="phash_stable")
        assert int(np.unpackbits(phash ^ stable).sum()) <= 12, seed


def test_bank_codes_hold_the_picture_then_its_crops() -> None:
    picture = _picture(5)
    codes = bank_codes(picture, crops=[(0.03, 0.03, 0.03, 0.03)])
    assert codes.shape == (2, 32)
    np.testing.assert_array_equal(codes[0], perceptual_hash(picture))
    with pytest.raises(ValueError, match="left\\+right < 1"):
        bank_codes(picture, crops=[(0.6, 0.0, 0.5, 0.0)])


def test_hash_quality_flags_flat_pictures() -> None:
    flat = Image.new("RGB", (120, 120), (30, 30, 30))
    assert hash_quality(flat) < DEFAULT_MIN_QUALITY <= hash_quality(_picture(6))


def test_add_remove_and_replace(kind: str) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (2, 32), dtype=np.uint8)
    bank = HashBank(256, index=kind)
    bank.add("a", a)
    bank.add("b", b.tobytes())
    assert len(bank) == 2 and "a" in bank and bank.keys() == ["a", "b"]
    assert bank.match(a, max_distance=0) == [Match("a", 0)]
    bank.add("a", b)  # replaces a's code
    assert bank.match(a, max_distance=0) == []
    assert bank.match(b, max_distance=0) == [Match("a", 0), Match("b", 0)]
    assert bank.remove("a") is True and bank.remove("a") is False
    assert "a" not in bank and len(bank) == 1 and bank.n_codes == 1
    assert bank.match(b, max_distance=0) == [Match("b", 0)]


def test_radius_is_inclusive(kind: str) -> None:
    base = _code("0" * 256)
    bank = HashBank(256, index=kind)
    bank.add("near", _flipped(base, 20))
    bank.add("edge", _flipped(base, 29))
    assert bank.match(base, max_distance=29) == [Match("near", 20), Match("edge", 29)]
    assert bank.match(base, max_distance=28) == [Match("near", 20)]
    assert bank.match(base, max_distance=19) == []


def test_a_key_matches_at_its_nearest_code() -> None:
    base = _code("1" * 256)
    bank = HashBank(256)
    bank.add("k", np.stack([_flipped(base, 25), _flipped(base, 3), _flipped(base, 12)]))
    assert bank.n_codes == 3
    assert bank.match(base, max_distance=30) == [Match("k", 3)]


def test_match_many_equals_repeated_match(kind: str) -> None:
    rng = np.random.default_rng(1)
    stored = rng.integers(0, 256, (50, 32), dtype=np.uint8)
    bank = HashBank.from_entries(((f"k{i}", c) for i, c in enumerate(stored)), bits=256, index=kind)
    queries = np.stack([_flipped(stored[i], i % 30) for i in range(0, 50, 3)] + [stored[0] ^ 0xFF])
    assert bank.match_many(queries, max_distance=24) == [bank.match(q, max_distance=24) for q in queries]
    assert bank.match_many(list(queries), max_distance=24) == bank.match_many(queries, max_distance=24)
    assert bank.match_many(np.empty((0, 32), np.uint8), max_distance=3) == []


def test_save_and_load_round_trip(tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(2)
    bank = HashBank(256, index=kind, substring_bits=16, nflip=1)
    bank.add("one", rng.integers(0, 256, 32, dtype=np.uint8))
    bank.add("three", rng.integers(0, 256, (3, 32), dtype=np.uint8))
    bank.add("gone", rng.integers(0, 256, 32, dtype=np.uint8))
    bank.remove("gone")
    path = tmp_path / "banks" / "spam.npz"
    bank.save(path)
    bank.save(path)  # overwrites in place
    assert [p.name for p in path.parent.iterdir()] == ["spam.npz"]  # no temporary file left behind
    loaded = HashBank.load(path)
    assert loaded.keys() == ["one", "three"] and loaded.n_codes == 4
    assert (loaded.index_kind, loaded.substring_bits, loaded.nflip) == (kind, 16, 1)
    for key in ("one", "three"):
        np.testing.assert_array_equal(loaded.codes(key), bank.codes(key))
        assert loaded.match(bank.codes(key)[-1], max_distance=0) == [Match(key, 0)]


def test_bad_codes_say_what_is_expected() -> None:
    bank = HashBank(256)
    with pytest.raises(ValueError, match="expected 32 bytes per code"):
        bank.add("k", b"\x00" * 31)
    with pytest.raises(ValueError, match="dtype uint8"):
        bank.add("k", np.zeros(256, dtype=bool))
    with pytest.raises(ValueError, match=r"shape \[32\]"):
        bank.add("k", np.zeros(16, dtype=np.uint8))
    with pytest.raises(ValueError, match="one code"):
        bank.match(np.zeros((2, 32), np.uint8), max_distance=1)
    with pytest.raises(ValueError, match="multiple of 8"):
        HashBank(250)
    assert len(bank) == 0


def test_removals_compact_the_index_and_keep_results_right(kind: str) -> None:
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 256, (3000, 8), dtype=np.uint8)
    bank = HashBank.from_entries(((f"k{i}", c) for i, c in enumerate(codes)), bits=64, index=kind, substring_bits=16)
    for i in range(2500):
        bank.remove(f"k{i}")
    assert len(bank) == 500 and bank.n_codes == 500
    assert bank._dead < 1024  # rebuilt once dead rows outnumbered live ones
    assert bank.match(codes[10], max_distance=0) == []
    assert bank.match(codes[2999], max_distance=0) == [Match("k2999", 0)]
