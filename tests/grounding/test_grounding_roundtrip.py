"""Property tests: format -> parse recovers the points (within the 1/1000 quantization), and
parse -> format gives back the same text, for images, image sets, videos and tracks."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from molmo2.grounding import GroundingResult, Point, Track, format_points, format_tracks, parse
from molmo2.grounding.format import scale_point

FAST = settings(max_examples=60, deadline=None)  # per test: a global profile would leak into other suites

sizes_st = st.tuples(st.floats(1, 5000), st.floats(1, 5000))
labels = st.sampled_from(["dogs", "red car", "the person on the left", "x"])
pointing_modes = st.sampled_from(["point", "point_then_count", "count_then_point"])
timestamps = st.integers(0, 3000).map(lambda k: round(k * 0.1, 1))


@st.composite
def points_in(draw, size, max_size=8, **where):
    w, h = size
    xs = st.floats(0, w, allow_nan=False)
    ys = st.floats(0, h, allow_nan=False)
    return [Point(x, y, **where) for x, y in draw(st.lists(st.tuples(xs, ys), max_size=max_size))]


def quantized(p, size):
    return scale_point(p.x, p.y, *size)


def check_close(original, parsed, size):
    """Each parsed point is within half a quantization step of its original."""
    w, h = size
    assert abs(original.x - parsed.x) <= w / 2000 * (1 + 1e-9) + 1e-9
    assert abs(original.y - parsed.y) <= h / 2000 * (1 + 1e-9) + 1e-9


def check_json(r: GroundingResult):
    again = GroundingResult.from_dict(json.loads(json.dumps(r.to_dict(), allow_nan=False)))
    assert again == r


@FAST
@given(data=st.data(), size=sizes_st, label=labels, mode=pointing_modes)
def test_single_image_roundtrip(data, size, label, mode):
    pts = data.draw(points_in(size))
    text = format_points(pts, size, label, mode=mode)
    r = parse(text, size)
    assert r.errors == []
    check_json(r)
    if not pts:
        assert text == "There are none." and r.count.stated == 0 and r.points == []
        return
    assert r.count.pointed == len(pts)
    assert r.count.stated == (None if mode == "point" else len(pts))
    assert [p.object_id for p in r.points] == list(range(1, len(pts) + 1))
    assert all(p.label == label and p.image == 0 and p.t is None for p in r.points)
    originals = sorted(pts, key=lambda p: quantized(p, size))
    assert [quantized(p, size) for p in originals] == [quantized(p, size) for p in r.points]
    for o, p in zip(originals, r.points):
        check_close(o, p, size)
    assert format_points(r.points, size, label, mode=mode) == text


@FAST
@given(data=st.data(), sizes=st.lists(sizes_st, min_size=1, max_size=4), label=labels)
def test_image_set_roundtrip(data, sizes, label):
    pts = []
    for i, size in enumerate(sizes):
        pts += data.draw(points_in(size, max_size=4, image=i))
    text = format_points(pts, sizes, label, mode="point_then_count")
    r = parse(text, sizes)
    assert r.errors == []
    check_json(r)
    assert r.count.pointed == len(pts) and len(r.points) == len(pts)
    for i, size in enumerate(sizes):
        want = sorted(quantized(p, size) for p in pts if p.image == i)
        got = [quantized(p, size) for p in r.points if p.image == i]
        assert got == want
    assert [p.object_id for p in r.points] == list(range(1, len(pts) + 1))
    assert format_points(r.points, sizes, label, mode="point_then_count") == text


@FAST
@given(data=st.data(), size=sizes_st, label=labels, ts=st.lists(timestamps, max_size=5, unique=True))
def test_video_points_roundtrip(data, size, label, ts):
    pts = []
    for t in ts:
        pts += data.draw(points_in(size, max_size=4, t=t))
    text = format_points(pts, size, label)
    r = parse(text, size)
    assert r.errors == []
    check_json(r)
    assert len(r.points) == len(pts)
    assert all(p.image is None for p in r.points)
    assert sorted((p.t, *quantized(p, size)) for p in pts) == sorted(
        (p.t, *quantized(p, size)) for p in r.points
    )
    assert [p.t for p in r.points] == sorted(p.t for p in r.points)
    assert format_points(r.points, size, label) == text


@st.composite
def tracks_st(draw, size):
    ts = draw(st.lists(timestamps, min_size=1, max_size=6, unique=True))
    tracks = []
    for object_id in draw(st.lists(st.integers(0, 99), max_size=4, unique=True)):
        visible = draw(st.lists(st.sampled_from(ts), unique=True))
        where = draw(points_in(size, max_size=len(visible)))
        pts = [Point(p.x, p.y, t=t) for p, t in zip(where, visible)]
        tracks.append(Track(object_id, None, pts))
    return tracks


def trajectories(tracks, size):
    return sorted(tuple(sorted((p.t, *quantized(p, size)) for p in t.points)) for t in tracks if t.points)


@FAST
@given(data=st.data(), size=sizes_st, label=labels)
def test_tracks_roundtrip(data, size, label):
    tracks = data.draw(tracks_st(size))
    text = format_tracks(tracks, size, label)
    r = parse(text, size)
    assert r.errors == [] and r.points == []
    check_json(r)
    num_objects = sum(1 for t in tracks if t.points)
    if num_objects == 0:
        assert text == "There are none."
        return
    assert [t.object_id for t in r.tracks] == list(range(1, num_objects + 1))
    assert trajectories(r.tracks, size) == trajectories(tracks, size)
    assert all(t.label == label for t in r.tracks)
    assert format_tracks(r.tracks, size, label) == text
