"""The LayerD protocol and element metrics on tiny stacks whose scores are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from bench.layerd_metrics import (
    Plane,
    composite_planes,
    dtw_path,
    edit_distance,
    element_matches,
    evaluate,
    from_layers,
    group_by_occlusion,
    pair_scores,
    plane,
    text_recall,
)
from services.common.layers import BBox, Layer, LayerKind

SIZE = 4


def square(color: tuple[int, int, int], rows: slice, cols: slice, opacity: float = 1.0) -> Plane:
    """A flat layer on the 4x4 canvas covering [rows, cols]."""
    alpha = np.zeros((SIZE, SIZE))
    alpha[rows, cols] = opacity
    return plane(np.broadcast_to(np.array(color, np.float32), (SIZE, SIZE, 3)), alpha)


BLACK, GREY, WHITE, RED, BLUE = (0, 0, 0), (128, 128, 128), (255, 255, 255), (255, 0, 0), (0, 0, 255)
ALL = slice(0, SIZE)


def test_plane_crops_to_alpha() -> None:
    layer = square(RED, slice(1, 3), slice(2, 4))
    assert (layer.y, layer.x, layer.alpha.shape) == (1, 2, (2, 2))
    assert square(RED, slice(0, 0), ALL).empty


def test_pair_scores_by_hand() -> None:
    pred = square((100, 100, 100), slice(0, 1), slice(0, 2))
    alpha = np.zeros((SIZE, SIZE))
    alpha[0, 0], alpha[0, 1] = 1.0, 0.5
    truth = plane(np.full((SIZE, SIZE, 3), 200.0), alpha)
    l1, iou = pair_scores(pred, truth)
    # min: 1 + 0.5, max: 1 + 1; both ground-truth pixels are 100 levels off in every channel.
    assert iou == pytest.approx(0.75)
    assert l1 == pytest.approx(100 / 255)
    empty = square(RED, slice(0, 0), ALL)
    assert pair_scores(empty, empty) == (0.0, 0.0)
    # Prediction empty where the truth is drawn: straight colour 0 there.
    assert pair_scores(empty, square(WHITE, slice(0, 1), ALL)) == (pytest.approx(1.0), 0.0)


def test_composite_is_over_in_straight_colour() -> None:
    lower = square(RED, ALL, ALL)
    upper = square(BLUE, slice(0, 2), ALL, opacity=0.5)
    merged = composite_planes([lower, upper])
    assert merged.alpha.min() == 1.0
    assert merged.rgb[0, 0].tolist() == [127.5, 0.0, 127.5] and merged.rgb[3, 0].tolist() == [255.0, 0.0, 0.0]
    # Two half-transparent layers: alpha 0.75, colour weighted 0.25 / 0.5 then un-premultiplied.
    both = composite_planes([square(RED, ALL, ALL, 0.5), square(BLUE, ALL, ALL, 0.5)])
    assert both.alpha[0, 0] == pytest.approx(0.75)
    assert both.rgb[0, 0].tolist() == pytest.approx([85.0, 0.0, 170.0])


def test_grouping_by_occlusion() -> None:
    background = square(BLACK, ALL, ALL)
    left = square(RED, ALL, slice(0, 1))
    right = square(BLUE, ALL, slice(3, 4))
    over_left = square(WHITE, slice(0, 1), slice(0, 2))
    groups = group_by_occlusion([background, left, right, over_left])
    # First taken (front): right and over_left; then left; then the background. Back to front:
    assert len(groups) == 3
    assert groups[0].alpha.shape == (SIZE, SIZE) and groups[0].rgb[0, 0].tolist() == [0, 0, 0]
    assert (groups[1].x, groups[1].alpha.shape) == (0, (SIZE, 1))
    assert (groups[2].x, groups[2].alpha.shape) == (0, (SIZE, SIZE))
    assert np.count_nonzero(groups[2].alpha) == 4 + 2


def test_dtw_path_by_hand() -> None:
    cost = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    assert dtw_path(cost) == [(0, 0), (1, 1), (2, 2)]
    assert dtw_path(cost[:2]) == [(0, 0), (1, 1), (1, 2)]
    assert dtw_path(np.array([[0.3, 0.2]])) == [(0, 0), (0, 1)]
    assert dtw_path(np.zeros((2, 2))) == [(0, 0), (1, 1)]


def test_identical_stacks_score_perfectly() -> None:
    stack = [square(BLACK, ALL, ALL), square(RED, slice(0, 2), slice(0, 2), 0.6), square(BLUE, slice(1, 3), ALL)]
    for grouped in (True, False):
        levels = evaluate(stack, stack, grouped=grouped)
        assert len(levels) == 6
        assert all(level.alpha_iou == 1.0 and level.rgb_l1 == 0.0 for level in levels)


def test_one_opaque_layer_by_hand() -> None:
    truth = [square(BLUE, ALL, ALL), square(RED, slice(0, 2), slice(0, 2))]
    poster = composite_planes(truth)
    levels = evaluate([poster], truth, grouped=False)
    # (poster, bg): IoU 1, L1 = 4 of 16 pixels off by 2/3. (poster, red): IoU 4/16, L1 0. Two layers: no merge.
    assert levels[0].pairs == 2
    assert levels[0].rgb_l1 == pytest.approx((4 / 16 * 2 / 3) / 2)
    assert levels[0].alpha_iou == pytest.approx((1 + 0.25) / 2)
    assert levels[5] == levels[0]


def test_merges_join_a_split_element_and_grouping_already_does() -> None:
    truth = [square(GREY, ALL, ALL), square(WHITE, slice(0, 2), slice(0, 2))]
    halves = [square(GREY, ALL, ALL), square(WHITE, slice(0, 2), slice(0, 1)), square(WHITE, slice(0, 2), slice(1, 2))]
    levels = evaluate(halves, truth, grouped=False)
    # Each half against the square: IoU 1/2, L1 over 4 pixels of which 2 are 255 off: 1/2. Path: bg, half, half
    # (a half against the grey background costs more: IoU 1/8 and about 1/2 colour error).
    assert levels[0].alpha_iou == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert levels[0].rgb_l1 == pytest.approx((0 + 0.5 + 0.5) / 3)
    assert all(level.alpha_iou == pytest.approx(1.0) and level.rgb_l1 == 0.0 for level in levels[1:])
    # The halves do not overlap, so regrouping makes them one layer before any merge.
    assert evaluate(halves, truth, grouped=True)[0].alpha_iou == pytest.approx(1.0)


def test_element_matches_one_to_one() -> None:
    truth = [square(BLACK, ALL, ALL), square(RED, slice(0, 2), slice(0, 2)), square(BLUE, slice(3, 4), slice(3, 4))]
    pred = [square(BLACK, ALL, ALL), square(RED, slice(0, 2), slice(0, 1)), square(RED, slice(0, 2), slice(0, 2))]
    found = element_matches(pred, truth)
    # The blue pixel is missed; the half-square (IoU 0.5) loses to the exact square.
    assert found == [1.0, 1.0, 0.0]
    assert element_matches(pred[:2], truth) == [1.0, 0.5, 0.0]


def test_text_recall_by_hand() -> None:
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3
    exact, similar = text_recall(["SUMMER SALE", "Live  bands\nfree"], ["SUMMER SALE", "live bands", "xyz"])
    assert exact == pytest.approx(1 / 3)
    # 1.0, 1 - 1/10, and "xyz" is further than its own length from everything.
    assert similar == pytest.approx((1.0 + 0.9 + 0.0) / 3)
    assert text_recall(["여름 세일"], ["여름  세일"]) == (1.0, 1.0)
    assert text_recall([], []) == (1.0, 1.0)


def test_from_layers_scales_premultiplied() -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[:, 0] = (255, 0, 0, 255)  # the left column of a 2x2 block at (2, 0): half of one scaled pixel
    layer = Layer(1, LayerKind.SHAPE, BBox(0, 2, 2, 2), rgba)
    (full,) = from_layers([layer], SIZE, SIZE)
    assert (full.y, full.x, full.alpha.shape) == (2, 0, (2, 1))
    (half,) = from_layers([layer], SIZE, SIZE, scale=0.5)
    # Colour stays red at the half-covered edge instead of darkening towards the transparent black.
    assert (half.y, half.x) == (1, 0) and half.alpha.tolist() == [[0.5]]
    assert half.rgb[0, 0].tolist() == pytest.approx([255.0, 0.0, 0.0])
