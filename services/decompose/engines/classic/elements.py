"""Shape and image candidates: connected regions that stand out from the background plate."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

from services.common.layers import BBox, LayerKind
from services.decompose.engines.classic.alpha import projected_alpha
from services.decompose.engines.classic.background import Plate
from services.decompose.engines.classic.candidates import Candidate, as_rgb

MIN_AREA_FRACTION = 5e-5
"""Regions smaller than this share of the canvas (and than MIN_AREA_PX) are specks left in the background."""
MIN_AREA_PX = 48
EDGE_PX = 2
"""How far beyond a region's hard mask its anti-aliased edge may reach."""
FLAT_BINS = 3
"""A region whose colours (8 levels per channel) mostly fall in this many bins is a shape; else an image."""
FLAT_SHARE = 0.9
FIELD_TOLERANCE = 3.0
"""Levels a flat fill's pixels may stray from its colour (compression noise)."""
DETAIL_WINDOW = 9
"""Side (px) of the window over which a pixel's detail (mean absolute Laplacian) is averaged."""
DETAIL_LEVEL = 3.0
"""Detail (levels) above which a pixel belongs to a photo ..."""
DETAIL_GRAIN = 1.5
"""... or this multiple of the plate's own detail (its grain, which a translucent shape lets through), when larger."""
CLIP_LEVELS = 4.0
"""Levels from 0 or 255 within which a flat colour is where a photo saturates (blown out or crushed)."""
ENCLOSED_SHARE = 0.6
"""Share of a calm patch's surroundings that, when busy, makes it a quiet part of the photo around it."""
DETAIL_MIN_SHARE = 0.05
"""Smallest share of a region a photo or a smooth part split off by detail may have."""
RIM_REACH = 8
"""Half the width (px) below which a detailed band is a shape's soft rim or shadow rather than a photo."""
THICK_SHARE = 0.5
"""Share of a piece that must be wider than 2 RIM_REACH px for it to be a photo."""
GRAIN_SHOWN = 3.0
"""Multiple of the plate's noise, times the see-through share, that a translucent fill's pixels may stray."""
FIELD_EDGE_CONTRAST = 20.0
"""Levels by which most pixels just outside a flat fill must differ from it (unless they fade to the plate)."""
FEATHER_STEP = 0.25
"""Share of a field's contrast with the plate by which a pixel just outside it must have faded to the plate
to show a feathered edge."""
BEYOND_SHARE = 0.05
"""Largest share of the pixels just outside a feathered field that may go on past its colour."""
MAX_FIELD_TRIES = 8
"""Commonest colours tried as flat fields in one region."""
THROUGH_MAX_RATIO = 20.0
"""Largest area, in multiples of its visible part, of a shape whose side runs on under what covers it."""
FIGURE_SLACK = 0.01
"""Share of a figure that may disagree with what the poster shows (edge pixels) when completing a shape."""
OPACITIES = (1.0, 0.85, 0.7, 0.55, 0.4)
"""Opacities tried when looking for a colour field laid over the plate."""
MODE_SAMPLES = 100_000
"""Pixels of a region, evenly spread, on which its commonest colour and opacity are looked for."""
OPACITY_MARGIN = 1.3
"""A lower opacity must gather this many times the pixels of the one before to be preferred."""
SOLID_FIELD_AREAS = 40
"""A field without crisp edges counts when at least this many minimal areas large ..."""
SOLID_SHARE = 0.85
"""... and filling at least this share of its convex hull."""
EDGE_FIT_LEVELS = 6.0
"""Median residual (levels) under which a leftover piece is a field's soft edge or an even shadow."""
HALO_SHARE = 0.9
"""Share of a calm leftover piece within FEATHER_REACH of one field that makes it that field's halo."""
RIM_FIT_LEVELS = 20.0
"""Median levels from the plate-to-colour line within which a calm band off a photo is a field's rough rim."""
FEATHER_REACH = 32
"""Farthest (px) a feathered edge may spread from its field's solid part."""
SHADOW_MAX_RATIO = 0.97
"""A shadow pixel keeps at most this share of the plate's level in every channel."""
SHADOW_COLOR_MAX = 100.0
"""A translucent field this dark (every channel at most this many levels) is a shadow's even middle."""
SHADOW_SHARE = 0.8
"""Share of a smooth piece's pixels that must darken the plate evenly for the piece to be a shadow."""
SHADOW_MIN_LEVEL = 16.0
"""Plate pixels darker than this in some channel tell too little about a shadow over them."""
SEAM_SHARE = 0.02
"""Non-flat leftovers of a split region smaller than this share of it join its largest flat part."""
TRANSLUCENT_FIT_RMS = 3.0
"""Largest residual (levels) of a constant colour at constant opacity over the plate."""
GRAIN_RMS = 1.5
"""... or this multiple of the plate's noise, times the see-through share, over a grainy plate
(the noise is a high percentile of the grain; a feathered rim adds to the residual)."""
FIT_SAMPLES = 20_000
"""Pixels sampled for the opacity fit."""
UNDERLAY_SPREAD = 2.0
"""Opacity is only observable where the plate beneath varies by at least this much (levels) ..."""
BAND_SPREAD = 4.0
"""... or this much, for touching fields (bands of one ramp) that one opacity and colour fit as a whole."""

FAINT_ALPHA = 0.25
"""A piece of a layer apart from its body whose alpha stays below this is residue, not part of it."""

OVERLAP_FIT_LEVELS = 6.0
"""Largest residual (levels) of a translucent shape over another field explaining their overlap's colour."""
OVERLAP_MIN_CONTRAST = 30.0
"""Smallest contrast (levels) between a field and the plate for an overlap to tell the opacity above it."""
OVERLAP_OPACITIES = (0.1, 0.9)
"""Opacities an overlap may reveal; outside, the shape above is as good as clear or opaque."""
OVERLAP_OPACITY_SLACK = 0.1
"""Two overlaps of one shape must agree on its opacity within this."""

