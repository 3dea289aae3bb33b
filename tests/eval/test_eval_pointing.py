"""Image pointing, video pointing and Point-Bench: one hand-built case per rule of evaluation.md §4, §7."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics import (
    InstanceMasks,
    image_pointing_prf1,
    mean_pointing,
    point_bench_mask,
    point_bench_scores,
    point_bench_success,
    rle_encode,
    video_pointing_prf1,
)
from molmo2.grounding.types import Point

W, H = 100, 80


def box(x0, y0, x1, y1, w=W, h=H):
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def P(x, y, t=None, oid=None):
    return Point(float(x), float(y), t=None if t is None else float(t), object_id=oid)


# ------------------------------------------------------------------------------------ image pointing


def test_image_all_hits():
    gt = [(10, 10), (60, 40)]
    masks = [box(5, 5, 15, 15), box(55, 35, 65, 45)]
    s = image_pointing_prf1([P(11, 9), P(59, 41)], gt, masks)
    assert (s.precision, s.recall, s.num_hits) == (1.0, 1.0, 2)
    assert s.f1 == pytest.approx(1.0, abs=1e-9)


def test_image_extra_prediction_lowers_precision_only():
    s = image_pointing_prf1([P(10, 10), P(90, 70)], [(10, 10)], [box(5, 5, 15, 15)])
    assert (s.precision, s.recall) == (0.5, 1.0)
    assert s.f1 == pytest.approx(2 / 3)


def test_image_matching_to_the_wrong_instance_is_a_miss():
    # The prediction lies inside A's mask but is closer to B's GT point: Hungarian pairs it with B.
    masks = [box(0, 30, 40, 60), box(55, 30, 65, 60)]
    gt = [(10, 45), (60, 45)]
    s = image_pointing_prf1([P(38, 45)], gt, masks)
    assert (s.num_hits, s.precision, s.recall, s.f1) == (0, 0.0, 0.0, 0.0)
    # with a second prediction near B, the first one is matched to A and both hit
    s2 = image_pointing_prf1([P(38, 45), P(60, 45)], gt, masks)
    assert s2.num_hits == 2


def test_image_empty_ground_truth_and_empty_prediction():
    assert image_pointing_prf1([], [], []).f1 == 1.0
    assert image_pointing_prf1([P(1, 1)], [], []).f1 == 0.0
    s = image_pointing_prf1([], [(10, 10)], [box(5, 5, 15, 15)])
    assert (s.precision, s.recall, s.f1) == (0.0, 0.0, 0.0)


def test_image_rounding_and_bounds_follow_the_official_rule():
    m = box(10, 10, 11, 11)  # the single pixel (10, 10)
    assert image_pointing_prf1([P(10.4, 9.6)], [(10, 10)], [m]).num_hits == 1
    assert image_pointing_prf1([P(10.6, 10)], [(10, 10)], [m]).num_hits == 0
    assert image_pointing_prf1([P(10.5, 10)], [(10, 10)], [m]).num_hits == 1  # round half to even -> 10
    full = np.ones((H, W), dtype=bool)
    assert image_pointing_prf1([P(W - 0.4, 5)], [(W - 1, 5)], [full]).num_hits == 0  # rounds to W: outside


def test_image_masks_as_rle_and_arrays_agree():
    masks = [box(5, 5, 15, 15), box(55, 35, 65, 45)]
    pred, gt = [P(11, 9), P(90, 41)], [(10, 10), (60, 40)]
    assert image_pointing_prf1(pred, gt, [rle_encode(m) for m in masks]) == image_pointing_prf1(
        pred, gt, np.stack(masks))


def test_image_bad_input():
    with pytest.raises(Molmo2Error, match="one mask per point"):
        image_pointing_prf1([P(1, 1)], [(1, 1), (2, 2)], [box(0, 0, 3, 3)])
    with pytest.raises(Molmo2Error, match="finite"):
        image_pointing_prf1([P(math.nan, 1)], [(1, 1)], [box(0, 0, 3, 3)])
    with pytest.raises(Molmo2Error, match=r"\[N, 2\]"):
        image_pointing_prf1(np.zeros((2, 3)), [(1, 1)], [box(0, 0, 3, 3)])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, W - 1), st.integers(0, H - 1)), max_size=6),
       st.lists(st.tuples(st.integers(0, W - 1), st.integers(0, H - 1)), max_size=6))
def test_image_scores_are_bounded_and_consistent(pred, gt):
    masks = [box(max(0, x - 3), max(0, y - 3), x + 4, y + 4) for x, y in gt]
    s = image_pointing_prf1([P(x, y) for x, y in pred], gt, masks)
    assert 0 <= s.precision <= 1 and 0 <= s.recall <= 1 and 0 <= s.f1 <= 1
    assert s.num_hits <= min(len(pred), len(gt))
    if pred and gt:
        assert s.precision == s.num_hits / len(pred) and s.recall == s.num_hits / len(gt)
    if pred == gt:  # every prediction sits on its own GT point
        assert s.recall == 1.0 or not gt


# ------------------------------------------------------------------------------------ video pointing

DUR = 10.0


def two_frame_instance():
    """One instance annotated at t = 2.0 and 2.5 s (the 2 fps grid), moving right by 10 px."""
    return [{2.0: box(10, 10, 30, 30), 2.5: box(20, 10, 40, 30)}]


def test_video_exact_timestamp_hit():
    s = video_pointing_prf1([P(30, 20, t=2.5)], [P(30, 20, t=2.5)], two_frame_instance(), DUR, (W, H))
    assert s.num_hits == 1 and s.f1 == pytest.approx(1.0, abs=1e-9)


def test_video_exact_timestamp_miss_outside_the_mask():
    s = video_pointing_prf1([P(15, 20, t=2.5)], [P(30, 20, t=2.5)], two_frame_instance(), DUR, (W, H))
    assert s.num_hits == 0  # (15, 20) is inside the t=2.0 mask but not the t=2.5 one


def test_video_off_grid_time_never_hits():
    for t in (2.4, 2.6, 2.25, 2.501):
        s = video_pointing_prf1([P(30, 20, t=t)], [P(30, 20, t=2.5)], two_frame_instance(), DUR, (W, H))
        assert s.num_hits == 0, t


def test_video_hit_on_another_annotated_frame_of_the_same_instance():
    s = video_pointing_prf1([P(15, 20, t=2.0)], [P(30, 20, t=2.5)], two_frame_instance(), DUR, (W, H))
    assert s.num_hits == 1


def test_video_matching_uses_normalized_time_and_space():
    # Two instances at the same place, 5 s apart. The prediction at t=7 is matched to the t=7.5 one
    # (time dominates), whose mask it hits; space alone would be a tie.
    gt = [P(50, 40, t=2.5), P(50, 40, t=7.5)]
    masks = [{2.5: box(40, 30, 60, 50)}, {7.0: box(40, 30, 60, 50), 7.5: box(40, 30, 60, 50)}]
    s = video_pointing_prf1([P(50, 40, t=7.0)], gt, masks, DUR, (W, H))
    assert (s.num_hits, s.precision, s.recall) == (1, 1.0, 0.5)


def test_video_matching_to_the_wrong_instance():
    masks = [{1.0: box(0, 30, 40, 60)}, {1.0: box(55, 30, 65, 60)}]
    gt = [P(10, 45, t=1.0), P(60, 45, t=1.0)]
    s = video_pointing_prf1([P(38, 45, t=1.0)], gt, masks, DUR, (W, H))
    assert s.num_hits == 0


def test_video_empty_ground_truth_and_empty_prediction():
    assert video_pointing_prf1([], [], [], DUR, (W, H)).f1 == 1.0
    assert video_pointing_prf1([P(1, 1, t=0.5)], [], [], DUR, (W, H)).f1 == 0.0
    s = video_pointing_prf1([], [P(30, 20, t=2.5)], two_frame_instance(), DUR, (W, H))
    assert (s.precision, s.recall, s.f1) == (0.0, 0.0, 0.0)
    agg = mean_pointing([video_pointing_prf1([], [], [], DUR, (W, H)), s])
    assert agg == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "valid": 0.0}


def test_video_instance_masks_from_an_id_map_give_the_same_scores():
    ids = np.zeros((2, H, W), dtype=np.uint16)
    ids[0][box(10, 10, 30, 30)] = 7
    ids[1][box(20, 10, 40, 30)] = 7
    inst = InstanceMasks.from_ids(ids, [2.0, 2.5])
    gt = [P(30, 20, t=2.5, oid=7)]
    for pred in ([P(30, 20, t=2.5)], [P(15, 20, t=2.5)], [P(15, 20, t=2.0)], [P(30, 20, t=2.4)]):
        a = video_pointing_prf1(pred, gt, inst, DUR, (W, H))
        b = video_pointing_prf1(pred, [P(30, 20, t=2.5)], two_frame_instance(), DUR, (W, H))
        assert a == b


def test_video_bad_input():
    with pytest.raises(Molmo2Error, match="time t"):
        video_pointing_prf1([P(1, 1)], [P(30, 20, t=2.5)], two_frame_instance(), DUR, (W, H))
    with pytest.raises(Molmo2Error, match="duration"):
        video_pointing_prf1([], [], [], 0.0, (W, H))
    with pytest.raises(Molmo2Error, match="mask sets"):
        video_pointing_prf1([], [P(30, 20, t=2.5)], [], DUR, (W, H))
    with pytest.raises(Molmo2Error, match="object_id"):
        video_pointing_prf1([], [P(30, 20, t=2.5)], InstanceMasks((W, H), {1: {}}), DUR, (W, H))


# ---------------------------------------------------------------------------------------- Point-Bench


def test_point_bench_all_points_must_be_inside():
    m = box(10, 10, 20, 20)
    assert point_bench_success([P(15, 15)], m)
    assert point_bench_success([P(15, 15), P(19.9, 19.9)], m)  # int() truncation: (19, 19)
    assert not point_bench_success([P(15, 15), P(50, 50)], m)
    assert not point_bench_success([], m)
    assert not point_bench_success([P(9.99, 15)], m)  # -> 9: outside


def test_point_bench_image_and_mask_bounds():
    m = box(0, 0, 20, 20, w=20, h=20)
    assert not point_bench_success([P(25, 5)], m, size=(30, 30))  # inside the image, outside the mask's shape
    assert not point_bench_success([P(5, 5)], m, size=(4, 4))  # outside the image


def test_point_bench_mask_threshold_and_summary():
    img = np.zeros((4, 4, 3), dtype=np.uint8)
    img[1, 2, 1] = 128
    img[2, 2, 0] = 127
    assert point_bench_mask(img).tolist() == [[False] * 4, [False, False, True, False], [False] * 4, [False] * 4]
    items = [("affordable", True), ("affordable", False), ("counting", True), ("reasoning", False),
             ("spatial", True), ("steerable", True)]
    s = point_bench_scores(items)
    assert s["affordable"] == 0.5 and s["average"] == pytest.approx((0.5 + 1 + 0 + 1 + 1) / 5)
    assert math.isnan(point_bench_scores(items[:2])["average"])
    with pytest.raises(Molmo2Error, match="category"):
        point_bench_scores([("nope", True)])
