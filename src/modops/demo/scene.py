"""Shared drawing helpers: colours, fonts and text, rotation, blobs, backgrounds, product scenes, camera.

Every painter draws with an explicit ``numpy.random.Generator``: the order of draws is part of
the output, so reordering calls here changes the bytes of every image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from statistics import NormalDist

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

Color = tuple[int, int, int]  # RGB, 0-255
Point = tuple[float, float]  # (x, y) px, or unit shape coordinates
Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) px

# ---- small helpers


@lru_cache(maxsize=64)
def default_font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(6, int(size)))  # type: ignore[return-value]


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def random_color(rng: np.random.Generator, lo: int = 0, hi: int = 255) -> Color:
    r, g, b = rng.integers(lo, hi + 1, size=3)
    return int(r), int(g), int(b)


def shade(c: Color, f: float) -> Color:
    r, g, b = (max(0, min(255, int(v * f))) for v in c)
    return r, g, b


def mix(a: Color, b: Color, t: float) -> Color:
    r, g, bb = (int(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return r, g, bb


def choice(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[int(rng.integers(len(items)))]


def choice_color(rng: np.random.Generator, colors: Sequence[Color]) -> Color:
    return colors[int(rng.integers(len(colors)))]


def object_color(rng: np.random.Generator) -> Color:
    """A product colour: half saturated, half muted/neutral."""
    c = random_color(rng, 30, 240)
    if rng.random() < 0.5:
        g = sum(c) // 3
        c = mix(c, (g, g, g), uniform(rng, 0.4, 0.9))
    return c


def rotate(
    points: Sequence[Point], cx: float, cy: float, scale: float, angle: float, flip: bool = False
) -> list[Point]:
    """Map shape-local points (unit scale, centred on 0) to image coordinates."""
    ca, sa = math.cos(angle), math.sin(angle)
    out = []
    for x, y in points:
        y = -y if flip else y
        out.append((cx + scale * (x * ca - y * sa), cy + scale * (x * sa + y * ca)))
    return out


def blob(
    rng: np.random.Generator, cx: float, cy: float, r: float, *, k: int = 9, jitter: float = 0.3, aspect: float = 1.0
) -> list[Point]:
    """An irregular closed polygon of mean radius ``r`` px."""
    phase = uniform(rng, 0, 2 * math.pi)
    radii = r * (1 + jitter * (rng.random(k) * 2 - 1))
    return [
        (
            cx + radii[j] * math.cos(phase + 2 * math.pi * j / k),
            cy + aspect * radii[j] * math.sin(phase + 2 * math.pi * j / k),
        )
        for j in range(k)
    ]


def ellipse_box(cx: float, cy: float, rx: float, ry: float) -> Box:
    return cx - rx, cy - ry, cx + rx, cy + ry


def shaded_ellipse(
    d: ImageDraw.ImageDraw, cx: float, cy: float, rx: float, ry: float, color: Color, steps: int = 6
) -> None:
    """Concentric ellipses drifting toward an upper-left highlight: cheap 3-D shading."""
    for k in range(steps):
        t = k / steps
        hx, hy = cx - 0.35 * rx * t, cy - 0.35 * ry * t
        d.ellipse(ellipse_box(hx, hy, rx * (1 - 0.8 * t), ry * (1 - 0.8 * t)), fill=shade(color, 0.72 + 0.6 * t))


def shadow(d: ImageDraw.ImageDraw, cx: float, cy: float, rx: float, ry: float) -> None:
    d.ellipse(ellipse_box(cx, cy, rx, max(1.0, ry)), fill=(0, 0, 0, 55))


def fit_font(text: str, max_w: float, max_size: float) -> ImageFont.FreeTypeFont:
    """The largest default font (<= max_size px) whose rendering of ``text`` fits max_w px."""
    size = max(6, int(max_size))
    length = default_font(size).getlength(text)
    if length > max_w > 0:
        size = max(6, int(size * max_w / length))
    return default_font(size)


def text_lines(
    d: ImageDraw.ImageDraw,
    lines: Sequence[str],
    box: Box,
    fills: Sequence[Color],
    *,
    stroke: Color | None = None,
    align: str = "center",
) -> None:
    """Stack ``lines`` inside ``box``, each as large as fits its share of the height."""
    x0, y0, x1, y1 = box
    line_h = (y1 - y0) / max(1, len(lines))
    for k, line in enumerate(lines):
        font = fit_font(line, x1 - x0, line_h * 0.8)
        cy = y0 + line_h * (k + 0.5)
        x, anchor = {"center": ((x0 + x1) / 2, "mm"), "left": (x0, "lm")}[align]
        sw = 1 if stroke is not None and font.size >= 12 else 0
        d.text((x, cy), line, font=font, fill=fills[k % len(fills)], anchor=anchor, stroke_width=sw, stroke_fill=stroke)


def paste_rotated_text(img: Image.Image, text: str, size: float, fill: Color, angle: float, center: Point) -> None:
    """Draw ``text`` rotated by ``angle`` degrees, centred on ``center``."""
    font = default_font(int(size))
    left, top, right, bottom = font.getbbox(text)
    layer = Image.new("RGBA", (int(right - left) + 4, int(bottom - top) + 4), (0, 0, 0, 0))
    ImageDraw.Draw(layer).text((2 - left, 2 - top), text, font=font, fill=(*fill, 255))
    layer = layer.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
    img.paste(layer, (int(center[0] - layer.width / 2), int(center[1] - layer.height / 2)), layer)


# ---- backgrounds


def _lowres_noise(rng: np.random.Generator, w: int, h: int, cell: int, ch: int = 1) -> np.ndarray:
    """Smooth noise in [0, 1] of shape (h, w, ch): random cells upsampled bilinearly."""
    small = (rng.random((h // cell + 2, w // cell + 2, ch)) * 255).astype(np.uint8)
    mode = "L" if ch == 1 else "RGB"
    im = Image.fromarray(small[..., 0] if ch == 1 else small, mode=mode)
    arr = np.asarray(im.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    return arr.reshape(h, w, ch)


def muted(rng: np.random.Generator, lo: int = 80, hi: int = 250) -> Color:
    c = random_color(rng, lo, hi)
    g = sum(c) // 3
    return mix(c, (g, g, g), uniform(rng, 0.2, 0.85))


def _surface(rng: np.random.Generator, w: int, h: int, kind: str) -> np.ndarray:
    """One surface texture as float32 (h, w, 3) in 0-255."""
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    if kind == "gradient":
        a = uniform(rng, 0, 2 * math.pi)
        t = xx * math.cos(a) + yy * math.sin(a)
        t = (t - t.min()) / max(1.0, float(t.max() - t.min()))
        c1, c2 = np.array(muted(rng), np.float32), np.array(muted(rng), np.float32)
        return c1 + (c2 - c1) * t[..., None]
    base = np.array(muted(rng), dtype=np.float32)
    if kind == "blotch":
        return base * (0.8 + 0.4 * _lowres_noise(rng, w, h, int(rng.integers(4, 15)), 3))
    if kind == "wood":
        base = np.array(random_color(rng, 90, 200), dtype=np.float32) * (1.0, 0.68, 0.42)
        warp = _lowres_noise(rng, w, h, 12)[..., 0] * uniform(rng, 2, 6)
        grain = np.sin(2 * math.pi * (yy + warp * 2) / uniform(rng, 2, 5))
        return base * (0.88 + 0.07 * grain[..., None] + 0.1 * _lowres_noise(rng, w, h, 8))
    if kind == "tiles":
        p = int(rng.integers(7, 20))
        lines = ((xx % p) < 1) | ((yy % p) < 1)
        return base * np.where(lines, 0.7, 1.0)[..., None] * (0.95 + 0.1 * _lowres_noise(rng, w, h, p))
    return np.broadcast_to(base, (h, w, 3)).astype(np.float32)  # solid


def background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A wall, a tabletop or both, lit from one side (a product-photo backdrop).

    Rendered at half resolution and upsampled: backdrops are smooth, and it saves about a
    quarter of the time per image.
    """
    w2, h2 = (w + 1) // 2, (h + 1) // 2
    kind = choice(rng, ("solid", "gradient", "blotch", "wood", "tiles", "tabletop", "tabletop"))
    if kind == "tabletop":
        wall = _surface(rng, w2, h2, choice(rng, ("solid", "gradient", "tiles")))
        table = _surface(rng, w2, h2, choice(rng, ("wood", "solid", "blotch"))) * 0.85
        horizon = int(h2 * uniform(rng, 0.45, 0.75))
        arr = np.concatenate([wall[:horizon], table[horizon:]], axis=0)
    else:
        arr = _surface(rng, w2, h2, kind)
    yy = np.arange(h2, dtype=np.float32)[:, None]
    xx = np.arange(w2, dtype=np.float32)[None, :]
    lx, ly = uniform(rng, -0.2, 1.2) * w2, uniform(rng, -0.2, 1.2) * h2
    dist = np.hypot(xx - lx, yy - ly) / math.hypot(w2, h2)
    arr = arr * (1.08 - uniform(rng, 0.1, 0.35) * dist)[..., None]
    small = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return small.resize((w, h), Image.Resampling.BILINEAR)


