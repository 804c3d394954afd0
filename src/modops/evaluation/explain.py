"""Explanations for holdout review: Grad-CAM heatmaps (via captum), overlays, image grids and example picking.

Everything here is pure: tensors and arrays in, arrays and PIL images out; no files, no tracking. Grad-CAM is
captum's ``LayerGradCam`` (Selvaraju et al. 2017), never a hand-written one. Good target layers: ResNet
``layer4[-1]``; MobileNet-V2 and DenseNet ``features[-1]`` (the last feature map before pooling).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from PIL import Image, ImageDraw, ImageFont, ImageOps
from torch import Tensor, nn

__all__ = ["gradcam", "overlay", "image_grid", "select_examples", "MAX_BATCH", "GAP"]

#: Images per Grad-CAM forward/backward pass: bounds the memory held by the autograd graph.
MAX_BATCH = 32

#: Pixels of background between grid tiles and around the grid's border.
GAP = 4

_BACKGROUND = (255, 255, 255)
_TEXT = (0, 0, 0)


def gradcam(
    model: nn.Module,
    layer: nn.Module,
    images: Tensor,
    targets: Tensor | Sequence[int],
    *,
    forward: Callable[[Tensor], Tensor] | None = None,
    batch_size: int = MAX_BATCH,
) -> np.ndarray:
    """Grad-CAM heatmaps of ``targets`` at ``layer``, upsampled to the input size.

    Args:
        model: the network; it is put in eval mode for the call (BatchNorm uses its running stats, dropout is
            off) and every submodule's own train/eval flag is restored afterwards. Its parameters' ``.grad`` are
            not touched (captum takes gradients with ``torch.autograd.grad``).
        layer: a submodule of ``model`` that outputs a feature map [N, C, h, w], e.g. ``model.layer4[-1]``.
        images: already-normalised float images [N, 3, H, W], as the model takes them.
        targets: class index per image, [N] ints (tensor or sequence).
        forward: function from images to logits [N, K]; defaults to ``model`` itself. Use it when the model
            returns something else (a dict, a tuple) or when the logits come from a wrapper around it.
        batch_size: images per pass, at most :data:`MAX_BATCH`.

    Returns:
        float32 array [N, H, W] in [0, 1]: per image, the ReLU'd Grad-CAM map upsampled bilinearly to H x W,
        then min-max normalised on its own. A map with no spread (all zero: nothing at ``layer`` pushes the
        target up; or constant, e.g. a 1 x 1 layer) has no spatial information and is returned as zeros.
        Non-finite values (a diverged model) are treated as 0, so the result is always finite.

    Works inside ``torch.no_grad()`` and ``torch.inference_mode()``: the passes run under
    ``torch.inference_mode(False)`` plus ``torch.enable_grad()``, and each batch is cloned there, because a
    tensor created under inference mode can never join an autograd graph, while its clone made outside
    inference mode is a normal tensor. The model's parameters must be normal tensors: a model built or loaded
    under ``inference_mode`` cannot be explained (a ``ValueError`` says so).
    """
    if images.dim() != 4:
        raise ValueError(f"images must be [N, 3, H, W], got shape {list(images.shape)}")
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be in [1, {MAX_BATCH}], got {batch_size}")
    n, _, height, width = images.shape
    target_list = _target_indices(targets, n)
    heat = np.zeros((n, height, width), dtype=np.float32)
    if n == 0:
        return heat

    params = list(model.parameters())
    if any(p.is_inference() for p in params):
        raise ValueError(
            "the model's parameters are inference tensors (it was built or loaded under torch.inference_mode()), "
            "so no gradient can flow through it: build or load it outside inference mode"
        )
    reference = next((p for p in params if p.is_floating_point()), None)
    device = reference.device if reference is not None else images.device
    dtype = reference.dtype if reference is not None else torch.get_default_dtype()

    cam = LayerGradCam(forward if forward is not None else model, layer)
    modes = {module: module.training for module in model.modules()}
    try:
        model.eval()
        with torch.inference_mode(False), torch.enable_grad():
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                # clone() here, outside inference mode, turns an inference tensor into a normal one; detach()
                # keeps the caller's own graph (if the images carry one) out of ours.
                batch = images[start:stop].detach().to(device=device, dtype=dtype).clone()
                target = torch.tensor(target_list[start:stop], dtype=torch.long, device=device)
                attr = cam.attribute(batch, target=target, relu_attributions=True)  # [b, 1, h, w], >= 0
                if attr.dim() != 4:
                    raise ValueError(
                        f"the Grad-CAM layer must output a feature map [N, C, h, w]; its attribution has shape "
                        f"{list(attr.shape)}"
                    )
                up = LayerAttribution.interpolate(attr.detach().float(), (height, width), interpolate_mode="bilinear")
                heat[start:stop] = _normalise_maps(up[:, 0]).cpu().numpy()
    finally:
        for module, training in modes.items():
            module.training = training
    return heat


def _target_indices(targets: Tensor | Sequence[int], n: int) -> list[int]:
    if isinstance(targets, Tensor):
        values = [int(t) for t in targets.detach().reshape(-1).tolist()]
    else:
        values = [int(t) for t in targets]
    if len(values) != n:
        raise ValueError(f"got {len(values)} targets for {n} images")
    return values


def _normalise_maps(maps: Tensor) -> Tensor:
    """Per-map min-max to [0, 1]; maps [b, H, W]. Maps without spread become zeros (no 0 / 0)."""
    maps = torch.nan_to_num(maps.clamp_min(0), nan=0.0, posinf=0.0, neginf=0.0)
    flat = maps.reshape(maps.shape[0], -1)
    lo = flat.min(dim=1).values.view(-1, 1, 1)
    span = flat.max(dim=1).values.view(-1, 1, 1) - lo
    safe = torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, (maps - lo) / safe, torch.zeros_like(maps)).clamp(0.0, 1.0)


def overlay(
    image: Tensor | np.ndarray | Image.Image,
    heat: np.ndarray,
    *,
    alpha: float = 0.45,
    colormap: str = "jet",
) -> Image.Image:
    """Blend a colour-mapped heatmap over an image.

    Args:
        image: uint8 RGB image: a [3, H, W] tensor, an [H, W, 3] array, or a PIL image (converted to RGB).
        heat: [h, w] map in [0, 1] (e.g. one row of :func:`gradcam`); resized bilinearly to H x W. Values
            outside [0, 1] are clipped and non-finite ones read as 0.
        alpha: weight of the heat colours in the blend, in [0, 1]: ``out = (1 - alpha) * image + alpha * colour``.
        colormap: a matplotlib colormap name (``"jet"``, ``"inferno"``, ...).

    Returns:
        RGB PIL image of size W x H.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb = _as_rgb_array(image)  # [H, W, 3] uint8
    heat = np.asarray(heat, dtype=np.float32)
    if heat.ndim != 2:
        raise ValueError(f"heat must be a 2-D map [h, w], got shape {list(heat.shape)}")
    heat = np.clip(np.nan_to_num(heat, nan=0.0, posinf=0.0, neginf=0.0), 0.0, 1.0)
    height, width = rgb.shape[:2]
    if heat.shape != (height, width):
        # A float32 2-D array becomes a PIL "F" image, which resizes bilinearly without 8-bit quantisation.
        heat = np.asarray(Image.fromarray(heat).resize((width, height), Image.Resampling.BILINEAR))
        heat = np.clip(heat, 0.0, 1.0)

    # Lazy import: matplotlib is only needed here. The colormap registry needs no backend (pyplot would pick one).
    import matplotlib

    colours = matplotlib.colormaps[colormap](heat)[..., :3]  # [H, W, 3] floats in [0, 1]
    blended = (1.0 - alpha) * rgb.astype(np.float32) + alpha * 255.0 * colours
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))


