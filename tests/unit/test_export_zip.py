"""ZIP export from layers in memory (the job-end path): layer files encoded here, the three files inside."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
from PIL import Image

from samples.synthetic import make_poster
from services.common.manifest import layer_filename
from services.exports import build_exports


def test_zip_from_memory_encodes_full_canvas_layers_and_carries_the_other_formats() -> None:
    poster = make_poster(17, 240, 360)
    manifest = {
        "source": {"file": "flyer.webp"},
        "layers": [{"index": layer.index, "file": layer_filename(layer)} for layer in poster.layers],
        "exports": {},
    }
    built = build_exports(poster.layers, 240, 360, manifest)
    assert list(built) == ["psd", "pptx", "svg", "zip"]
    with zipfile.ZipFile(io.BytesIO(built["zip"])) as archive:
        inside = json.loads(archive.read("manifest.json"))
        assert inside["exports"] == {
            "psd": "exports/flyer.psd",
            "pptx": "exports/flyer.pptx",
            "svg": "exports/flyer.svg",
        }
        for fmt, path in inside["exports"].items():
            assert archive.read(path) == built[fmt]
        for layer in poster.layers:
            info = archive.getinfo(layer_filename(layer))
            assert info.compress_type == zipfile.ZIP_STORED  # PNG is compressed already
            full = np.asarray(Image.open(io.BytesIO(archive.read(info))))
            assert full.shape == (360, 240, 4)
            rows, cols = layer.bbox.slices()
            assert np.array_equal(full[rows, cols], layer.rgba)
            outside = full.copy()
            outside[rows, cols] = 0
            assert outside[..., 3].max() == 0
    # The caller's manifest is left as it was.
    assert manifest["exports"] == {}
