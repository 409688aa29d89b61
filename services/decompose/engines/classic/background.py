"""The background plate: what the poster shows where nothing is drawn on top.

The uncovered plate is found by flood-filling from the poster's edges through small colour
steps. Designs mostly sit on a flat colour or a linear/radial gradient, so those models are
fitted robustly to it on a small copy of the poster; then a repeating stripe pattern
(`stripes`); when none explains it (texture, photo backdrops), the plate is that region as it
is, with the rest inpainted (Telea).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from services.decompose.engines.classic.stripes import fit_stripes

FIT_SIDE = 128
"""Long side of the copy that models are fitted on; gradients need few pixels."""
FLOOD_SIDE = 256
"""Long side of the copy that the plate is flood-filled on."""
FIT_TOLERANCE = 4.0
"""A small-copy pixel within this many levels of a model is explained by it."""
MIN_EXPLAINED = 0.9
"""Share of the uncovered frame a model must explain to count as the plate."""
SIMPLER_MARGIN = 0.02
"""A simpler model wins unless a richer one explains this much more of the uncovered frame."""
FLOOD_STEP = 6
"""Largest colour step (levels) between neighbouring pixels inside a plate ..."""
PATTERN_STEP_SHARE = 1.5
"""... or this multiple of the steps most (90 %) of the frame's neighbours differ by, when larger."""
NOISE_CAP = 24.0
"""Largest deviation (levels) from the plate that still counts as its noise."""
MIN_SEEDS = 32
"""Fewer uncovered plate pixels than this (small copy) leave nothing to fit."""
SEARCH_SAMPLES = 3000
"""Seed pixels used to search a radial gradient's centre."""
SEARCH_MOVES = 200
"""Most pattern-search steps for that centre."""
GRAIN_WINDOW = 9
"""Side (px) of the window over which a pixel's fine detail (grain, noise) is averaged."""
MIN_GRAIN = 2.5
"""Fine detail (mean absolute Laplacian, levels) of the poster's frame from which a plate counts as grainy
(rounding a smooth plate or soft stripes to 8 bits alone gives about 1.5-2) ..."""
CALM_SHARE = 0.7
"""... and pixels with less than this share of it are not the plate: what is drawn over grain hides or dims it."""
SHOWN_MARGIN = 6
"""Pixels (full size) by which a textured plate's shown region is trimmed before the poster stands for it."""

_SQUARE = np.ones((3, 3), np.uint8)

Features = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Plate:
    """The estimated background everywhere, and how far the poster strays from it by itself."""

    model: str
    """flat | linear | radial | stripes | texture"""
    colors: np.ndarray
    """(H, W, 3) float32 plate colours."""
    noise: float
    """Typical per-pixel deviation (levels) of true background pixels from `colors`."""

    @property
    def strong(self) -> float:
        """Deviation (levels) above which a pixel is surely not background."""
        return strong_deviation(self.noise)

    @property
    def weak(self) -> float:
        """Deviation (levels) above which a pixel near the foreground is partly covered."""
        return weak_deviation(self.noise)


def strong_deviation(noise: float) -> float:
    """Deviation (levels) from an underlay with this noise above which a pixel surely shows something else."""
    return max(8.0, 2.5 * noise + 3.0)


def weak_deviation(noise: float) -> float:
    """Deviation (levels) from an underlay with this noise above which a pixel beside a drawn thing is part of it."""
    return max(2.0, noise)