def _as_rgb_array(image: Tensor | np.ndarray | Image.Image) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"an image tensor must be [3, H, W], got shape {list(image.shape)}")
        array = image.detach().cpu().permute(1, 2, 0).numpy()
    else:
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"an image array must be [H, W, 3], got shape {list(array.shape)}")
    if array.dtype != np.uint8:
        # Refuse rather than guess: a normalised float image would silently blend as near-black.
        raise ValueError(f"the image must be uint8 RGB, got dtype {array.dtype}")
    return np.ascontiguousarray(array)


def image_grid(
    tiles: Sequence[Image.Image],
    *,
    captions: Sequence[str] | None = None,
    columns: int = 8,
    tile_size: int = 128,
    title: str | None = None,
) -> Image.Image:
    """Lay tiles out in a grid, each with a caption strip under it, and an optional title row on top.

    Each tile is scaled to fit a ``tile_size`` square (aspect kept, centred). With ``c = min(columns, len(tiles))``
    columns and ``r = ceil(len(tiles) / c)`` rows, the image is ``c * tile_size + (c + 1) * GAP`` pixels wide and
    ``title_h + r * (tile_size + caption_h) + (r + 1) * GAP`` high, where ``caption_h`` (0 without captions)
    fits the most lines of any caption (``"\\n"`` splits lines; lines too wide are cut with "...") and
    ``title_h`` (0 without a title) one line of text. Text uses PIL's default font.

    Returns:
        RGB PIL image. With no tiles: a small image that says "no examples" (under the title, if any).
    """
    if columns < 1 or tile_size < 1:
        raise ValueError(f"columns and tile_size must be positive, got {columns} and {tile_size}")
    if captions is not None and len(captions) != len(tiles):
        raise ValueError(f"got {len(captions)} captions for {len(tiles)} tiles")
    font = ImageFont.load_default()
    line_h = _line_height(font)
    title_h = line_h + 2 * GAP if title else 0

    if not tiles:
        width = max(2 * tile_size, 160)
        canvas = Image.new("RGB", (width, title_h + line_h + 4 * GAP), _BACKGROUND)
        draw = ImageDraw.Draw(canvas)
        if title:
            _draw_line(draw, (GAP, GAP), title, font, width - 2 * GAP)
        _draw_line(draw, (GAP, title_h + 2 * GAP), "no examples", font, width - 2 * GAP)
        return canvas

    lines = [str(c).split("\n") for c in captions] if captions is not None else None
    caption_h = max(len(ls) for ls in lines) * line_h + GAP if lines is not None else 0
    cols = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    width = cols * tile_size + (cols + 1) * GAP
    height = title_h + rows * (tile_size + caption_h) + (rows + 1) * GAP
    canvas = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    if title:
        _draw_line(draw, (GAP, GAP), title, font, width - 2 * GAP)

    for i, tile in enumerate(tiles):
        row, col = divmod(i, cols)
        x = GAP + col * (tile_size + GAP)
        y = title_h + GAP + row * (tile_size + caption_h + GAP)
        fitted = ImageOps.contain(tile.convert("RGB"), (tile_size, tile_size))
        canvas.paste(fitted, (x + (tile_size - fitted.width) // 2, y + (tile_size - fitted.height) // 2))
        if lines is not None:
            for j, text in enumerate(lines[i]):
                _draw_line(draw, (x, y + tile_size + GAP // 2 + j * line_h), text, font, tile_size)
    return canvas


def _line_height(font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    # Bottom of the bounding box of tall and descending glyphs, plus 2 px of leading.
    return int(font.getbbox("Ag|")[3]) + 2


def _draw_line(
    draw: ImageDraw.ImageDraw,
    xy: tuple[int, int],
    text: str,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    max_width: int,
) -> None:
    """Draw one line of text, cut with "..." to fit ``max_width`` pixels."""
    if isinstance(font, ImageFont.ImageFont):
        # The bitmap fallback font (Pillow built without FreeType) only encodes Latin-1.
        text = text.encode("latin-1", "replace").decode("latin-1")
    if draw.textlength(text, font=font) > max_width:
        while text and draw.textlength(text + "...", font=font) > max_width:
            text = text[:-1]
        text += "..."
    draw.text(xy, text, fill=_TEXT, font=font)


def select_examples(
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    threshold: float,
    k: int = 8,
) -> dict[str, np.ndarray]:
    """Pick the examples worth looking at for one category (one-vs-rest, predicted when ``score >= threshold``).

    Args:
        y_true: [N] bools (or 0/1): whether each image belongs to the category.
        scores: [N] floats: the category's score (probability) per image. NaN scores are never selected.
        threshold: decision threshold, as chosen by ``metrics.choose_threshold``.
        k: at most this many indices per group.

    Returns:
        int64 index arrays, most telling first, ties broken by the lower index:
        ``"top_positives"``: true positives (positive, ``score >= threshold``), highest score first;
        ``"false_positives"``: negatives with ``score >= threshold``, highest (most confidently wrong) first;
        ``"false_negatives"``: positives with ``score < threshold``, lowest (most confidently wrong) first.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"y_true and scores must be 1-D of the same length, got {y.shape} and {s.shape}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    finite = ~np.isnan(s)
    predicted = finite & (s >= threshold)
    missed = finite & (s < threshold)
    index = np.arange(len(s))

    def pick(mask: np.ndarray, *, highest_first: bool) -> np.ndarray:
        idx = index[mask]
        key = -s[mask] if highest_first else s[mask]
        # lexsort sorts by the last key first: score, then index for ties; stable and deterministic.
        return idx[np.lexsort((idx, key))][:k].astype(np.int64)

    return {
        "top_positives": pick(y & predicted, highest_first=True),
        "false_positives": pick(~y & predicted, highest_first=True),
        "false_negatives": pick(y & missed, highest_first=False),
    }