_SQUARE = np.ones((3, 3), np.uint8)


def find_elements(image: np.ndarray, plate: Plate) -> list[Candidate]:
    """Shape/image candidates of `image` (text already lifted off), bottom to top.

    Connected regions come largest first. Inside a region where several things overlap, the parts
    are stacked by occlusion (`_by_occlusion`) and each flat part is completed under the parts above
    it (`_hidden`), so that moving the upper one uncovers the whole shape.
    """
    height, width = image.shape[:2]
    deviation = np.abs(image.astype(np.float32) - plate.colors).max(axis=-1)
    mask = cv2.morphologyEx((deviation > plate.strong).astype(np.uint8), cv2.MORPH_CLOSE, _SQUARE)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    min_area = max(MIN_AREA_PX, MIN_AREA_FRACTION * height * width)
    detail = _detail(image)
    shown = deviation <= plate.weak
    grain = float(np.median(detail[shown])) if shown.any() else 0.0
    clusters = []
    enclosed: set[int] = set()
    for label in sorted(range(1, count), key=lambda label: -stats[label, cv2.CC_STAT_AREA]):
        x, y, w, h, area = (int(value) for value in stats[label])
        if area < min_area or label in enclosed:
            continue
        x0, y0 = max(0, x - EDGE_PX), max(0, y - EDGE_PX)
        box = BBox(x0, y0, min(width, x + w + EDGE_PX) - x0, min(height, y + h + EDGE_PX) - y0)
        rows, cols = box.slices()
        region = labels[rows, cols] == label
        # Islands in the region's holes (a photo's pixels apart from it where they match the plate) are its own.
        islands = _filled(region) & ~region & (labels[rows, cols] > 0)
        enclosed.update(int(island) for island in np.unique(labels[rows, cols][islands]))
        region |= islands
        # The rim reaches over the plate only, not into the next region's pixels.
        support = _grow(region) & (region | ((deviation[rows, cols] > plate.weak) & (labels[rows, cols] == 0)))
        pixels, under = image[rows, cols].astype(np.float64), plate.colors[rows, cols]
        parts = _parts(pixels, under, detail[rows, cols], region, min_area, plate.noise, grain)
        fills = [_fill(pixels, under, part, plate.noise) for part in parts]
        order = _by_occlusion(parts, [fill.color is None for fill in fills])
        above = np.zeros_like(region)
        claimed = np.zeros_like(region)
        cluster = []
        for number in reversed(order):
            part, fill = parts[number], fills[number]
            # A part's rim stops at the pixels that a part above it claims: it does not reach under them.
            reach = _grow(part.mask) & support & (part.mask | ~claimed)
            hidden = _hidden(part.core, above, through=True) & ~reach
            ys, xs = np.nonzero(reach | hidden)
            tight = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
            part_box = BBox(
                box.x + int(xs.min()), box.y + int(ys.min()), int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1
            )
            cut = Part(part.mask[tight], part.core[tight], part.shade[tight], part.opacity, part.color)
            cluster.append(
                _element(pixels[tight], under[tight], cut, fill, reach[tight], hidden[tight], part_box)
            )
            # Holes in what lies above (a photo's pixels that match the plate) still cover what is beneath.
            above |= _filled(reach)
            claimed |= part.mask
        clusters.append(cluster[::-1])
    # Apart regions show no occlusion between them, and their order shows nowhere but where their rims
    # touch: there a photo goes over the decorative shapes, as designs mostly lay them (the stable sort
    # keeps the larger region first otherwise).
    clusters.sort(key=lambda cluster: any(candidate.kind == LayerKind.IMAGE for candidate in cluster))
    return [candidate for cluster in clusters for candidate in cluster]


def _by_occlusion(parts: list[Part], photos: list[bool]) -> list[int]:
    """The indices of touching parts of one region, bottom to top; `photos` tells which parts are photos.

    Of two touching parts, the one that bites into the other's convex hull lies on top: designs are
    mostly convex figures, and an occluded figure shows a dent where the one above covers it. Where
    neither bites, the seam's ends tell (`_t_junctions`); where they barely tell either, a photo lies
    on a shape, as designs mostly lay photos over decorative shapes. The stack
    follows these relations (a topological order; among parts free to go next, the one lying on
    fewest parts, then the larger, lower); where they contradict each other, the part whose bites
    into the parts left beneath it are weakest goes next.
    """
    if len(parts) < 2:
        return list(range(len(parts)))
    hulls = [_hull(part.core) for part in parts]
    grown = [_near(part.mask) for part in parts]
    # beneath[i][j]: by how many pixels part i's bite into part j's hull beats j's into i's.
    beneath: list[dict[int, int]] = [{} for _ in parts]
    for i in range(len(parts)):
        for j in range(i + 1, len(parts)):
            if not (grown[i] & parts[j].mask).any():
                continue
            i_bites_j = np.count_nonzero((hulls[j] | _hidden(parts[j].core, parts[i].mask)) & parts[i].core)
            j_bites_i = np.count_nonzero((hulls[i] | _hidden(parts[i].core, parts[j].mask)) & parts[j].core)
            if i_bites_j == j_bites_i:
                # No dent either way (a convex figure cut straight by another): the seam's ends tell.
                t_junctions = _t_junctions(parts[i].mask, parts[j].mask)
                if abs(t_junctions) < T_CLEAR and photos[i] != photos[j]:
                    # They barely tell (a photo's rounded corner, a shape that merely touches it).
                    t_junctions = 1 if photos[j] else -1
                i_bites_j, j_bites_i = max(-t_junctions, 0), max(t_junctions, 0)
            if i_bites_j > j_bites_i:
                beneath[i][j] = i_bites_j - j_bites_i
            elif j_bites_i > i_bites_j:
                beneath[j][i] = j_bites_i - i_bites_j
    sizes = [np.count_nonzero(part.mask) for part in parts]
    order: list[int] = []
    left = set(range(len(parts)))
    while left:
        nxt = min(left, key=lambda i: (sum(v for j, v in beneath[i].items() if j in left), len(beneath[i]), -sizes[i]))
        order.append(nxt)
        left.remove(nxt)
    return order


