"""Clean (negative) images: product photos and the hard negatives.

Hard negatives look like a violation at a glance (benign text and prices, dotted or porous
textures, people, dark elongated tools), so that a model has to learn the real cue.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from modops.demo.scene import (
    background,
    banner_background,
    blob,
    choice,
    choice_color,
    ellipse_box,
    muted,
    object_color,
    product_scene,
    random_color,
    shade,
    shaded_ellipse,
    shadow,
    text_colors,
    text_lines,
    uniform,
)
from modops.demo.shapes import TOOLS, draw_parts, part_colors, scene_with_clutter, tool_parts

_BRANDS = (
    "ACME",
    "Nordic Brew",
    "FreshCo",
    "Lumen",
    "Oak&Co",
    "PURE",
    "Velvet",
    "Bistro 21",
    "GreenLeaf",
    "Polar",
    "Zest",
    "Kettle",
    "Maison",
    "Sunny",
    "Koda",
)
_BENIGN = (
    "SALE 20%",
    "NEW",
    "Organic",
    "Fresh daily",
    "Open 9-18",
    "Est. 1998",
    "Today's special",
    "2 for 1",
    "Handmade",
    "Free parking",
    "Grand opening",
    "Gift cards",
    "Family owned",
    "Lunch menu",
    "Pick up in store",
    "50% OFF",
    "Summer collection",
    "Thank you!",
    "Best seller",
    "Since 2004",
)


def _price(rng: np.random.Generator) -> str:
    return f"${int(rng.integers(1, 300))}.{choice(rng, ('99', '49', '95', '00', '50'))}"


def render_clean(rng: np.random.Generator, w: int, h: int, variant: str) -> Image.Image:
    """A clean ``w`` x ``h`` px RGB image: a product photo or the hard negative named by ``variant``."""
    if variant == "text":
        return _clean_text(rng, w, h)
    if variant == "texture":
        return _dotted(rng, w, h)
    if variant == "people":
        return _people(rng, w, h)
    if variant == "tool":
        return _tool_scene(rng, w, h)
    return product_scene(rng, w, h)[0]


def _clean_text(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Benign text: brand labels and price tags, menu boards, or a plain sale banner."""
    kind = int(rng.integers(3))
    if kind == 0:
        img, boxes = product_scene(rng, w, h)
        d = ImageDraw.Draw(img, "RGBA")
        for box in boxes:
            text_lines(d, [choice(rng, _BRANDS)], box, [random_color(rng, 0, 90)])
        tx, ty = uniform(rng, 0.05, 0.55) * w, uniform(rng, 0.05, 0.75) * h
        tag = (tx, ty, tx + w * uniform(rng, 0.3, 0.42), ty + h * uniform(rng, 0.12, 0.2))
        d.rectangle(tag, fill=choice_color(rng, ((255, 255, 255), (250, 220, 40), (220, 40, 40))), outline=(40, 40, 40))
        text = _price(rng) if rng.random() < 0.6 else choice(rng, _BENIGN)
        text_lines(d, [text], tag, [(20, 20, 20)])
        return img
    if kind == 1:  # chalkboard or shop sign with a short menu
        img = background(rng, w, h)
        d = ImageDraw.Draw(img, "RGBA")
        board = (w * 0.08, h * 0.08, w * 0.92, h * 0.92)
        dark = rng.random() < 0.6
        d.rectangle(board, fill=(35, 45, 40) if dark else (240, 235, 220), outline=(120, 80, 40), width=max(2, w // 30))
        n = int(rng.integers(2, 5))
        lines = [choice(rng, _BRANDS)] + [
            f"{choice(rng, ('Soup', 'Latte', 'Bagel', 'Salad', 'Cake', 'Tea'))} {_price(rng)}"
            if rng.random() < 0.6
            else choice(rng, _BENIGN)
            for _ in range(n - 1)
        ]
        ink = [(235, 235, 225)] if dark else [(30, 30, 30), (180, 30, 30)]
        pad = w * 0.05
        text_lines(
            d,
            lines,
            (board[0] + pad, board[1] + pad, board[2] - pad, board[3] - pad),
            ink,
            align="center" if rng.random() < 0.5 else "left",
        )
        return img
    img = banner_background(rng, w, h, drift=False)  # a sale banner without contact details
    d = ImageDraw.Draw(img, "RGBA")
    lines = [choice(rng, ("SUMMER SALE", "NEW ARRIVALS", "SALE", "GRAND OPENING", "WELCOME")), choice(rng, _BENIGN)]
    if rng.random() < 0.5:
        lines.append(choice(rng, ("In store now", "This weekend", "Ends Sunday", "Sat 10-16")))
    text_lines(d, lines, (w * 0.08, h * 0.1, w * 0.92, h * 0.9), text_colors(rng, drift=False))
    return img


def _dotted(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Hard negatives for 'disgusting': sponge, bread, polka dots, gravel, perforation, berry."""
    kind = choice(rng, ("sponge", "bread", "polka", "gravel", "perforated", "strawberry"))
    if kind in ("polka", "gravel", "perforated"):
        img = Image.new("RGB", (w, h), muted(rng, 60, 240))
        d = ImageDraw.Draw(img, "RGBA")
        {"polka": _polka, "gravel": _gravel, "perforated": _perforated}[kind](d, rng, w, h)
        return img
    img = background(rng, w, h)
    d = ImageDraw.Draw(img, "RGBA")
    cx, cy = w * uniform(rng, 0.35, 0.65), h * uniform(rng, 0.4, 0.6)
    s = min(w, h) * uniform(rng, 0.4, 0.75)
    if kind == "strawberry":
        _strawberry(d, rng, cx, cy, s)
    else:
        _porous(d, rng, cx, cy, s, sponge=kind == "sponge")
    return img


def _polka(d: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int) -> None:
    p = uniform(rng, 8, 22)
    r = p * uniform(rng, 0.15, 0.35)
    dot = random_color(rng, 0, 255) if rng.random() < 0.6 else (25, 20, 20)
    for row, y in enumerate(np.arange(-p, h + p, p)):
        for x in np.arange(-p + (p / 2) * (row % 2), w + p, p):
            d.ellipse(ellipse_box(float(x), float(y), r, r), fill=dot)


def _gravel(d: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int) -> None:
    n = int(w * h / uniform(rng, 25, 60))
    xs, ys = rng.uniform(0, w, n), rng.uniform(0, h, n)
    base = muted(rng, 90, 190)
    for x, y in zip(xs, ys, strict=True):
        c = shade(base, uniform(rng, 0.6, 1.3))
        d.polygon(blob(rng, float(x), float(y), uniform(rng, 2.5, 6), k=6, jitter=0.35), fill=c)


def _perforated(d: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int) -> None:
    p = uniform(rng, 6, 14)
    r = p * uniform(rng, 0.2, 0.33)
    for y in np.arange(p / 2, h, p):
        for x in np.arange(p / 2, w, p):
            d.ellipse(ellipse_box(float(x), float(y), r, r), fill=(15, 15, 18))


def _porous(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, s: float, *, sponge: bool) -> None:
    """A sponge block or bread slice: many irregular but lighter, rimless holes."""
    if sponge:
        c = choice_color(rng, ((240, 210, 60), (90, 170, 80), (230, 120, 60), (80, 140, 210)))
        box = (cx - s * 0.6, cy - s * 0.35, cx + s * 0.6, cy + s * 0.35)
        shadow(d, cx, box[3], s * 0.6, s * 0.06)
        d.rounded_rectangle(box, radius=s * 0.06, fill=c)
    else:
        c = (int(rng.integers(215, 245)), int(rng.integers(190, 220)), int(rng.integers(140, 175)))
        box = (cx - s * 0.55, cy - s * 0.45, cx + s * 0.55, cy + s * 0.45)
        d.rounded_rectangle(box, radius=s * 0.2, fill=(150, 95, 45))  # crust
        box = (box[0] + s * 0.06, box[1] + s * 0.06, box[2] - s * 0.06, box[3] - s * 0.06)
        d.rounded_rectangle(box, radius=s * 0.16, fill=c)
    for _ in range(int(rng.integers(25, 70))):
        x, y = uniform(rng, box[0] + 3, box[2] - 3), uniform(rng, box[1] + 3, box[3] - 3)
        d.polygon(
            blob(rng, x, y, s * uniform(rng, 0.015, 0.05), k=7, jitter=0.35), fill=shade(c, uniform(rng, 0.55, 0.8))
        )


def _strawberry(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, s: float) -> None:
    r = s * 0.45
    red = (int(rng.integers(180, 230)), int(rng.integers(20, 50)), int(rng.integers(30, 50)))
    d.polygon(
        [
            (cx - r, cy - r * 0.5),
            (cx + r, cy - r * 0.5),
            (cx + r * 0.5, cy + r * 0.6),
            (cx, cy + r * 1.1),
            (cx - r * 0.5, cy + r * 0.6),
        ],
        fill=red,
    )
    d.ellipse(ellipse_box(cx, cy - r * 0.45, r, r * 0.45), fill=red)
    for _ in range(int(rng.integers(20, 40))):
        x, y = cx + uniform(rng, -0.7, 0.7) * r, cy + uniform(rng, -0.6, 0.6) * r
        d.ellipse(ellipse_box(x, y, r * 0.04, r * 0.06), fill=(240, 220, 90))
    d.polygon(blob(rng, cx, cy - r * 0.85, r * 0.45, k=7, jitter=0.5, aspect=0.4), fill=(50, 140, 50))


def _people(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Simple blob figures: a people-like scene that is acceptable."""
    img = background(rng, w, h)
    d = ImageDraw.Draw(img, "RGBA")
    k = int(rng.integers(1, 5))
    for j in range(k):
        s = h * uniform(rng, 0.45, 0.8) / (1 + 0.2 * (k - 1))
        cx, base = w * ((j + 0.5) / k + uniform(rng, -0.05, 0.05)), h * uniform(rng, 0.8, 0.97)
        skin = choice_color(rng, ((240, 200, 170), (200, 150, 110), (140, 95, 65), (90, 60, 40)))
        shirt, pants = object_color(rng), object_color(rng)
        limb = max(2, int(s * 0.07))
        hip, neck = base - s * 0.42, base - s * 0.78
        for dx in (-0.08, 0.08):
            d.line([(cx + s * dx * 0.5, hip), (cx + s * dx, base)], fill=pants, width=limb)
        for dx in (-0.22, 0.22):
            d.line(
                [(cx + s * dx * 0.5, neck + s * 0.05), (cx + s * dx, neck + s * uniform(rng, 0.15, 0.4))],
                fill=shirt,
                width=limb,
            )
        d.rounded_rectangle((cx - s * 0.12, neck, cx + s * 0.12, hip), radius=s * 0.05, fill=shirt)
        shaded_ellipse(d, cx, neck - s * 0.11, s * 0.1, s * 0.12, skin, steps=3)
    return img


def _tool_scene(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    img = scene_with_clutter(rng, w, h)
    d = ImageDraw.Draw(img, "RGBA")
    for _ in range(1 if rng.random() < 0.75 else 2):
        kind = choice(rng, TOOLS)
        length = min(w, h) * uniform(rng, 0.45, 0.9)
        draw_parts(
            d,
            tool_parts(rng, kind),
            part_colors(rng, 0.6),
            w * uniform(rng, 0.3, 0.7),
            h * uniform(rng, 0.3, 0.7),
            length,
            uniform(rng, 0, 2 * math.pi),
            rng.random() < 0.5,
        )
    return img
