"""Text line detection and recognition: RapidOCR (PP-OCR det + rec ONNX models from its wheel), Tesseract for Korean.

PP-OCR's recogniser reads Chinese and English only. Lines it does not read confidently as ASCII
are read again by Tesseract with Debian's Korean data (tesseract-ocr-kor), one line at a time
(page segmentation mode 7), which reads Hangul set in poster fonts well.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytesseract
from PIL import Image

from services.common.layers import BBox

MIN_SCORE = 0.5
"""Recognition confidence below which a detection is more likely texture than text."""
LATIN_SCORE = 0.9
"""An all-ASCII reading at least this confident is kept without asking Tesseract."""
SAME_LINE_OVERLAP = 0.7
"""Two detections whose rows overlap by this share of the lower one's height lie on one line..."""
SAME_LINE_GAP = 1.2
"""... and join into one when the gap between them is at most this many line heights (a wide word space)."""
WORD_GAP_SHARE = 0.3
"""An inkless run of columns at least this share of the ink height wide separates two words ..."""
LETTER_GAP_RATIO = 2.0
"""... when it is also at least this many times the line's typical gap between letters (tracked titles)."""
SYLLABLE_GAP_SHARE = 0.05
"""Two one-syllable Tesseract words closer than this share of the line height (touching) are one word."""
KOREAN_CONFIDENCE = 60.0
"""Tesseract's mean word confidence (0-100) from which its Hangul reading is kept."""
TESSERACT_LANG = "kor"
TESSERACT_CONFIG = "--psm 7"
TESSERACT_BORDER = 8
"""Pixels of replicated border around a line crop: Tesseract misreads glyphs touching the edge."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextLine:
    """One detected line: its axis-aligned box on the canvas, the string and the recogniser's score."""

    box: BBox
    text: str
    score: float
    char_x: tuple[float, ...] = ()
    """Canvas x of each character's centre, when the recogniser gives one per character (for re-spacing)."""


def has_hangul(text: str) -> bool:
    """Whether a string holds Hangul syllables or jamo."""
    return any("\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff" or "\u3130" <= ch <= "\u318f" for ch in text)


class LineReader:
    """Finds text lines; the OCR model loads on first use, once, and is shared by all threads."""

    def __init__(self) -> None:
        self._ocr: Any = None
        self._lock = threading.Lock()
        self._tesseract_missing = False

    def _model(self) -> Any:
        with self._lock:
            if self._ocr is None:
                from rapidocr_onnxruntime import RapidOCR

                self._ocr = RapidOCR()
            return self._ocr

    def read(self, image: np.ndarray) -> list[TextLine]:
        """Lines of an (H, W, 3) uint8 RGB image, top to bottom."""
        height, width = image.shape[:2]
        # RapidOCR takes arrays as BGR; it scales the detector input itself (short side 736). The angle
        # classifier is skipped: poster text is upright, and it costs a third of the time. text_score 0
        # keeps every detection, so lines the recogniser cannot read (Hangul) still reach Tesseract.
        result, _ = self._model()(
            np.ascontiguousarray(image[..., ::-1]), use_cls=False, text_score=0.0, return_word_box=True
        )
        detections = []
        for quad, text, score, *chars in result or []:
            points = np.asarray(quad, np.float64)
            x0, y0 = np.clip(np.floor(points.min(axis=0)), 0, None).astype(int)
            x1 = int(min(np.ceil(points[:, 0].max()), width))
            y1 = int(min(np.ceil(points[:, 1].max()), height))
            if x1 <= x0 or y1 <= y0:
                continue
            text = str(text).strip()
            char_x: tuple[float, ...] = ()
            if chars and chars[0] and len(chars[0]) == len(text):
                char_x = tuple(float(np.mean([point[0] for point in quad])) for quad in chars[0])
            detections.append(TextLine(BBox(int(x0), int(y0), x1 - int(x0), y1 - int(y0)), text, float(score), char_x))
        lines = [line for group in _line_groups(detections) if (line := self._recognised(image, group)) is not None]
        return sorted(lines, key=lambda line: (line.box.y, line.box.x))

    def _recognised(self, image: np.ndarray, group: list[TextLine]) -> TextLine | None:
        """One line from its detections (left to right): PP-OCR's reading when all of it is confident ASCII,
        else Tesseract's Hangul reading of the whole line, else PP-OCR's readable parts, else None."""
        if all(part.score >= LATIN_SCORE and part.text.isascii() for part in group):
            return _join(group)
        box = _union_box([part.box for part in group])
        korean = self._read_korean(image[box.slices()])
        if korean is not None:
            return TextLine(box, *korean)
        readable = [part for part in group if part.score >= MIN_SCORE and any(ch.isalnum() for ch in part.text)]
        return _join(readable) if readable else None

    def _read_korean(self, crop: np.ndarray) -> tuple[str, float] | None:
        """(text, confidence 0-1) when Tesseract reads Hangul in the line crop confidently, else None."""
        if self._tesseract_missing:
            return None
        padded = cv2.copyMakeBorder(crop, *(TESSERACT_BORDER,) * 4, cv2.BORDER_REPLICATE)
        try:
            data = pytesseract.image_to_data(
                Image.fromarray(padded),
                lang=TESSERACT_LANG,
                config=TESSERACT_CONFIG,
                output_type=pytesseract.Output.DICT,
            )
        except (pytesseract.TesseractNotFoundError, pytesseract.TesseractError) as error:
            # Without Tesseract (or its Korean data) Latin text still reads; say why Hangul does not, once.
            self._tesseract_missing = True
            log.warning("Korean text will not be read: %s", error)
            return None
        fields = zip(data["text"], data["conf"], data["left"], data["width"], data["height"], strict=True)
        # Stray marks at a line's ends ("[", "|") are border or texture, not words.
        words = [
            (str(word).strip(), float(conf), int(left), int(left) + int(width), int(height))
            for word, conf, left, width, height in fields
            if float(conf) >= 0 and any(ch.isalnum() for ch in str(word))
        ]
        if not words:
            return None
        text = _spaced(words)
        if not has_hangul(text):
            return None
        confidence = float(np.mean([conf for _, conf, *_ in words]))
        return (text, confidence / 100.0) if confidence >= KOREAN_CONFIDENCE else None


