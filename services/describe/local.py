"""The embedded describer: names and describes a layer from its own pixels and metadata, offline.

Everything here is deterministic and cheap (pixels are sampled and shapes measured on a small copy),
and nothing raises for a valid layer, however tiny or transparent.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

import cv2
import numpy as np

from services.common.layers import BBox, Layer, LayerKind
from services.describe.base import Description
from services.describe.colors import colour_name, dominant_colours, to_lab

OPAQUE = 128
"""Alpha from which a pixel counts towards a layer's colours and shape."""
COLOUR_SAMPLES = 16384
"""Most pixels that colour naming looks at per layer."""
SHAPE_SIDE = 128
"""Side that shape measurements scale a layer's longest side to."""
GRADIENT_SIDE = 32
"""Side of the grid a background is averaged down to when looking for a gradient."""
SNIPPET_CHARS = 60
"""Longest text quoted in a description."""


@dataclass(frozen=True)
class _Look:
    """What the pixels of a layer show, as far as naming needs."""

    colours: list[str]  # dominant colour names, most common first; empty when nothing shows
    box: BBox  # canvas box of the visible pixels; the layer's box when nothing shows
    translucent: bool  # most visible pixels are see-through


class LocalDescriber:
    """Describes layers from their pixels and metadata alone: no network, no model, deterministic."""

    name = "local"
    cache_version = ""  # cheaper to recompute than to fetch

    async def describe(self, layer: Layer, canvas_width: int, canvas_height: int) -> Description:
        """Describes one layer on a canvas_width x canvas_height canvas; never raises for a valid layer."""
        # Tens of milliseconds of OpenCV per large layer: off the event loop, so streams keep flowing.
        return await asyncio.to_thread(describe_layer, layer, canvas_width, canvas_height)


def describe_layer(layer: Layer, canvas_width: int, canvas_height: int) -> Description:
    """The local description of one layer (what LocalDescriber.describe returns)."""
    width, height = max(canvas_width, 1), max(canvas_height, 1)
    look = _look(layer)
    size = size_word(look.box, width, height)
    where = _where_phrase(position_word(look.box, width, height))
    colour = look.colours[0] if look.colours else "transparent"
    see_through = "semi-transparent " if look.translucent else ""

    if layer.kind == LayerKind.TEXT:
        name, role_size = _text_name(layer, height)
        snippet = _snippet(layer.text)
        reading = f' reading "{snippet}"' if snippet else ""
        sentence = f"{role_size or size} {see_through}{colour} text{reading} {where}"
    elif layer.kind == LayerKind.IMAGE:
        name = "photo" if _looks_like_photo(layer) else "image"
        if not look.colours:
            name = f"transparent {name}"
        sentence = f"{size} {see_through}{name} {where}"
        if look.colours:
            sentence += f", mostly {_colour_list(look.colours)}"
    elif layer.kind == LayerKind.BACKGROUND:
        name, sentence = _background(layer, look, "filling the canvas" if size == "full-canvas" else where)
    else:
        shape = shape_word(layer.rgba[..., 3])
        name = f"{colour} {shape}"
        sentence = f"{size} {see_through}{colour} {shape} {where}"
    return Description(
        name=name,
        kind=layer.kind,
        description=sentence[0].upper() + sentence[1:] + ".",
        text=layer.text,
        describer=LocalDescriber.name,
    )


def position_word(box: BBox, canvas_width: int, canvas_height: int) -> str:
    """Where the box's centre falls on a 3x3 grid: "top-left", "top", "centre", "bottom-right", ..."""
    x = (box.x + box.w / 2) / max(canvas_width, 1)
    y = (box.y + box.h / 2) / max(canvas_height, 1)
    column = "left" if x < 1 / 3 else "right" if x > 2 / 3 else "centre"
    row = "top" if y < 1 / 3 else "bottom" if y > 2 / 3 else "middle"
    if row == "middle":
        return column
    return row if column == "centre" else f"{row}-{column}"


def size_word(box: BBox, canvas_width: int, canvas_height: int) -> str:
    """How big the box is next to the canvas: "tiny", "small", "medium", "large", "full-width", ..."""
    wide = box.w / max(canvas_width, 1) >= 0.9
    tall = box.h / max(canvas_height, 1) >= 0.9
    if wide and tall:
        return "full-canvas"
    if wide:
        return "full-width"
    if tall:
        return "full-height"
    share = box.area / (max(canvas_width, 1) * max(canvas_height, 1))
    if share >= 0.2:
        return "large"
    if share >= 0.04:
        return "medium"
    return "small" if share >= 0.005 else "tiny"


