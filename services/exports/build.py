"""The pure layer: in-memory layers in, export bytes out (no blob store, no files)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from services.common.errors import InvalidInput
from services.common.layers import Layer
from services.exports.source import ExportSource
from services.exports.to_pptx import build_pptx
from services.exports.to_psd import build_psd
from services.exports.to_svg import build_svg
from services.exports.to_zip import INNER_FORMATS, build_zip

FORMATS = ("psd", "pptx", "svg", "zip")
MEDIA_TYPES = {
    "psd": "image/vnd.adobe.photoshop",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "svg": "image/svg+xml",
    "zip": "application/zip",
}
_BUILDERS: dict[str, Callable[[ExportSource], bytes]] = {"psd": build_psd, "pptx": build_pptx, "svg": build_svg}


def check_format(fmt: str) -> str:
    """`fmt` lower-cased if it is one of FORMATS; InvalidInput naming the choices otherwise."""
    normal = fmt.strip().lower()
    if normal not in FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return normal


def build_from_source(
    source: ExportSource, formats: Iterable[str], inner: Mapping[str, bytes] | None = None
) -> dict[str, bytes]:
    """Bytes of each format in `formats` (sharing encodings); ZIP reuses any PSD/PPTX/SVG bytes in `inner`."""
    wanted = [check_format(fmt) for fmt in formats]
    built: dict[str, bytes] = dict(inner or {})
    needed = {fmt for fmt in wanted if fmt != "zip"} | (set(INNER_FORMATS) if "zip" in wanted else set())
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The ZIP's full-canvas PNGs encode (zlib, no GIL) while the other formats are built.
        layer_files = pool.submit(source.full_canvas_files) if "zip" in wanted else None
        for fmt in (fmt for fmt in INNER_FORMATS if fmt in needed and fmt not in built):
            built[fmt] = _BUILDERS[fmt](source)
        if layer_files is not None:
            built["zip"] = build_zip(source, built, layer_files.result())
    return {fmt: built[fmt] for fmt in wanted}


def build_exports(
    layers: list[Layer],
    width: int,
    height: int,
    manifest: Mapping,
    formats: Iterable[str] = FORMATS,
    layer_files: Mapping[str, bytes] | None = None,
) -> dict[str, bytes]:
    """Export bytes by format for a poster held in memory (the runner calls this at job end).

    `manifest` is the job's manifest dict (names the files and the source); `layer_files`
    optionally passes the full-canvas layer PNGs already encoded, by manifest path, so the
    ZIP does not encode them again.
    """
    source = ExportSource(width, height, layers, manifest, layer_files or {})
    return build_from_source(source, formats)


def build_export(layers: list[Layer], width: int, height: int, manifest: Mapping, fmt: str) -> bytes:
    """One export's bytes for a poster held in memory."""
    return build_exports(layers, width, height, manifest, [fmt])[check_format(fmt)]