# ---- products (clean objects)


def _bottle(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, s: float) -> Box:
    c = object_color(rng)
    bw, top, bot = s * uniform(rng, 0.3, 0.45), cy - s / 2, cy + s / 2
    neck = bw * uniform(rng, 0.28, 0.42)
    shoulder = top + s * uniform(rng, 0.25, 0.38)
    shadow(d, cx + bw * 0.2, bot, bw * 0.7, s * 0.05)
    d.rounded_rectangle((cx - bw / 2, shoulder, cx + bw / 2, bot), radius=bw * 0.15, fill=c)
    d.polygon(
        [
            (cx - bw / 2, shoulder + bw * 0.2),
            (cx - neck / 2, shoulder - s * 0.06),
            (cx + neck / 2, shoulder - s * 0.06),
            (cx + bw / 2, shoulder + bw * 0.2),
        ],
        fill=c,
    )
    d.rectangle((cx - neck / 2, top + s * 0.07, cx + neck / 2, shoulder - s * 0.05), fill=c)
    d.rectangle((cx - neck * 0.6, top, cx + neck * 0.6, top + s * 0.09), fill=random_color(rng, 10, 240))
    d.rectangle((cx - bw * 0.33, shoulder + s * 0.05, cx - bw * 0.22, bot - s * 0.05), fill=(255, 255, 255, 80))
    d.rectangle((cx + bw * 0.22, shoulder + s * 0.03, cx + bw / 2, bot - s * 0.02), fill=(0, 0, 0, 50))
    label = (cx - bw / 2, shoulder + (bot - shoulder) * 0.3, cx + bw / 2, shoulder + (bot - shoulder) * 0.72)
    d.rectangle(label, fill=random_color(rng, 140, 255))
    return label


