"""``promo_spam`` painter: contact details (phones, URLs, handles) on banners, photos or logos.

On drift days spammers switch to dark neon graphics, vertical text and QR-like codes.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from modops.demo.scene import (
    NEON_BG,
    NEON_TEXT,
    PALETTE,
    Color,
    banner_background,
    choice,
    choice_color,
    ellipse_box,
    fit_font,
    paste_rotated_text,
    product_scene,
    text_colors,
    text_lines,
    uniform,
)


def _phone(rng: np.random.Generator) -> str:
    n4 = f"{int(rng.integers(0, 10000)):04d}"
    area = choice(rng, ("800", "888", "877", "866", "855"))
    return choice(
        rng,
        (
            f"+1 ({area}) 555-{n4}",
            f"CALL 1-{area}-555-{n4}",
            f"Tel: 0{int(rng.integers(100, 999))} 555 {n4}",
            f"+44 7700 900{n4[:3]}",
        ),
    )


def _contact(rng: np.random.Generator, drift: bool) -> str:
    """A phone number, URL, messaging handle or support line; Telegram-style on drift days."""
    word = choice(rng, ("deals", "cheap", "promo", "bestbuy", "shop", "gift", "cash", "vip"))
    nn = int(rng.integers(1, 99))
    if drift:
        options = (
            f"t.me/{word}_{nn}",
            f"tg: @{word}{nn}",
            f"t.me/+{word[:3]}X{nn}k",
            f"signal +44 7700 9{int(rng.integers(10000, 99999))}",
            f"join t.me/{word}hub",
            _phone(rng),
        )
        return choice(rng, options)
    site = f"{choice(rng, ('deals', 'outlet', 'store'))}.{choice(rng, ('biz', 'info', 'xyz'))}"
    options = (
        _phone(rng),
        _phone(rng),
        f"www.{word}-{site}",
        f"bit.ly/{word}{nn}x",
        f"WhatsApp: +1 {int(rng.integers(200, 999))} 555 {nn:02d}{nn:02d}",
        f"@{word}_4u",
        f"@{word}_{nn}",
        "CUSTOMER SUPPORT 24/7",
        "HELPLINE 24/7",
    )
    return choice(rng, options)


_SPAM_HEADLINES = (
    "CALL NOW",
    "BEST PRICE",
    "100% ORIGINAL",
    "CHEAP!!!",
    "FREE SHIPPING",
    "LIMITED OFFER",
    "EARN $500/DAY",
    "LOANS FAST",
    "DM TO ORDER",
    "WHOLESALE",
    "ORDER NOW",
    "CUSTOMER SUPPORT",
    "REFUND DESK",
    "50% OFF",
)


def _starburst(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, r: float, color: Color) -> None:
    k = int(rng.integers(10, 18))
    pts = [
        (
            cx + (r if j % 2 == 0 else r * 0.72) * math.cos(math.pi * j / k),
            cy + (r if j % 2 == 0 else r * 0.72) * math.sin(math.pi * j / k),
        )
        for j in range(2 * k)
    ]
    d.polygon(pts, fill=color)


def render_spam(rng: np.random.Generator, w: int, h: int, variant: str, drift: bool) -> Image.Image:
    """A ``w`` x ``h`` px RGB promo_spam image in the style named by ``variant`` (drift: neon palette)."""
    if variant == "overlay":
        return _spam_overlay(rng, w, h, drift)
    if variant == "logos":
        return _spam_logos(rng, w, h, drift)
    if variant == "vertical":
        return _spam_vertical(rng, w, h)
    if variant == "qr":
        return _spam_qr(rng, w, h)
    return _spam_banner(rng, w, h, drift)


def _spam_banner(rng: np.random.Generator, w: int, h: int, drift: bool) -> Image.Image:
    img = banner_background(rng, w, h, drift=drift)
    d = ImageDraw.Draw(img, "RGBA")
    colors = text_colors(rng, drift=drift)
    if rng.random() < 0.5:
        d.rectangle((2, 2, w - 3, h - 3), outline=colors[0], width=max(2, w // 40))
    top = h * 0.08
    if rng.random() < 0.4:
        r = min(w, h) * 0.2
        _starburst(d, rng, w - r * 1.1, r * 1.1, r, choice_color(rng, ((255, 230, 0), (230, 20, 30))))
        top = r * 2.2
    lines = [choice(rng, _SPAM_HEADLINES), _contact(rng, drift)]
    lines += [_contact(rng, drift) for _ in range(int(rng.integers(0, 3)))]
    text_lines(d, lines, (w * 0.06, top, w * 0.94, h * 0.94), colors, stroke=(0, 0, 0) if rng.random() < 0.4 else None)
    return img


def _spam_overlay(rng: np.random.Generator, w: int, h: int, drift: bool) -> Image.Image:
    """A product photo with contact details stamped over it."""
    img, _ = product_scene(rng, w, h)
    d = ImageDraw.Draw(img, "RGBA")
    colors = text_colors(rng, drift=drift)
    lines = [_contact(rng, drift)] + ([choice(rng, _SPAM_HEADLINES)] if rng.random() < 0.5 else [])
    if rng.random() < 0.6:  # a translucent band at the top or bottom
        bh = h * uniform(rng, 0.18, 0.34)
        y0 = 0.0 if rng.random() < 0.5 else h - bh
        band = choice_color(rng, NEON_BG if drift else PALETTE)
        d.rectangle((0, y0, w, y0 + bh), fill=(*band, int(rng.integers(150, 240))))
        text_lines(d, lines, (w * 0.04, y0, w * 0.96, y0 + bh), colors)
    else:  # large outlined text across the picture, sometimes tilted
        angle = uniform(rng, -35, 35) if rng.random() < 0.5 else 0.0
        for k, line in enumerate(lines):
            size = fit_font(line, w * 0.9, h * 0.16).size
            paste_rotated_text(img, line, size, colors[k % 2], angle, (w / 2, h * (0.4 + 0.25 * k)))
    return img


def _spam_logos(rng: np.random.Generator, w: int, h: int, drift: bool) -> Image.Image:
    """Several messenger/brand-like round logos with handles beside them."""
    if rng.random() < 0.5:
        img = banner_background(rng, w, h, drift=drift)
    else:
        img, _ = product_scene(rng, w, h, scale=(0.3, 0.5))
    d = ImageDraw.Draw(img, "RGBA")
    k = int(rng.integers(2, 5))
    r = min(h / (2.6 * k), w * 0.12)
    for j in range(k):
        cy = h * (j + 0.5) / k
        logo = choice_color(rng, ((37, 211, 102), (0, 136, 204), (225, 48, 108), (255, 0, 0), (59, 89, 152)))
        d.ellipse(ellipse_box(w * 0.06 + r, cy, r, r), fill=logo)
        text_lines(
            d,
            [choice(rng, ("W", "T", "@", "$", "f", "IG"))],
            ellipse_box(w * 0.06 + r, cy, r * 0.7, r * 0.7),
            [(255, 255, 255)],
        )
        text_lines(
            d,
            [_contact(rng, drift)],
            (w * 0.1 + 2.2 * r, cy - r, w * 0.97, cy + r),
            [(255, 255, 255)],
            stroke=(0, 0, 0),
            align="left",
        )
    return img


def _spam_vertical(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Drift style: dark neon graphic with rotated/vertical contact text."""
    img = banner_background(rng, w, h, drift=True)
    colors = text_colors(rng, drift=True)
    angle = choice_color(rng, ((90, 0, 0), (270, 0, 0)))[0] if rng.random() < 0.6 else uniform(rng, -30, 30)
    vertical = abs(angle) >= 90
    n = int(rng.integers(1, 4))
    for k in range(n):
        text = _contact(rng, drift=True) if k % 2 == 0 else choice(rng, _SPAM_HEADLINES)
        span = (h if vertical else w) * 0.9
        cross = (w if vertical else h) / n
        size = min(fit_font(text, span, cross * 0.7).size, 28)
        center = ((k + 0.5) * cross, h / 2) if vertical else (w / 2, (k + 0.5) * cross)
        paste_rotated_text(img, text, size, colors[k % 2], angle, center)
    return img