def shape_word(alpha: np.ndarray) -> str:
    """A guess at the shape an alpha mask draws: "circle", "rectangle", "rounded shape", "dot", ..."""
    solid = alpha >= OPAQUE if (alpha >= OPAQUE).any() else alpha > 0
    if not solid.any():
        return "shape"
    if np.count_nonzero(solid) <= 12:
        return "dot"
    rows, cols = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
    solid = solid[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    mask = (_scaled(solid.astype(np.uint8) * 255, SHAPE_SIDE) >= 128).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:
        return "shape"
    areas = stats[1:, cv2.CC_STAT_AREA]
    if np.count_nonzero(areas >= 0.1 * areas.max()) > 1:
        return "shapes"
    component = (labels == 1 + int(areas.argmax())).astype(np.uint8)
    contours, _ = cv2.findContours(component, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=len)
    filled = np.zeros_like(component)
    cv2.drawContours(filled, [contour], -1, 1, thickness=cv2.FILLED)
    shape = _outline_shape(contour, filled)
    # A ring or frame covers little of what its outer edge encloses.
    return f"{shape} outline" if component.sum() < 0.6 * filled.sum() else shape


def _outline_shape(contour: np.ndarray, filled: np.ndarray) -> str:
    """Names the filled outline of one component."""
    area = float(filled.sum())
    (_, _), (rect_w, rect_h), _ = cv2.minAreaRect(contour)
    # minAreaRect spans pixel centres; the pixels themselves reach half a pixel further.
    long_side, short_side = max(rect_w, rect_h) + 1.0, min(rect_w, rect_h) + 1.0
    rect_fill = area / (long_side * short_side)
    if rect_fill >= 0.92:
        if short_side / long_side < 0.08:
            return "line"
        return "square" if short_side / long_side >= 0.9 else "rectangle"
    if len(contour) >= 5:
        centre, axes, angle = cv2.fitEllipse(contour)
        ellipse = np.zeros_like(filled)
        cv2.ellipse(ellipse, (centre, axes, angle), 1, thickness=cv2.FILLED)
        overlap = np.count_nonzero(ellipse & filled) / max(np.count_nonzero(ellipse | filled), 1)
        if overlap >= 0.92:
            return "circle" if min(axes) / max(max(axes), 1e-6) >= 0.9 else "ellipse"
    hull_area = cv2.contourArea(cv2.convexHull(contour))
    solidity = cv2.contourArea(contour) / hull_area if hull_area > 0 else 1.0
    if solidity >= 0.95 and rect_fill >= 0.8:
        return "rounded rectangle"
    corners = cv2.approxPolyDP(contour, 0.04 * cv2.arcLength(contour, True), True)
    if len(corners) == 3 and solidity >= 0.9:
        return "triangle"
    return "rounded shape" if solidity >= 0.9 else "irregular shape"


def _look(layer: Layer) -> _Look:
    alpha = layer.rgba[..., 3]
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return _Look(colours=[], box=layer.bbox, translucent=False)
    box = BBox(
        layer.bbox.x + int(cols[0]),
        layer.bbox.y + int(rows[0]),
        int(cols[-1] - cols[0] + 1),
        int(rows[-1] - rows[0] + 1),
    )
    crop = layer.rgba[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    sample = _sample(crop)
    if not sample[..., 3].any():
        sample = crop  # thin strokes can slip between the sampled rows and columns
    pixels, weights = _solid_pixels(sample)
    visible = sample[..., 3][sample[..., 3] > 0]
    return _Look(
        colours=dominant_colours(pixels, weights.astype(np.float64)),
        box=box,
        translucent=float(np.median(visible)) < 0.85 * 255,
    )


def _sample(rgba: np.ndarray) -> np.ndarray:
    """An evenly strided view of at most about COLOUR_SAMPLES pixels."""
    step = max(math.ceil(math.sqrt(rgba.shape[0] * rgba.shape[1] / COLOUR_SAMPLES)), 1)
    return rgba[::step, ::step]


def _solid_pixels(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RGB and alpha of the solid pixels; of every visible one when none is solid."""
    alpha = rgba[..., 3]
    chosen = alpha >= OPAQUE if (alpha >= OPAQUE).any() else alpha > 0
    return rgba[..., :3][chosen], alpha[chosen]


def _text_name(layer: Layer, canvas_height: int) -> tuple[str, str]:
    """The name, and a size word when the font size tells one.

    With a known font size the name is the typographic role; without one, the first words.
    """
    if layer.font_size_px > 0:
        share = layer.font_size_px / canvas_height
        if share >= 0.08:
            return "title text", "large"
        return ("heading", "medium") if share >= 0.04 else ("body text", "small")
    words = layer.text.split()
    if not words:
        return "text", ""
    first = " ".join(words[:4])
    if len(words) > 4 or len(first) > 32:
        first = first[:32].rstrip() + "..."
    return f"text: {first}", ""


def _background(layer: Layer, look: _Look, where: str) -> tuple[str, str]:
    """Name and sentence (without the full stop) for a background layer."""
    if not look.colours:
        return "transparent background", f"transparent background {where}"
    ends = None if look.translucent else _gradient_ends(layer)
    if ends is None:
        return f"{look.colours[0]} background", f"{_colour_list(look.colours)} background {where}"
    (start, start_side), (end, end_side) = ends
    if start == end:
        return f"{start} gradient background", f"{start} gradient background {where}"
    name = f"{start} to {end} gradient background"
    return name, f"{name} {where}, {start_side} to {end_side}"


def _gradient_ends(layer: Layer) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """Colour names and sides at both ends when the colours change smoothly, else None.

    Flat layers and busy ones (hard edges, texture) are not gradients.
    """
    rgb = layer.rgba[..., :3]
    height, width = rgb.shape[:2]
    if min(height, width) < 4:
        return None
    small = cv2.resize(rgb, (min(width, GRADIENT_SIDE), min(height, GRADIENT_SIDE)), interpolation=cv2.INTER_AREA)
    lab = to_lab(small).reshape(small.shape).astype(np.float64)
    spread = float(np.ptp(lab.reshape(-1, 3), axis=0).max())
    if spread < 15.0:
        return None
    steps = np.concatenate(
        [np.linalg.norm(np.diff(lab, axis=0), axis=2).ravel(), np.linalg.norm(np.diff(lab, axis=1), axis=2).ravel()]
    )
    if steps.max() > 0.25 * spread or steps.mean() > 0.08 * spread:
        return None
    ends = [
        ((small[0].mean(axis=0), "top"), (small[-1].mean(axis=0), "bottom")),
        ((small[:, 0].mean(axis=0), "left"), (small[:, -1].mean(axis=0), "right")),
    ]
    (start, start_side), (end, end_side) = max(
        ends, key=lambda pair: float(np.linalg.norm(to_lab(pair[0][0]) - to_lab(pair[1][0])))
    )
    return (colour_name(np.round(start)), start_side), (colour_name(np.round(end)), end_side)


def _looks_like_photo(layer: Layer) -> bool:
    """Photos show many distinct colours; flat artwork shows a few plus their anti-aliased edges."""
    pixels, _ = _solid_pixels(_sample(layer.rgba))
    bins = pixels.astype(np.int64) >> 4
    return len(np.unique(bins[:, 0] * 256 + bins[:, 1] * 16 + bins[:, 2])) >= 128


def _scaled(mask: np.ndarray, side: int) -> np.ndarray:
    """The uint8 mask with its longest side scaled to `side`, smoothly in both directions."""
    height, width = mask.shape
    factor = side / max(height, width)
    size = (max(round(width * factor), 1), max(round(height * factor), 1))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return cv2.resize(mask, size, interpolation=interpolation)


def _where_phrase(position: str) -> str:
    if position == "centre":
        return "in the centre"
    if position in ("left", "right"):
        return f"on the {position}"
    return f"at the {position}"


def _colour_list(colours: list[str]) -> str:
    return " and ".join(colours[:2])


def _snippet(text: str) -> str:
    """The text on one line, shortened for quoting, with its double quotes made single."""
    flat = " ".join(text.split()).replace('"', "'")
    return flat if len(flat) <= SNIPPET_CHARS else flat[:SNIPPET_CHARS].rstrip() + "..."
