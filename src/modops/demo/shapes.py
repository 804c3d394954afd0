"""Elongated shapes in unit coordinates along +x: the tools (clean look-alikes) and shared drawing.

Tools and weapons share the colouring and placement, so that only the silhouette tells them apart.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from modops.demo.scene import (
    Color,
    Point,
    background,
    object_color,
    product_scene,
    random_color,
    rotate,
    shade,
    uniform,
)


def tool_parts(rng: np.random.Generator, kind: str) -> list[tuple[list[Point], str]]:
    """Polygons (unit length, centred) and their roles ('body', 'metal', 'accent')."""

    def rect(x0: float, x1: float, y0: float, y1: float) -> list[Point]:
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]

    def ell(cx: float, cy: float, rx: float, ry: float, k: int = 14) -> list[Point]:
        return [(cx + rx * math.cos(2 * math.pi * j / k), cy + ry * math.sin(2 * math.pi * j / k)) for j in range(k)]

    if kind == "spoon":
        return [(rect(-0.5, 0.15, -0.03, 0.03), "metal"), (ell(0.3, 0, 0.19, 0.1), "metal")]
    if kind == "pen":
        return [
            (rect(-0.5, 0.4, -0.035, 0.035), "body"),
            ([(0.4, -0.03), (0.5, 0), (0.4, 0.03)], "metal"),
            (rect(-0.45, -0.1, -0.055, -0.035), "accent"),
        ]
    if kind == "hammer":
        return [(rect(-0.5, 0.35, -0.04, 0.04), "body"), (rect(0.3, 0.46, -0.22, 0.2), "metal")]
    if kind == "wrench":
        return [
            (rect(-0.4, 0.33, -0.05, 0.05), "metal"),
            (
                [
                    (0.3, -0.12),
                    (0.5, -0.12),
                    (0.5, -0.04),
                    (0.4, -0.04),
                    (0.4, 0.04),
                    (0.5, 0.04),
                    (0.5, 0.12),
                    (0.3, 0.12),
                ],
                "metal",
            ),
            (ell(-0.42, 0, 0.1, 0.1), "metal"),
        ]
    if kind == "screwdriver":
        return [
            (rect(-0.5, -0.08, -0.07, 0.07), "accent"),
            (rect(-0.08, 0.45, -0.015, 0.015), "metal"),
            ([(0.45, -0.03), (0.5, -0.01), (0.5, 0.01), (0.45, 0.03)], "metal"),
        ]
    if kind == "drill":  # pistol-like silhouette, a deliberate look-alike
        return [
            (rect(-0.35, 0.3, -0.25, 0.0), "accent"),
            (rect(0.3, 0.38, -0.18, -0.07), "metal"),
            (rect(0.38, 0.55, -0.135, -0.115), "metal"),
            ([(-0.15, 0.0), (0.05, 0.0), (0.0, 0.4), (-0.2, 0.4)], "body"),
            (rect(-0.3, 0.1, 0.4, 0.52), "accent"),
        ]
    if kind == "hairdryer":
        return [
            (rect(-0.3, 0.25, -0.3, -0.05), "accent"),
            (rect(0.25, 0.42, -0.26, -0.09), "body"),
            ([(-0.12, -0.05), (0.05, -0.05), (0.02, 0.45), (-0.12, 0.45)], "accent"),
        ]
    # spatula
    return [(rect(-0.5, 0.1, -0.035, 0.035), "body"), (rect(0.1, 0.5, -0.13, 0.13), "metal")]


TOOLS = ("spoon", "pen", "hammer", "wrench", "screwdriver", "drill", "hairdryer", "spatula")


def part_colors(rng: np.random.Generator, dark_bias: float) -> dict[str, Color]:
    """Colours by role; dark tools on purpose, so darkness alone does not mean 'weapon'."""
    dark = rng.random() < dark_bias
    body = random_color(rng, 10, 60) if dark else object_color(rng)
    metal = shade((190, 192, 198), uniform(rng, 0.45, 1.15)) if rng.random() < 0.7 else body
    accent = object_color(rng) if rng.random() < 0.5 else body
    return {"body": body, "metal": metal, "accent": accent}


def draw_parts(
    d: ImageDraw.ImageDraw,
    parts: list[tuple[list[Point], str]],
    colors: dict[str, Color],
    cx: float,
    cy: float,
    length: float,
    angle: float,
    flip: bool,
) -> None:
    for pts, role in parts:
        d.polygon(rotate(pts, cx, cy, length, angle, flip), fill=colors[role])


def scene_with_clutter(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Backdrop, sometimes with a small product, for tools and weapons to lie on."""
    if rng.random() < 0.5:
        return product_scene(rng, w, h, scale=(0.25, 0.45))[0]
    return background(rng, w, h)
