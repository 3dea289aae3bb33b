"""Malformed, truncated and legacy output: parse keeps what it can, reports the rest, never raises."""

import json
import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from molmo2.grounding import GroundingResult, Point, Track, format_points, format_tracks, parse

SIZE = (640, 480)
SQUARE = (1000, 1000)

EXAMPLES = [
    'Counting the <points coords="1 1 231 448 2 502 447 3 760 452">dogs</points> shows a total of 3.',
    '<points coords="1 1 900 400 2 911 800">aasdf</points>',
    'There are 2 <points coords="1 1 120 300 2 640 310">cups</points>.',
    '<points alt="red car" coords="1 1 500 300">the car</points>',
    '<points coords="1 1 120 340 2 560 710;2 3 400 400">boats</points>',
    'Counting the <points coords="2.5 1 310 420;4.0 2 300 430 3 700 410">penguins</points> shows a total of 3.',
    '<tracks coords="0.0 1 259 340 2 510 600;0.5 1 262 338 2 515 598;1.0 2 520 590">person</tracks>',
    'A <points coords="1 1 100 1000">cat</points> and <points coords="1 1 010 999 2 1000 000">dogs</points>.',
    '<points coords="12.5 1 100 200 2 300 400;112.0 3 500 600">ball</points>',
    'Here: <point x="10.5" y="20" alt="a cat">cat</point>',
    '<points x1="10" y1="20" x2="30.5" y2="40" alt="two">things</points>',
]


def identity(p: Point):
    return (p.x, p.y, p.t, p.image, p.object_id)


def all_points(r: GroundingResult):
    return r.points + [p for t in r.tracks for p in t.points]


def check_sane(r: GroundingResult, sizes):
    json.dumps(r.to_dict(), allow_nan=False)
    widths = [w for w, _ in r.sizes]
    heights = [h for _, h in r.sizes]
    for p in all_points(r):
        assert math.isfinite(p.x) and math.isfinite(p.y)
        assert 0 <= p.x <= max(widths) and 0 <= p.y <= max(heights)


@pytest.mark.parametrize("text", EXAMPLES)
def test_every_prefix_never_raises_and_invents_nothing(text):
    sizes = [SIZE, (320, 200)] if "boats" in text else SIZE
    full = {identity(p) for p in all_points(parse(text, sizes))}
    assert full
    for n in range(len(text) + 1):
        r = parse(text[:n], sizes)
        check_sane(r, sizes)
        got = {identity(p) for p in all_points(r)}
        assert got <= full, f"prefix {text[:n]!r} gave points not in the full answer"
    assert not parse(text, sizes).errors


def test_cut_inside_coords_drops_possibly_incomplete_number():
    r = parse('<points coords="1 1 231 448 2 502 100', SQUARE)  # 100 might have been 1000
    assert [(p.x, p.y) for p in r.points] == [(231, 448)]
    assert any("cut off" in e for e in r.errors)
    r = parse('<points coords="1 1 231 448 2 502 100 ', SQUARE)  # the space ends the number
    assert [(p.x, p.y) for p in r.points] == [(231, 448), (502, 100)]
    r = parse('Counting the <points coords="1 1 231 448">do', SQUARE)
    assert r.points[0].label == "do" and any("closing" in e for e in r.errors)
    assert parse('<points coords="1 1 231 448">dogs</poin', SQUARE).points[0].label == "dogs"


GRAMMAR = list('<>/"= ;\t:,.0123456789abxyC()') + [
    "<points",
    "<tracks",
    "<point",
    ' coords="',
    '" ',
    "</points>",
    "</tracks>",
    " x1=",
    " alt=",
    "Click(",
    " 100",
    " 1000",
    " 2.5",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(GRAMMAR), max_size=40).map("".join))
