"""Matting refinement on hand-made posters with known true alphas: guided and deep, edges, colours, clean-up."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from services.common.errors import InvalidInput
from services.common.layers import BBox, Layer, LayerKind, composite, psnr
from services.common.options import MattingOptions
from services.matting import deep
from services.matting.cleanup import clean
from services.matting.colours import NEEDED_SLACK, exact_colour, needed_alpha
from services.matting.refine import LayerRefiner

WIDTH, HEIGHT = 240, 180
DISC_COLOUR = (220, 40, 40)
PANEL_COLOUR = (40, 90, 220)
PANEL_ALPHA = 0.55
TEXT_COLOUR = (250, 250, 235)
GLOW_COLOUR = (250, 220, 60)


@dataclass
class Poster:
    """A flat poster, the true full-canvas alphas it was made from, its true layers and rough engine-like ones."""

    image: np.ndarray
    true_alpha: dict[str, np.ndarray]
    truth: list[Layer]
    layers: list[Layer]


def _layer_from_canvas(index: int, kind: LayerKind, rgb: tuple[int, int, int], alpha: np.ndarray) -> Layer:
    """Crops a full-canvas float alpha with a flat colour to its tight box, as an engine would."""
    alpha8 = np.round(alpha * 255).astype(np.uint8)
    ys, xs = np.nonzero(alpha8)
    box = BBox(int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
    rows, cols = box.slices()
    rgba = np.zeros((box.h, box.w, 4), np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = alpha8[rows, cols]
    rgba[rgba[..., 3] == 0, :3] = 0
    return Layer(index=index, kind=kind, bbox=box, rgba=rgba, name=f"layer {index}")


def _background() -> Layer:
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    rgba = np.empty((HEIGHT, WIDTH, 4), np.uint8)
    rgba[..., 0] = np.round(30 + 150 * ys / HEIGHT)
    rgba[..., 1] = np.round(60 + 120 * xs / WIDTH)
    rgba[..., 2] = np.round(120 + 100 * (1 - ys / HEIGHT))
    rgba[..., 3] = 255
    return Layer(index=0, kind=LayerKind.BACKGROUND, bbox=BBox(0, 0, WIDTH, HEIGHT), rgba=rgba)


def _disc_alpha(cx: float = 90.0, cy: float = 85.0, radius: float = 45.0) -> np.ndarray:
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    distance = np.hypot(xs + 0.5 - cx, ys + 0.5 - cy)
    return np.clip(radius - distance + 0.5, 0.0, 1.0)


def _panel_alpha(grow: int = 0) -> np.ndarray:
    alpha = np.zeros((HEIGHT, WIDTH))
    alpha[60 - grow : 140 + grow, 120 - grow : 205 + grow] = PANEL_ALPHA
    return alpha


def _text_alpha() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.putText(mask, "SALE", (150, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2, cv2.LINE_AA)
    return mask.astype(np.float64) / 255.0


def _make(true_alpha: dict[str, np.ndarray], colours: dict[str, tuple[int, int, int]], rough: dict[str, np.ndarray]):
    kinds = {name: LayerKind.TEXT if name == "text" else LayerKind.SHAPE for name in true_alpha}
    truth = [_background()] + [
        _layer_from_canvas(i, kinds[name], colours[name], alpha)
        for i, (name, alpha) in enumerate(true_alpha.items(), 1)
    ]
    image = np.round(composite(truth, WIDTH, HEIGHT)).astype(np.uint8)
    layers = [truth[0]] + [
        _layer_from_canvas(i, kinds[name], colours[name], rough[name]) for i, name in enumerate(true_alpha, 1)
    ]
    return Poster(image=image, true_alpha=true_alpha, truth=truth, layers=layers)


def make_poster() -> Poster:
    """Background, anti-aliased disc, semi-transparent panel over the disc, small text on top.

    The rough layers are what a rough producer hands over: binary masks, a panel box two pixels too large.
    """
    true_alpha = {"disc": _disc_alpha(), "panel": _panel_alpha(), "text": _text_alpha()}
    colours = {"disc": DISC_COLOUR, "panel": PANEL_COLOUR, "text": TEXT_COLOUR}
    rough = {
        "disc": (true_alpha["disc"] >= 0.5).astype(float),
        "panel": _panel_alpha(grow=2),
        "text": (true_alpha["text"] >= 0.5).astype(float),
    }
    return _make(true_alpha, colours, rough)


def make_soft_poster() -> Poster:
    """A glow with a wide feathered edge (Gaussian, sigma 3 px) cut off by the canvas's left and top borders.

    Rough: the glow thresholded at half, with hard edges.
    """
    disc = (_disc_alpha(cx=30.0, cy=20.0, radius=40.0) >= 0.5).astype(np.float64)
    glow = cv2.GaussianBlur(disc, (0, 0), 3.0)
    return _make({"glow": glow}, {"glow": GLOW_COLOUR}, {"glow": (glow >= 0.5).astype(float)})


def refine_all(poster: Poster, options: MattingOptions | None = None) -> list[Layer]:
    refiner = LayerRefiner(poster.image, options or MattingOptions())
    return [refiner.refine(layer) for layer in poster.layers]


def full_alpha(layer: Layer) -> np.ndarray:
    """The layer's alpha on the whole canvas, in [0, 1]."""
    canvas = np.zeros((HEIGHT, WIDTH))
    canvas[layer.bbox.slices()] = layer.rgba[..., 3] / 255.0
    return canvas


