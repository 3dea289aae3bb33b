"""Points and tracks -> the exact answer text Molmo2 was trained to produce (html-v2, model.md §7).

This is the inverse of ``parse`` and is what training data and prompts are built with, so it follows
the official ``UnifiedPointFormatter`` byte for byte:

- each pixel point is divided by the original (W, H) of its image/frame, clipped to [0, 1], multiplied
  by 1000 and rounded with Python's ``round`` (half to even), then printed ``%03d`` (``007``, ``1000``);
- within one image/frame the points are sorted by (x, y) **after** rounding, so ties created by the
  rounding cannot reorder the text; point ids are 1-based and continue across images/frames;
- groups are ``"{key} {id} {x} {y} {id} {x} {y} ..."`` joined by ``;``; the key is ``1`` for a single
  image, the 1-based image index for an image set, ``str(round(t, 1))`` (``0.5``, ``12.0``) for video;
- tracks renumber objects 1.. in order of first appearance (within a frame in (x, y) order), keep the
  number for the whole video, and list each frame's objects by id;
- no points at all gives ``There are none.`` whatever the mode.

Groups with no points are left out (the official data pipelines only pass images/frames that have
points; the official formatter would print a bare key such as ``"2 "``, which its own parser skips).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from molmo2.grounding.types import Point, Size, Track, normalize_sizes

Mode = Literal["point_then_count", "count_then_point", "point", "count"]
MODES: tuple[str, ...] = ("point_then_count", "count_then_point", "point", "count")
NONE_TEXT = "There are none."


def timestamp_key(t: float) -> str:
    """The group key of a video timestamp in seconds: ``str(round(t, 1))``, e.g. ``'0.5'``, ``'12.0'``."""
    return str(round(float(t), 1))


def scale_point(x: float, y: float, width: float, height: float) -> tuple[int, int]:
    """Pixel (x, y) -> integer (X, Y) in 0..1000, exactly as in training (clip, x1000, round half even)."""
    nx, ny = float(x) / width, float(y) / height
    if not (math.isfinite(nx) and math.isfinite(ny)):
        raise ValueError(f"point ({x}, {y}) is not finite; pass pixel coordinates as real numbers")
    nx, ny = max(0.0, min(nx, 1.0)), max(0.0, min(ny, 1.0))
    return round(1000 * nx), round(1000 * ny)


def wrap_count(tag: str, count: int, mode: Mode = "point") -> str:
    """Wrap a ``<points>`` tag in the sentence of a pointing/counting mode (``build_point_output``).

    ``point_then_count`` -> ``Counting the {tag} shows a total of {count}.``;
    ``count_then_point`` -> ``There are {count} {tag}.``; ``point`` -> ``{tag}``; ``count`` -> ``{count}``;
    a count of 0 -> ``There are none.`` in every mode.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if count == 0:
        return NONE_TEXT
    if mode == "point_then_count":
        return f"Counting the {tag} shows a total of {count}."
    if mode == "count_then_point":
        return f"There are {count} {tag}."
    if mode == "count":
        return str(count)
    return tag


def _tag(name: str, coords: str, label: str, alt: str | None) -> str:
    alt_attr = "" if alt is None else f' alt="{alt}"'
    return f'<{name}{alt_attr} coords="{coords}">{label}</{name}>'


def _group(key: str, first_id: int, scaled: Sequence[tuple[int, int]]) -> str:
    body = " ".join(f"{first_id + i} {x:03d} {y:03d}" for i, (x, y) in enumerate(scaled))
    return f"{key} {body}"