def _line_groups(lines: list[TextLine]) -> list[list[TextLine]]:
    """Detections on one baseline, with at most a word-sized gap between them, grouped left to right.

    The detector splits a line where its words are set far apart, sometimes into overlapping boxes;
    a designer's layer is the whole line.
    """
    groups: list[list[TextLine]] = []
    for line in sorted(lines, key=lambda line: line.box.x):
        for group in groups:
            if _same_line(_union_box([part.box for part in group]), line.box):
                group.append(line)
                break
        else:
            groups.append([line])
    return groups


def _same_line(left: BBox, right: BBox) -> bool:
    """Whether `right` (starting no further left than `left`) continues the line of `left`."""
    overlap = min(left.y + left.h, right.y + right.h) - max(left.y, right.y)
    gap = right.x - (left.x + left.w)
    return overlap >= SAME_LINE_OVERLAP * min(left.h, right.h) and gap <= SAME_LINE_GAP * max(left.h, right.h)


def _union_box(boxes: list[BBox]) -> BBox:
    x0, y0 = min(box.x for box in boxes), min(box.y for box in boxes)
    x1, y1 = max(box.x + box.w for box in boxes), max(box.y + box.h for box in boxes)
    return BBox(x0, y0, x1 - x0, y1 - y0)


def _join(parts: list[TextLine]) -> TextLine:
    """Detections of one line (left to right) as one line: texts joined by a space, the lowest score."""
    char_x: tuple[float, ...] = ()
    if all(part.char_x for part in parts):
        char_x = parts[0].char_x
        for left, right in itertools.pairwise(parts):
            char_x = (*char_x, (left.box.x + left.box.w + right.box.x) / 2.0, *right.char_x)
    return TextLine(
        _union_box([part.box for part in parts]),
        " ".join(part.text for part in parts),
        min(part.score for part in parts),
        char_x,
    )


def _spaced(words: list[tuple[str, float, int, int, int]]) -> str:
    """Tesseract's words (text, confidence, left, right, height) left to right, joined into a line.

    Tesseract splits widely set Hangul into one "word" per syllable ("재 즈 의 밤"): two single-syllable
    words whose boxes touch or overlap (SYLLABLE_GAP_SHARE of the line's height) are one word; across a
    word space their boxes stand apart. Longer words keep Tesseract's spaces: its word boxes overlap
    even across real spaces, so their gaps do not tell.
    """
    height = max(word[4] for word in words)
    text = words[0][0]
    for (before, _, _, right, _), (word, _, left, _, _) in itertools.pairwise(words):
        syllables = len(before) == 1 == len(word) and has_hangul(before + word)
        text += ("" if syllables and left - right < SYLLABLE_GAP_SHARE * height else " ") + word
    return text