T_REACH = (6, 24)
"""Distances (px) past a seam's end at which the occluder's outline is looked for."""
T_SIDE = 24
"""Seam pixels within this distance of its end give its direction there."""
T_CLEAR = 16
"""Seam-end probes (of up to 2 x 18) one way beyond the other that settle which of two touching parts is on top."""
T_NEAR = 4.0
"""Largest distance (px) from a probe to an outline that counts it as on that outline."""


def _t_junctions(a: np.ndarray, b: np.ndarray) -> int:
    """Which of two touching parts occludes the other, from the ends of the seam between them.

    Where an edge ends at another figure (a T-junction), the figure on top has the outline that
    goes on past the seam's end in the seam's own direction; the covered one's outline turns away.
    Returns the probes nearer b's outline minus those nearer a's: > 0 when b lies on a, < 0 when a on b.
    """
    seam = _near(a) & _near(b)
    free = ~_grow(a | b)
    ends = seam & _grow_once(free)
    if not ends.any():
        return 0
    # Distance of every pixel to each part's outline (the ring just outside it).
    distances = [
        cv2.distanceTransform((~(_grow_once(mask) & ~mask)).astype(np.uint8), cv2.DIST_L2, 3) for mask in (a, b)
    ]
    seam_points = np.column_stack(np.nonzero(seam)).astype(np.float64)
    count, labels = cv2.connectedComponents(ends.astype(np.uint8))
    hits = [0, 0]
    height, width = a.shape
    for label in range(1, count):
        end = np.column_stack(np.nonzero(labels == label)).mean(axis=0)
        local = seam_points[np.abs(seam_points - end).max(axis=1) <= T_SIDE]
        if len(local) < 3:
            continue
        middle = local.mean(axis=0)
        direction = np.linalg.svd(local - middle, full_matrices=False)[2][0]
        if direction @ (end - middle) < 0:
            direction = -direction
        for step in range(*T_REACH):
            y, x = np.rint(end + step * direction).astype(int)
            if not (0 <= y < height and 0 <= x < width):
                break
            near_a, near_b = distances[0][y, x], distances[1][y, x]
            if min(near_a, near_b) <= T_NEAR and near_a != near_b:
                hits[int(near_b < near_a)] += 1
    return hits[1] - hits[0]


def _hull(mask: np.ndarray) -> np.ndarray:
    """The mask's convex hull, filled."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros(mask.shape, np.uint8)
    if contours:
        cv2.fillConvexPoly(filled, cv2.convexHull(np.concatenate(contours)), 1)
    return filled.astype(bool) | mask


def _hidden(core: np.ndarray, above: np.ndarray, through: bool = False) -> np.ndarray:
    """Where the part's figure continues under the parts above it.

    The figure is the first of its bounding rectangle, an ellipse through its outline where nothing
    covers it, and its convex hull, that holds the visible part and adds pixels only under `above`:
    a completion must never show where the poster shows something else. With `through`, a rectangle
    whose whole side meets `above` goes on under it as far as `above` reaches (a band showing past a
    photo is the end of a shape the photo covers); the stacking order is settled without that guess.
    """
    if not above.any() or not core.any():
        return np.zeros_like(core)
    for figure in _figures(core, above, through):
        outside = np.count_nonzero(core & ~figure)
        stray = np.count_nonzero(figure & ~core & ~_near(above))
        if outside <= FIGURE_SLACK * np.count_nonzero(core) and stray <= FIGURE_SLACK * np.count_nonzero(figure):
            return figure & above
    return _hull(core) & above


def _figures(core: np.ndarray, above: np.ndarray, through: bool = False) -> list[np.ndarray]:
    """Candidate whole figures of a partly covered shape: bounding rectangle, fitted ellipse."""
    ys, xs = np.nonzero(core)
    top, bottom, left, right = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    if through:
        # A sliver tells little of what goes on beneath: it may run on only a few times its own size.
        extended = _through(_grow(above), top, bottom, left, right)
        if (extended[1] - extended[0]) * (extended[3] - extended[2]) <= THROUGH_MAX_RATIO * len(ys):
            top, bottom, left, right = extended
    rectangle = np.zeros_like(core)
    rectangle[top:bottom, left:right] = True
    figures = [rectangle]
    contours, _ = cv2.findContours(core.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    points = np.concatenate(contours).reshape(-1, 2)
    # Only the outline where nothing covers the shape is its own.
    near = _near(above)
    own = points[~near[points[:, 1], points[:, 0]]]
    if len(own) >= 5:
        ellipse = np.zeros(core.shape, np.uint8)
        cv2.ellipse(ellipse, cv2.fitEllipse(own.astype(np.float32)), 1, -1)
        figures.append(ellipse.astype(bool))
    return figures


def _through(cover: np.ndarray, top: int, bottom: int, left: int, right: int) -> tuple[int, int, int, int]:
    """The box [top, bottom) x [left, right) with each side moved out while the whole row or column
    beyond it lies in `cover`."""
    height, width = cover.shape
    while bottom < height and cover[bottom, left:right].all():
        bottom += 1
    while top > 0 and cover[top - 1, left:right].all():
        top -= 1
    while right < width and cover[top:bottom, right].all():
        right += 1
    while left > 0 and cover[top:bottom, left - 1].all():
        left -= 1
    return top, bottom, left, right


def _grow(mask: np.ndarray) -> np.ndarray:
    """The mask with the EDGE_PX-wide rim where its anti-aliased edge may lie."""
    return cv2.dilate(mask.astype(np.uint8), _SQUARE, iterations=EDGE_PX).astype(bool)


@dataclass
class Part:
    """One thing inside a region: its pixels, the ones that show its own fill, and its shadow's."""

    mask: np.ndarray
    core: np.ndarray
    """Pixels of the part's own fill (for a photo: its inside); classification and hull work on these."""
    shade: np.ndarray
    """Pixels of a dark drop shadow the part casts, whose alpha the exact solve finds."""
    opacity: float | None = None
    """A translucent shape's opacity when told from where it overlaps another shape, with its colour."""
    color: np.ndarray | None = None


