"""Grounding results -> formats other tools read: COCO keypoints and MOTChallenge-style CSV.

JSON needs nothing here: ``GroundingResult.to_dict()`` is JSON-ready (schema in ``types.py``).

COCO (``to_coco``) has no notion of a bare point, so each point becomes one annotation of a one-keypoint
category: ``keypoints=[x, y, 2]`` (2 = labeled and visible), ``num_keypoints=1`` and a zero-size
``bbox=[x, y, 0, 0]``. Labels become categories (``null`` -> ``"object"``). Images are the entries of
``result.sizes`` for images and image sets; for video, one COCO image per distinct timestamp. Points of
tracks are included with their ``track_id``; every annotation also keeps the model's ``object_id``.

MOTChallenge (``to_mot_csv``) rows are ``frame,id,bb_left,bb_top,bb_width,bb_height,conf,x,y,z`` as in
MOT16/17 ground truth and results files. A point becomes a ``box_size`` square centred on it (0 by
default, i.e. ``bb_left, bb_top`` are the point itself), ``conf`` is 1 and the world coordinates
``x, y, z`` are -1. ``frame = round(t * fps) + first_frame`` (MOT frames are 1-based: with the default
``first_frame=1`` the frame at t = 0 is frame 1); rows are sorted by frame, then id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from molmo2.grounding.types import GroundingResult, Point, Track

MOT_COLUMNS = ("frame", "id", "bb_left", "bb_top", "bb_width", "bb_height", "conf", "x", "y", "z")


def to_coco(
    result: GroundingResult,
    *,
    file_names: Sequence[str] | None = None,
    fps: float | None = None,
) -> dict[str, Any]:
    """One answer -> a COCO keypoints dict with ``images``, ``annotations`` and ``categories``.

    file_names: one name per image of ``result.sizes`` (default ``image_1``, ``image_2``, ...); not
        used for video, whose images are named ``t=2.5s`` or, when ``fps`` is given, ``frame_000075``
        and then also carry ``frame_index = round(t * fps)``; every video image has a ``timestamp``.
    """
    if file_names is not None and len(file_names) != len(result.sizes):
        raise ValueError(f"got {len(file_names)} file_names for {len(result.sizes)} image sizes")
    labelled: list[tuple[Point, int | None]] = [(p, None) for p in result.points]
    labelled += [(p, track.object_id) for track in result.tracks for p in track.points]

    images: dict[tuple[str, float], dict[str, Any]] = {}

    def add_image(key: tuple[str, float], entry: dict[str, Any]) -> None:
        images[key] = {"id": len(images) + 1, **entry}

    width, height = result.sizes[0]
    for t in sorted({p.t for p, _ in labelled if p.t is not None}):
        frame = None if fps is None else round(t * fps)
        name = f"t={t}s" if frame is None else f"frame_{frame:06d}"
        add_image(("t", t), {"width": width, "height": height, "file_name": name, "timestamp": t})
        if frame is not None:
            images[("t", t)]["frame_index"] = frame
    if not images:
        for i, (w, h) in enumerate(result.sizes):
            name = file_names[i] if file_names is not None else f"image_{i + 1}"
            add_image(("image", i), {"width": w, "height": h, "file_name": name})

    categories: dict[str, dict[str, Any]] = {}
    annotations = []
    for p, track_id in labelled:
        key = ("t", p.t) if p.t is not None else ("image", p.image or 0)
        if key not in images:  # an image index beyond a single shared size
            add_image(key, {"width": width, "height": height, "file_name": f"image_{int(key[1]) + 1}"})
        name = p.label or "object"
        if name not in categories:
            categories[name] = {
                "id": len(categories) + 1,
                "name": name,
                "supercategory": "object",
                "keypoints": ["point"],
                "skeleton": [],
            }
        annotations.append(
            {
                "id": len(annotations) + 1,
                "image_id": images[key]["id"],
                "category_id": categories[name]["id"],
                "keypoints": [p.x, p.y, 2],
                "num_keypoints": 1,
                "bbox": [p.x, p.y, 0.0, 0.0],
                "area": 0.0,
                "iscrowd": 0,
                "object_id": p.object_id,
                "track_id": track_id,
            }
        )
    return {
        "info": {"description": "molmo2 grounding export", "text": result.text},
        "images": list(images.values()),
        "annotations": annotations,
        "categories": list(categories.values()),
    }


def to_mot_csv(
    tracks: GroundingResult | Sequence[Track],
    fps: float,
    *,
    box_size: float = 0.0,
    first_frame: int = 1,
    header: bool = False,
) -> str:
    """Tracks -> MOTChallenge CSV text (columns in ``MOT_COLUMNS``; see the module docstring).

    Track ids are the tracks' ``object_id`` when those are unique, else 1.. in list order (several
    ``<tracks>`` tags in one answer each number their objects from 1). A point without ``t`` uses its
    image index as the frame offset. When two points of one track land on the same frame, the first is
    kept. Coordinates are written with two decimals.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if isinstance(tracks, GroundingResult):
        tracks = tracks.tracks
    ids = [t.object_id for t in tracks]
    if len(set(ids)) != len(ids):
        ids = list(range(1, len(tracks) + 1))
    rows: dict[tuple[int, int], str] = {}
    half = box_size / 2
    for track_id, track in zip(ids, tracks):
        for p in track.points:
            offset = round(p.t * fps) if p.t is not None else (p.image or 0)
            frame = offset + first_frame
            line = f"{frame},{track_id},{p.x - half:.2f},{p.y - half:.2f},{box_size:.2f},{box_size:.2f},1,-1,-1,-1"
            rows.setdefault((frame, track_id), line)
    lines = [rows[k] for k in sorted(rows)]
    if header:
        lines.insert(0, ",".join(MOT_COLUMNS))
    return "".join(line + "\n" for line in lines)