def _qr(rng: np.random.Generator, modules: int = 21) -> np.ndarray:
    """A QR-code-like block pattern (random data, three finder squares), 1 = dark."""
    grid = (rng.random((modules, modules)) < 0.5).astype(np.uint8)
    finder = np.ones((7, 7), np.uint8)
    finder[1:6, 1:6] = 0
    finder[2:5, 2:5] = 1
    for y, x in ((0, 0), (0, modules - 7), (modules - 7, 0)):
        grid[y : y + 7, x : x + 7] = finder
    return np.pad(grid, 2)  # quiet zone


def _spam_qr(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Drift style: a QR-like block with 'scan to chat' and a t.me handle."""
    if rng.random() < 0.6:
        img = banner_background(rng, w, h, drift=True)
    else:
        img, _ = product_scene(rng, w, h, scale=(0.3, 0.5))
    grid = _qr(rng)
    side = int(min(w, h) * uniform(rng, 0.45, 0.65))
    dark, light = choice_color(rng, NEON_BG), choice_color(rng, NEON_TEXT)
    pix = np.where(grid[..., None] == 1, np.array(dark, np.uint8), np.array(light, np.uint8))
    block = Image.fromarray(pix.astype(np.uint8)).resize((side, side), Image.Resampling.NEAREST)
    x0 = int(uniform(rng, 0.05, 0.95) * (w - side))
    img.paste(block, (x0, int(h * 0.06)))
    d = ImageDraw.Draw(img, "RGBA")
    lines = [choice(rng, ("SCAN TO CHAT", "SCAN ME", "SCAN & EARN")), _contact(rng, drift=True)]
    text_lines(
        d, lines, (w * 0.04, h * 0.06 + side, w * 0.96, h * 0.97), text_colors(rng, drift=True), stroke=(0, 0, 0)
    )
    return img