@dataclass
class Fill:
    """What a part is filled with: one colour at an opacity (a shape), or a photo (no colour)."""

    opacity: float
    color: np.ndarray | None


def _fill(pixels: np.ndarray, under: np.ndarray, part: Part, noise: float) -> Fill:
    """A part's fill: the opacity and colour told from an overlap, one translucent colour over the
    plate, a few flat colours (their median), or else a photo."""
    if part.opacity is not None:
        return Fill(part.opacity, part.color)
    core = part.core if part.core.any() else part.mask
    opacity, color = _translucent_fit(_sample(pixels, core), _sample(under, core), noise=noise)
    if opacity < 1.0:
        return Fill(opacity, color)
    if _is_flat(pixels[core]):
        return Fill(1.0, np.median(pixels[core], axis=0))
    return Fill(1.0, None)


@dataclass
class Field:
    """An area of one colour at one opacity over the plate (colour un-blended at that opacity)."""

    mask: np.ndarray
    color: np.ndarray
    opacity: float
    known: tuple[float, np.ndarray] | None = None
    """Opacity and own colour of a translucent shape, told from where it lies over another field."""


def _parts(
    pixels: np.ndarray,
    under: np.ndarray,
    detail: np.ndarray,
    region: np.ndarray,
    min_area: float,
    noise: float,
    grain: float,
) -> list[Part]:
    """Splits a region where overlapping things touch: each colour field apart, the rest as photos.

    A single flat or translucent shape (or a photo with no flat field) stays whole. A leftover piece
    that lies on the line from the plate to a field's colour is that field's soft edge; one that
    darkens the plate evenly is the shadow of what it touches; other large ones are photos.
    """
    whole = Part(region, cv2.erode(region.astype(np.uint8), _SQUARE).astype(bool), np.zeros_like(region))
    if _translucent_fit(_sample(pixels, region), _sample(under, region), noise=noise)[0] < 1.0:
        return [whole]
    fields = _fields(pixels, under, region, min_area, noise)
    if fields:
        # A photo's blown-out highlight (or crushed shadow) is flat too: clipped, and ringed by the photo.
        ringed = _near(_blocks(_busy(detail, region, grain)))
        fields = [kept for kept in fields if not (_clipped(kept) and _enclosure(kept.mask, ringed) >= ENCLOSED_SHARE)]
    flat = _union([field.mask for field in fields], region)
    if not fields:
        return _by_detail(pixels, under, detail, region, min_area, grain) or [whole]
    if len(fields) == 1 and np.count_nonzero(region & ~_grow(flat)) < min_area:
        return [whole]
    fields = _translucent_overlaps(pixels, under, _joined_bands(pixels, under, fields))
    # The pieces of one colour field stay together: mostly one shape cut apart by something on top.
    parts = []
    shadows = []
    for field in fields:
        joined = _union(_pieces(field.mask, min_area), region)
        if not joined.any():
            continue
        dark = field.known is None and field.opacity < 1.0 and field.color.max() <= SHADOW_COLOR_MAX
        if dark or (_thin(joined) and np.mean(_darker(pixels[joined], under[joined])) >= SHADOW_SHARE):
            # Black laid over the plate at an even strength (the flat middle of a drop shadow), or a
            # band darker than the plate, which over a flat plate is a shadow's middle as well.
            shadows.append(joined)
        elif field.known is not None:
            opacity, color = field.known
            parts.append((Part(joined.copy(), joined, np.zeros_like(region), opacity, color), color))
        else:
            parts.append((Part(joined.copy(), joined, np.zeros_like(region)), field.color))
    if not parts:
        # Every field broke into specks: nothing to split by.
        return [whole]
    # Without the fields' anti-aliased rims, which would join everything around a field into one piece.
    rest = region & ~_grow(flat)
    for part, color in parts:
        # A feathered or anti-aliased edge: near the field, on the line from the plate to its colour.
        soft = rest & _within(part.core, FEATHER_REACH) & (_line_residual(pixels, under, color) < EDGE_FIT_LEVELS)
        part.mask |= soft
        rest &= ~soft
    shaded = cv2.morphologyEx((rest & _darkened(pixels, under)).astype(np.uint8), cv2.MORPH_OPEN, _SQUARE)
    shaded = shaded.astype(bool)
    rest = cv2.morphologyEx((rest & ~shaded).astype(np.uint8), cv2.MORPH_OPEN, _SQUARE).astype(bool)
    found = [part for part, _ in parts]
    photos = []
    for piece in _pieces(rest, min_area):
        if np.count_nonzero(piece) < SEAM_SHARE * np.count_nonzero(region):
            # Small leftovers are seams where things meet (or where text was lifted off), not photos.
            max(found, key=lambda part: np.count_nonzero(part.mask)).mask |= piece
        elif _thin(piece):
            # A band along a field is no photo: its drop shadow, or a soft rim, where the plate fit is rough.
            if np.mean(_darker(pixels[piece], under[piece])) >= SHADOW_SHARE:
                shadows.append(piece)
            else:
                _join_by_contact(piece, found)
        else:
            # A leftover may still hold a photo beside a smooth translucent shape it touches.
            split = _by_detail(pixels, under, detail, piece, min_area, grain)
            if split:
                photos.extend(split)
                continue
            block = _blocks(_busy(detail, piece, grain))
            near = _near(piece)
            host = max(found, key=lambda part: np.count_nonzero(near & part.mask))
            if not block.any() and np.mean(_within(host.core, FEATHER_REACH)[piece]) >= HALO_SHARE:
                # No photo in it, and all about one field: that field's feathered rim and soft shadow.
                host.mask |= piece
                continue
            # One photo, perhaps with fields' soft rims strung along it.
            photo = piece & ~_rims_to_fields(pixels, under, piece & ~block, parts, min_area) if block.any() else piece
            photos.append(Part(photo, cv2.erode(photo.astype(np.uint8), _SQUARE).astype(bool), np.zeros_like(region)))
    return _with_shadows(found + photos, shadows + _pieces(shaded, min_area))


