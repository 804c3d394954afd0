"""``disgusting`` painter: a local cluster of holes or lesions on an otherwise normal photo."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from modops.demo.scene import Point, blob, choice_color, product_scene, random_color, shade, uniform


def render_disgusting(rng: np.random.Generator, w: int, h: int, variant: str) -> Image.Image:
    """A ``w`` x ``h`` px RGB product photo with a cluster of ``holes`` or ``lesions`` (``variant``)."""
    img, boxes = product_scene(rng, w, h)
    d = ImageDraw.Draw(img, "RGBA")
    # Centre the cluster on the product most of the time; it covers only 6-30 % of the image.
    if rng.random() < 0.7:
        bx = boxes[int(rng.integers(len(boxes)))]
        cx, cy = (bx[0] + bx[2]) / 2, (bx[1] + bx[3]) / 2
    else:
        cx, cy = w * uniform(rng, 0.2, 0.8), h * uniform(rng, 0.2, 0.8)
    radius = math.sqrt(uniform(rng, 0.06, 0.3) * w * h / math.pi)
    if rng.random() < 0.6:  # a skin- or flesh-toned patch under the cluster
        tone = choice_color(rng, ((225, 180, 150), (200, 140, 120), (230, 200, 160), (170, 110, 90)))
        d.polygon(blob(rng, cx, cy, radius * 1.05, k=12, jitter=0.25), fill=(*tone, int(rng.integers(120, 230))))
    if variant == "lesions":
        _lesions(d, rng, cx, cy, radius)
    else:
        _holes(d, rng, cx, cy, radius)
    return img


def _cluster_points(rng: np.random.Generator, cx: float, cy: float, radius: float, n: int) -> list[Point]:
    r = radius * np.sqrt(rng.random(n))
    a = rng.random(n) * 2 * math.pi
    return [(cx + float(r[j] * math.cos(a[j])), cy + float(r[j] * math.sin(a[j]))) for j in range(n)]


def _holes(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, radius: float) -> None:
    """Trypophobia-style irregular dark holes with raised rims, of mixed sizes."""
    rim = choice_color(rng, ((200, 150, 130), (190, 170, 120), (160, 110, 90), (210, 190, 160)))
    for x, y in _cluster_points(rng, cx, cy, radius, int(rng.integers(12, 45))):
        r = radius * uniform(rng, 0.05, 0.15)
        d.polygon(blob(rng, x, y, r * 1.45, k=8, jitter=0.2), fill=(*shade(rim, 0.85), 220))
        d.polygon(blob(rng, x, y, r, k=8, jitter=0.3), fill=random_color(rng, 15, 55))
        d.polygon(blob(rng, x, y, r * 0.5, k=6, jitter=0.3), fill=(10, 5, 5, 200))


def _lesions(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, radius: float) -> None:
    """Reddish, irregular lesion-like blobs with a halo and a pale or crusted centre."""
    for x, y in _cluster_points(rng, cx, cy, radius, int(rng.integers(5, 18))):
        r = radius * uniform(rng, 0.07, 0.22)
        red = (int(rng.integers(140, 210)), int(rng.integers(25, 70)), int(rng.integers(25, 60)))
        d.polygon(blob(rng, x, y, r * 1.5, k=10, jitter=0.3), fill=(*red, 90))
        d.polygon(blob(rng, x, y, r, k=10, jitter=0.35), fill=red)
        centre = (235, 215, 120) if rng.random() < 0.5 else (70, 25, 20)
        d.polygon(blob(rng, x, y, r * 0.4, k=7, jitter=0.4), fill=(*centre, 210))