def soft_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.minimum(a, b).sum() / np.maximum(a, b).sum())


def grown(box: BBox, margin: int) -> BBox:
    left, top = max(box.x - margin, 0), max(box.y - margin, 0)
    right, bottom = min(box.x + box.w + margin, WIDTH), min(box.y + box.h + margin, HEIGHT)
    return BBox(left, top, right - left, bottom - top)


@pytest.fixture(scope="module")
def poster() -> Poster:
    return make_poster()


@pytest.fixture(scope="module")
def refined(poster: Poster) -> list[Layer]:
    return refine_all(poster)


@pytest.fixture(scope="module")
def pymatting_ready() -> None:
    """The deep method's solvers loaded once for this module (compiled on a machine without the numba cache)."""
    deep.warm_up()


def test_recomposition_matches_the_poster(poster: Poster, refined: list[Layer]) -> None:
    rough_db = psnr(poster.image, composite(poster.layers, WIDTH, HEIGHT))
    refined_db = psnr(poster.image, composite(refined, WIDTH, HEIGHT))
    assert refined_db >= 45.0 > rough_db


@pytest.mark.parametrize(("name", "index"), [("disc", 1), ("panel", 2), ("text", 3)])
def test_alpha_gets_closer_to_the_truth(poster: Poster, refined: list[Layer], name: str, index: int) -> None:
    truth = poster.true_alpha[name]
    rough_iou = soft_iou(full_alpha(poster.layers[index]), truth)
    refined_iou = soft_iou(full_alpha(refined[index]), truth)
    assert refined_iou > rough_iou + 0.005
    assert refined_iou > 0.99


def test_a_feathered_edge_at_the_canvas_border_gets_closer_to_the_truth() -> None:
    soft = make_soft_poster()
    truth = soft.true_alpha["glow"]
    rough = soft.layers[1]
    assert rough.bbox.x == 0 and rough.bbox.y == 0  # the glow runs off the canvas on two sides
    rough_db = psnr(soft.image, composite(soft.layers, WIDTH, HEIGHT))
    for options in (MattingOptions(), MattingOptions(radius=10, eps=1e-4)):
        layers = refine_all(soft, options)
        assert soft_iou(full_alpha(layers[1]), truth) > soft_iou(full_alpha(rough), truth) + 0.02
        # The glow's far tail is missing from the rough layer, so the composite cannot be exact; it gets closer.
        assert psnr(soft.image, composite(layers, WIDTH, HEIGHT)) > rough_db + 3


def test_layers_the_poster_already_explains_come_back_unchanged(poster: Poster) -> None:
    # The true layers composite to the poster exactly: an exact producer's layers are not touched.
    refiner = LayerRefiner(poster.image, MattingOptions())
    for layer in poster.truth:
        assert refiner.refine(layer) is layer