def _rims_to_fields(
    pixels: np.ndarray, under: np.ndarray, off_block: np.ndarray, fields: list[tuple[Part, np.ndarray]], min_area: float
) -> np.ndarray:
    """Gives the fields their soft rims strung along a photo, and returns what was given.

    `off_block` is a photo's piece less its busy block. A band of it that the rim test missed where the
    plate's fit is rough is thin, touches a field and lies near the line from the plate to that field's
    colour: it goes to the nearest such field (with its colour in `fields`).
    """
    given = np.zeros_like(off_block)
    for rim in _pieces(off_block, min_area):
        if not _thin(rim):
            continue
        near = _near(rim)
        fits = [
            (np.median(_line_residual(pixels[rim], under[rim], color)), part)
            for part, color in fields
            if (near & part.mask).any()
        ]
        best = min(fits, key=lambda fit: fit[0], default=None)
        if best is not None and best[0] < RIM_FIT_LEVELS:
            best[1].mask |= rim
            given |= rim
    return given


def _join_by_contact(piece: np.ndarray, parts: list[Part]) -> None:
    """Joins a piece to the part that its near surroundings touch most."""
    near = _near(piece)
    max(parts, key=lambda part: np.count_nonzero(near & part.mask)).mask |= piece


def _with_shadows(parts: list[Part], shadows: list[np.ndarray]) -> list[Part]:
    """Each drop shadow piece joined to the part (shape or photo) it touches most, else to one within a
    shadow's offset (FEATHER_REACH); a lone one is a part."""
    for piece in shadows:
        near = _near(piece)
        host = max(parts, key=lambda part: np.count_nonzero(near & part.mask))
        if not (near & host.mask).any():
            near = _within(piece, FEATHER_REACH)
            host = max(parts, key=lambda part: np.count_nonzero(near & part.mask))
        if (near & host.mask).any():
            host.mask |= piece
            host.shade |= piece
        else:
            parts.append(Part(piece, piece, np.zeros_like(piece)))
    return parts


def _by_detail(
    pixels: np.ndarray, under: np.ndarray, detail: np.ndarray, region: np.ndarray, min_area: float, grain: float
) -> list[Part]:
    """A region without colour fields split into its detailed (photo) and smooth (shape, gradient) parts.

    A translucent shape over a texture has no single colour, but it is no busier than the plate's
    own grain showing through it, where a photo has detail at every pixel. `detail` is the region's
    per-pixel detail (`_detail`), `grain` the plate's. Empty when the region is all one or the other.
    """
    busy = _busy(detail, region, grain)
    smooth = cv2.morphologyEx((region & ~_grow(busy)).astype(np.uint8), cv2.MORPH_OPEN, _SQUARE, iterations=2)
    least = max(min_area, DETAIL_MIN_SHARE * np.count_nonzero(region))
    thick = _blocks(busy)
    photos = _with_islands(_pieces(thick, least))
    if not photos:
        # Only busy bands (edges, rims): no photo to part the smooth pieces from.
        return []
    # A calm patch that the busy pixels ring is a quiet part of the photo (sky, a smooth object).
    ringed = _near(thick)
    shapes = [piece for piece in _pieces(smooth.astype(bool), least) if _enclosure(piece, ringed) < ENCLOSED_SHARE]
    if len(photos) + len(shapes) < 2:
        return []
    # A smooth piece that only darkens the plate is a photo's drop shadow, not a shape.
    dark = _darkened(pixels, under)
    shadows = [piece for piece in shapes if np.mean(dark[piece]) >= SHADOW_SHARE]
    shapes = [piece for piece in shapes if np.mean(dark[piece]) < SHADOW_SHARE]
    parts = [
        Part(piece, cv2.erode(piece.astype(np.uint8), _SQUARE).astype(bool), np.zeros_like(region))
        for piece in shapes + photos
    ]
    parts = _with_shadows(parts, shadows)
    # What neither claims (edges between them, specks) joins the part it touches most.
    for piece in _pieces(region & ~_union([part.mask for part in parts], region), 1):
        _join_by_contact(piece, parts)
    return parts


def _with_islands(pieces: list[np.ndarray]) -> list[np.ndarray]:
    """Pieces with the pieces inside their holes joined to them: one photo that a plate-coloured rim parts."""
    pieces = sorted(pieces, key=np.count_nonzero, reverse=True)
    joined: list[np.ndarray] = []
    for piece in pieces:
        host = next((outer for outer in joined if not (piece & ~_filled(outer)).any()), None)
        if host is None:
            joined.append(piece.copy())
        else:
            host |= piece
    return joined


def _busy(detail: np.ndarray, region: np.ndarray, grain: float) -> np.ndarray:
    """The region's pixels with more detail than a smooth fill over the plate's grain shows."""
    busy = region & (detail > max(DETAIL_LEVEL, DETAIL_GRAIN * grain))
    return cv2.morphologyEx(busy.astype(np.uint8), cv2.MORPH_OPEN, _SQUARE, iterations=2).astype(bool)


def _blocks(busy: np.ndarray) -> np.ndarray:
    """The solid blocks of busy pixels: a photo is one, a thin busy band is a smooth shape's soft rim."""
    return cv2.morphologyEx(busy.astype(np.uint8), cv2.MORPH_OPEN, _disc(RIM_REACH)).astype(bool)


