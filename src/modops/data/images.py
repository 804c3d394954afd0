"""Safe image decoding: every file either decodes fully or gets a quarantine reason.

A moderation pipeline ingests whatever users upload, so decoding is defensive: size and
pixel caps are checked from the header *before* decoding (a decompression bomb is a tiny
file that claims billions of pixels), only the decoders of allowed formats may even look at
the bytes, truncation is an error rather than a silently grey-padded image, and each failure
maps to one stable, documented ``reason`` code.

Each decode is one boundary: whatever a Pillow plugin raises on hostile bytes (``struct.error``,
``RuntimeError``, ``MemoryError``, a plugin's own exception class) leaves :func:`decode_image`
and :func:`open_rgb` as a :class:`QuarantineError` whose ``detail`` names the original class,
so callers handle exactly one exception type. ``KeyboardInterrupt`` and ``SystemExit`` are not
exceptions of a file and still propagate.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import imagehash
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

__all__ = [
    "QUARANTINE_REASONS",
    "ImageProperties",
    "open_rgb_with_properties",
    "DecodeLimits",
    "DecodedImage",
    "FileTooLargeError",
    "QuarantineError",
    "decode_image",
    "describe_error",
    "open_rgb",
]

#: Every reason a file can be quarantined for; ``quarantine.parquet`` uses these codes.
QUARANTINE_REASONS: dict[str, str] = {
    "empty_file": "the file has zero bytes",
    "file_too_large": "the file is larger than ingest.max_bytes (known from its size before it is read)",
    "not_an_image": "no allowed image decoder recognises the bytes",
    "unsupported_format": "the format is not in ingest.allowed_formats",
    "decompression_bomb": "the header claims far more pixels than the bytes could hold",
    "over_pixel_cap": "width x height exceeds ingest.max_pixels",
    "too_small": "a side is shorter than ingest.min_side",
    "truncated": "the file ends before the image data does",
    "corrupt": "the image data is damaged and cannot be decoded",
    "decoder_error": "a decoder failed with an unexpected exception (its class is in detail)",
    "duplicate_content": "the same bytes were already ingested from another uri",
    "read_error": "the file could not be read from its source (or is not a regular file)",
}

# A real photo stores at least ~0.01 bytes per pixel even at heavy JPEG compression;
# a bomb (e.g. a 50k x 50k blank PNG) stores far less. Past this ratio of claimed pixels
# per stored byte, an over-cap image is called a bomb rather than merely too big.
_BOMB_PIXELS_PER_BYTE = 1_000
# Exception messages can quote the bytes they choked on; keep quarantine rows small.
_MAX_DETAIL_CHARS = 300


class QuarantineError(Exception):
    """Raised when a file cannot be ingested.

    Attributes:
        reason: One of :data:`QUARANTINE_REASONS`.
        detail: Human-readable specifics (dimensions, decoder message, exception class).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in QUARANTINE_REASONS:
            raise ValueError(f"unknown quarantine reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple:
        # Exception pickling replays ``args`` (the message), which is not a reason code.
        return (QuarantineError, (self.reason, self.detail))


class FileTooLargeError(QuarantineError):
    """``file_too_large``, raised before the bytes are read whenever the size is known up front.

    Attributes:
        size: The size found in bytes (from ``stat``, an S3 ``ContentLength``, or the bytes
            read when a file grew while being read: then a lower bound).
    """

    def __init__(self, size: int, limit: int, *, exact: bool = True) -> None:
        super().__init__("file_too_large", f"{size} bytes > {limit}" if exact else f"over {limit} bytes")
        self.size, self._limit, self._exact = size, limit, exact

    def __reduce__(self) -> tuple:
        return (_file_too_large, (self.size, self._limit, self._exact))


def _file_too_large(size: int, limit: int, exact: bool) -> FileTooLargeError:
    return FileTooLargeError(size, limit, exact=exact)


def describe_error(exc: BaseException) -> str:
    """``"<exception class>: <message>"``, shortened: the ``detail`` of a quarantined file.

    Builtin classes go by their name (``RuntimeError``), others with their module
    (``struct.error``, a plugin's own class), so the class is identifiable from the row alone.
    An OS error's file name is left out: the row's ``uri`` names the file, and an absolute
    path would make the outputs depend on where the source sits.
    """
    cls = type(exc)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    message = str(exc)
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        message = f"[Errno {exc.errno}] {exc.strerror}"
    text = f"{name}: {message}"
    return text if len(text) <= _MAX_DETAIL_CHARS else text[: _MAX_DETAIL_CHARS - 3] + "..."


@dataclass(frozen=True)
class DecodeLimits:
    """The limits every decode of an untrusted image enforces, at ingest and after.

    Ingest takes them from ``params.yaml: ingest`` and records them; the train stage copies
    them into ``model.json``, so evaluation, scoring and the served model enforce the same ones.

    Attributes:
        max_pixels: Largest allowed ``width * height``.
        max_bytes: Largest allowed encoded size in bytes.
        allowed_formats: PIL format names (upper case) whose decoders may run at all.
    """

    max_pixels: int = 40_000_000
    max_bytes: int = 50 * 1024 * 1024
    allowed_formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")

    def __post_init__(self) -> None:
        if self.max_pixels <= 0 or self.max_bytes <= 0:
            raise ValueError(f"max_pixels and max_bytes must be > 0, got {self.max_pixels}, {self.max_bytes}")
        formats = tuple(str(f).upper() for f in self.allowed_formats)
        if not formats:
            raise ValueError("allowed_formats needs at least one PIL format name, e.g. ('JPEG', 'PNG')")
        object.__setattr__(self, "allowed_formats", formats)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"max_pixels": int, "max_bytes": int, "allowed_formats": [str, ...]}``."""
        return {
            "max_pixels": self.max_pixels,
            "max_bytes": self.max_bytes,
            "allowed_formats": list(self.allowed_formats),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecodeLimits:
        """The inverse of :meth:`to_dict`; missing keys take the defaults.

        Raises:
            ValueError: On a key that is not a limit (a typo must not silently loosen one).
        """
        unknown = sorted(set(data) - {"max_pixels", "max_bytes", "allowed_formats"})
        if unknown:
            raise ValueError(f"unknown decode limit(s) {unknown}; expected max_pixels, max_bytes, allowed_formats")
        values = dict(data)
        if "allowed_formats" in values:
            values["allowed_formats"] = tuple(values["allowed_formats"])
        return cls(**values)


@dataclass(frozen=True)
class DecodedImage:
    """What ingestion records about a decoded image.

    Attributes:
        width: Width in pixels.
        height: Height in pixels.
        format: PIL format name, e.g. ``"JPEG"``.
        phash: 64-bit perceptual hash as 16 lowercase hex characters.
    """

    width: int
    height: int
    format: str
    phash: str


def decode_image(data: bytes, *, limits: DecodeLimits, min_side: int) -> DecodedImage:
    """Fully decode ``data`` under ``limits`` and compute its perceptual hash.

    The checks run cheapest first (size, header with only the allowed decoders, pixel cap,
    minimum side) and the pixels are decoded last. The image must also convert to RGB, as
    training and serving will convert it, so nothing ingested fails to decode later.

    Args:
        data: The raw file bytes.
        limits: Byte and pixel caps and the formats whose decoders may run.
        min_side: Smallest allowed width or height in pixels.

    Returns:
        The image's dimensions, format and perceptual hash.

    Raises:
        QuarantineError: With the reason the file cannot be ingested; nothing else, whatever
            the bytes make a decoder raise.
    """
    _refuse_truncated_loading()
    with _decoder_boundary():
        img = _open_checked(data, limits)
        width, height = img.size
        if min(width, height) < min_side:
            raise QuarantineError("too_small", f"{width}x{height}, min side {min_side}")
        _load_fully(img)
        fmt = img.format.upper()
        # The hash is of what the model and reviewers see: upright, alpha composited on white
        # (the pixels under a transparent area are invisible and may be anything).
        img = _to_rgb(_upright(img))
        return DecodedImage(width=width, height=height, format=fmt, phash=str(imagehash.phash(img)))


@dataclass(frozen=True)
class ImageProperties:
    """What the bytes say about an image before any resizing.

    Attributes:
        width: Width in pixels, as stored.
        height: Height in pixels, as stored.
        format: PIL format name, e.g. ``"JPEG"``.
        nbytes: Size of the encoded file in bytes.
    """

    width: int
    height: int
    format: str
    nbytes: int


def open_rgb_with_properties(
    data: bytes, *, draft_size: int | None = None, limits: DecodeLimits | None = None, min_side: int = 1
) -> tuple[Image.Image, ImageProperties]:
    """:func:`open_rgb` that also returns the stored size and format, and refuses tiny images.

    Raises:
        QuarantineError: With the reason the bytes cannot be decoded (``too_small`` when a side
            is shorter than ``min_side``); nothing else.
    """
    limits = limits or DecodeLimits()
    _refuse_truncated_loading()
    with _decoder_boundary():
        img = _open_checked(data, limits)
        props = ImageProperties(img.size[0], img.size[1], (img.format or "").upper(), len(data))
        if min(img.size) < min_side:
            raise QuarantineError("too_small", f"{img.size[0]}x{img.size[1]}, min side {min_side}")
        if draft_size is not None and img.format == "JPEG":
            img.draft("RGB", (draft_size, draft_size))
        _load_fully(img)
        return _to_rgb(_upright(img)), props


def open_rgb(data: bytes, *, draft_size: int | None = None, limits: DecodeLimits | None = None) -> Image.Image:
    """Decode image bytes to an RGB image (alpha composited on white), within ``limits``.

    Training, scoring and serving read images through here, so the byte cap, the format
    allow-list (only those decoders run) and the pixel cap are checked before any pixel is
    decoded, exactly as at ingest.

    Args:
        data: Encoded image bytes.
        draft_size: When set, JPEGs are decoded directly at the smallest DCT scale
            (1/2, 1/4, 1/8) that keeps both sides >= this many pixels: several times
            faster than a full decode followed by a downscale.
        limits: Caps to enforce; defaults to :class:`DecodeLimits` ().

    Returns:
        A loaded ``RGB`` PIL image, upright: turned by its EXIF orientation as viewers turn it.

    Raises:
        QuarantineError: With the reason the bytes cannot be decoded; nothing else.
    """
    return open_rgb_with_properties(data, draft_size=draft_size, limits=limits)[0]


@contextmanager
def _decoder_boundary() -> Iterator[None]:
    try:
        yield
    except QuarantineError:
        raise
    except Exception as exc:  # noqa: BLE001 - the one per-file boundary: a plugin may raise anything
        raise QuarantineError("decoder_error", describe_error(exc)) from exc


def _refuse_truncated_loading() -> None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Some libraries flip this global; we refuse to pad truncated uploads with grey. A
        # setup error, not a property of one file, so it is raised outside the boundary.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True; modops needs it False")


def _open_checked(data: bytes, limits: DecodeLimits) -> Image.Image:
    """Size, header (allowed decoders only), format and pixel checks; no pixel is decoded yet."""
    if not data:
        raise QuarantineError("empty_file")
    if len(data) > limits.max_bytes:
        raise FileTooLargeError(len(data), limits.max_bytes)
    img = _open_header(data, formats=limits.allowed_formats)
    fmt = (img.format or "").upper()
    if fmt not in limits.allowed_formats:
        # A plugin may report another name than its own (the JPEG plugin opens MPO files).
        raise QuarantineError("unsupported_format", f"{fmt or 'unknown'} not in {list(limits.allowed_formats)}")
    width, height = img.size
    pixels = width * height
    if pixels > limits.max_pixels:
        reason = "decompression_bomb" if pixels > _BOMB_PIXELS_PER_BYTE * len(data) else "over_pixel_cap"
        raise QuarantineError(reason, f"{width}x{height} = {pixels} pixels > cap {limits.max_pixels}")
    return img


def _open_header(data: bytes, *, formats: tuple[str, ...]) -> Image.Image:
    # Image.open only parses the header; pixel data is decoded later by load(). With
    # ``formats`` only those plugins may even look at the bytes. Pillow raises KeyError for a
    # name it has no opener for (e.g. MPO, which the JPEG plugin opens), so those are dropped.
    Image.init()
    openers = tuple(f for f in formats if f in Image.OPEN)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=openers)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise QuarantineError("decompression_bomb", describe_error(exc)) from None
    except UnidentifiedImageError:
        sniffed = _sniff_format(data)
        if sniffed is not None and sniffed not in formats:
            raise QuarantineError("unsupported_format", f"{sniffed} not in {list(formats)}") from None
        raise QuarantineError("not_an_image", f"{len(data)} bytes, unrecognised header") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise QuarantineError("corrupt", f"header: {describe_error(exc)}") from None


def _sniff_format(data: bytes) -> str | None:
    """The format whose magic bytes ``data`` starts with, asking only the plugins' prefix checks (no decoder runs)."""
    prefix = data[:16]
    for fmt, (_, accept) in Image.OPEN.items():
        try:
            if accept is not None and accept(prefix):
                return fmt
        except Exception:  # noqa: BLE001 - a plugin's prefix check must not decide anything else
            continue
    return None


def _load_fully(img: Image.Image) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise QuarantineError("decompression_bomb", describe_error(exc)) from None
    except OSError as exc:
        msg = str(exc)
        reason = "truncated" if "truncated" in msg or "broken data stream" in msg else "corrupt"
        raise QuarantineError(reason, describe_error(exc)) from None
    except (SyntaxError, ValueError, EOFError) as exc:
        raise QuarantineError("corrupt", describe_error(exc)) from None


def _upright(img: Image.Image) -> Image.Image:
    """The image as a viewer shows it: turned by its EXIF orientation (phone photos), else as stored.

    Browsers, Label Studio and the moderation UI apply the orientation, so the model must see
    what reviewers see. A missing or unreadable EXIF block means "as stored", never a quarantine:
    viewers display such files too.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns "Corrupt EXIF data" per damaged file
            orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block does not make the pixels unusable
        return img
    return ImageOps.exif_transpose(img) if orientation in range(2, 9) else img


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
