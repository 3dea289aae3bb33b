"""Windowed long-video answers: clip layout, ownership of overlaps, and track ids linked across windows."""

from __future__ import annotations

import pytest

from molmo2.errors import MediaError
from molmo2.grounding import GroundingResult, Point, Track
from molmo2.inference.pipeline import Molmo2, TrackAnswer
from molmo2.inference.windows import merge_windows, window_clips


def test_window_clips_cover_the_video_with_overlap():
    assert window_clips(25.0, 10.0, 2.0) == [(0.0, 10.0), (8.0, 18.0), (16.0, 25.0)]
    assert window_clips(5.0, 10.0, 2.0) == [(0.0, 5.0)]
    for bad in ((0.0, 0.0), (10.0, 10.0), (10.0, -1.0)):
        with pytest.raises(MediaError):
            window_clips(25.0, *bad)


def _track(oid, xy_by_t, label="car"):
    return Track(oid, label, [Point(x, y, t=t, object_id=oid, label=label) for t, (x, y) in sorted(xy_by_t.items())])


def test_tracks_keep_their_ids_across_windows():
    size = [(100.0, 100.0)]
    # window 1 (0-10 s): car A on the left, car B on the right
    w1 = GroundingResult("w1", size, tracks=[_track(1, {8.0: (10, 50), 9.0: (11, 50)}),
                                             _track(2, {8.0: (90, 50), 9.5: (88, 50)})])
    # window 2 (8-18 s): the model numbers them the other way round, and a new car C appears
    w2 = GroundingResult("w2", size, tracks=[_track(1, {8.0: (89, 51), 9.5: (88, 50), 12.0: (80, 50)}),
                                             _track(2, {8.0: (10, 51), 9.0: (12, 50), 14.0: (30, 50)}),
                                             _track(3, {15.0: (50, 10)})])
    merged = merge_windows([(0.0, 10.0), (8.0, 18.0)], [w1, w2])
    by_id = {t.object_id: t for t in merged.tracks}
    assert sorted(by_id) == [1, 2, 3]
    # w1 owns t < 9.0 s (the middle of the 8-10 s overlap), w2 the rest
    assert [(p.t, p.x) for p in by_id[1].points] == [(8.0, 10), (9.0, 12), (14.0, 30)]  # A: w1's 1, w2's 2
    assert [(p.t, p.x) for p in by_id[2].points] == [(8.0, 90), (9.5, 88), (12.0, 80)]  # B: w1's 2, w2's 1
    assert all(p.object_id == oid for oid, t in by_id.items() for p in t.points)
    assert merged.count.pointed == 3 and merged.count.stated is None


def test_points_are_kept_once_where_windows_overlap():
    size = [(100.0, 100.0)]
    w1 = GroundingResult("w1", size, points=[Point(1, 1, t=2.0), Point(2, 2, t=8.5), Point(3, 3, t=9.5)])
    w2 = GroundingResult("w2", size, points=[Point(2, 2, t=8.5), Point(3, 3, t=9.5), Point(4, 4, t=15.0)],
                         errors=["cut off"])
    merged = merge_windows([(0.0, 10.0), (8.0, 18.0)], [w1, w2])
    assert [(p.t, p.object_id) for p in merged.points] == [(2.0, 1), (8.5, 2), (9.5, 3), (15.0, 4)]
    assert merged.errors == ["window 8.0-18.0 s: cut off"]


def test_pipeline_windows_on_a_video(tiny_ckpt, media_dir):
    pipe = Molmo2.from_pretrained(tiny_ckpt)
    answer = pipe.track(media_dir / "clip.mp4", "the square", windows=(1.0, 0.5), max_new_tokens=3)
    assert type(answer) is TrackAnswer
    assert answer.media.timestamps[0] == 0.0 and answer.media.timestamps[-1] == pytest.approx(2.5)
    assert answer.text.startswith("[0.0-1.0 s] ") and answer.text.count("\n") == 3  # 4 windows
    with pytest.raises(MediaError, match="not one"):
        pipe.point(media_dir / "a.png", "dogs", windows=(1.0, 0.5))
    with pytest.raises(Exception, match="merges points"):
        pipe.ask(media_dir / "clip.mp4", "What?", windows=(1.0, 0.5))
