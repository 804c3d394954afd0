"""Safe image decoding: every file either decodes fully or gets a quarantine reason.

A moderation pipeline ingests whatever users upload, so decoding is defensive: size and
pixel caps are checked from the header *before* decoding (a decompression bomb is a tiny
file that claims billions of pixels), truncation is an error rather than a silently
grey-padded image, and each failure maps to one stable, documented ``reason`` code.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import imagehash
from PIL import Image, ImageFile, UnidentifiedImageError

__all__ = ["QUARANTINE_REASONS", "DecodeLimits", "DecodedImage", "QuarantineError", "decode_image", "open_rgb"]

#: Every reason a file can be quarantined for; ``quarantine.parquet`` uses these codes.
QUARANTINE_REASONS: dict[str, str] = {
    "empty_file": "the file has zero bytes",
    "file_too_large": "the file is larger than ingest.max_bytes",
    "not_an_image": "no image decoder recognises the bytes",
    "unsupported_format": "the format is not in ingest.allowed_formats",
    "decompression_bomb": "the header claims far more pixels than the bytes could hold",
    "over_pixel_cap": "width x height exceeds ingest.max_pixels",
    "too_small": "a side is shorter than ingest.min_side",
    "truncated": "the file ends before the image data does",
    "corrupt": "the image data is damaged and cannot be decoded",
    "duplicate_content": "the same bytes were already ingested from another uri",
    "read_error": "the file could not be read from its source",
}

# A real photo stores at least ~0.01 bytes per pixel even at heavy JPEG compression;
# a bomb (e.g. a 50k x 50k blank PNG) stores far less. Past this ratio of claimed pixels
# per stored byte, an over-cap image is called a bomb rather than merely too big.
_BOMB_PIXELS_PER_BYTE = 1_000


class QuarantineError(Exception):
    """Raised when a file cannot be ingested.

    Attributes:
        reason: One of :data:`QUARANTINE_REASONS`.
        detail: Human-readable specifics (dimensions, decoder message).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in QUARANTINE_REASONS:
            raise ValueError(f"unknown quarantine reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


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


def decode_image(
    data: bytes,
    *,
    max_pixels: int,
    max_bytes: int,
    min_side: int,
    allowed_formats: tuple[str, ...],
) -> DecodedImage:
    """Fully decode ``data`` under the given limits and compute its perceptual hash.

    Args:
        data: The raw file bytes.
        max_pixels: Largest allowed ``width * height``.
        max_bytes: Largest allowed file size in bytes.
        min_side: Smallest allowed width or height in pixels.
        allowed_formats: PIL format names that may be ingested.

    Returns:
        The image's dimensions, format and perceptual hash.

    Raises:
        QuarantineError: With the reason the file cannot be ingested.
    """
    if not data:
        raise QuarantineError("empty_file")
    if len(data) > max_bytes:
        raise QuarantineError("file_too_large", f"{len(data)} bytes > {max_bytes}")
    img = _open_header(data)
    fmt = (img.format or "").upper()
    if fmt not in allowed_formats:
        raise QuarantineError("unsupported_format", f"{fmt or 'unknown'} not in {list(allowed_formats)}")
    width, height = img.size
    pixels = width * height
    if pixels > max_pixels:
        reason = "decompression_bomb" if pixels > _BOMB_PIXELS_PER_BYTE * len(data) else "over_pixel_cap"
        raise QuarantineError(reason, f"{width}x{height} = {pixels} pixels > cap {max_pixels}")
    if min(width, height) < min_side:
        raise QuarantineError("too_small", f"{width}x{height}, min side {min_side}")
    _load_fully(img)
    return DecodedImage(width=width, height=height, format=fmt, phash=str(imagehash.phash(img)))


def _open_header(data: bytes, *, formats: tuple[str, ...] | None = None) -> Image.Image:
    # Image.open only parses the header; pixel data is decoded later by load(). With
    # ``formats`` only those plugins may even look at the bytes.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=formats)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise QuarantineError("decompression_bomb", str(exc)) from None
    except UnidentifiedImageError:
        sniffed = _sniff_format(data) if formats is not None else None
        if sniffed is not None and sniffed not in formats:
            raise QuarantineError("unsupported_format", f"{sniffed} not in {list(formats)}") from None
        raise QuarantineError("not_an_image", f"{len(data)} bytes, unrecognised header") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise QuarantineError("corrupt", f"header: {exc}") from None


def _sniff_format(data: bytes) -> str | None:
    """The format whose magic bytes ``data`` starts with, asking only the plugins' prefix checks (no decoder runs)."""
    Image.init()
    prefix = data[:16]
    for fmt, (_, accept) in Image.OPEN.items():
        try:
            if accept is not None and accept(prefix):
                return fmt
        except Exception:  # noqa: BLE001 - a plugin's prefix check must not decide anything else
            continue
    return None


def _load_fully(img: Image.Image) -> None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Some libraries flip this global; we refuse to pad truncated uploads with grey.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True; modops needs it False")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise QuarantineError("decompression_bomb", str(exc)) from None
    except OSError as exc:
        msg = str(exc)
        reason = "truncated" if "truncated" in msg or "broken data stream" in msg else "corrupt"
        raise QuarantineError(reason, msg) from None
    except (SyntaxError, ValueError, EOFError) as exc:
        raise QuarantineError("corrupt", str(exc)) from None


@dataclass(frozen=True)
class DecodeLimits:
    """The limits every decode of an untrusted image enforces, at ingest and after.

    Attributes:
        max_pixels: Largest allowed ``width * height``.
        max_bytes: Largest allowed encoded size in bytes.
        allowed_formats: PIL format names whose decoders may run at all.
    """

    max_pixels: int = 40_000_000
    max_bytes: int = 50 * 1024 * 1024
    allowed_formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


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
        A loaded ``RGB`` PIL image.

    Raises:
        QuarantineError: With the reason the bytes cannot be decoded.
    """
    limits = limits or DecodeLimits()
    if not data:
        raise QuarantineError("empty_file")
    if len(data) > limits.max_bytes:
        raise QuarantineError("file_too_large", f"{len(data)} bytes > {limits.max_bytes}")
    img = _open_header(data, formats=limits.allowed_formats)
    width, height = img.size
    if width * height > limits.max_pixels:
        raise QuarantineError("over_pixel_cap", f"{width}x{height} = {width * height} pixels > cap {limits.max_pixels}")
    if draft_size is not None and img.format == "JPEG":
        img.draft("RGB", (draft_size, draft_size))
    _load_fully(img)
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
