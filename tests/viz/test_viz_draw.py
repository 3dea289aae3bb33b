"""Display rules (which marker shows when and where) and painting (the right colour at the right pixel)."""

from __future__ import annotations

import numpy as np
import pytest

from molmo2.errors import MediaError
from molmo2.grounding import GroundingResult, Point, Track
from molmo2.viz import PALETTE, Overlay, Style, color_for, default_interval, draw_frame, draw_image
from molmo2.viz.draw import RIM


def _grey(width=160, height=120, value=90) -> np.ndarray:
    return np.full((height, width, 3), value, np.uint8)  # [H, W, 3]


def test_colors_are_stable_per_object_id_and_label():
    assert color_for(1) == PALETTE[0] and color_for(2, "x") == PALETTE[1]
    assert color_for(len(PALETTE) + 1) == PALETTE[0]
    assert color_for(None, "dog") == color_for(None, "dog") in PALETTE
    assert color_for(None, None) == PALETTE[0]


def test_default_interval_follows_molmo2_sampling():
    assert default_interval(None) == 0.5 and default_interval(10.0) == 0.5
    assert default_interval(3830.0) == pytest.approx(10.0)  # 384 frames over the video


def test_style_scales_with_image_size():
    small, large = Style.for_size(160, 120), Style.for_size(1920, 1080)
    assert small.radius < large.radius and small.font_size < large.font_size


def test_points_show_within_half_an_interval(video_result):
    ov = Overlay(video_result, interval=0.5)
    texts = lambda t: sorted(m.text for m in ov.markers_at(t))  # noqa: E731
    assert "1 dog" in texts(0.5) and "1 dog" in texts(0.25) and "1 dog" in texts(0.75)
    assert "1 dog" not in texts(0.2) and "1 dog" not in texts(0.8)
    assert "2 dog" in texts(1.5) and "2 dog" not in texts(0.5)


def test_points_without_timestamp_show_on_every_frame():
    r = GroundingResult("", [(100, 100)], points=[Point(10, 10, label="x")])
    ov = Overlay(r)
    assert len(ov.markers_at(0.0)) == 1 and len(ov.markers_at(99.0)) == 1


def test_track_is_interpolated_between_close_keyframes_and_held_at_the_ends(video_result):
    ov = Overlay(video_result, interval=0.5, trail=8)
    (m,) = [m for m in ov.markers_at(0.25) if m.text == "3 cat"]
    assert (m.x, m.y) == pytest.approx((60.0, 90.0))
    assert m.trail == ((40.0, 90.0),)
    (m,) = [m for m in ov.markers_at(1.2) if m.text == "3 cat"]  # held after the last keyframe
    assert (m.x, m.y) == (120.0, 90.0) and m.trail == ((40.0, 90.0), (80.0, 90.0))
    assert not [m for m in ov.markers_at(1.3) if m.text == "3 cat"]
    assert not [m for m in ov.markers_at(-0.3) if m.text == "3 cat"]


def test_track_is_not_interpolated_across_a_gap():
    r = GroundingResult("", [(100, 100)], tracks=[Track(1, None, [Point(0, 0, t=0.0), Point(100, 100, t=3.0)])])
    ov = Overlay(r, interval=0.5)
    assert [(m.x, m.y) for m in ov.markers_at(0.2)] == [(0.0, 0.0)]
    assert ov.markers_at(1.5) == []  # not visible between the keyframes
    assert [(m.x, m.y) for m in ov.markers_at(2.8)] == [(100.0, 100.0)]


def test_trail_keeps_the_last_n_positions():
    pts = [Point(float(i), 0.0, t=0.5 * i) for i in range(10)]
    ov = Overlay(GroundingResult("", [(100, 100)], tracks=[Track(1, None, pts)]), interval=0.5, trail=3)
    (m,) = ov.markers_at(4.5)
    assert m.x == 9.0 and m.trail == ((6.0, 0.0), (7.0, 0.0), (8.0, 0.0))
    ov0 = Overlay(GroundingResult("", [(100, 100)], tracks=[Track(1, None, pts)]), interval=0.5, trail=0)
    assert ov0.markers_at(4.5)[0].trail == ()


def test_draw_image_puts_the_object_colour_under_the_point():
    r = GroundingResult("", [(160, 120)], points=[Point(40, 30, object_id=2, label="dog")])
    out = np.asarray(draw_image(_grey(), r))  # [H, W, 3]
    assert tuple(out[30, 40]) == PALETTE[1]
    assert tuple(out[31, 41]) == PALETTE[1] and tuple(out[29, 39]) == PALETTE[1]
    assert tuple(out[110, 150]) == (90, 90, 90)  # far away: untouched
    r_ = Style.for_size(160, 120).radius
    assert tuple(out[30, 40 - r_ - 1]) == RIM  # the white rim around the disc


def test_draw_image_does_not_modify_the_input():
    img = _grey()
    draw_image(img, GroundingResult("", [(160, 120)], points=[Point(40, 30)]))
    assert (img == 90).all()


def test_image_set_points_go_on_their_own_image():
    r = GroundingResult("", [(160, 120), (160, 120)],
                        points=[Point(20, 20, image=0, object_id=1), Point(100, 80, image=1, object_id=2)])
    a, b = (np.asarray(draw_image(_grey(), r, k)) for k in (0, 1))
    assert tuple(a[20, 20]) == PALETTE[0] and tuple(a[80, 100]) == (90, 90, 90)
    assert tuple(b[80, 100]) == PALETTE[1] and tuple(b[20, 20]) == (90, 90, 90)


def test_points_are_scaled_when_the_image_has_another_size():
    r = GroundingResult("", [(160, 120)], points=[Point(40, 30, object_id=1)])
    out = np.asarray(draw_image(_grey(320, 240), r))
    assert tuple(out[60, 80]) == PALETTE[0]


def test_draw_frame_shows_points_only_near_their_time(video_result):
    ov = Overlay(video_result, interval=0.5)
    near = np.asarray(draw_frame(_grey(), ov, 0.5))
    far = np.asarray(draw_frame(_grey(), ov, 1.5))
    assert tuple(near[30, 40]) == PALETTE[0]
    assert tuple(far[30, 40]) == (90, 90, 90)
    assert tuple(far[30, 120]) == PALETTE[1]


def test_markers_near_the_border_are_clipped_not_dropped():
    r = GroundingResult("", [(160, 120)], points=[Point(0, 0, object_id=1, label="a long label at the edge")])
    out = np.asarray(draw_image(_grey(), r))
    assert tuple(out[0, 0]) == PALETTE[0]


def test_overlay_accepts_the_dict_form(video_result):
    ov = Overlay(video_result.to_dict(), interval=0.5)
    assert [m.text for m in ov.markers_at(0.5)] == [m.text for m in Overlay(video_result, interval=0.5).markers_at(0.5)]


def test_bad_input_raises_media_error():
    with pytest.raises(MediaError, match="GroundingResult"):
        Overlay("not a result")
    with pytest.raises(MediaError, match="interval"):
        Overlay(GroundingResult("", [(1, 1)]), interval=0)
    with pytest.raises(MediaError, match=r"\[H, W, 3\]"):
        draw_image(np.zeros((4, 4), np.float32), GroundingResult("", [(4, 4)]))