def _enclosure(piece: np.ndarray, photo: np.ndarray) -> float:
    """Share of the ring just outside a piece that lies by a photo block (not a busy edge band)."""
    ring = _near(piece) & ~_grow(piece)
    return float(np.mean(photo[ring])) if ring.any() else 0.0


def _detail(image: np.ndarray) -> np.ndarray:
    """Per pixel, the mean absolute Laplacian of the luma over a DETAIL_WINDOW window (levels)."""
    luma = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.blur(np.abs(cv2.Laplacian(luma, cv2.CV_32F)), (DETAIL_WINDOW, DETAIL_WINDOW))


def _disc(radius: int) -> np.ndarray:
    """A square structuring element of the given radius (cv2 runs square ones fastest)."""
    return np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)


def _thin(piece: np.ndarray) -> bool:
    """Whether most of a piece is a band narrower than 2 RIM_REACH px (a rim or a shadow, not a photo)."""
    thick = cv2.morphologyEx(piece.astype(np.uint8), cv2.MORPH_OPEN, _disc(RIM_REACH))
    return np.count_nonzero(thick) < THICK_SHARE * np.count_nonzero(piece)


def _darker(pixels: np.ndarray, under: np.ndarray) -> np.ndarray:
    """Per pixel, whether it is darker than the plate beneath in every channel."""
    return np.all(pixels < under, axis=-1)


def _within(mask: np.ndarray, reach: int) -> np.ndarray:
    """Pixels at most `reach` pixels (chessboard distance) from the mask."""
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)).astype(bool)


def _line_residual(pixels: np.ndarray, under: np.ndarray, color: np.ndarray) -> np.ndarray:
    """Per pixel, how far (levels) it lies from the blend of the plate beneath with `color`."""
    alpha = projected_alpha(pixels, under, color)[..., None]
    return np.abs(pixels - (under + alpha * (color - under))).max(axis=-1)


