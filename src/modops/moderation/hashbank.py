"""Hash banks: perceptual hashes of known pictures, looked up by Hamming distance in a faiss index.

The moderation service keeps two banks: removed spam enters the *known-spam* bank (a re-upload
of it is discarded), restored images the *allow* bank. Both are a :class:`HashBank`.

Hashes (:func:`perceptual_hash`) are packed bits (``np.packbits``), ``hash_size**2`` bits, from a
small registry of methods (:data:`HASH_METHODS`). ``phash`` (imagehash's DCT hash) and
``phash_stable`` (:data:`DEFAULT_METHOD`, below) keep one bit per low-frequency DCT coefficient:
on demo images re-encoded as JPEG q50-75 or resized 0.5x-1.5x they stay within a few bits, but a
crop of 2-5 % per side moves them by 30-130 of 256 bits (a DCT basis shifts phase with the
content). A bank entry therefore holds several codes (:func:`bank_codes`): the picture and a
3 x 3 grid of light crops of it, so a cropped re-upload lands near one of them; a key's distance
is its nearest code's. ``benchmarks/hashbank.py`` measures recall with and without them, and the
false matches of other pictures, per threshold. Codes of different methods do not compare: a
bank filled under one method must be re-hashed (from its pictures) before queries use another.

Pictures whose low-frequency DCT coefficients all sit near their median (flat, near-black or
finely periodic images, 3-5 % of the demo pool) hash partly to noise under ``phash``: re-encoding
moves a coefficient by about 0.01 gray levels (JPEG q50-75), as much as their margins, and their
copies were found 63 % of the time. :func:`hash_quality` tells them apart, so recall is stated
for each group. ``phash_stable`` (the service's default) treats those bits as unknown instead of
noise: its thumbnail is larger (``8 * hash_size``, so fine patterns no longer alias into the low
frequencies), and a bit whose coefficient is within :data:`STABLE_MARGIN` of the median is set
from the picture's mean gray level (a locality-sensitive code of it) rather than from the
coefficient's sign. Copies of such pictures then agree on those bits, while flat pictures 20+
gray levels apart still differ on about half of them. Pictures with clear margins hash almost
as ``phash`` does. In the benchmark this raised recall over all pictures from 0.988 to 0.994 at
32 bits, with false matches of distinct pictures at 0.1 % (``phash``: 0.2 %).

The index is faiss' multi-index hashing (:class:`faiss.IndexBinaryMultiHash`): codes are cut
into ``nhash`` substrings of ``substring_bits`` bits, each a hash-table key; a query probes
every substring with up to ``nflip`` flipped bits and verifies the candidates by their full
Hamming distance. Every code within ``nhash * (nflip + 1) - 1`` bits is found (pigeonhole:
:attr:`HashBank.exact_radius`); farther ones up to ``max_distance`` are found when one substring
is close enough, which the benchmark measures against an exhaustive ``IndexBinaryFlat``
(``index="flat"``, kept as the exact baseline). On 1,000,000 x 256-bit codes a flat scan takes
about 1.1 ms per query on one core, multi-index hashing a few tenths of one, for about 0.9 GB
of hash tables. faiss' multi-hash index cannot delete, so removal marks rows dead (filtered out
of results) and the index is rebuilt once dead rows outnumber live ones.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import faiss
import imagehash
import numpy as np
import scipy.fftpack
from PIL import Image

__all__ = [
    "DEFAULT_CROPS",
    "DEFAULT_METHOD",
    "DEFAULT_MIN_QUALITY",
    "HASH_METHODS",
    "INDEX_KINDS",
    "STABLE_MARGIN",
    "HashBank",
    "Match",
    "bank_codes",
    "hash_quality",
    "perceptual_hash",
]

#: ``phash_stable``: a low-frequency DCT coefficient within this many gray levels of the block's
#: median has no reliable sign (JPEG q50-75 moves one by ~0.01 on the demo pool, as
#: :func:`hash_quality` scales them), so its bit is set from the mean gray level instead.
STABLE_MARGIN = 0.01

_STABLE_THUMBNAIL_FACTOR = 8  # phash_stable's thumbnail side, in multiples of hash_size (phash: 4)


def _lowfreq_dct(gray: Image.Image, *, hash_size: int, side: int) -> np.ndarray:
    """The ``hash_size`` square low-frequency DCT block of a ``side`` square thumbnail, in gray levels.

    Scaled so that the first coefficient is the mean gray level (0-255), whatever ``side``.
    """
    pixels = np.asarray(gray.resize((side, side), Image.Resampling.LANCZOS), dtype=np.float64)
    return scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)[:hash_size, :hash_size] / (4 * side * side)


@lru_cache(maxsize=8)
def _mean_code_constants(hash_size: int) -> tuple[np.ndarray, np.ndarray]:
    # Per bit: a period spread (log-uniformly) over 32-256 gray levels and a phase, both from
    # low-discrepancy sequences (fixed, no random state), so nearby means share most bits.
    j = np.arange(hash_size * hash_size, dtype=np.float64)
    periods = 32.0 * 8.0 ** ((j * 0.7548776662466927) % 1.0)
    phases = (j * 0.6180339887498949) % 1.0
    return periods.reshape(hash_size, hash_size), phases.reshape(hash_size, hash_size)


def _phash_stable(gray: Image.Image, hash_size: int) -> np.ndarray:
    """phash on an ``8 * hash_size`` thumbnail, with near-median bits taken from the mean gray level.

    A bit is ``coefficient > median`` as in phash, except where ``|coefficient - median|`` is at
    most :data:`STABLE_MARGIN`: there it is ``frac(mean / period + phase) < 0.5`` for that bit's
    period and phase: a code of the mean in which a copy (mean within ~1 gray level) differs on
    ~4 % of those bits and a picture 20+ gray levels brighter or darker on about half.
    """
    side = _STABLE_THUMBNAIL_FACTOR * hash_size
    dct = _lowfreq_dct(gray, hash_size=hash_size, side=side)
    median = np.median(dct)
    bits = dct > median
    unsure = np.abs(dct - median) <= STABLE_MARGIN
    if unsure.any():
        periods, phases = _mean_code_constants(hash_size)
        mean_code = (dct[0, 0] / periods + phases) % 1.0 < 0.5
        bits[unsure] = mean_code[unsure]
    return bits


#: Hash methods by name: ``(grayscale image, hash_size) -> bool array [hash_size, hash_size]``.
#: The bank and the query must use the same method (codes of different methods do not compare).
HASH_METHODS: dict[str, Callable[[Image.Image, int], np.ndarray]] = {
    "phash": lambda image, hash_size: imagehash.phash(image, hash_size=hash_size).hash,
    "phash_stable": _phash_stable,
    "dhash": lambda image, hash_size: imagehash.dhash(image, hash_size=hash_size).hash,
}

#: The method the service uses unless configured otherwise (``moderate.banks.method``).
DEFAULT_METHOD = "phash_stable"

#: Crops stored beside each bank picture, as ``(left, top, right, bottom)`` fractions of its
#: width/height: per axis the middle of a 2-5 % crop (3.5 % a side) and that crop shifted by one
#: point either way. A re-upload cropped 2-5 % per side is then within ~1 point per side of one.
DEFAULT_CROPS: tuple[tuple[float, float, float, float], ...] = tuple(
    (left, top, right, bottom)
    for left, right in ((0.035, 0.035), (0.025, 0.045), (0.045, 0.025))
    for top, bottom in ((0.035, 0.035), (0.025, 0.045), (0.045, 0.025))
)

#: Below this :func:`hash_quality` many of a picture's phash bits are noise (on the demo pool
#: JPEG q50 alone moves such hashes by 30-110 of 256 bits, others by at most ~30);
#: ``benchmarks/hashbank.py`` reports recall on each side of it.
DEFAULT_MIN_QUALITY = 0.015

#: faiss indexes a bank can use: ``multihash`` (fast, exact up to ``exact_radius``) or ``flat``.
INDEX_KINDS = ("multihash", "flat")

_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Match:
    """One bank key within the asked distance of a query.

    Attributes:
        key: The bank key (e.g. an upload id).
        distance: Hamming distance in bits from the query to the key's nearest code.
    """

    key: str
    distance: int


def _grayscale(image: Image.Image) -> Image.Image:
    # Transparent pixels go on white, as open_rgb does, so a PNG with alpha and its JPEG
    # re-encode (which has no alpha) hash alike; then the library's own RGB -> L conversion.
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert("L")


def _check_hash_size(hash_size: int) -> None:
    if hash_size < 2 or (hash_size * hash_size) % 8:
        raise ValueError(f"hash_size must be >= 2 with hash_size**2 a multiple of 8 (e.g. 8, 12, 16), got {hash_size}")


def perceptual_hash(image: Image.Image, *, method: str = DEFAULT_METHOD, hash_size: int = 16) -> np.ndarray:
    """The perceptual hash of a picture as packed bits.

    Args:
        image: A PIL image in any mode (decode untrusted bytes with
            :func:`modops.data.images.open_rgb` first); alpha is composited on white, then the
            image is converted to grayscale, so a PNG and its JPEG re-encode hash alike.
        method: A key of :data:`HASH_METHODS`.
        hash_size: Side of the hash grid; the code has ``hash_size**2`` bits.

    Returns:
        ``uint8`` array of shape ``[hash_size**2 // 8]`` (``np.packbits`` of the row-major grid).
    """
    if method not in HASH_METHODS:
        raise ValueError(f"unknown hash method {method!r}: use one of {sorted(HASH_METHODS)}")
    _check_hash_size(hash_size)
    bits = np.asarray(HASH_METHODS[method](_grayscale(image), hash_size), dtype=bool)
    return np.packbits(bits.reshape(-1))


def hash_quality(image: Image.Image, *, hash_size: int = 16) -> float:
    """How far a picture's low-frequency DCT coefficients sit from their median (higher = stabler bits).

    phash keeps one bit per coefficient of the ``hash_size x hash_size`` low-frequency DCT block
    (of a ``4 * hash_size`` square thumbnail): whether it exceeds the block's median. A bit
    whose coefficient is near the median flips under re-encoding noise. This returns the 25th
    percentile of ``|coefficient - median|``, with the DCT scaled so that its first coefficient
    is the mean gray level (0-255): three quarters of the bits have at least this margin.
    Compare with :data:`DEFAULT_MIN_QUALITY`.

    Args:
        image: A PIL image in any mode (converted as :func:`perceptual_hash` converts it).
        hash_size: As for :func:`perceptual_hash`.

    Returns:
        The margin, in gray levels (>= 0).
    """
    _check_hash_size(hash_size)
    # imagehash.phash's thumbnail (highfreq_factor 4) and resampling, whatever the method
    dct = _lowfreq_dct(_grayscale(image), hash_size=hash_size, side=4 * hash_size)
    return float(np.percentile(np.abs(dct - np.median(dct)), 25))


def bank_codes(
    image: Image.Image,
    *,
    method: str = DEFAULT_METHOD,
    hash_size: int = 16,
    crops: Sequence[tuple[float, float, float, float]] = DEFAULT_CROPS,
) -> np.ndarray:
    """The codes a bank entry stores for a picture: its hash, then the hash of each crop.

    Args:
        image: The picture (any PIL mode).
        method, hash_size: As for :func:`perceptual_hash`.
        crops: ``(left, top, right, bottom)`` fractions of width/height cut from each side.

    Returns:
        ``uint8`` array ``[1 + len(crops), hash_size**2 // 8]``; pass it to :meth:`HashBank.add`.
    """
    width, height = image.size
    codes = [perceptual_hash(image, method=method, hash_size=hash_size)]
    for left, top, right, bottom in crops:
        if min(left, top, right, bottom) < 0 or left + right >= 1 or top + bottom >= 1:
            raise ValueError(f"a crop takes fractions in [0, 1) with left+right < 1 and top+bottom < 1, got {crops}")
        box = (round(width * left), round(height * top), width - round(width * right), height - round(height * bottom))
        codes.append(perceptual_hash(image.crop(box), method=method, hash_size=hash_size))
    return np.stack(codes)


def _as_codes(code: bytes | np.ndarray, *, code_size: int, allow_empty: bool = False) -> np.ndarray:
    """One or more codes as a C-contiguous ``uint8 [k, code_size]`` array (k >= 1 unless ``allow_empty``)."""
    if isinstance(code, bytes | bytearray | memoryview):
        raw = bytes(code)
        if not raw or len(raw) % code_size:
            raise ValueError(f"expected {code_size} bytes per code (a multiple of {code_size}), got {len(raw)} bytes")
        return np.frombuffer(raw, dtype=np.uint8).reshape(-1, code_size)
    array = np.asarray(code)
    if array.dtype != np.uint8:
        raise ValueError(
            f"expected packed bits of dtype uint8 (np.packbits of the {code_size * 8} bits), got dtype {array.dtype}"
        )
    if array.ndim not in (1, 2) or array.shape[-1] != code_size or (array.size == 0 and not allow_empty):
        raise ValueError(f"expected a code of shape [{code_size}] or codes [k, {code_size}], got shape {array.shape}")
    return np.ascontiguousarray(array.reshape(-1, code_size))


def _padded(codes: np.ndarray) -> np.ndarray:
    # faiss' multi-hash reads each substring as an 8-byte word, so the last one of the last code
    # reads up to 7 bytes past it: hand faiss a view of a buffer that has a spare row after it.
    buffer = np.zeros((len(codes) + 1, codes.shape[1]), dtype=np.uint8)
    buffer[:-1] = codes
    return buffer[:-1]


@contextmanager
def _omp_threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class HashBank:
    """Keys (e.g. upload ids) with one or more binary codes each, matched by Hamming distance.

    Thread-safe: one lock serialises lookups and changes (a lookup takes well under a
    millisecond). ``len(bank)`` counts keys; :attr:`n_codes` counts their codes. The defaults
    (22-bit substrings, 2 flips) make a 256-bit bank exact up to 32 bits; at 1,000,000 codes a
    lookup took 0.26 ms (p50, one core) against 1.05 ms for ``flat``, for ~0.9 GB of hash tables
    and ~10 s to build (``benchmarks/hashbank.py``).

    Args:
        bits: Code length in bits (a multiple of 8; ``hash_size**2``).
        index: One of :data:`INDEX_KINDS`.
        substring_bits: ``multihash`` only: bits per hash-table key (at most ``bits``).
            ``bits // substring_bits`` substrings are indexed.
        nflip: ``multihash`` only: bits flipped per substring when probing.
        threads: OpenMP threads faiss may use for a call (batches of > 100 queries run in
            parallel); ``None`` leaves faiss' setting alone.
    """

    def __init__(
        self,
        bits: int = 256,
        *,
        index: str = "multihash",
        substring_bits: int = 22,
        nflip: int = 2,
        threads: int | None = None,
    ) -> None:
        if bits <= 0 or bits % 8:
            raise ValueError(f"bits must be a positive multiple of 8 (hash_size**2, e.g. 256), got {bits}")
        if index not in INDEX_KINDS:
            raise ValueError(f"unknown index {index!r}: use one of {list(INDEX_KINDS)}")
        if not 1 <= substring_bits <= 32 or nflip < 0:
            raise ValueError(f"substring_bits must be in [1, 32] and nflip >= 0, got {substring_bits}, {nflip}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        self.bits, self.code_size, self.index_kind = bits, bits // 8, index
        self.substring_bits, self.nflip, self.threads = min(substring_bits, bits), nflip, threads
        self._lock = threading.RLock()
        self._reset()

    # -- state -----------------------------------------------------------------------------------

    def _new_index(self) -> faiss.IndexBinary:
        if self.index_kind == "flat":
            return faiss.IndexBinaryFlat(self.bits)
        index = faiss.IndexBinaryMultiHash(self.bits, self.bits // self.substring_bits, self.substring_bits)
        index.nflip = self.nflip
        return index

    def _reset(self) -> None:
        self._index = self._new_index()
        self._rows: dict[str, range] = {}  # key -> its rows in the index (a key's codes are added together)
        self._row_key: list[str | None] = []  # row -> key; None once removed (a dead row)
        self._codes: list[np.ndarray] = []  # the codes in row order, chunk by chunk (for rebuilds)
        self._dead = 0

    @property
    def exact_radius(self) -> int:
        """Largest distance at which every code is guaranteed found (beyond it: found when close enough)."""
        if self.index_kind == "flat":
            return self.bits
        return (self.bits // self.substring_bits) * (self.nflip + 1) - 1

    @property
    def n_codes(self) -> int:
        """Codes of all live keys."""
        with self._lock:
            return len(self._row_key) - self._dead

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._rows

    def keys(self) -> list[str]:
        """Live keys in the order they were (last) added."""
        with self._lock:
            return list(self._rows)

    def codes(self, key: str) -> np.ndarray:
        """The codes of ``key``, ``uint8 [k, code_size]`` (``KeyError`` if absent)."""
        with self._lock:
            rows = self._rows[key]
            return self._all_codes()[rows.start : rows.stop].copy()

    def _all_codes(self) -> np.ndarray:
        if len(self._codes) != 1:
            merged = np.concatenate(self._codes) if self._codes else np.empty((0, self.code_size), np.uint8)
            self._codes = [merged]
        return self._codes[0]

    # -- changes ---------------------------------------------------------------------------------

    def add(self, key: str, code: bytes | np.ndarray) -> None:
        """Put ``key`` with one code (``[code_size]`` or bytes) or several (``[k, code_size]``).

        Idempotent per key: adding an existing key replaces its codes.

        Raises:
            ValueError: A code of the wrong length or dtype (the message says what is expected).
        """
        self._add_many([key], [_as_codes(code, code_size=self.code_size)])

    def _add_many(self, keys: Sequence[str], codes: Sequence[np.ndarray]) -> None:
        if not keys:
            return
        with self._lock:
            for key in keys:
                self._drop(key)
            start = len(self._row_key)
            block = np.concatenate(codes)
            counts = np.fromiter((len(c) for c in codes), dtype=np.int64, count=len(codes))
            ends = start + np.cumsum(counts)
            for key, end, count in zip(keys, ends.tolist(), counts.tolist(), strict=True):
                self._rows[key] = range(end - count, end)
            self._row_key.extend(np.repeat(np.array(keys, dtype=object), counts).tolist())
            self._codes.append(block)
            with _omp_threads(self.threads):
                self._index.add(_padded(block))
            self._compact_if_needed()

    def remove(self, key: str) -> bool:
        """Drop ``key`` and its codes; ``False`` when it was not in the bank."""
        with self._lock:
            found = self._drop(key)
            self._compact_if_needed()
            return found

    def _drop(self, key: str) -> bool:
        rows = self._rows.pop(key, None)
        if rows is None:
            return False
        for row in rows:
            self._row_key[row] = None
        self._dead += len(rows)
        return True

    def _compact_if_needed(self) -> None:
        # The multi-hash index cannot delete: rebuild once dead rows outnumber live ones
        # (amortised: each rebuild is paid for by as many removals as rows it keeps).
        if self._dead <= max(1024, len(self._row_key) - self._dead):
            return
        live = [key for key in self._rows]
        all_codes = self._all_codes()
        codes = [all_codes[self._rows[key].start : self._rows[key].stop] for key in live]
        self._reset()
        self._add_many(live, codes)

    # -- lookups ---------------------------------------------------------------------------------

    def match(self, code: bytes | np.ndarray, *, max_distance: int) -> list[Match]:
        """Keys with a code within ``max_distance`` bits (inclusive) of ``code``, nearest first.

        Args:
            code: One code, ``uint8 [code_size]`` or ``code_size`` bytes.
            max_distance: Largest Hamming distance that matches, in bits (inclusive).

        Returns:
            One :class:`Match` per key (its nearest code), by distance then key.
        """
        codes = _as_codes(code, code_size=self.code_size)
        if len(codes) != 1:
            raise ValueError(f"match takes one code of {self.code_size} bytes; use match_many for {len(codes)}")
        return self.match_many(codes, max_distance=max_distance)[0]

    def match_many(self, codes: np.ndarray | Sequence[bytes | np.ndarray], *, max_distance: int) -> list[list[Match]]:
        """:meth:`match` for a batch: ``codes`` is ``uint8 [n, code_size]`` or a sequence of codes.

        Returns:
            ``n`` lists, the i-th for ``codes[i]``, each as :meth:`match` returns it.
        """
        if max_distance < 0:
            raise ValueError(f"max_distance must be >= 0 bits, got {max_distance}")
        if isinstance(codes, np.ndarray):
            queries = _as_codes(codes, code_size=self.code_size, allow_empty=True)
        else:
            parts = [_as_codes(c, code_size=self.code_size) for c in codes]
            if any(len(p) != 1 for p in parts):
                raise ValueError(f"each query is one code of {self.code_size} bytes")
            queries = np.concatenate(parts) if parts else np.empty((0, self.code_size), np.uint8)
        if len(queries) == 0:
            return []
        with self._lock:
            if not self._row_key:
                return [[] for _ in range(len(queries))]
            with _omp_threads(self.threads):
                # faiss keeps distances strictly below the radius: +1 makes max_distance inclusive.
                lims, distances, rows = self._index.range_search(_padded(queries), max_distance + 1)
            return [self._matches(rows[a:b], distances[a:b]) for a, b in zip(lims[:-1], lims[1:], strict=True)]

    def _matches(self, rows: np.ndarray, distances: np.ndarray) -> list[Match]:
        nearest: dict[str, int] = {}  # faiss returns binary distances as floats: back to whole bits
        for row, distance in zip(rows.tolist(), distances.astype(np.int64).tolist(), strict=True):
            key = self._row_key[row]
            if key is not None and distance < nearest.get(key, self.bits + 1):
                nearest[key] = distance
        return [Match(key, d) for key, d in sorted(nearest.items(), key=lambda kv: (kv[1], kv[0]))]

    # -- persistence -----------------------------------------------------------------------------

    @classmethod
    def from_entries(
        cls,
        entries: Iterable[tuple[str, bytes | np.ndarray]],
        *,
        bits: int,
        index: str = "multihash",
        substring_bits: int = 22,
        nflip: int = 2,
        threads: int | None = None,
    ) -> HashBank:
        """A bank holding ``(key, code or codes)`` pairs (bytes of ``k * bits // 8``, or arrays), built in one pass.

        A key given twice keeps its last codes, as repeated :meth:`add` calls would.
        """
        bank = cls(bits, index=index, substring_bits=substring_bits, nflip=nflip, threads=threads)
        latest: dict[str, np.ndarray] = {}
        for key, code in entries:
            latest.pop(key, None)  # re-insert so the order is that of the last add
            latest[key] = _as_codes(code, code_size=bank.code_size)
        bank._add_many(list(latest), list(latest.values()))
        return bank

    def save(self, path: str | Path) -> None:
        """Write the bank to ``path`` (``.npz``) atomically: a temporary file beside it, then a rename."""
        path = Path(path)
        with self._lock:
            keys = list(self._rows)
            all_codes = self._all_codes()
            counts = np.array([len(self._rows[k]) for k in keys], dtype=np.int64)
            rows = np.fromiter((row for k in keys for row in self._rows[k]), dtype=np.int64, count=int(counts.sum()))
            codes = all_codes[rows]
            meta = {
                "format": _FORMAT_VERSION,
                "bits": self.bits,
                "index": self.index_kind,
                "substring_bits": self.substring_bits,
                "nflip": self.nflip,
            }
        buffer = io.BytesIO()
        np.savez(buffer, keys=np.array(keys, dtype=str), counts=counts, codes=codes, meta=np.array(json.dumps(meta)))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(buffer.getvalue())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None) -> HashBank:
        """A bank written by :meth:`save` (its index is rebuilt: ~15 s per million codes for ``multihash``)."""
        with np.load(Path(path), allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != _FORMAT_VERSION:
                raise ValueError(f"{path} is bank format {meta.get('format')}, this modops reads {_FORMAT_VERSION}")
            keys, counts, codes = data["keys"].tolist(), data["counts"], data["codes"]
        bank = cls(
            meta["bits"],
            index=meta["index"],
            substring_bits=meta["substring_bits"],
            nflip=meta["nflip"],
            threads=threads,
        )
        bank._add_many(keys, np.split(codes, np.cumsum(counts)[:-1]) if keys else [])
        return bank
