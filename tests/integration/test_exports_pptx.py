"""The PPTX export opened by LibreOffice (headless, its own fresh profile), printed to a lossless PDF
and rendered by pdftoppm at the poster's native size.

- The slide without its text boxes, with the text layers' pixels shown, is the input (PSNR >= 30 dB).
- The slide as exported: the same outside the text boxes, live text drawn in the text layers'
  colours inside them, and the hidden text pixels not drawn at all.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pptx import Presentation
from pptx.enum.shapes import MSO_SHAPE_TYPE

from samples.synthetic import make_poster
from services.common.layers import LayerKind, psnr
from services.exports import build_export
from services.exports.to_pptx import EMU_PER_INCH, emu_per_px

pytestmark = pytest.mark.integration

# Images kept lossless and at full resolution, so the PDF holds the layers' exact pixels.
PDF_FILTER = (
    'pdf:impress_pdf_Export:{"UseLosslessCompression":{"type":"boolean","value":"true"},'
    '"ReduceImageResolution":{"type":"boolean","value":"false"}}'
)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/setup.sh", pytrace=False)
    return path


def to_pdf(decks: list[Path], out_dir: Path) -> list[Path]:
    """LibreOffice converts every deck in one run, with a profile of its own."""
    profile = out_dir / "libreoffice-profile"
    command = [tool("soffice"), f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore"]
    done = subprocess.run(
        [*command, "--convert-to", PDF_FILTER, "--outdir", str(out_dir), *map(str, decks)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    pdfs = [out_dir / f"{deck.stem}.pdf" for deck in decks]
    assert all(pdf.exists() for pdf in pdfs), done.stdout + done.stderr
    return pdfs


def render(pdf: Path, width: int, height: int, program: str = "pdftoppm") -> np.ndarray:
    """The PDF's page rendered at the poster's native size by poppler's `program`."""
    prefix = pdf.parent / f"{pdf.stem}-{program}"
    size = ["-scale-to-x", str(width), "-scale-to-y", str(height)]
    subprocess.run([tool(program), "-png", "-singlefile", *size, str(pdf), str(prefix)], check=True)
    pixels = np.asarray(Image.open(f"{prefix}.png").convert("RGB"))
    # pdftocairo rounds a page side of 1600.02 px up to 1601: the extra edge is not the slide's.
    assert pixels.shape[0] - height in (0, 1) and pixels.shape[1] - width in (0, 1), pixels.shape
    return pixels[:height, :width]


def without_text_boxes(pptx: bytes) -> bytes:
    """The deck with its text boxes removed and the hidden text pictures shown."""
    deck = Presentation(io.BytesIO(pptx))
    for shape in list(deck.slides[0].shapes):
        if shape.shape_type == MSO_SHAPE_TYPE.TEXT_BOX:
            shape._element.getparent().remove(shape._element)
        else:
            shape._element.xpath("./*[1]/p:cNvPr")[0].attrib.pop("hidden", None)
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(("seed", "width", "height"), [(11, 1024, 1024), (2, 1600, 900)])
def test_libreoffice_renders_the_slide_as_the_input(tmp_path: Path, seed: int, width: int, height: int) -> None:
    poster = make_poster(seed, width, height)
    pptx = build_export(poster.layers, width, height, {"source": {"file": "poster.png"}}, "pptx")
    exported, pixels_only = tmp_path / "exported.pptx", tmp_path / "pixels-only.pptx"
    exported.write_bytes(pptx)
    pixels_only.write_bytes(without_text_boxes(pptx))
    exported_pdf, pixels_only_pdf = to_pdf([exported, pixels_only], tmp_path)
    scale = emu_per_px(width, height)
    page = subprocess.run([tool("pdfinfo"), str(exported_pdf)], capture_output=True, text=True, check=True).stdout
    page_w, page_h = (float(value) for value in page.split("Page size:")[1].split()[0:3:2])
    # The page is the slide: the poster's size at the slide's pixel (1/100 mm rounding aside).
    assert page_w == pytest.approx(width * scale / EMU_PER_INCH * 72, abs=0.05)
    assert page_h == pytest.approx(height * scale / EMU_PER_INCH * 72, abs=0.05)

    plain = render(pixels_only_pdf, width, height)
    assert psnr(poster.image, plain) >= 30.0
    # pdftoppm resamples each picture (LibreOffice draws it 1/100 mm short), which costs most of
    # the error; cairo samples pixel centres and shows the pixels in the PDF are the layers'.
    assert psnr(poster.image, render(pixels_only_pdf, width, height, "pdftocairo")) >= 45.0

    live = render(exported_pdf, width, height)
    text_layers = [layer for layer in poster.layers if layer.kind is LayerKind.TEXT]
    boxes = [s for s in Presentation(io.BytesIO(pptx)).slides[0].shapes if s.shape_type == MSO_SHAPE_TYPE.TEXT_BOX]
    assert len(boxes) == len(text_layers) > 0
    outside = np.ones((height, width), bool)
    for layer, box in zip(text_layers, boxes, strict=True):
        rows, cols = layer.bbox.slices()
        outside[rows, cols] = False
        top, left = max(box.top // scale - 4, 0), max(box.left // scale - 4, 0)
        outside[top : (box.top + box.height) // scale + 4, left : (box.left + box.width) // scale + 4] = False
        # Live text in the layer's colour, its ink starting where the layer's ink starts.
        inked = np.abs(live[rows, cols].astype(int) - np.array(layer.color)).max(axis=-1) <= 48
        assert inked.sum() >= 0.3 * (layer.rgba[..., 3] > 200).sum(), layer.text
        ink_rows, ink_cols = np.nonzero(inked)
        # LibreOffice sets a first line about 0.07 em lower than the font's ascent puts it.
        assert ink_rows.min() <= 3 + 0.1 * layer.font_size_px and ink_cols.min() <= 3, layer.text
    assert psnr(poster.image[outside], live[outside]) >= 30.0
    # Only the non-text pictures are painted: the hidden text pixels never reach the page.
    listed = subprocess.run([tool("pdfimages"), "-list", str(exported_pdf)], capture_output=True, text=True, check=True)
    images = [line for line in listed.stdout.splitlines()[2:] if line.split()[2] == "image"]
    assert len(images) == len(poster.layers) - len(text_layers)
