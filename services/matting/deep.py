"""The "deep" method's solvers: closed-form matting (Levin et al.) and multilevel foreground estimation.

Both come from pymatting, which compiles its numba kernels when first imported (tens of seconds,
then cached on disk). It is imported lazily, once, with NUMBA_CACHE_DIR pointing at a writable
directory, and `warm_up` does that (and runs each solver once on a tiny input) before a service
that offers the method reports SERVING.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from services.common.config import Settings

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "poster-layers" / "numba"
TILE_PX = 128
"""Side of the tiles the closed-form solve works on: its sparse system grows with the pixels it covers."""
TILE_OVERLAP_PX = 16
"""Context around each tile, solved with it and then dropped, so tile seams do not show."""
WINDOW_RADIUS = 1
"""Closed-form matting's local window radius (3x3 windows): larger windows make the system much denser."""

_lock = threading.Lock()
_cache_dir: Path | None = None
_module: ModuleType | None = None


def configure(cache_dir: str | Path) -> None:
    """Sets where numba caches pymatting's compiled kernels; takes effect at the first `load`."""
    global _cache_dir
    _cache_dir = Path(cache_dir)


def load() -> ModuleType:
    """pymatting, imported on first use with NUMBA_CACHE_DIR set (compiles, or loads the cache)."""
    global _module
    with _lock:
        if _module is None:
            cache_dir = _cache_dir or Path(os.environ.get("NUMBA_CACHE_DIR") or DEFAULT_CACHE_DIR)
            cache_dir.mkdir(parents=True, exist_ok=True)
            os.environ["NUMBA_CACHE_DIR"] = str(cache_dir)
            if "numba" in sys.modules:
                # numba reads its environment once, at import: make it see the cache directory.
                sys.modules["numba"].core.config.reload_config()
            started = time.perf_counter()
            _module = importlib.import_module("pymatting")
            log.info("pymatting loaded in %.1f s (numba cache %s)", time.perf_counter() - started, cache_dir)
        return _module


def warm_up() -> None:
    """Loads pymatting and runs both solvers once on a tiny input, so the first job pays nothing."""
    alpha = np.tile(np.clip((np.arange(16) - 4) / 8.0, 0.0, 1.0).astype(np.float32), (16, 1))
    image = np.dstack([alpha * 200 + 20, 255 - alpha * 200, np.full_like(alpha, 90)]).astype(np.uint8)
    unknown = (alpha > 0) & (alpha < 1)
    closed_form_alpha(image, alpha, unknown, 1e-6)
    foreground(image, alpha)


def closed_form_alpha(image: np.ndarray, alpha: np.ndarray, unknown: np.ndarray, eps: float) -> np.ndarray:
    """Alpha with the `unknown` pixels solved by closed-form matting, the others kept as given.

    image: (h, w, 3) uint8; alpha: (h, w) float in 0..1, the known values (any value, not only 0
    and 1); unknown: (h, w) bool. The solve runs on tiles of TILE_PX around the unknown pixels;
    a tile without a known pixel keeps the given values (nothing anchors its solution).
    """
    pymatting = load()
    result = np.asarray(alpha, np.float32).copy()
    height, width = unknown.shape
    rows, cols = np.nonzero(unknown)
    if rows.size == 0:
        return result
    for top in range(int(rows.min()) // TILE_PX * TILE_PX, int(rows.max()) + 1, TILE_PX):
        for left in range(int(cols.min()) // TILE_PX * TILE_PX, int(cols.max()) + 1, TILE_PX):
            core = slice(top, min(top + TILE_PX, height)), slice(left, min(left + TILE_PX, width))
            if not unknown[core].any():
                continue
            y0, x0 = max(top - TILE_OVERLAP_PX, 0), max(left - TILE_OVERLAP_PX, 0)
            y1, x1 = min(core[0].stop + TILE_OVERLAP_PX, height), min(core[1].stop + TILE_OVERLAP_PX, width)
            solved = _solve(pymatting, image[y0:y1, x0:x1], alpha[y0:y1, x0:x1], unknown[y0:y1, x0:x1], eps)
            inner = slice(top - y0, core[0].stop - y0), slice(left - x0, core[1].stop - x0)
            result[core] = np.where(unknown[core], solved[inner], result[core])
    return result


def _solve(pymatting: ModuleType, image: np.ndarray, alpha: np.ndarray, unknown: np.ndarray, eps: float) -> np.ndarray:
    """One tile: L_U x_U = -R x_K on the matting Laplacian, as pymatting's estimate_alpha_cf with soft known values."""
    known = ~unknown
    if not known.any() or min(unknown.shape) <= 2 * WINDOW_RADIUS:
        return np.asarray(alpha, np.float32)
    laplacian = pymatting.cf_laplacian(
        image.astype(np.float64) / 255.0, epsilon=eps, radius=WINDOW_RADIUS, is_known=known
    )
    free, fixed = unknown.ravel(), known.ravel()
    values = np.asarray(alpha, np.float64).ravel().copy()
    system = laplacian[free, :][:, free]
    rhs = -laplacian[free, :][:, fixed].dot(values[fixed])
    values[free] = pymatting.cg(system, rhs, M=pymatting.ichol(system))
    return np.clip(values, 0.0, 1.0).reshape(unknown.shape).astype(np.float32)


def foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Smooth foreground colours (h, w, 3) float32, 0-255, for `alpha` (pymatting's estimate_foreground_ml)."""
    pymatting = load()
    colours = pymatting.estimate_foreground_ml(image.astype(np.float32) / 255.0, np.asarray(alpha, np.float32))
    return np.asarray(colours, np.float32) * 255.0


def main() -> None:
    """`python -m services.matting.deep`: compiles (or loads) the kernels into the configured cache directory."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    configure(Settings().matting_numba_cache_dir)
    warm_up()


if __name__ == "__main__":
    main()
