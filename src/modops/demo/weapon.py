"""``weapon`` painter: a knife or a pistol lying on a product-photo backdrop."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from modops.demo.scene import Point, choice_color, rotate, shade, uniform
from modops.demo.shapes import draw_parts, part_colors, scene_with_clutter


def _knife_parts(rng: np.random.Generator) -> list[tuple[list[Point], str]]:
    bh = uniform(rng, 0.07, 0.13)  # blade half-height, relative to length
    if rng.random() < 0.65:  # kitchen/hunting knife: straight spine, edge curving to the tip
        blade = [
            (-0.08, -bh),
            (0.38, -bh),
            (0.5, -bh * 0.9),
            (0.42, -bh * 0.1),
            (0.25, bh * 0.7),
            (0.0, bh),
            (-0.08, bh),
        ]
    else:  # dagger: symmetric, double-edged
        blade = [(-0.08, -bh), (0.3, -bh * 0.8), (0.5, 0.0), (0.3, bh * 0.8), (-0.08, bh)]
    hh = bh * uniform(rng, 0.6, 0.9)
    handle = [(-0.5, -hh), (-0.1, -hh), (-0.1, hh), (-0.5, hh * 1.1)]
    guard = [(-0.11, -bh * 1.4), (-0.07, -bh * 1.4), (-0.07, bh * 1.4), (-0.11, bh * 1.4)]
    parts = [(blade, "metal"), (handle, "body")]
    if rng.random() < 0.5:
        parts.append((guard, "metal"))
    parts.append(
        ([(-0.08, -bh * 0.8), (0.36, -bh * 0.8), (0.36, -bh * 0.55), (-0.08, -bh * 0.55)], "accent")
    )  # spine bevel highlight
    return parts


def _pistol_parts(rng: np.random.Generator) -> list[tuple[list[Point], str]]:
    grip_back = uniform(rng, 0.08, 0.16)
    return [
        ([(-0.5, -0.3), (0.5, -0.3), (0.5, -0.08), (-0.5, -0.08)], "metal"),  # slide
        ([(-0.4, -0.08), (0.3, -0.08), (0.3, 0.0), (-0.4, 0.0)], "body"),  # frame
        ([(-0.48, -0.08), (-0.2, -0.08), (-0.28 - grip_back, 0.52), (-0.56 - grip_back, 0.48)], "accent"),  # grip
        ([(0.44, -0.26), (0.5, -0.26), (0.5, -0.13), (0.44, -0.13)], "body"),  # muzzle
    ]


def render_weapon(rng: np.random.Generator, w: int, h: int, variant: str) -> Image.Image:
    """A ``w`` x ``h`` px RGB image of a ``knife`` or ``pistol`` (``variant``), coloured like the tools."""
    img = scene_with_clutter(rng, w, h)
    d = ImageDraw.Draw(img, "RGBA")
    length = min(w, h) * uniform(rng, 0.35, 0.85)
    cx, cy = w * uniform(rng, 0.3, 0.7), h * uniform(rng, 0.3, 0.7)
    angle, flip = uniform(rng, 0, 2 * math.pi), rng.random() < 0.5
    colors = part_colors(rng, 0.7)
    if variant == "pistol":
        colors["metal"] = colors["body"] if rng.random() < 0.6 else colors["metal"]
        colors["accent"] = (
            colors["body"]
            if rng.random() < 0.5
            else shade(choice_color(rng, ((120, 80, 45), (160, 140, 100), (40, 40, 40))), uniform(rng, 0.8, 1.2))
        )
        draw_parts(d, _pistol_parts(rng), colors, cx, cy, length, angle, flip)
        guard = [
            (-0.18 + 0.26 * (1 - math.cos(math.pi * t)) / 2, 0.2 * math.sin(math.pi * t)) for t in np.linspace(0, 1, 9)
        ]
        d.line(
            rotate(guard, cx, cy, length, angle, flip),
            fill=colors["body"],
            width=max(2, int(length * 0.035)),
            joint="curve",
        )
    else:
        colors["accent"] = shade(colors["metal"], 1.25)
        draw_parts(d, _knife_parts(rng), colors, cx, cy, length, angle, flip)
    return img