def _darkened(pixels: np.ndarray, under: np.ndarray) -> np.ndarray:
    """Pixels that are the plate darkened evenly across channels: a black shadow over it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = pixels / np.maximum(under, 1.0)
    spread = np.abs(ratio - ratio.mean(axis=-1, keepdims=True)).max(axis=-1) * under.max(axis=-1)
    return (
        (under.min(axis=-1) > SHADOW_MIN_LEVEL) & (ratio.max(axis=-1) < SHADOW_MAX_RATIO) & (spread < EDGE_FIT_LEVELS)
    )


def _fields(pixels: np.ndarray, under: np.ndarray, region: np.ndarray, min_area: float, noise: float) -> list[Field]:
    """Areas of one colour at one opacity over the plate, commonest first.

    Each opacity in OPACITIES un-blends the pixels from the plate, J = (I - (1 - a) P) / a; a shape
    of that opacity is one exact colour in J (an opaque one at a = 1). The opacity whose commonest
    J-colour gathers clearly the most pixels wins; over a flat plate every opacity gathers as many,
    and the shape counts as opaque. A field needs crisp edges (just outside its anti-aliased rim a
    flat fill's neighbours are another colour, or fade towards the plate when feathered) or must be
    large and solid: a photo's exact matches are thin and open away, and where it saturates its
    colour fades out gently.
    """
    fields = []
    remaining = region.copy()
    for _ in range(MAX_FIELD_TRIES):
        rows, cols = np.nonzero(remaining)
        if rows.size < min_area:
            break
        # Only the remaining pixels (and a field's rim) are un-blended: the box around them may be far larger.
        seen, below = pixels[rows, cols], under[rows, cols]
        # The commonest colour of a large region shows as well on an even sample of it.
        stride = max(1, rows.size // MODE_SAMPLES)
        best = None
        for opacity in OPACITIES:
            codes, valid = _colour_codes(_unblended(seen[::stride], below[::stride], opacity))
            if not valid.any():
                continue
            counts = np.bincount(codes[valid])
            mode = int(counts.argmax())
            if best is None or counts[mode] > best[0] * OPACITY_MARGIN:
                best = (int(counts[mode]), opacity, mode)
        if best is None:
            break
        _, opacity, mode = best
        values = _unblended(seen, below, opacity)
        codes, valid = _colour_codes(values)
        in_mode = valid & (codes == mode)
        color = np.median(values[in_mode], axis=0)
        # The opacities tried are coarse, and over a gentle gradient a translucent shape still bins as
        # opaque: the exact opacity makes the whole shape one colour, not bands of it.
        step = max(1, np.count_nonzero(in_mode) // FIT_SAMPLES)
        exact, own = _translucent_fit(seen[in_mode][::step], below[in_mode][::step], noise=noise)
        if own is not None:
            opacity, color = exact, own
        # A translucent fill shows the plate's own grain through it, which the fitted plate lacks.
        tolerance = max(FIELD_TOLERANCE, GRAIN_SHOWN * (1.0 - opacity) * noise)
        match = np.zeros(remaining.shape, np.uint8)
        match[rows, cols] = _field_distance(seen, below, opacity, color) <= tolerance
        field = cv2.morphologyEx(match, cv2.MORPH_OPEN, _SQUARE).astype(bool)
        outside = cv2.dilate(field.astype(np.uint8), _SQUARE, iterations=2).astype(bool) & ~_grow_once(field)
        crisp = outside.any() and _has_edges(pixels[outside], under[outside], opacity, color)
        size = np.count_nonzero(field)
        solid = size >= SOLID_FIELD_AREAS * min_area and size >= SOLID_SHARE * np.count_nonzero(_hull(field))
        if size >= min_area and (crisp or solid):
            fields.append(Field(field, color, opacity))
            remaining &= ~field
        else:
            remaining[rows[in_mode], cols[in_mode]] = False
    return fields


def _has_edges(pixels: np.ndarray, under: np.ndarray, opacity: float, color: np.ndarray) -> bool:
    """Whether the pixels just outside a field show its edge: most are another colour, or fade towards
    the plate (a feathered edge), with hardly any going on past the field's colour, as the next band of
    a smooth ramp (a shadow's, a photo's) does."""
    distance = _field_distance(pixels, under, opacity, color)
    far = distance >= FIELD_EDGE_CONTRAST
    if np.mean(far) > 0.5:
        return True
    shown = under + opacity * (color - under)
    span = shown - under
    length2 = np.sum(span * span, axis=-1)
    if np.median(length2) < FIELD_EDGE_CONTRAST**2:
        return False
    # Position along the line from the plate (0) to the field's colour (1), and distance off that line.
    along = np.sum((pixels - under) * span, axis=-1) / np.maximum(length2, 1e-9)
    on_line = np.abs(pixels - (under + along[..., None] * span)).max(axis=-1) < EDGE_FIT_LEVELS
    fading = on_line & (along <= 1.0 - FEATHER_STEP)
    beyond = on_line & (along >= 1.0 + FEATHER_STEP / 2)
    return bool(np.mean(far | fading) > 0.5 and np.mean(beyond) < BEYOND_SHARE)


def _unblended(pixels: np.ndarray, under: np.ndarray, opacity: float) -> np.ndarray:
    """The colour J that, laid over the plate at `opacity`, shows `pixels`: J = (I - (1 - a) P) / a."""
    return (pixels - (1.0 - opacity) * under) / opacity


def _colour_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each un-blended colour as a bin code (8 levels a channel), and whether it is valid (inside 0..255,
    as a colour laid over the plate must be)."""
    valid = np.all((values >= 0) & (values <= 255), axis=-1)
    codes = (np.clip(values, 0, 255).astype(np.int64) // 8) @ np.array([1024, 32, 1])
    return codes, valid


def _field_distance(pixels: np.ndarray, under: np.ndarray, opacity: float, color: np.ndarray) -> np.ndarray:
    """Levels (largest channel) by which each pixel strays from `color` laid over the plate at `opacity`."""
    return opacity * np.abs(_unblended(pixels, under, opacity) - color).max(axis=-1)


def _joined_bands(pixels: np.ndarray, under: np.ndarray, fields: list[Field]) -> list[Field]:
    """Touching fields that one translucent colour over the plate explains together, joined.

    A translucent shape over a gradient is a slow ramp of colours; the colour bins can cut it into
    bands, which one opacity and colour fit as a whole.
    """
    fields = list(fields)
    joined = True
    while joined:
        joined = False
        for i, j in itertools.combinations(range(len(fields)), 2):
            first, second = fields[i], fields[j]
            if not (_near(first.mask) & second.mask).any():
                continue
            both = first.mask | second.mask
            opacity, color = _translucent_fit(_sample(pixels, both), _sample(under, both), BAND_SPREAD)
            if color is None:
                continue
            fields[i] = Field(both, color, opacity)
            del fields[j]
            joined = True
            break
    return fields


def _translucent_overlaps(pixels: np.ndarray, under: np.ndarray, fields: list[Field]) -> list[Field]:
    """Fields where a translucent shape covers another shape, joined to the shape's field over the plate.

    Where shape A (opacity a, colour T) lies over field B, the poster shows C = a T + (1 - a) B, and
    over the plate A shows a T + (1 - a) P, so C - A = (1 - a) (B - P): a colour step parallel to B's
    contrast with the plate. A field C that touches A and B and fits that step is A over B; it tells
    A's opacity even over a flat plate, where it cannot be seen otherwise. Fields not explained stay.
    """
    if len(fields) < 3:
        return fields
    near = [_near(field.mask) for field in fields]
    stats = [(pixels[field.mask].mean(axis=0), under[field.mask].mean(axis=0)) for field in fields]
    merged: set[int] = set()
    for c, overlap in enumerate(fields):
        best = None
        for a, shape in enumerate(fields):
            for b, lower in enumerate(fields):
                if len({a, b, c}) < 3 or a in merged or b in merged or c in merged:
                    continue
                if not ((near[c] & shape.mask).any() and (near[c] & lower.mask).any()):
                    continue
                fit = _overlap_fit(stats[c][0], stats[a], lower, stats[c][1])
                if fit is not None and (best is None or fit[0] < best[0]):
                    best = (fit[0], a, fit[1], fit[2])
        if best is None:
            continue
        _, a, opacity, color = best
        shape = fields[a]
        if shape.known is not None and abs(shape.known[0] - opacity) > OVERLAP_OPACITY_SLACK:
            continue
        shape.mask = shape.mask | overlap.mask
        shape.known = (opacity, color) if shape.known is None else shape.known
        near[a] |= near[c]
        merged.add(c)
    return [field for number, field in enumerate(fields) if number not in merged]


def _overlap_fit(
    seen: np.ndarray, shape: tuple[np.ndarray, np.ndarray], lower: Field, plate_there: np.ndarray
) -> tuple[float, float, np.ndarray] | None:
    """(residual, opacity, colour) of a translucent shape explaining colour `seen` over field `lower`.

    shape: the mean poster and plate colours under the shape's own field. None when it does not fit.
    """
    shown, plate = shape
    lower_seen = lower.opacity * lower.color + (1.0 - lower.opacity) * plate_there
    contrast = lower_seen - plate
    length2 = float(contrast @ contrast)
    if length2 < OVERLAP_MIN_CONTRAST**2:
        return None
    through = float((seen - shown) @ contrast) / length2
    residual = float(np.abs(seen - shown - through * contrast).max())
    opacity = 1.0 - through
    if residual > OVERLAP_FIT_LEVELS or not OVERLAP_OPACITIES[0] <= opacity <= OVERLAP_OPACITIES[1]:
        return None
    color = (shown - through * plate) / opacity
    if color.min() < -OVERLAP_FIT_LEVELS or color.max() > 255.0 + OVERLAP_FIT_LEVELS:
        return None
    return residual, opacity, np.clip(color, 0.0, 255.0)


def _filled(mask: np.ndarray) -> np.ndarray:
    """The mask with its holes (background pockets not reaching the border) filled."""
    outside = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), np.uint8)
    outside[1:-1, 1:-1] = mask
    cv2.floodFill(outside, None, (0, 0), 2)
    return outside[1:-1, 1:-1] != 2


