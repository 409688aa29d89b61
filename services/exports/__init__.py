"""Exports a designer can open and edit: PSD, PPTX, SVG and a ZIP of everything (docs/exports.md).

- `ensure_export(blobs, manifest_uri, fmt)`: a finished job's export from its stored files,
  built once and stored next to the manifest as exports/<source stem>.<fmt>.
- `build_exports(layers, width, height, manifest, formats)`: the same bytes from layers in
  memory, for the runner at job end; `store_exports` puts them where ensure_export finds them.
"""

from services.exports.build import FORMATS, MEDIA_TYPES, build_export, build_exports, check_format
from services.exports.source import export_path, export_stem
from services.exports.store import ensure_export, store_exports

__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "build_export",
    "build_exports",
    "check_format",
    "ensure_export",
    "export_path",
    "export_stem",
    "store_exports",
]
