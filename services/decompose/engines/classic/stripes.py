"""A striped plate: one colour profile repeating along a direction, at any angle and period.

Stripes show through translucent shapes and continue under opaque ones, so unlike a textured
plate (the poster where it shows, smoothed elsewhere) the model gives the plate under every
drawn thing exactly. Candidate frequencies come from the FFT of a crop's shown pixels; direct
Fourier sums over samples spread across the whole poster sharpen them, since a small frequency
error adds up to a visible phase drift there; the profile is the median colour per phase bin.
"""

from __future__ import annotations

import numpy as np

FFT_SIDE = 512
"""Side (px) of the full-size crop whose spectrum gives the stripes' rough frequencies."""
MIN_PERIOD = 4.0
"""Shortest period (px) looked for: finer than this is grain, not stripes."""
MIN_CYCLES = 3.0
"""Fewest repeats across the crop for a peak to be stripes rather than a gradient."""
PEAKS = 6
"""Strongest spectral peaks tried as the stripes' frequency."""
PROFILE_BINS = 64
"""Phase bins of the colour profile."""
FIT_SAMPLES = 30_000
"""Shown pixels, spread over the poster, the frequency and profile are fitted on."""
GRID_HALF = 4
"""Each refining grid has 2 GRID_HALF + 1 points a side, spaced 1 / GRID_HALF of the previous spacing."""
COARSE_DRIFT = 4
"""Frequencies are told apart once known to 1 / (this x the poster's side): a quarter-cycle drift ..."""
FINE_DRIFT = 64
"""... and the chosen one is refined to 1 / (this x the side), a drift the plate's colours cannot show."""
POWER_SAMPLES = 6_000
"""Samples the refining Fourier sums run over."""
FIT_TOLERANCE = 4.0
"""A pixel within this many levels of the model is explained by it."""
MIN_EXPLAINED = 0.9
"""Share of the shown samples on the poster's frame the model must explain to count as the plate."""
FRAME_SHARE = 0.05
"""Width of that frame, as a share of the poster's short side."""