def format_points(
    points: Sequence[Point | tuple[float, float]],
    sizes: Size | Sequence[Size],
    label: str,
    *,
    alt: str | None = None,
    mode: Mode = "point",
) -> str:
    """Pixel points -> the training target text, e.g. ``<points coords="1 1 231 448">dogs</points>``.

    points: ``Point`` objects (or bare ``(x, y)`` pixel pairs for a single image). A point with ``t``
        set is a video point; one with ``image`` set (0-based) belongs to that image of a set; one with
        neither is on the single image. Video and image points cannot be mixed. ``object_id`` and
        ``label`` of the points are ignored: ids are reassigned 1.. in output order.
    sizes: ``(width, height)`` of the image/video, or one ``(width, height)`` per image of a set.
    label: the text inside the tag; alt: optional ``alt="..."`` attribute.
    mode: the count wrapper, see ``wrap_count``.
    """
    size_list, is_set = normalize_sizes(sizes)
    video: dict[float, list[tuple[float, float]]] = {}
    images: dict[int, list[tuple[float, float]]] = {}
    for p in points:
        if isinstance(p, Point):
            xy, t, image = (p.x, p.y), p.t, p.image
        else:
            xy, t, image = (p[0], p[1]), None, None
        if t is not None and image is not None:
            raise ValueError(f"{p!r} has both t and image; a point is on a video frame or on an image")
        if t is not None:
            video.setdefault(float(t), []).append(xy)
        else:
            images.setdefault(0 if image is None else int(image), []).append(xy)
    if video and images:
        raise ValueError("cannot mix video points (t set) and image points in one answer")
    if video and is_set and len(size_list) != 1:
        raise ValueError("video points need one (width, height) for the whole video, not a list")

    groups: list[tuple[str, Size, list[tuple[float, float]]]] = []
    for t in sorted(video):
        groups.append((timestamp_key(t), size_list[0], video[t]))
    for image in sorted(images):
        if is_set and not 0 <= image < len(size_list):
            raise ValueError(f"point on image {image} (0-based) but sizes has {len(size_list)} entries")
        groups.append((str(image + 1), size_list[image] if is_set else size_list[0], images[image]))

    next_id, texts = 1, []
    for key, (w, h), xys in groups:
        scaled = sorted(scale_point(x, y, w, h) for x, y in xys)
        texts.append(_group(key, next_id, scaled))
        next_id += len(scaled)
    num_points = next_id - 1
    if num_points == 0:
        return NONE_TEXT
    return wrap_count(_tag("points", ";".join(texts), label, alt), num_points, mode)


def format_tracks(
    tracks: Sequence[Track],
    size: Size,
    label: str,
    *,
    alt: str | None = None,
    empty: str = NONE_TEXT,
) -> str:
    """Object tracks -> ``<tracks coords="0.0 1 259 340 2 510 600;0.5 ...">{label}</tracks>``.

    tracks: one ``Track`` per object; every point needs ``t`` (seconds). A track simply has no point at
        the timestamps where its object is occluded or absent. The given ``object_id`` only identifies
        the track: output ids are renumbered 1.. by first appearance (ties within a frame by (x, y)).
    size: ``(width, height)`` of the video frames. empty: the text when there is no point at all
        (training used ``There are none.`` and, for an empty track list, ``No tracks available.``).
    """
    size_list, is_set = normalize_sizes(size)
    if is_set and len(size_list) != 1:
        raise ValueError("tracks need one (width, height) for the whole video, not a list")
    w, h = size_list[0]
    frames: dict[float, list[tuple[int, tuple[int, int]]]] = {}
    for track_index, track in enumerate(tracks):
        seen: set[float] = set()
        for p in track.points:
            if p.t is None:
                raise ValueError(f"track {track.object_id} has a point without t; tracks need timestamps")
            t = float(p.t)
            if t in seen:
                raise ValueError(f"track {track.object_id} has two points at t={t}; keep one per frame")
            seen.add(t)
            frames.setdefault(t, []).append((track_index, scale_point(p.x, p.y, w, h)))

    new_ids: dict[int, int] = {}
    texts = []
    for t in sorted(frames):
        objects = sorted(frames[t], key=lambda o: o[1])  # stable: ties keep track order
        for track_index, _ in objects:
            new_ids.setdefault(track_index, len(new_ids) + 1)
        listed = sorted((new_ids[i], xy) for i, xy in objects)
        texts.append(f"{timestamp_key(t)} " + " ".join(f"{i} {x:03d} {y:03d}" for i, (x, y) in listed))
    if not texts:
        return empty
    return _tag("tracks", ";".join(texts), label, alt)
