"""Golden tests: the exact example strings of model.md §7, parsed and rebuilt byte for byte."""

import pytest

from molmo2.grounding import (
    Point,
    Track,
    format_points,
    format_tracks,
    parse,
    timestamp_key,
    wrap_count,
)

# sizes of 1000 x 1000 make pixels equal the written 0..1000 values, so the examples read directly
SQUARE = (1000, 1000)


def xy(points):
    return [(p.x, p.y) for p in points]


def flat(points):
    return [c for p in points for c in (p.x, p.y)]


def test_point_then_count():
    text = 'Counting the <points coords="1 1 231 448 2 502 447 3 760 452">dogs</points> shows a total of 3.'
    r = parse(text, SQUARE)
    assert r.errors == []
    assert xy(r.points) == [(231, 448), (502, 447), (760, 452)]
    assert [p.object_id for p in r.points] == [1, 2, 3]
    assert {p.label for p in r.points} == {"dogs"}
    assert all(p.image == 0 and p.t is None for p in r.points)
    assert (r.count.stated, r.count.pointed) == (3, 3)
    # input deliberately out of order: the formatter sorts by (x, y)
    pts = [Point(760, 452), Point(231, 448), Point(502, 447)]
    assert format_points(pts, SQUARE, "dogs", mode="point_then_count") == text


def test_point_mode_and_pixel_scaling():
    text = '<points coords="1 1 900 400 2 911 800">aasdf</points>'
    r = parse(text, (640, 480))
    assert flat(r.points) == pytest.approx([576, 192, 583.04, 384])
    assert r.count.stated is None and r.count.pointed == 2
    assert format_points(r.points, (640, 480), "aasdf") == text


def test_count_then_point():
    text = 'There are 2 <points coords="1 1 120 300 2 640 310">cups</points>.'
    r = parse(text, SQUARE)
    assert (r.count.stated, r.count.pointed) == (2, 2)
    assert format_points([(640, 310), (120, 300)], SQUARE, "cups", mode="count_then_point") == text


def test_alt_text():
    text = '<points alt="red car" coords="1 1 500 300">the car</points>'
    r = parse(text, SQUARE)
    assert r.points == [Point(500, 300, None, 0, 1, "the car", "red car")]
    assert format_points([(500, 300)], SQUARE, "the car", alt="red car") == text


def test_multi_image():
    text = '<points coords="1 1 120 340 2 560 710;2 3 400 400">boats</points>'
    sizes = [(2000, 1000), (500, 250)]
    r = parse(text, sizes)
    assert r.errors == []
    assert [(p.image, p.object_id) for p in r.points] == [(0, 1), (0, 2), (1, 3)]
    assert flat(r.points) == pytest.approx([240, 340, 1120, 710, 200, 100])
    pts = [Point(200, 100, image=1), Point(1120, 710, image=0), Point(240, 340, image=0)]
    assert format_points(pts, sizes, "boats") == text


def test_video_points():
    text = (
        'Counting the <points coords="2.5 1 310 420;4.0 2 300 430 3 700 410">penguins</points>'
        " shows a total of 3."
    )
    r = parse(text, SQUARE)
    assert [(p.t, p.image, p.object_id) for p in r.points] == [(2.5, None, 1), (4.0, None, 2), (4.0, None, 3)]
    assert (r.count.stated, r.count.pointed) == (3, 3)
    pts = [Point(700, 410, t=4), Point(310, 420, t=2.5), Point(300, 430, t=4.0)]
    assert format_points(pts, SQUARE, "penguins", mode="point_then_count") == text


def test_tracks():
    text = '<tracks coords="0.0 1 259 340 2 510 600;0.5 1 262 338 2 515 598;1.0 2 520 590">person</tracks>'
    r = parse(text, SQUARE)
    assert r.points == [] and r.errors == []
    assert [t.object_id for t in r.tracks] == [1, 2]
    assert [(p.t, p.x, p.y) for p in r.tracks[0].points] == [(0.0, 259, 340), (0.5, 262, 338)]
    assert [(p.t, p.x, p.y) for p in r.tracks[1].points] == [
        (0.0, 510, 600),
        (0.5, 515, 598),
        (1.0, 520, 590),
    ]
    assert r.count.pointed == 2
    # the formatter renumbers by first appearance (x, y order within a frame), whatever the input ids
    tracks = [
        Track(7, None, [Point(520, 590, t=1.0), Point(510, 600, t=0.0), Point(515, 598, t=0.5)]),
        Track(3, None, [Point(259, 340, t=0.0), Point(262, 338, t=0.5)]),
    ]
    assert format_tracks(tracks, SQUARE, "person") == text


def test_single_point_track_prompt():
    r = parse('Track the following point <points coords="0.0 1 259 340">ball</points> in the video.', SQUARE)
    assert r.points == [Point(259, 340, 0.0, None, 1, "ball")]


def test_there_are_none():
    r = parse("There are none.", SQUARE)
    assert r.points == [] and r.errors == []
    assert (r.count.stated, r.count.pointed, r.count.value) == (0, 0, 0)
    for mode in ("point", "point_then_count", "count_then_point", "count"):
        assert format_points([], SQUARE, "dogs", mode=mode) == "There are none."
    assert format_tracks([], SQUARE, "person") == "There are none."
    assert format_tracks([], SQUARE, "person", empty="No tracks available.") == "No tracks available."


def test_count_mode_is_bare_number():
    assert format_points([(1, 2), (3, 4)], SQUARE, "x", mode="count") == "2"
    r = parse("2", SQUARE)
    assert (r.count.stated, r.count.pointed) == (2, 0)


def test_wrap_count():
    tag = '<points coords="1 1 001 002">a</points>'
    assert wrap_count(tag, 1, "point_then_count") == f"Counting the {tag} shows a total of 1."
    assert wrap_count(tag, 1, "count_then_point") == f"There are 1 {tag}."
    assert wrap_count(tag, 1, "point") == tag
    assert wrap_count(tag, 1, "count") == "1"
    assert wrap_count(tag, 0, "point") == "There are none."
    with pytest.raises(ValueError, match="unknown mode"):
        wrap_count(tag, 1, "points")  # type: ignore[arg-type]


def test_quantization_rules():
    # %03d, clip to [0, 1], round half to even (Python round), sort after rounding
    assert format_points([(7, 45)], SQUARE, "a") == '<points coords="1 1 007 045">a</points>'
    assert format_points([(-5, 1200)], SQUARE, "a") == '<points coords="1 1 000 1000">a</points>'
    assert format_points([(0.5, 2.5)], SQUARE, "a") == '<points coords="1 1 000 002">a</points>'
    # 100.4 and 100.2 both round to 100, so the tie is broken by y, not by the raw x
    text = format_points([(100.2, 900), (100.4, 100)], SQUARE, "a")
    assert text == '<points coords="1 1 100 100 2 100 900">a</points>'


def test_timestamp_key():
    assert timestamp_key(0.5) == "0.5"
    assert timestamp_key(12) == "12.0"
    assert timestamp_key(2.04) == "2.0"
    assert timestamp_key(3.96) == "4.0"


def test_package_docstring_example():
    import doctest

    import molmo2.grounding

    assert doctest.testmod(molmo2.grounding).failed == 0
