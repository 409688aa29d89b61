"""The classic engine: plate fitting, OCR and connected regions on the CPU, no downloaded weights."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from services.common.errors import Cancelled, InvalidInput
from services.common.layers import Layer, LayerKind
from services.common.options import JobOptions
from services.decompose.engines.base import CancelCheck, ProgressCallback
from services.decompose.engines.classic.assemble import assemble
from services.decompose.engines.classic.background import estimate_plate, fill_background
from services.decompose.engines.classic.candidates import absorb_fragments, reduce_to, stack_order
from services.decompose.engines.classic.elements import find_elements
from services.decompose.engines.classic.ocr import LineReader
from services.decompose.engines.classic.text import extract_text

STAGES = 6


class ClassicEngine:
    """Splits a poster into a background plate, shape/image regions and OCR text lines.

    Layers come bottom to top: index 0 is the opaque full-canvas background (the poster with its
    foreground removed and the holes filled from the fitted plate), then shapes and images (larger
    regions lower; overlapping things stacked by occlusion, a flat shape completed under what covers
    it, a drop shadow inside its element's layer), then one text layer per line, top to bottom, each
    right above the label plate behind it if it has one. Each layer's pixels are solved against the
    composite of the layers below, so the full composite reproduces the poster.

    `options.layers`: 0 lets the engine decide. N > 0 asks for exactly N layers including the
    background: the smallest foreground layer is merged into its nearest neighbour (same kind
    first) until N remain; N = 1 returns the poster itself as the background. When the poster has
    fewer layers than N, all of them are returned and none are invented.
    """

    name = "classic"
    version = "0.1.0"

    def __init__(self) -> None:
        self._reader = LineReader()

    def decompose(
        self,
        image: np.ndarray,
        options: JobOptions,
        on_progress: ProgressCallback,
        is_cancelled: CancelCheck,
    ) -> Iterator[Layer]:
        """Yields the layers of an (H, W, 3) uint8 RGB poster; see the class docstring."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.size == 0:
            raise InvalidInput(f"expected a non-empty (H, W, 3) uint8 RGB image, got {image.dtype}{image.shape}")
        if options.layers < 0:
            raise InvalidInput(f"layers must be 0 (auto) or positive, got {options.layers}")
        step = 0

        def advance() -> None:
            nonlocal step
            step += 1
            on_progress(step, STAGES)
            if is_cancelled():
                raise Cancelled("decomposition cancelled")

        if is_cancelled():
            raise Cancelled("decomposition cancelled")
        lines = self._reader.read(image)
        advance()
        texts, lifted = extract_text(image, lines)
        advance()
        plate = estimate_plate(lifted)
        advance()
        candidates = stack_order(*absorb_fragments(find_elements(lifted, plate), texts))
        advance()
        covered = np.zeros(image.shape[:2], bool)
        for candidate in candidates:
            if candidate.kind != LayerKind.TEXT:
                covered[candidate.box.slices()] |= candidate.support
        background = fill_background(lifted, plate, covered)
        if options.layers > 0:
            candidates = reduce_to(candidates, options.layers - 1)
            if not candidates:
                background = image
        advance()
        for layer in assemble(image, lifted, background, candidates):
            if is_cancelled():
                raise Cancelled("decomposition cancelled")
            yield layer
        on_progress(STAGES, STAGES)
