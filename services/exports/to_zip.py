"""ZIP: the job folder as a designer downloads it.

manifest.json, layers/NN-name.png (full-canvas RGBA, as the manifest names them) and
exports/<stem>.psd|.pptx|.svg; the manifest's "exports" lists those three files.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping

from services.exports.source import ExportSource, export_path

INNER_FORMATS = ("psd", "pptx", "svg")
# PNG and PPTX are compressed already: storing them saves the time a second deflate would waste.
STORED_SUFFIXES = (".png", ".pptx")
DEFLATE_LEVEL = 1


def build_zip(source: ExportSource, inner: Mapping[str, bytes], layer_files: Mapping[str, bytes]) -> bytes:
    """ZIP bytes: the manifest, `layer_files` (source.full_canvas_files()) and the PSD, PPTX, SVG in `inner`."""
    manifest = source.manifest_copy()
    manifest["exports"] = {fmt: export_path(source.stem, fmt) for fmt in INNER_FORMATS}
    members = {"manifest.json": json.dumps(manifest, indent=2, ensure_ascii=False).encode()}
    members |= layer_files
    members |= {export_path(source.stem, fmt): inner[fmt] for fmt in INNER_FORMATS}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            if name.endswith(STORED_SUFFIXES):
                archive.writestr(name, data, compress_type=zipfile.ZIP_STORED)
            else:
                archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=DEFLATE_LEVEL)
    return buffer.getvalue()