def fit_stripes(image: np.ndarray, shown: np.ndarray) -> np.ndarray | None:
    """The (H, W, 3) float32 striped plate that explains the `shown` pixels of `image`, or None."""
    height, width = image.shape[:2]
    ys, xs = np.nonzero(shown)
    if ys.size < PROFILE_BINS * 4:
        return None
    # At random (seeded, so a poster always gets the same plate): evenly strided samples would alias
    # with the stripes and fake peaks at other frequencies.
    pick = np.random.default_rng(0).choice(ys.size, min(FIT_SAMPLES, ys.size), replace=False)
    ys, xs = ys[pick].astype(np.float64), xs[pick].astype(np.float64)
    colors = image[ys.astype(int), xs.astype(int)].astype(np.float64)
    few = slice(None, None, max(1, len(xs) // POWER_SAMPLES))
    signal = colors[few] - colors[few].mean(axis=0)
    side = max(height, width)
    coarse = [
        _refined(rough, xs[few], ys[few], signal, 1.0 / FFT_SIDE, 1.0 / (COARSE_DRIFT * side))
        for rough in _rough_frequencies(image, shown)
    ]
    if not coarse:
        return None
    # Judged on the poster's frame, like the other plate models: the flood may leak into what lies
    # over the plate, the frame rarely does.
    margin = FRAME_SHARE * min(height, width)
    frame = (np.minimum(xs, width - 1 - xs) < margin) | (np.minimum(ys, height - 1 - ys) < margin)
    if np.count_nonzero(frame) < PROFILE_BINS * 4:
        frame = np.ones_like(frame)
    best = max(coarse, key=lambda fit: _explained(_profile(fit[0], xs, ys, colors)[1], frame))
    frequency, _ = _refined(best[0], xs[few], ys[few], signal, best[1], 1.0 / (FINE_DRIFT * side))
    profile, residual = _profile(frequency, xs, ys, colors)
    if _explained(residual, frame) < MIN_EXPLAINED:
        return None
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = np.mod(frequency[0] * cols + frequency[1] * rows, 1.0) * PROFILE_BINS
    # Linear between bin centres, round the cycle.
    centres = np.arange(-1, PROFILE_BINS + 1) + 0.5
    looped = np.concatenate([profile[-1:], profile, profile[:1]])
    plate = np.stack([np.interp(phase, centres, looped[:, channel]) for channel in range(3)], axis=-1)
    return plate.astype(np.float32)


def _rough_frequencies(image: np.ndarray, shown: np.ndarray) -> list[tuple[float, float]]:
    """(cycles per px along x, along y) of the strongest repeats in a crop's shown pixels.

    The crop is the one, of nine spread over the poster, that shows the plate most. The edges of
    what covers the plate have strong low frequencies of their own: the power is weighed by the
    frequency squared (the spectrum of the plate's slope), which levels those off while a repeat
    stays a peak, and several peaks are returned, strongest first, for the fit to choose from.
    """
    height, width = image.shape[:2]
    side_y, side_x = min(height, FFT_SIDE), min(width, FFT_SIDE)
    corners = [
        (top, left)
        for top in np.linspace(0, height - side_y, 3).astype(int)
        for left in np.linspace(0, width - side_x, 3).astype(int)
    ]
    top, left = max(corners, key=lambda c: np.count_nonzero(shown[c[0] : c[0] + side_y, c[1] : c[1] + side_x]))
    crop = image[top : top + side_y, left : left + side_x].astype(np.float64)
    inside = shown[top : top + side_y, left : left + side_x]
    if np.count_nonzero(inside) < 0.25 * inside.size:
        return []
    # Hidden pixels at the shown mean add no repeat of their own; the channels add up, as the
    # stripes may change the colour while keeping its lightness.
    signal = np.where(inside[..., None], crop - crop[inside].mean(axis=0), 0.0)
    power = (np.abs(np.fft.rfft2(signal, axes=(0, 1))) ** 2).sum(axis=-1)
    fy = np.fft.fftfreq(side_y)[:, None]
    fx = np.fft.rfftfreq(side_x)[None, :]
    radius = np.hypot(fx, fy)
    usable = (radius <= 1.0 / MIN_PERIOD) & (radius >= MIN_CYCLES / min(side_x, side_y))
    power = np.where(usable, power * radius**2, 0.0)
    peaks: list[tuple[int, int]] = []
    for flat in np.argsort(power, axis=None)[::-1]:
        if len(peaks) == PEAKS or power.flat[flat] == 0.0:
            break
        row, col = np.unravel_index(flat, power.shape)
        if all(abs(row - other_row) + abs(col - other_col) > 2 for other_row, other_col in peaks):
            peaks.append((int(row), int(col)))
    return [(float(fx[0, col]), float(fy[row, 0])) for row, col in peaks]


def _refined(
    start: tuple[float, float], xs: np.ndarray, ys: np.ndarray, signal: np.ndarray, spacing: float, finest: float
) -> tuple[tuple[float, float], float]:
    """The frequency near `start` (known to about `spacing`) with the most power over the samples.

    A frequency error adds up to a phase drift across the poster, so the crop's spectrum is not
    sharp enough: the power (a direct Fourier sum over samples spread over the whole poster) is
    maximised on ever finer grids, each spanning the previous one's spacing, down to `finest`.
    Returns the frequency and the last grid's spacing.
    """
    best = start
    offsets = np.arange(-GRID_HALF, GRID_HALF + 1)
    while spacing > finest:
        spacing /= GRID_HALF
        fx, fy = best[0] + spacing * offsets, best[1] + spacing * offsets
        # The wave e^(-2 pi i (fx x + fy y)) splits into an x and a y factor: one product per grid point.
        along_x = np.exp(-2j * np.pi * fx[:, None] * xs[None, :])
        along_y = np.exp(-2j * np.pi * fy[:, None] * ys[None, :])
        # Summed over the channels: the stripes may change the colour while keeping its lightness.
        power = sum(np.abs((along_x * signal[:, channel]) @ along_y.T) ** 2 for channel in range(signal.shape[1]))
        row, col = np.unravel_index(int(np.argmax(power)), power.shape)
        best = (float(fx[row]), float(fy[col]))
    return best, spacing


def _explained(residual: np.ndarray, frame: np.ndarray) -> float:
    """Share of the frame's samples the model explains."""
    return float(np.mean(residual[frame] < FIT_TOLERANCE))


def _profile(
    frequency: tuple[float, float], xs: np.ndarray, ys: np.ndarray, colors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Median colour per phase bin (an empty bin takes its neighbour's) and each sample's residual."""
    bins = _bins(frequency, xs, ys)
    profile = np.zeros((PROFILE_BINS, 3))
    filled = np.zeros(PROFILE_BINS, bool)
    for number in range(PROFILE_BINS):
        members = colors[bins == number]
        if len(members):
            profile[number] = np.median(members, axis=0)
            filled[number] = True
    if not filled.any():
        return profile, np.full(len(colors), np.inf)
    for number in np.nonzero(~filled)[0]:
        nearest = np.nonzero(filled)[0]
        profile[number] = profile[nearest[np.argmin(np.abs(nearest - number))]]
    return profile, np.abs(colors - profile[bins]).max(axis=-1)


def _bins(frequency: tuple[float, float], xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    phase = np.mod(frequency[0] * xs + frequency[1] * ys, 1.0)
    return np.minimum((phase * PROFILE_BINS).astype(int), PROFILE_BINS - 1)
