"""Long videos in overlapping windows: which clips to ask about, and merging their points and tracks.

A video longer than ``max_frames / max_fps`` seconds is sampled sparsely (384 frames over an hour is one
frame every 9 s), which loses fast objects. ``Molmo2.point/count/track(..., windows=(length, overlap))``
instead asks about consecutive clips of ``length`` seconds that overlap by ``overlap`` seconds, each
sampled at the normal rate, and merges the answers here (pure functions, no torch):

* each window *owns* the part of the video from the middle of its overlap with the previous window to
  the middle of its overlap with the next, and only points at times it owns are kept (no duplicates
  where windows overlap, no gaps);
* track ids are linked across windows: a track of window w+1 takes the id of the track of window w
  that it is closest to over their shared timestamps in the overlap (mean pixel distance, greedy by
  distance, at most ``link_distance`` x the frame diagonal); unmatched tracks get new ids. So one
  object keeps one id through the video as long as consecutive windows see it in their overlap;
* points of pointing/counting answers have no identity across frames, so they are merged by
  ownership only and renumbered; the merged count is the number of points kept (``Count.stated`` is
  None: no window stated the whole video's count).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from molmo2.errors import MediaError
from molmo2.grounding import Count, GroundingResult, Point, Track

LINK_DISTANCE = 0.1  # of the frame diagonal
_SAME_TIME_S = 0.26  # two samples at most this far apart count as the same instant (2 fps grids)


def window_clips(duration: float, length: float, overlap: float) -> list[tuple[float, float]]:
    """Clips ``(start, end)`` covering ``[0, duration]``: ``length`` seconds each, consecutive ones
    overlapping by ``overlap`` seconds (the last one may be shorter)."""
    if not (math.isfinite(length) and length > 0):
        raise MediaError(f"window length must be a positive number of seconds, got {length!r}")
    if not (math.isfinite(overlap) and 0 <= overlap < length):
        raise MediaError(f"window overlap must be >= 0 and shorter than the window ({length} s), got {overlap!r}")
    if duration <= length:
        return [(0.0, float(duration))]
    clips, start = [], 0.0
    while True:
        end = min(start + length, duration)
        clips.append((start, end))
        if end >= duration:
            return clips
        start = end - overlap


def _owned(clips: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The time range each window owns: split overlaps in the middle."""
    owned = []
    for k, (a, b) in enumerate(clips):
        lo = -math.inf if k == 0 else (a + clips[k - 1][1]) / 2
        hi = math.inf if k == len(clips) - 1 else (clips[k + 1][0] + b) / 2
        owned.append((lo, hi))
    return owned


def _track_distance(a: Track, b: Track, lo: float, hi: float) -> float | None:
    """Mean pixel distance of two tracks over their (near-)shared timestamps in ``[lo, hi]``."""
    pa = [p for p in a.points if p.t is not None and lo - _SAME_TIME_S <= p.t <= hi + _SAME_TIME_S]
    pb = [p for p in b.points if p.t is not None and lo - _SAME_TIME_S <= p.t <= hi + _SAME_TIME_S]
    dists = []
    for p in pa:
        q = min(pb, key=lambda q: abs(q.t - p.t), default=None)
        if q is not None and abs(q.t - p.t) <= _SAME_TIME_S:
            dists.append(math.hypot(p.x - q.x, p.y - q.y))
    return sum(dists) / len(dists) if dists else None


def merge_windows(
    clips: Sequence[tuple[float, float]],
    results: Sequence[GroundingResult],
    link_distance: float = LINK_DISTANCE,
) -> GroundingResult:
    """One result for the whole video from per-window results (times already on the video's timeline)."""
    assert len(clips) == len(results) and results
    size = results[0].sizes[0] if results[0].sizes else (1.0, 1.0)
    max_dist = link_distance * math.hypot(*size)
    owned = _owned(clips)
    points: list[Point] = []
    tracks: dict[int, Track] = {}
    prev: list[tuple[int, Track]] = []  # (global id, the previous window's track)
    next_id = 1
    errors: list[str] = []
    for k, (result, (lo, hi)) in enumerate(zip(results, owned)):
        errors += [f"window {clips[k][0]:.1f}-{clips[k][1]:.1f} s: {e}" for e in result.errors]
        points += [p for p in result.points if p.t is None or lo <= p.t < hi]
        # link this window's tracks to the previous window's over their overlap
        ids: dict[int, int] = {}
        if k and prev:
            a, b = clips[k][0], clips[k - 1][1]
            pairs = sorted((d, gid, t.object_id) for gid, pt in prev for t in result.tracks
                           if (d := _track_distance(pt, t, a, b)) is not None and d <= max_dist)
            used = set()
            for _, gid, oid in pairs:
                if gid not in used and oid not in ids:
                    ids[oid] = gid
                    used.add(gid)
        current = []
        for t in result.tracks:
            gid = ids.get(t.object_id)
            if gid is None:
                gid, next_id = next_id, next_id + 1
            kept = [dataclasses.replace(p, object_id=gid) for p in t.points if p.t is not None and lo <= p.t < hi]
            merged = tracks.setdefault(gid, Track(gid, t.label, [], t.alt))
            merged.points += kept
            current.append((gid, t))
        prev = current
    points = [dataclasses.replace(p, object_id=i + 1) for i, p in enumerate(points)]
    merged_tracks = [dataclasses.replace(t, points=sorted(t.points, key=lambda p: p.t))
                     for t in tracks.values() if t.points]
    text = "\n".join(f"[{a:.1f}-{b:.1f} s] {r.text}" for (a, b), r in zip(clips, results))
    pointed = len(points) + len(merged_tracks)
    return GroundingResult(text=text, sizes=list(results[0].sizes), points=points, tracks=merged_tracks,
                           count=Count(stated=None, pointed=pointed), errors=errors)