def _carton(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, s: float) -> Box:
    c = object_color(rng)
    fw, fh = s * uniform(rng, 0.5, 0.8), s * uniform(rng, 0.4, 0.7)
    dx, dy = fw * uniform(rng, 0.15, 0.35), fh * uniform(rng, 0.15, 0.3)
    x0, y1 = cx - (fw + dx) / 2, cy + (fh + dy) / 2
    x1, y0 = x0 + fw, y1 - fh
    shadow(d, cx + dx * 0.5, y1, (fw + dx) * 0.6, s * 0.05)
    d.polygon([(x0, y0), (x0 + dx, y0 - dy), (x1 + dx, y0 - dy), (x1, y0)], fill=shade(c, 1.25))
    d.polygon([(x1, y0), (x1 + dx, y0 - dy), (x1 + dx, y1 - dy), (x1, y1)], fill=shade(c, 0.68))
    d.rectangle((x0, y0, x1, y1), fill=c)
    if rng.random() < 0.5:  # a printed stripe
        d.rectangle((x0, y0 + fh * 0.75, x1, y0 + fh * 0.88), fill=object_color(rng))
    return x0 + fw * 0.08, y0 + fh * 0.25, x1 - fw * 0.08, y0 + fh * 0.65


_FOOD = ((70, 140, 50), (140, 90, 45), (220, 180, 60), (190, 50, 40), (235, 225, 200), (100, 60, 30))