def estimate_plate(image: np.ndarray) -> Plate:
    """Fits the plate of an (H, W, 3) uint8 RGB poster (text, if any, already lifted off)."""
    height, width = image.shape[:2]
    region = _edge_region(image)
    small = _shrink(image, FIT_SIDE).astype(np.float64)
    s_h, s_w = small.shape[:2]
    # Region pixels of the small copy, away from its rim where INTER_AREA mixes in the foreground.
    seeds = cv2.erode(cv2.resize(region, (s_w, s_h), interpolation=cv2.INTER_NEAREST), _SQUARE).ravel() > 0
    unit = float(max(height, width))
    u, v = _centres(s_w, s_h, width / s_w / unit, height / s_h / unit)
    colors = small.reshape(-1, 3)

    # Fits start from, and are judged on, the uncovered part of the poster's outer frame: the
    # flood may leak into a photo whose edge matches the plate, the frame rarely lies.
    frame = seeds & _frame(s_h, s_w).ravel()
    start = frame if np.count_nonzero(frame) >= MIN_SEEDS else seeds
    fits: list[tuple[str, Features, float]] = []
    if np.count_nonzero(start) >= MIN_SEEDS:
        for name, features in (("flat", _flat), ("linear", _linear), ("radial", _radial_features(u, v, colors, start))):
            coef, residual = _robust_fit(features(u, v), colors, start, seeds)
            fits.append((name, _predictor(features, coef), float(np.mean(residual[start] < FIT_TOLERANCE))))
    best = max((explained for _, _, explained in fits), default=0.0)
    full_region = cv2.resize(region, (width, height), interpolation=cv2.INTER_NEAREST) > 0
    if best >= MIN_EXPLAINED:
        name, predict, _ = next(fit for fit in fits if fit[2] >= best - SIMPLER_MARGIN)
        full_u, full_v = _centres(width, height, 1.0 / unit, 1.0 / unit)
        plate = predict(full_u, full_v).reshape(height, width, 3).astype(np.float32)
        return Plate(model=name, colors=plate, noise=_noise(image, plate, full_region))
    shown = cv2.erode(full_region.astype(np.uint8), np.ones((2 * SHOWN_MARGIN + 1,) * 2, np.uint8)).astype(bool)
    striped = fit_stripes(image, shown)
    if striped is not None:
        return Plate(model="stripes", colors=striped, noise=_noise(image, striped, full_region))
    smooth = _texture_plate(image, region)
    # The smooth plate's misfit is what the plate does where nothing shows it; where the poster shows
    # it, away from the flood's coarse rim, the plate is the poster itself, grain included.
    plate = np.where(shown[..., None], image.astype(np.float32), smooth)
    return Plate(model="texture", colors=plate, noise=_noise(image, smooth, full_region))


