"""Reading the text in an image (OCR) for the precision stage's text rules.

An :class:`OcrEngine` turns a PIL image into :class:`TextLine` s (text, recognition score, box in
the image's pixel coordinates). Engines are created by name through :func:`create_ocr`:

- ``rapidocr``: RapidOCR on ONNX Runtime with the detection, direction and recognition models that
  ship inside the ``rapidocr`` wheel (never a download: the model files are passed explicitly, so
  a missing one is an error, not a network call). On 2 CPU cores: 0.04-0.16 s per image of
  96-200 px (mean, idle or shared machine; ~0.1-0.3 s for those with text), ~1.4 s for a
  1144 x 864 photo at ``max_side`` 960 (benchmarks/ocr_rules.py); larger images are downscaled
  to ``max_side`` first.
- ``none``: reads nothing; the documented way to turn OCR off (every rule then stays silent).

:func:`text_coverage` says how much of an image is covered by text, so a policy can call an image
text-heavy and send it to OCR rules.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

__all__ = ["OCR_ENGINES", "Box", "NoOcr", "OcrEngine", "RapidOcr", "TextLine", "create_ocr", "text_coverage"]

#: A text box: four (x, y) corners in pixels of the image that was read, clockwise from top-left.
Box = tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class TextLine:
    """One line of text an OCR engine read.

    Attributes:
        text: The text as recognised (not normalised).
        score: The recogniser's confidence in [0, 1].
        box: Where the line is: four (x, y) corners in pixels of the input image.
    """

    text: str
    score: float
    box: Box


class OcrEngine(Protocol):
    """Reads the text lines of an image."""

    def read(self, image: Image.Image) -> list[TextLine]:
        """Text lines of ``image`` (any PIL mode), in reading order (top to bottom, left to right)."""
        ...


class NoOcr:
    """An engine that reads nothing: OCR turned off (``create_ocr("none")``).

    Takes and ignores the other engines' options, so switching ``moderate.ocr.engine`` to ``none``
    needs no other change to the configuration.
    """

    def __init__(self, **_options: Any) -> None:
        pass

    def read(self, image: Image.Image) -> list[TextLine]:
        return []


class _QuietEmptyResults(logging.Filter):
    """Drops RapidOCR's per-image 'detection result is empty' warning: no text is not a problem here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "result is empty" not in record.getMessage() and "content is empty" not in record.getMessage()


def _route_rapidocr_logging(level: int) -> None:
    """Send RapidOCR's logger through the application's logging at ``level`` instead of its own console handler.

    RapidOCR installs a coloured stderr handler at INFO and stops propagation, so every model load
    prints lines that bypass the service's logging configuration.
    """
    log = logging.getLogger("RapidOCR")
    for handler in list(log.handlers):
        log.removeHandler(handler)
    log.setLevel(level)
    log.propagate = True
    if not any(isinstance(f, _QuietEmptyResults) for f in log.filters):
        log.addFilter(_QuietEmptyResults())


def _bundled_model(models_dir: Path, task: str) -> Path:
    """The one ``*<task>*.onnx`` file bundled in ``models_dir`` (task: det, cls or rec)."""
    found = sorted(models_dir.glob(f"*{task}*.onnx"))
    if len(found) != 1:
        raise FileNotFoundError(
            f"expected exactly one bundled RapidOCR {task} model in {models_dir}, found {[p.name for p in found]}; "
            "reinstall the rapidocr wheel (`uv sync`) or turn OCR off with engine 'none'"
        )
    return found[0]


@functools.lru_cache(maxsize=4)
def _rapidocr(threads: int, max_side: int, min_score: float, log_level: int) -> Any:
    """A RapidOCR instance on the wheel's bundled models, created once per option set (loading takes ~1 s)."""
    import rapidocr  # lazy: onnxruntime and OpenCV are imported only when OCR is used

    _route_rapidocr_logging(log_level)
    models = Path(rapidocr.__file__).parent / "models"
    params = {
        "Global.log_level": logging.getLevelName(log_level).lower(),
        "Global.text_score": min_score,
        "Global.max_side_len": max(max_side, 32),
        "Det.model_path": str(_bundled_model(models, "det")),
        "Cls.model_path": str(_bundled_model(models, "cls")),
        "Rec.model_path": str(_bundled_model(models, "rec")),
        # The default ("min", 736) upscales a 150 px upload about five times; "max" only ever shrinks.
        "Det.limit_type": "max",
        "Det.limit_side_len": max_side,
        "EngineConfig.onnxruntime.intra_op_num_threads": threads,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    }
    engine = rapidocr.RapidOCR(params=params)
    _route_rapidocr_logging(log_level)  # the constructor sets the level again
    return engine


