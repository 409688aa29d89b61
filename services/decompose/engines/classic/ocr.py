"""Text line detection and recognition with RapidOCR (PP-OCR det + rec ONNX models from its wheel)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.common.layers import BBox

MIN_SCORE = 0.5
"""Recognition confidence below which a detection is more likely texture than text."""


@dataclass(frozen=True)
class TextLine:
    """One detected line: its axis-aligned box on the canvas, the string and the recogniser's score."""

    box: BBox
    text: str
    score: float


class LineReader:
    """Finds text lines; the OCR model loads on first use, once, and is shared by all threads."""

    def __init__(self) -> None:
        self._ocr: Any = None
        self._lock = threading.Lock()

    def _model(self) -> Any:
        with self._lock:
            if self._ocr is None:
                from rapidocr_onnxruntime import RapidOCR

                self._ocr = RapidOCR()
            return self._ocr

    def read(self, image: np.ndarray) -> list[TextLine]:
        """Lines of an (H, W, 3) uint8 RGB image, top to bottom."""
        height, width = image.shape[:2]
        # RapidOCR takes arrays as BGR; it scales the detector input itself (short side 736).
        # The angle classifier is skipped: poster text is upright, and it costs a third of the time.
        result, _ = self._model()(np.ascontiguousarray(image[..., ::-1]), use_cls=False)
        lines = []
        for quad, text, score in result or []:
            points = np.asarray(quad, np.float64)
            x0, y0 = np.clip(np.floor(points.min(axis=0)), 0, None).astype(int)
            x1 = int(min(np.ceil(points[:, 0].max()), width))
            y1 = int(min(np.ceil(points[:, 1].max()), height))
            text = str(text).strip()
            if float(score) >= MIN_SCORE and any(ch.isalnum() for ch in text) and x1 > x0 and y1 > y0:
                lines.append(TextLine(BBox(int(x0), int(y0), x1 - int(x0), y1 - int(y0)), text, float(score)))
        return lines