def _shrink(image: np.ndarray, side: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = min(1.0, side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _centres(width: int, height: int, x_step: float, y_step: float) -> tuple[np.ndarray, np.ndarray]:
    """Flattened pixel-centre coordinates, in units of the poster's long side."""
    ys, xs = np.mgrid[0:height, 0:width]
    return ((xs + 0.5) * x_step).ravel(), ((ys + 0.5) * y_step).ravel()


def _frame(height: int, width: int) -> np.ndarray:
    """The poster's outermost pixels."""
    mask = np.ones((height, width), bool)
    mask[1:-1, 1:-1] = False
    return mask


def _flat(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.ones((u.size, 1))


def _linear(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(u.size), u, v])


def _radial(cx: float, cy: float) -> Features:
    return lambda u, v: np.column_stack([np.ones(u.size), np.hypot(u - cx, v - cy)])


def _radial_features(u: np.ndarray, v: np.ndarray, colors: np.ndarray, seeds: np.ndarray) -> Features:
    """A radial gradient's features (1, distance to centre); the centre is searched on the seed pixels."""
    pick = np.nonzero(seeds)[0]
    pick = pick[:: max(1, pick.size // SEARCH_SAMPLES)]
    u, v, colors = u[pick], v[pick], colors[pick]
    span = max(u.max() + u.min(), v.max() + v.min())
    grid = [(i * span / 4, j * span / 4) for i in range(-4, 9) for j in range(-4, 9)]
    centre = min(grid, key=lambda c: _loss(_radial(*c)(u, v), colors))
    # Pattern search from the best grid point down to about a hundredth of a pixel. A linear gradient is
    # a radial one centred at infinity; the grid's bounds keep the search from walking off after it.
    low, high = -span, 2 * span
    step = span / 8
    best = _loss(_radial(*centre)(u, v), colors)
    for _ in range(SEARCH_MOVES):
        if step < 1e-5:
            break
        moves = [(centre[0] + dx, centre[1] + dy) for dx, dy in ((step, 0), (-step, 0), (0, step), (0, -step))]
        moves = [move for move in moves if low <= move[0] <= high and low <= move[1] <= high]
        losses = [_loss(_radial(*c)(u, v), colors) for c in moves]
        if losses and min(losses) < best:
            best, centre = min(losses), moves[int(np.argmin(losses))]
        else:
            step /= 2
    return _radial(*centre)


def _loss(features: np.ndarray, colors: np.ndarray) -> float:
    coef, *_ = np.linalg.lstsq(features, colors, rcond=None)
    residual = np.abs(features @ coef - colors).max(axis=1)
    # Capped so that stray foreground pixels do not steer the search.
    return float(np.minimum(residual, 16.0).sum())


def _robust_fit(
    features: np.ndarray, colors: np.ndarray, start: np.ndarray, pool: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Least squares on `start`, then refitted on the shrinking set of `pool` pixels it explains.

    Returns the coefficients and every pixel's max-channel residual.
    """
    inliers = start
    for limit in (48.0, 24.0, 12.0, 6.0, FIT_TOLERANCE):
        coef, *_ = np.linalg.lstsq(features[inliers], colors[inliers], rcond=None)
        residual = np.abs(features @ coef - colors).max(axis=1)
        explained = pool & (residual < limit)
        if np.count_nonzero(explained) <= features.shape[1]:
            break
        inliers = explained
    return coef, residual


def _predictor(features: Features, coef: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    return lambda u, v: np.clip(features(u, v) @ coef, 0.0, 255.0)


def _edge_region(image: np.ndarray) -> np.ndarray:
    """uint8 mask (FLOOD_SIDE copy) of the largest region reached from the poster's edges by small steps.

    Plates change gently from pixel to pixel while drawn things start at an edge, so this is the
    part of the plate that nothing covers.
    """
    small = cv2.GaussianBlur(_shrink(image, FLOOD_SIDE), (3, 3), 0)
    s_h, s_w = small.shape[:2]
    labels = np.zeros((s_h + 2, s_w + 2), np.uint8)
    calm = _calm(image, (s_w, s_h))
    # Calm pixels are walls the flood cannot cross; label 255 is never a region's.
    labels[1:-1, 1:-1][calm] = 255
    # A patterned plate (stripes) steps further between neighbours than a gradient: the flood may too.
    frame = _frame(s_h, s_w)
    steps = np.concatenate(
        [
            np.abs(np.diff(small.astype(np.int16), axis=0)).max(axis=-1)[frame[1:]],
            np.abs(np.diff(small.astype(np.int16), axis=1)).max(axis=-1)[frame[:, 1:]],
        ]
    )
    pattern = PATTERN_STEP_SHARE * float(np.percentile(steps, 90)) if steps.size else 0.0
    step = (max(FLOOD_STEP, pattern),) * 3
    region = 0
    for y, x in zip(*np.nonzero(frame), strict=True):
        if labels[y + 1, x + 1] == 0 and region < 254:
            region += 1
            flags = 8 | cv2.FLOODFILL_MASK_ONLY | (region << 8)
            cv2.floodFill(small, labels, (int(x), int(y)), (0, 0, 0), step, step, flags)
    labels = labels[1:-1, 1:-1]
    counts = np.bincount(labels.ravel(), minlength=256)
    counts[0] = counts[255] = 0
    return (labels == np.argmax(counts)).astype(np.uint8)


def _calm(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pixels (of a copy of `size`) whose fine detail is well below the frame's, on a grainy poster; else none.

    Grain, paper and noise textures show evenly everywhere the plate shows; an opaque shape over them
    hides the grain and a translucent one dims it, even where its colour is close to the plate's.
    """
    detail = np.abs(cv2.Laplacian(image.astype(np.float32), cv2.CV_32F)).max(axis=-1)
    detail = cv2.resize(cv2.blur(detail, (GRAIN_WINDOW, GRAIN_WINDOW)), size, interpolation=cv2.INTER_AREA)
    quartile, frame_level = np.percentile(detail[_frame(*detail.shape)], [25, 50])
    # Grain lies evenly over the plate; a photo backdrop has calm skies beside busy leaves.
    if frame_level < MIN_GRAIN or quartile < CALM_SHARE * frame_level:
        return np.zeros(detail.shape, bool)
    # The detail window blurs a drawn thing's edge into a busy band along it: the wall covers that too.
    return cv2.dilate((detail < CALM_SHARE * frame_level).astype(np.uint8), _SQUARE, iterations=2).astype(bool)


def _texture_plate(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The edge region as it is, the rest inpainted (Telea) from it, smoothed and scaled to the poster."""
    height, width = image.shape[:2]
    small = _shrink(image, FLOOD_SIDE)
    holes = cv2.dilate(1 - region, _SQUARE)
    filled = cv2.inpaint(small, holes, 5, cv2.INPAINT_TELEA)
    smooth = cv2.GaussianBlur(filled, (5, 5), 0)
    return cv2.resize(smooth, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def _noise(image: np.ndarray, plate: np.ndarray, region: np.ndarray) -> float:
    """75th percentile of the deviation from the plate over the edge region, on a pixel grid.

    Deviations of NOISE_CAP and more are left out: they are foreground the flood leaked into.
    """
    deviation = np.abs(image[::3, ::3].astype(np.float32) - plate[::3, ::3]).max(axis=-1)
    inside = deviation[region[::3, ::3] & (deviation < NOISE_CAP)]
    return float(np.percentile(inside, 75)) if inside.size else 0.0


def fill_background(image: np.ndarray, plate: Plate, covered: np.ndarray) -> np.ndarray:
    """The background layer's pixels: `image` where nothing covers it, the plate under `covered`."""
    plate8 = np.clip(np.round(plate.colors), 0, 255).astype(np.uint8)
    return np.where(covered[..., None], plate8, image)