class RapidOcr:
    """RapidOCR (ONNX Runtime, bundled PP-OCR models) as an :class:`OcrEngine`.

    Args:
        threads: ONNX Runtime intra-op threads.
        max_side: Images whose longest side exceeds this (pixels) are downscaled to it before OCR;
            boxes are mapped back to the input image's pixels.
        min_score: Lines recognised with a lower confidence are dropped by the engine.
        log_level: Level of RapidOCR's logger (routed through :mod:`logging`).
    """

    def __init__(self, *, threads: int = 2, max_side: int = 960, min_score: float = 0.5, log_level: int = 30) -> None:
        if threads < 1 or max_side < 32 or not 0 <= min_score <= 1:
            raise ValueError(
                f"rapidocr needs threads >= 1, max_side >= 32 and min_score in [0, 1]; "
                f"got threads={threads}, max_side={max_side}, min_score={min_score}"
            )
        self.max_side = max_side
        self._engine = _rapidocr(threads, max_side, float(min_score), log_level)
        # One read at a time: RapidOCR keeps per-call settings on the instance.
        self._lock = threading.Lock()

    def read(self, image: Image.Image) -> list[TextLine]:
        rgb = image.convert("RGB")
        scale = min(1.0, self.max_side / max(rgb.size))
        if scale < 1.0:
            size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
            rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        with self._lock:
            result = self._engine(np.asarray(rgb))
        if not result.txts:
            return []
        return [
            TextLine(str(text), float(score), _box(points, 1.0 / scale))
            for text, score, points in zip(result.txts, result.scores, result.boxes, strict=True)
        ]


def _box(points: np.ndarray, factor: float) -> Box:
    """RapidOCR's float [4, 2] corner array, scaled by ``factor``, as a :data:`Box`."""
    p = np.asarray(points, dtype=np.float64).reshape(4, 2) * factor
    return tuple((float(x), float(y)) for x, y in p)  # type: ignore[return-value]


#: Engine factories by name (``moderate.ocr.engine``): ``factory(**options) -> OcrEngine``.
OCR_ENGINES: dict[str, Callable[..., OcrEngine]] = {"rapidocr": RapidOcr, "none": NoOcr}


def create_ocr(name: str, **options: Any) -> OcrEngine:
    """The OCR engine registered as ``name`` in :data:`OCR_ENGINES`, built with ``options``.

    ``rapidocr`` takes ``threads``, ``max_side``, ``min_score`` and ``log_level`` (see
    :class:`RapidOcr`); its models load once per option set and are shared. ``none`` ignores its options.

    Raises:
        ValueError: On an unknown name or an option the engine does not take.
    """
    if name not in OCR_ENGINES:
        raise ValueError(f"unknown OCR engine {name!r}; choose one of {sorted(OCR_ENGINES)} ('none' turns OCR off)")
    try:
        return OCR_ENGINES[name](**options)
    except TypeError as exc:
        raise ValueError(f"OCR engine {name!r} does not take options {sorted(options)}: {exc}") from None


def text_coverage(lines: Sequence[TextLine], size: tuple[int, int], *, min_chars: int = 2, grid: int = 256) -> float:
    """Fraction in [0, 1] of an image's area covered by the lines' boxes (overlaps counted once).

    Args:
        lines: Lines read from the image, boxes (convex quadrilaterals) in its pixels.
        size: The image's ``(width, height)`` in pixels.
        min_chars: Lines with fewer letters or digits are left out: a lone glyph is most often
            a shape misread as text (a spoon read as "1" with a box over half the photo).
        grid: Coverage is sampled at the centres of a grid whose longest side has at most this
            many cells, so the cost does not grow with the image.
    """
    width, height = size
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {size}")
    if not lines:
        return 0.0
    step = max(1.0, max(width, height) / grid)  # pixels per cell
    xs = (np.arange(int(np.ceil(width / step))) + 0.5) * step
    ys = (np.arange(int(np.ceil(height / step))) + 0.5) * step
    px, py = np.meshgrid(xs[xs < width], ys[ys < height])
    covered = np.zeros(px.shape, dtype=bool)
    for line in lines:
        if sum(ch.isalnum() for ch in line.text) < min_chars:
            continue
        covered |= _inside(np.asarray(line.box, dtype=np.float64), px, py)
    return float(covered.mean())


def _inside(quad: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """bool mask: points (px, py) inside the convex polygon ``quad`` [K, 2] (either winding, edges included)."""
    x, y = quad[:, 0], quad[:, 1]
    if abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) < 1e-9:  # shoelace: no area, covers nothing
        return np.zeros(px.shape, dtype=bool)
    sides = []
    for (x0, y0), (x1, y1) in zip(quad, np.roll(quad, -1, axis=0), strict=True):
        sides.append((x1 - x0) * (py - y0) - (y1 - y0) * (px - x0))
    cross = np.stack(sides)
    return (cross >= 0).all(axis=0) | (cross <= 0).all(axis=0)