def _plate(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, s: float) -> Box:
    rx = s * 0.55
    ry = rx * uniform(rng, 0.45, 0.85)  # a plate seen at an angle
    shadow(d, cx + rx * 0.05, cy + ry * 0.15, rx, ry)
    rim = mix(random_color(rng, 200, 255), (245, 245, 245), 0.6)
    d.ellipse(ellipse_box(cx, cy, rx, ry), fill=rim)
    d.ellipse(ellipse_box(cx, cy, rx * 0.72, ry * 0.72), fill=shade(rim, 0.92))
    for _ in range(int(rng.integers(1, 6))):
        fx, fy = cx + uniform(rng, -0.35, 0.35) * rx, cy + uniform(rng, -0.35, 0.35) * ry
        food = shade(_FOOD[int(rng.integers(len(_FOOD)))], uniform(rng, 0.8, 1.15))
        d.polygon(blob(rng, fx, fy, rx * uniform(rng, 0.1, 0.25), aspect=ry / rx), fill=food)
    return ellipse_box(cx, cy, rx * 0.6, ry * 0.45)


_SHOE = (
    (0.0, 0.62),
    (0.08, 0.40),
    (0.32, 0.30),
    (0.42, 0.02),
    (0.70, 0.0),
    (0.74, 0.28),
    (0.98, 0.50),
    (1.0, 0.80),
    (0.0, 0.80),
)


def _shoe(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, s: float) -> Box:
    length, height = s * 1.1, s * 0.5
    sign = 1 if rng.random() < 0.5 else -1

    def pt(px: float, py: float) -> Point:
        return cx + sign * (px - 0.5) * length, cy + (py - 0.5) * height

    c = object_color(rng)
    shadow(d, cx, cy + height * 0.45, length * 0.55, s * 0.05)
    d.polygon([pt(px, py) for px, py in _SHOE], fill=c)
    d.polygon(
        [pt(0, 0.78), pt(1, 0.78), pt(1, 0.95), pt(0, 0.95)],
        fill=random_color(rng, 200, 250) if rng.random() < 0.6 else shade(c, 0.5),
    )
    for k in range(3):
        a, b = pt(0.45 + 0.08 * k, 0.12 + 0.07 * k), pt(0.55 + 0.08 * k, 0.2 + 0.07 * k)
        d.line([a, b], fill=random_color(rng, 200, 255), width=max(1, int(s * 0.03)))
    x0, y0 = pt(0.1, 0.45)
    x1, y1 = pt(0.9, 0.75)
    return min(x0, x1), y0, max(x0, x1), y1


def _cup(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, s: float) -> Box:
    c = object_color(rng)
    w, h = s * uniform(rng, 0.45, 0.6), s * uniform(rng, 0.5, 0.65)
    shadow(d, cx, cy + h / 2, w * 0.65, s * 0.05)
    d.arc((cx + w * 0.3, cy - h * 0.3, cx + w * 0.8, cy + h * 0.2), 270, 90, fill=c, width=max(2, int(s * 0.07)))
    d.polygon(
        [(cx - w / 2, cy - h / 2), (cx + w / 2, cy - h / 2), (cx + w * 0.4, cy + h / 2), (cx - w * 0.4, cy + h / 2)],
        fill=c,
    )
    d.ellipse((cx - w / 2, cy - h / 2 - h * 0.08, cx + w / 2, cy - h / 2 + h * 0.08), fill=shade(c, 0.8))
    d.ellipse(
        (cx - w * 0.42, cy - h / 2 - h * 0.05, cx + w * 0.42, cy - h / 2 + h * 0.06),
        fill=(90, 55, 30) if rng.random() < 0.6 else shade(c, 0.5),
    )
    return cx - w * 0.38, cy - h * 0.2, cx + w * 0.38, cy + h * 0.25


def _fruit(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, s: float) -> Box:
    r = s * uniform(rng, 0.25, 0.35)
    c = shade(
        choice_color(rng, ((200, 40, 35), (240, 170, 40), (120, 180, 50), (230, 210, 80), (150, 60, 120))),
        uniform(rng, 0.8, 1.1),
    )
    shadow(d, cx + r * 0.15, cy + r * 0.95, r * 0.9, r * 0.2)
    shaded_ellipse(d, cx, cy, r, r * uniform(rng, 0.85, 1.05), c)
    d.line([(cx, cy - r), (cx + r * 0.1, cy - r * 1.3)], fill=(90, 60, 30), width=max(1, int(r * 0.1)))
    return ellipse_box(cx, cy, r * 0.6, r * 0.4)