def _near(mask: np.ndarray) -> np.ndarray:
    """The mask grown over the gap that leaving out the anti-aliased rims of fields makes between parts."""
    return cv2.dilate(mask.astype(np.uint8), _SQUARE, iterations=2 * EDGE_PX + 1).astype(bool)


def _grow_once(mask: np.ndarray) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), _SQUARE).astype(bool)


def _pieces(mask: np.ndarray, min_area: float) -> list[np.ndarray]:
    """Connected pieces of a mask of at least `min_area` pixels."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [labels == label for label in range(1, count) if stats[label, cv2.CC_STAT_AREA] >= min_area]


def _union(masks: list[np.ndarray], like: np.ndarray) -> np.ndarray:
    """The union of `masks`, all False (shaped like `like`) when there are none."""
    union = np.zeros_like(like)
    for mask in masks:
        union |= mask
    return union


def _sample(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """At most FIT_SAMPLES of the masked values, evenly spaced; more change no fit but its time."""
    picked = values[mask]
    return picked[:: max(1, len(picked) // FIT_SAMPLES)]


def _element(
    pixels: np.ndarray,
    under: np.ndarray,
    part: Part,
    fill: Fill,
    support: np.ndarray,
    hidden: np.ndarray,
    box: BBox,
) -> Candidate:
    """A part's candidate layer: each supported pixel gets the alpha of its nearest interior colour.

    A flat or translucent shape also covers `hidden` (where it continues under the parts above) with
    its own colour and opacity; a photo's hidden part is left to what covers it. Shadow pixels start
    at alpha 0: the exact solve raises them just enough, which makes them black at the shadow's depth.
    """
    core = part.core if part.core.any() else part.mask
    _, nearest = cv2.distanceTransformWithLabels(
        (~core).astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
    )
    # Pixel labels count the interior pixels in raster order, as np.nonzero lists them.
    interior = np.stack(np.nonzero(core), axis=-1)[nearest - 1]
    inner_color = pixels[interior[..., 0], interior[..., 1]]
    coverage = np.where(part.shade, 0.0, projected_alpha(pixels, under, inner_color))
    region = part.mask

    opacity, color = fill.opacity, fill.color
    kind = LayerKind.IMAGE if color is None else LayerKind.SHAPE
    alpha = np.where(support, coverage, 0.0) * opacity
    support = _without_faint_specks(support, alpha, core)
    if kind == LayerKind.SHAPE:
        support = support | hidden
        alpha = np.where(hidden & ~region, opacity, alpha)
    return Candidate(
        kind=kind,
        box=box,
        support=support,
        alpha=alpha,
        color=None if color is None else as_rgb(color),
        fill=None if color is None else as_rgb(color),
    )


def _without_faint_specks(support: np.ndarray, alpha: np.ndarray, core: np.ndarray) -> np.ndarray:
    """`support` less its pieces apart from the core whose alpha stays faint (below FAINT_ALPHA).

    They are residue (of an inpainting, of a plate's fit) that the background keeps exactly; left in,
    a speck far from its layer would make the layer seem to overlap whatever lies by the speck.
    """
    count, labels = cv2.connectedComponents(support.astype(np.uint8), connectivity=8)
    if count <= 2:
        return support
    peak = np.zeros(count)
    np.maximum.at(peak, labels[support], alpha[support])
    kept = np.zeros(count, bool)
    kept[np.unique(labels[core & support])] = True
    kept |= peak >= FAINT_ALPHA
    kept[0] = False
    return kept[labels]


def _translucent_fit(
    pixels: np.ndarray, under: np.ndarray, spread: float = UNDERLAY_SPREAD, noise: float = 0.0
) -> tuple[float, np.ndarray | None]:
    """Opacity and colour of one flat colour laid over a varying plate (I = a*S + (1-a)*P), if that fits.

    Returns (1.0, None) when it does not fit or cannot be told from an opaque region (the plate beneath
    varies by less than `spread` levels). The plate's `noise` (grain the fitted plate lacks) shows
    through the shape at 1 - a of its strength, which the fit may leave unexplained.
    """
    if under.std(axis=0).max() < spread:
        return 1.0, None
    n = len(pixels)
    # Unknowns: a*S (3 values) and (1 - a), shared by the three channel equations of every pixel.
    system = np.zeros((n * 3, 4))
    for channel in range(3):
        system[channel::3, channel] = 1.0
    system[:, 3] = under.ravel()
    solution, *_ = np.linalg.lstsq(system, pixels.ravel(), rcond=None)
    opacity = 1.0 - float(solution[3])
    rms = float(np.sqrt(np.mean((system @ solution - pixels.ravel()) ** 2)))
    if rms > max(TRANSLUCENT_FIT_RMS, GRAIN_RMS * (1.0 - opacity) * noise) or not 0.05 < opacity < 0.95:
        return 1.0, None
    return opacity, np.clip(solution[:3] / opacity, 0, 255)


def _clipped(field: Field) -> bool:
    """Whether an opaque field is white or black at the ends of the 8-bit range, where a photo saturates."""
    return field.opacity == 1.0 and (field.color.min() >= 255.0 - CLIP_LEVELS or field.color.max() <= CLIP_LEVELS)


def _is_flat(pixels: np.ndarray) -> bool:
    """Whether a few coarse colours cover most pixels (flat fills, possibly overlapping) rather than a photo."""
    codes = (pixels.astype(np.int64) // 32) @ np.array([64, 8, 1])
    counts = np.sort(np.bincount(codes))[::-1]
    return counts[:FLAT_BINS].sum() >= FLAT_SHARE * len(pixels)
