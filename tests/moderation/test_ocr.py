"""OCR engines by name, a real RapidOCR read (bundled models, offline), and text coverage."""

from __future__ import annotations

import logging

import pytest
from PIL import Image, ImageDraw, ImageFont

from modops.moderation.ocr import OCR_ENGINES, NoOcr, TextLine, create_ocr, text_coverage
from modops.moderation.rules import evaluate_rules


def _rect(x0: float, y0: float, x1: float, y1: float) -> tuple:
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def _spam_card(width: int = 480, height: int = 160) -> Image.Image:
    """Black text on white: a phone number on the first line, a web address on the second."""
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=height // 5)
    draw.text((width * 0.05, height * 0.15), "CALL +1 555 123 4567", font=font, fill=(0, 0, 0))
    draw.text((width * 0.05, height * 0.55), "www.cheap-deals.biz", font=font, fill=(0, 0, 0))
    return img


def test_none_engine_reads_nothing() -> None:
    engine = create_ocr("none", threads=2, max_side=960)  # the other engines' options are ignored
    assert isinstance(engine, NoOcr)
    assert engine.read(_spam_card()) == []
    assert not evaluate_rules(engine.read(_spam_card()), rules=["phone", "url"], min_confidence=0.6).flag


def test_unknown_engine_or_option_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown OCR engine 'tesseract'.*'none'"):
        create_ocr("tesseract")
    with pytest.raises(ValueError, match="does not take options"):
        create_ocr("rapidocr", colour=True)  # refused before any model loads
    assert set(OCR_ENGINES) >= {"rapidocr", "none"}


def test_text_coverage_counts_overlaps_once() -> None:
    left = TextLine("left half", 1.0, _rect(0, 0, 50, 100))
    middle = TextLine("middle", 1.0, _rect(25, 0, 75, 100))
    assert text_coverage([], (100, 100)) == 0.0
    assert text_coverage([left], (100, 100)) == pytest.approx(0.5)
    assert text_coverage([left, middle], (100, 100)) == pytest.approx(0.75)
    assert text_coverage([left, left], (100, 100)) == pytest.approx(0.5)


def test_text_coverage_handles_tilted_boxes_large_images_and_glyphs() -> None:
    diamond = TextLine("tilted", 1.0, ((50, 0), (100, 50), (50, 100), (0, 50)))
    assert text_coverage([diamond], (100, 100)) == pytest.approx(0.5, abs=0.02)
    # A 4000 x 3000 photo is sampled on a coarse grid: same answer within a cell.
    band = TextLine("band", 1.0, _rect(0, 0, 4000, 750))
    assert text_coverage([band], (4000, 3000)) == pytest.approx(0.25, abs=0.01)
    glyph = TextLine("1", 0.9, _rect(0, 0, 100, 100))  # a shape misread as one character
    assert text_coverage([glyph], (100, 100)) == 0.0
    assert text_coverage([glyph], (100, 100), min_chars=1) == pytest.approx(1.0)
    flat = TextLine("no area", 1.0, ((0, 0), (0, 0), (0, 0), (0, 0)))
    assert text_coverage([flat], (100, 100)) == 0.0
    with pytest.raises(ValueError, match="positive"):
        text_coverage([band], (0, 10))


@pytest.mark.slow  # loads the ONNX models (~2 s on 2 cores), then reads twice
def test_rapidocr_reads_contacts_offline_and_maps_boxes_back(caplog: pytest.LogCaptureFixture) -> None:
    engine = create_ocr("rapidocr", threads=2, max_side=960)
    card = _spam_card()
    with caplog.at_level(logging.INFO, logger="RapidOCR"):
        lines = engine.read(card)
        assert engine.read(Image.new("RGB", (64, 64), (255, 255, 255))) == []
    assert not [r for r in caplog.records if "empty" in r.getMessage()]  # no per-image noise
    assert all(isinstance(line, TextLine) and 0 <= line.score <= 1 for line in lines)
    verdict = evaluate_rules(lines, rules=["phone", "url"], min_confidence=0.6)
    assert verdict.fired == ("phone", "url"), [line.text for line in lines]
    assert text_coverage(lines, card.size) > 0.1

    # Downscaled before OCR (max_side 240 on a 960 px card), boxes come back in the input's pixels.
    big = _spam_card(960, 320)
    small_engine = create_ocr("rapidocr", threads=2, max_side=240)
    big_lines = small_engine.read(big)
    assert big_lines, "nothing read from the downscaled card"
    assert max(x for line in big_lines for x, _ in line.box) > 240
    assert all(0 <= x <= 960 and 0 <= y <= 320 for line in big_lines for x, y in line.box)
    assert create_ocr("rapidocr", threads=2, max_side=960)._engine is engine._engine  # models load once