def test_garbage_never_raises(text):
    for sizes in (SIZE, [SIZE, (10, 20)]):
        check_sane(parse(text, sizes), sizes)
    check_sane(parse(text, SIZE, video=True), SIZE)
    check_sane(parse(text, SIZE, video=False), SIZE)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_unicode_garbage_never_raises(text):
    check_sane(parse(text, SIZE), SIZE)


def test_huge_numbers_do_not_raise():
    digits = "9" * 5000
    for text in (
        f"shows a total of {digits}.",
        f"There are {digits} dogs",
        digits,
        f'<points coords="{digits} 1 100 100">a</points>',
        f'<points coords="1 {digits} 100 100">a</points>',
        f'<point x="{digits}" y="1e400">a</point>',
        f"Click({digits}.5, 1.5)",
    ):
        check_sane(parse(text, SIZE), SIZE)


def test_points_outside_the_image_are_dropped_and_reported():
    r = parse('<points coords="1 1 100 100 2 1001 500 3 200 200">a</points>', SQUARE)
    assert [p.object_id for p in r.points] == [1, 3]
    assert r.count.pointed == 2
    assert any("outside" in e and "1001" in e for e in r.errors)


def test_malformed_coordinates_resynchronize():
    r = parse('<points coords="1 1 231 448 2 502 3 760 452">dogs</points>', SQUARE)
    assert [(p.object_id, p.x, p.y) for p in r.points] == [(1, 231, 448), (3, 760, 452)]
    assert any("malformed" in e for e in r.errors)


def test_bad_image_keys():
    r = parse('<points coords="1 1 100 100;3 2 100 100;0 3 100 100;1.5 4 100 100">a</points>', [SIZE, SIZE])
    assert [p.object_id for p in r.points] == [1]
    assert len(r.errors) == 3


def test_tab_and_other_separators():
    for sep in ("\t", ";", ":", ","):
        r = parse(f'<points coords="1 1 100 100{sep}2 2 200 200">a</points>', [SQUARE, SQUARE])
        assert [(p.image, p.x) for p in r.points] == [(0, 100), (1, 200)], sep


def test_video_flag_overrides_the_key_guess():
    text = '<points coords="1 1 100 100;2 2 200 200">a</points>'
    assert [p.image for p in parse(text, SQUARE).points] == [0, 1]
    assert [p.t for p in parse(text, SQUARE, video=True).points] == [1.0, 2.0]
    r = parse('<points coords="2.0 1 100 100;2.5 2 200 200">a</points>', SQUARE, video=False)
    assert [p.image for p in r.points] == [1] and len(r.errors) == 1


def test_duplicates_are_reported():
    r = parse('<points coords="1 1 100 100 1 200 200">a</points>', SQUARE)
    assert len(r.points) == 2 and r.count.pointed == 1 and r.errors
    r = parse('<tracks coords="0.0 1 100 100 1 200 200;0.5 1 300 300">a</tracks>', SQUARE)
    assert [(p.t, p.x) for p in r.tracks[0].points] == [(0.0, 100), (0.5, 300)]
    assert any("twice" in e for e in r.errors)


def test_several_tags_in_one_answer():
    text = 'I see <points coords="1 1 100 100 2 300 300">cats</points> and <points coords="1 1 500 500">a dog</points>.'
    r = parse(text, SQUARE)
    assert [(p.label, p.object_id) for p in r.points] == [("cats", 1), ("cats", 2), ("a dog", 1)]
    assert r.count.pointed == 3 and r.count.stated is None
    r = parse(
        '<tracks coords="0.0 1 100 100">cat</tracks><tracks coords="0.0 1 200 200">dog</tracks>', SQUARE
    )
    assert [(t.label, t.object_id) for t in r.tracks] == [("cat", 1), ("dog", 1)]


def test_self_closing_and_missing_coords():
    r = parse('<points coords="1 1 100 100"/> then <points alt="x">y</points>', SQUARE)
    assert r.points == [Point(100, 100, None, 0, 1, None, None)]
    assert any("no coordinates" in e for e in r.errors)