def test_a_layer_under_another_keeps_its_covered_pixels(poster: Poster) -> None:
    # The true disc under the rough panel: where the panel covers the disc's edge the poster shows the
    # panel, which says nothing about the disc there; its pixels stay as the producer made them.
    refiner = LayerRefiner(poster.image, MattingOptions())
    refiner.refine(poster.layers[0])
    disc = poster.truth[1]
    assert refiner.refine(disc) is disc


def test_semi_transparent_panel_keeps_its_own_colour(poster: Poster, refined: list[Layer]) -> None:
    alpha = full_alpha(refined[2])
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.int64)
    rgb[refined[2].bbox.slices()] = refined[2].rgba[..., :3]
    disc = poster.true_alpha["disc"]
    # Within a few pixels of the disc's edge the disc's own edge colours, solved from a poster that
    # shows the panel over them, carry some blue; the panel compensates there.
    disc_edge = cv2.dilate(((disc > 0) & (disc < 1)).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    inside = (poster.true_alpha["panel"] > 0) & ~disc_edge
    assert np.abs(rgb[inside] - PANEL_COLOUR).max() <= 5
    assert abs(np.median(alpha[inside]) * 255 - round(PANEL_ALPHA * 255)) <= 1
    # The two extra pixels of the rough panel's box are gone (but for rounding residue of the disc's edge below).
    assert alpha[poster.true_alpha["panel"] == 0].max() < 0.02


def test_cut_out_edges_carry_the_layer_colour(poster: Poster) -> None:
    # A cut-out engine copies the poster's pixels, so its edge pixels mix in the background.
    rough = poster.layers[1]
    rgba = rough.rgba.copy()
    rgba[..., :3] = np.where(rgba[..., 3:] > 0, poster.image[rough.bbox.slices()], 0)
    refiner = LayerRefiner(poster.image, MattingOptions())
    refiner.refine(poster.layers[0])
    refined = refiner.refine(Layer(index=1, kind=LayerKind.SHAPE, bbox=rough.bbox, rgba=rgba))
    alpha = refined.rgba[..., 3]
    clear_of_panel = poster.true_alpha["panel"][refined.bbox.slices()] == 0
    edge = (alpha > 25) & (alpha < 230) & clear_of_panel
    error = np.abs(refined.rgba[..., :3][edge].astype(int) - DISC_COLOUR).max(axis=1)
    assert edge.sum() > 100
    assert error.mean() <= 8 and error.max() <= 32


def test_layers_come_back_in_order_with_metadata(poster: Poster, refined: list[Layer]) -> None:
    assert [layer.index for layer in refined] == [layer.index for layer in poster.layers]
    for before, after in zip(poster.layers, refined, strict=True):
        assert (after.id, after.kind, after.name) == (before.id, before.kind, before.name)
        assert after.rgba.shape == (after.bbox.h, after.bbox.w, 4)


def test_background_passes_through(poster: Poster, refined: list[Layer]) -> None:
    assert refined[0] is poster.layers[0]


def test_refinement_stays_inside_box_and_margin(poster: Poster, refined: list[Layer]) -> None:
    margin = MattingOptions().margin_px
    touched = np.zeros((HEIGHT, WIDTH), bool)
    for before, after in zip(poster.layers[1:], refined[1:], strict=True):
        region = grown(before.bbox, margin)
        assert region.x <= after.bbox.x and after.bbox.x + after.bbox.w <= region.x + region.w
        assert region.y <= after.bbox.y and after.bbox.y + after.bbox.h <= region.y + region.h
        touched[region.slices()] = True
    unchanged = composite(poster.layers, WIDTH, HEIGHT)[~touched]
    assert np.array_equal(composite(refined, WIDTH, HEIGHT)[~touched], unchanged)


def test_off_passes_through_byte_identical(poster: Poster) -> None:
    refined = refine_all(poster, MattingOptions(method="off"))
    for before, after in zip(poster.layers, refined, strict=True):
        assert after is before


def test_specks_are_removed_and_pinholes_filled(poster: Poster) -> None:
    disc = poster.layers[1]
    rgba = disc.rgba.copy()
    rgba[44:46, 44:46, 3] = 0  # pinhole in the middle of the disc
    speck = Layer(index=2, kind=LayerKind.SHAPE, bbox=BBox(200, 150, 2, 2), rgba=np.full((2, 2, 4), 255, np.uint8))
    refiner = LayerRefiner(poster.image, MattingOptions())
    refiner.refine(poster.layers[0])
    refined_disc = refiner.refine(Layer(index=1, kind=LayerKind.SHAPE, bbox=disc.bbox, rgba=rgba))
    hole = full_alpha(refined_disc)[disc.bbox.y + 44 : disc.bbox.y + 46, disc.bbox.x + 44 : disc.bbox.x + 46]
    assert (hole == 1).all()
    # A speck that refinement would erase entirely is kept as it came: layers are never dropped.
    assert refiner.refine(speck) is speck


def test_speck_next_to_a_shape_is_removed(poster: Poster) -> None:
    rough = poster.layers[1]
    rgba = np.zeros((rough.bbox.h + 12, rough.bbox.w + 12, 4), np.uint8)
    rgba[12:, 12:] = rough.rgba
    rgba[1:3, 1:3] = (*DISC_COLOUR, 255)  # 2x2 stray pixels out on the background, clear of the panel
    box = BBox(rough.bbox.x - 12, rough.bbox.y - 12, rough.bbox.w + 12, rough.bbox.h + 12)
    refiner = LayerRefiner(poster.image, MattingOptions())
    refiner.refine(poster.layers[0])
    refined = refiner.refine(Layer(index=1, kind=LayerKind.SHAPE, bbox=box, rgba=rgba))
    assert not full_alpha(refined)[box.y : box.y + 6, box.x : box.x + 6].any()


def test_text_keeps_small_glyph_parts(poster: Poster) -> None:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.putText(mask, "i.", (20, 170), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1, cv2.LINE_AA)
    image = poster.image.copy()
    image[mask > 0] = 255
    text = _layer_from_canvas(1, LayerKind.TEXT, (255, 255, 255), (mask > 0).astype(float))
    refiner = LayerRefiner(image, MattingOptions(min_area_px=64))
    refiner.refine(poster.layers[0])
    refined = refiner.refine(text)
    _, labels = cv2.connectedComponents((full_alpha(refined) > 0.5).astype(np.uint8))
    _, expected = cv2.connectedComponents((mask > 0).astype(np.uint8))
    assert labels.max() == expected.max() >= 2


def test_fully_transparent_layer_is_kept(poster: Poster) -> None:
    empty = Layer(index=1, kind=LayerKind.SHAPE, bbox=BBox(10, 10, 20, 20), rgba=np.zeros((20, 20, 4), np.uint8))
    refiner = LayerRefiner(poster.image, MattingOptions())
    refiner.refine(poster.layers[0])
    assert refiner.refine(empty) is empty


@pytest.mark.parametrize("position", [(0, 0), (WIDTH - 1, HEIGHT - 1), (WIDTH // 2, 0), (90, 85)])
@pytest.mark.parametrize("method", ["guided", "deep"])
def test_one_pixel_layers_come_back_whole(
    poster: Poster, position: tuple[int, int], method: str, pymatting_ready
) -> None:
    x, y = position
    pixel = Layer(1, LayerKind.SHAPE, BBox(x, y, 1, 1), np.array([[[*poster.image[y, x], 255]]], np.uint8))
    refiner = LayerRefiner(poster.image, MattingOptions(method=method))
    refiner.refine(poster.layers[0])
    refined = refiner.refine(pixel)
    assert refined.rgba.shape == (refined.bbox.h, refined.bbox.w, 4) and refined.rgba[..., 3].any()
    assert refined.bbox.x >= 0 and refined.bbox.x + refined.bbox.w <= WIDTH
    assert refined.bbox.y >= 0 and refined.bbox.y + refined.bbox.h <= HEIGHT


def test_layers_at_the_canvas_border_stay_inside_it(poster: Poster) -> None:
    # A rough disc cut off by all four borders: refinement needs pixels past the edge and must not ask for them.
    truth = _disc_alpha(cx=WIDTH / 2, cy=HEIGHT / 2, radius=130.0)
    soft = _make({"big": truth}, {"big": DISC_COLOUR}, {"big": (truth >= 0.5).astype(float)})
    assert soft.layers[1].bbox == BBox(0, 0, WIDTH, HEIGHT)
    for method in ("guided", "deep"):
        refined = refine_all(soft, MattingOptions(method=method))[1]
        assert refined.bbox == BBox(0, 0, WIDTH, HEIGHT)
        assert soft_iou(full_alpha(refined), truth) > soft_iou(full_alpha(soft.layers[1]), truth)


def test_deep_refines_a_small_layer(poster: Poster, pymatting_ready) -> None:
    refined = refine_all(poster, MattingOptions(method="deep"))
    assert psnr(poster.image, composite(refined, WIDTH, HEIGHT)) >= 45.0
    for name, index in (("disc", 1), ("panel", 2), ("text", 3)):
        truth = poster.true_alpha[name]
        assert soft_iou(full_alpha(refined[index]), truth) > soft_iou(full_alpha(poster.layers[index]), truth) + 0.005
    soft = make_soft_poster()
    glow = refine_all(soft, MattingOptions(method="deep"))[1]
    assert soft_iou(full_alpha(glow), soft.true_alpha["glow"]) > soft_iou(
        full_alpha(soft.layers[1]), soft.true_alpha["glow"]
    )


def test_closed_form_solves_edges_across_tiles_and_keeps_known_values(pymatting_ready) -> None:
    # A soft diagonal edge crossing several solver tiles: its unknown band comes out close to the truth.
    height, width = 3 * deep.TILE_PX // 2, 3 * deep.TILE_PX
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    truth = np.clip((xs - 0.5 * ys - deep.TILE_PX) / 6.0 + 0.5, 0.0, 1.0)
    image = np.rint(truth[..., None] * [200, 40, 30] + (1 - truth[..., None]) * [20, 60, 220]).astype(np.uint8)
    unknown = (truth > 0.02) & (truth < 0.98)
    known = np.where(unknown, 0.5, truth).astype(np.float32)
    solved = deep.closed_form_alpha(image, known, unknown, 1e-6)
    assert np.array_equal(solved[~unknown], known[~unknown])
    assert np.abs(solved - truth)[unknown].mean() < 0.02 and np.abs(solved - truth)[unknown].max() < 0.1


def test_clean_only_touches_the_pixels_it_is_given() -> None:
    alpha = np.zeros((20, 20), np.float32)
    alpha[3:5, 3:5] = 0.9  # a speck
    alpha[10:18, 10:18] = 1.0
    alpha[13, 13] = 0.0  # a pinhole
    speck_pixels = np.flatnonzero(alpha > 0.5)[:2]  # only half of the speck may change
    clean(alpha, np.concatenate([speck_pixels, [13 * 20 + 13]]), 16, 0.02, 0.98)
    assert alpha.ravel()[speck_pixels].max() == 0.0 and alpha[4, 3] == 0.9
    assert alpha[13, 13] == 1.0


def test_exact_colours_reproduce_the_poster_and_lean_to_the_layer_colour() -> None:
    rng = np.random.default_rng(1)
    canvas = rng.uniform(0, 255, (500, 3))
    colour = rng.uniform(0, 255, (500, 3))
    alpha8 = rng.integers(1, 256, 500)
    poster = np.rint(alpha8[:, None] / 255 * colour + (1 - alpha8[:, None] / 255) * canvas)
    prior = np.clip(colour + rng.normal(0, 30, colour.shape), 0, 255)
    assert (needed_alpha(poster, canvas) <= alpha8 / 255 + 1e-9).all()  # the poster is rounded within the slack
    solved = exact_colour(poster, canvas, alpha8 / 255.0, prior)
    recomposed = alpha8[:, None] / 255 * solved + (1 - alpha8[:, None] / 255) * canvas
    assert np.abs(recomposed - poster).max() <= NEEDED_SLACK + 1e-9
    exact = np.clip((poster - (1 - alpha8[:, None] / 255) * canvas) / (alpha8[:, None] / 255), 0, 255)
    low = alpha8 < 40
    assert np.abs(solved - prior)[low].mean() < np.abs(exact - prior)[low].mean()


@pytest.mark.parametrize(
    "options",
    [
        MattingOptions(radius=0),
        MattingOptions(radius=65),
        MattingOptions(eps=0.0),
        MattingOptions(eps=-1e-3),
        MattingOptions(min_area_px=-1),
        MattingOptions(margin_px=-1),
        MattingOptions(method="bilateral"),
    ],
)
def test_bad_parameters_are_rejected(poster: Poster, options: MattingOptions) -> None:
    with pytest.raises(InvalidInput, match="matting"):
        LayerRefiner(poster.image, options)


@pytest.mark.parametrize(
    "guide",
    [
        np.zeros((HEIGHT, WIDTH), np.uint8),
        np.zeros((HEIGHT, WIDTH, 4), np.uint8),
        np.zeros((HEIGHT, WIDTH, 3), np.float32),
        np.zeros((0, WIDTH, 3), np.uint8),
    ],
)
def test_bad_guide_is_rejected(guide: np.ndarray) -> None:
    with pytest.raises(InvalidInput, match="guide"):
        LayerRefiner(guide, MattingOptions())


def test_guide_and_layers_must_agree(poster: Poster) -> None:
    small_guide = poster.image[: HEIGHT // 2, : WIDTH // 2]
    refiner = LayerRefiner(small_guide, MattingOptions())
    with pytest.raises(InvalidInput, match="not inside"):
        refiner.refine(poster.layers[0])


@pytest.mark.parametrize("box", [BBox(-1, 0, 10, 10), BBox(WIDTH - 5, 0, 10, 10), BBox(0, HEIGHT - 9, 10, 10)])
def test_layer_outside_the_canvas_is_rejected(poster: Poster, box: BBox) -> None:
    layer = Layer(index=1, kind=LayerKind.SHAPE, bbox=box, rgba=np.zeros((box.h, box.w, 4), np.uint8))
    refiner = LayerRefiner(poster.image, MattingOptions())
    with pytest.raises(InvalidInput, match="not inside"):
        refiner.refine(layer)


def test_layers_out_of_order_are_rejected(poster: Poster) -> None:
    refiner = LayerRefiner(poster.image, MattingOptions())
    refiner.refine(poster.layers[2])
    with pytest.raises(InvalidInput, match="bottom to top"):
        refiner.refine(poster.layers[1])


def test_a_layer_whose_refinement_fails_stays_on_the_canvas_of_the_layers_above(
    poster: Poster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.common.errors import PosterError

    def refined_above(panel: str) -> list[Layer]:
        """Layers 2 and 3 refined after the disc (layer 1) failed, passed through, or never came."""
        refiner = LayerRefiner(poster.image, MattingOptions())
        real = refiner._refine

        def refine_but_the_disc(layer: Layer) -> Layer:
            if layer.index != 1:
                return real(layer)
            if panel == "fails":
                raise PosterError("the solver broke")
            return layer

        monkeypatch.setattr(refiner, "_refine", refine_but_the_disc)
        refiner.refine(poster.layers[0])
        if panel == "fails":
            with pytest.raises(PosterError):
                refiner.refine(poster.layers[1])
        elif panel == "unchanged":
            assert refiner.refine(poster.layers[1]) is poster.layers[1]
        return [refiner.refine(layer) for layer in poster.layers[2:]]

    failed, unchanged, missing = refined_above("fails"), refined_above("unchanged"), refined_above("missing")
    assert all((a.rgba == b.rgba).all() for a, b in zip(failed, unchanged, strict=True))
    # The panel lies over the disc: refined against a canvas without it, its edge colours differ.
    assert not all((a.rgba == b.rgba).all() for a, b in zip(failed, missing, strict=True))