_PRODUCTS = (_bottle, _carton, _plate, _shoe, _cup, _fruit)


def _place_products(
    d: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int, k: int, scale: tuple[float, float] = (0.45, 0.8)
) -> list[Box]:
    """Draw ``k`` products side by side; returns each product's label area."""
    boxes = []
    for j in range(k):
        s = min(w, h) * uniform(rng, *scale) / (1 + 0.35 * (k - 1))
        cx = w * ((j + 0.5) / k + uniform(rng, -0.08, 0.08))
        cy = h * uniform(rng, 0.42, 0.6)
        boxes.append(_PRODUCTS[int(rng.integers(len(_PRODUCTS)))](d, rng, cx, cy, s))
    return boxes


def product_scene(
    rng: np.random.Generator, w: int, h: int, scale: tuple[float, float] = (0.45, 0.8)
) -> tuple[Image.Image, list[Box]]:
    img = background(rng, w, h)
    d = ImageDraw.Draw(img, "RGBA")
    k = 1 if rng.random() < 0.65 else 2
    return img, _place_products(d, rng, w, h, k, scale)


# ---- banners (promo_spam and the benign sale banners that look like it)

PALETTE = ((220, 30, 40), (250, 210, 30), (30, 90, 200), (250, 250, 250), (20, 150, 70), (250, 120, 20), (20, 20, 20))


NEON_BG = ((30, 10, 50), (10, 35, 45), (45, 10, 40), (15, 15, 30))
NEON_TEXT = ((255, 60, 200), (40, 240, 255), (180, 255, 60), (255, 240, 80))


def banner_background(rng: np.random.Generator, w: int, h: int, *, drift: bool) -> Image.Image:
    """A flat or gradient graphic background: classic bright palette, or dark neon on drift."""
    pal = NEON_BG if drift else PALETTE
    c1 = shade(choice_color(rng, pal), uniform(rng, 0.8, 1.1))
    c2 = mix(c1, choice_color(rng, pal), uniform(rng, 0.0, 0.5))
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    arr = np.array(c1, np.float32) + (np.array(c2, np.float32) - np.array(c1, np.float32)) * yy
    return Image.fromarray(np.ascontiguousarray(np.broadcast_to(arr, (h, w, 3)), dtype=np.uint8))


def text_colors(rng: np.random.Generator, *, drift: bool) -> list[Color]:
    if drift:
        return [choice_color(rng, NEON_TEXT), choice_color(rng, NEON_TEXT)]
    return [
        choice_color(rng, ((255, 255, 255), (20, 20, 20), (255, 230, 0))),
        choice_color(rng, ((255, 255, 255), (20, 20, 20), (200, 0, 0))),
    ]


# ---- camera


# Byte -> N(0, 1) quantile: turns uniform random bytes into Gaussian noise entirely in Pillow.
_GAUSS_QUANTILES = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)], dtype=np.float32)


def camera(img: Image.Image, rng: np.random.Generator, drift: bool) -> Image.Image:
    """Lens blur, exposure/contrast jitter and sensor noise; drift = darker, warmer photos.

    Uses lookup tables and Pillow's C operations rather than float arrays: this step runs on
    every pixel of every image and dominated the generation time.
    """
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.BoxBlur(uniform(rng, 0.3, 0.8)))
    contrast, offset = uniform(rng, 0.85, 1.12), uniform(rng, -12, 12)
    gain = np.full(3, 1.0, np.float32)
    if drift:  # a new default phone camera: underexposed with a warm cast
        gain = np.array([0.84, 0.78, 0.70], np.float32)
    levels = ((np.arange(256, dtype=np.float32) - 128) * contrast + 128 + offset)[None, :]
    lut = np.clip(levels * gain[:, None], 0, 255).round().astype(np.uint8)
    img = img.point(lut.ravel().tolist())
    sigma = uniform(rng, 1.0, 4.0)
    noise_lut = np.clip(128 + sigma * _GAUSS_QUANTILES, 0, 255).round().astype(np.uint8)
    noise = Image.frombytes("RGB", img.size, rng.bytes(img.width * img.height * 3))
    noise = noise.point(noise_lut.tolist() * 3)
    return ImageChops.add(img, noise, scale=1.0, offset=-128)