def test_stated_counts():
    cases = {
        'Counting the <points coords="1 1 1 1">a</points> shows a total of 7.': 7,
        "There are 4 dogs.": 4,
        "There are none.": 0,
        " 12 ": 12,
        "12.": 12,
        "I count twelve.": None,
        "Pick 3 of them.": None,
    }
    for text, stated in cases.items():
        assert parse(text, SQUARE).count.stated == stated, text


def test_legacy_formats():
    r = parse('<point x="10.5" y="20" alt="a cat">cat</point>', (200, 100))
    assert r.points == [Point(21.0, 20.0, None, 0, None, "cat", "a cat")]
    r = parse('<points x1="10" y1="20" x2="50" y2="40" alt="two">things</points>', (200, 100))
    assert [(p.x, p.y, p.object_id, p.label) for p in r.points] == [
        (20, 20, 1, "things"),
        (100, 40, 2, "things"),
    ]
    r = parse("Click(50.0, 25.5)", (200, 100))
    assert [(p.x, p.y) for p in r.points] == [(100, 25.5)]
    r = parse('<point x="120" y="5">far</point> <point x="abc" y="5">bad</point>', (200, 100))
    assert r.points == [] and len(r.errors) == 2
    # Click is only a fallback: ignored when the answer has tags
    r = parse('Click(1.0, 1.0) <points coords="1 1 500 500">a</points>', SQUARE)
    assert [(p.x, p.y) for p in r.points] == [(500, 500)]


def test_bad_sizes_raise_value_error():
    for sizes in ((0, 10), (10,), "ab", [], [(1, 2, 3)], [(1, -2)], (True, 3)):
        with pytest.raises(ValueError):
            parse("", sizes)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        parse("", [SIZE, SIZE], video=True)
    with pytest.raises(ValueError):
        parse(None, SIZE)  # type: ignore[arg-type]


def test_numpy_sizes():
    np = pytest.importorskip("numpy")
    r = parse('<points coords="1 1 500 500;2 2 500 500">a</points>', np.array([[100, 50], [10, 20]]))
    assert [(p.x, p.y) for p in r.points] == [(50, 25), (5, 10)]
    assert parse('<points coords="1 1 500 500">a</points>', np.array([100.0, 50.0])).points[0].x == 50


def test_format_rejects_bad_input():
    with pytest.raises(ValueError):
        format_points([Point(1, 1, t=0.5, image=0)], SQUARE, "a")
    with pytest.raises(ValueError):
        format_points([Point(1, 1, t=0.5), Point(1, 1, image=0)], SQUARE, "a")
    with pytest.raises(ValueError):
        format_points([Point(1, 1, image=2)], [SQUARE, SQUARE], "a")
    with pytest.raises(ValueError):
        format_points([(float("nan"), 1)], SQUARE, "a")
    with pytest.raises(ValueError):
        format_tracks([Track(1, None, [Point(1, 1)])], SQUARE, "a")
    with pytest.raises(ValueError):
        format_tracks([Track(1, None, [Point(1, 1, t=0.0), Point(2, 2, t=0.0)])], SQUARE, "a")


def test_no_torch_import():
    code = "import sys, molmo2.grounding; assert 'torch' not in sys.modules, 'grounding imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


@settings(max_examples=25, deadline=None)
@given(
    xs=st.lists(st.tuples(st.floats(0, 640), st.floats(0, 480), st.integers(0, 40)), min_size=1, max_size=6),
    video=st.booleans(),
)
def test_every_prefix_of_generated_answers(xs, video):
    pts = [Point(x, y, t=k / 10) if video else Point(x, y, image=k % 3) for x, y, k in xs]
    sizes = SIZE if video else [SIZE, (100, 100), (3000, 20)]
    text = format_points(pts, sizes, "thing", mode="point_then_count")
    full = {identity(p) for p in parse(text, sizes).points}
    for n in range(len(text) + 1):
        r = parse(text[:n], sizes)
        assert {identity(p) for p in r.points} <= full
