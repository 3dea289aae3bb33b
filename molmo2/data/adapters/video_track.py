"""Molmo2 VideoTrack: point tracks of the objects an expression names -> one ``tracking`` Example per row.

Two released layouts, told apart by their fields:

* ``allenai/molmo2-track-instruction`` (what the released model trained on; configs ``track``, ``ground``,
  ``single_point_track``): ``id``, ``clip``, ``video_dataset``, ``expression``, ``width``, ``height``,
  ``mask_id`` (object ids, strings), ``frame_trajectories`` [{``frame``, ``time`` (seconds on the clip),
  ``points`` [{``id``, ``point`` [x, y] pixels, ``occluded``}]}], already sampled at the row's
  ``sampling_fps``. Fields checked against the card of its sibling ``allenai/MolmoPoint-TrackAny`` (same
  ``frame_trajectories`` schema) and the loader ``TrackingDataset._create_message_list``.
* ``allenai/Molmo2-VideoTrack`` (raw annotations): ``id``, ``clip``, ``video_dataset``, ``exp``, ``w``, ``h``,
  ``fps``, ``mask_id``, ``points`` [{``object_id``, ``points`` [[x, y] or null per frame]}]; frame ``i`` is at
  ``i / fps`` s; frames are kept at ``SAMPLING_FPS`` (every ``fps // 2``-th frame), as
  ``Molmo2VideoTrack._create_message_list`` does for its ``sampling_fps``.

Sources: ``olmo/data/molmo2_video_track_datasets.py`` and ``academic_video_track_datasets.py``
(allenai/molmo2 at f3cb108). Occluded points are left out (the track formatter omits them); object ids are
1 + the position in ``mask_id`` (the formatter renumbers them in order anyway). Every config is written as
``tracking`` annotations: the ``ground`` (start/end only) and ``single_point_track`` (query point in the
prompt) task formats have no kind in our schema yet, so convert the ``track`` config.

Videos (``--media-root`` = the official ``VIDEO_DATA_HOME``, or its ``video_track`` folder):
``video_track/<source home>/videos/train/{clip}.mp4``, the clips the official download step cuts, with
the source homes of ``SOURCE_HOMES``. Points are scaled when the clip's size differs from the row's
declared ``width`` x ``height``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from molmo2.data.adapters._base import Bad, Context, Result, Row, RowError, find_video, peek, where
from molmo2.data.schema import Annotation, Example, Media
from molmo2.grounding.types import Point, Track

SAMPLING_FPS = 2
SOURCE_HOMES = {
    "mose": "MOSE", "mosev2": "MOSEv2", "sav": "sav", "vipseg": "VIPSeg", "animaltrack": "animaltrack",
    "APTv2": "APTv2", "bft": "bft", "soccernet": "SoccerNet", "sportsmot": "SportsMOT", "teamtrack": "TeamTrack",
    "mot2020": "MOT20", "personpath22": "personpath22", "dancetrack": "DanceTrack", "bdd100k": "bdd100k",
    "uavdt": "UAVDT", "seadrones": "SeaDronesSee",
}


def find_track_video(root: Path, source: str, clip: str, split: str = "train") -> Path:
    if source not in SOURCE_HOMES:
        raise RowError(f"unknown video_dataset {source!r}; the sources are {', '.join(SOURCE_HOMES)}")
    home = SOURCE_HOMES[source]
    base = root / "video_track" if (root / "video_track").is_dir() else root
    return find_video([base / home / "videos" / split / f"{clip}.mp4"], f"clip {clip!r} of {source}")


def _instruction_tracks(row: Row, num: int) -> tuple[dict[int, list[Point]], tuple[float, float]]:
    index = {str(m): k + 1 for k, m in enumerate(row.get("mask_id") or [])}
    tracks: dict[int, list[Point]] = {oid: [] for oid in index.values()}
    for fr in row["frame_trajectories"] or []:
        t = fr.get("time")
        if t is None:
            raise RowError(f"row {num}: a frame of frame_trajectories has no 'time'")
        for p in fr.get("points") or []:
            oid = index.get(str(p.get("id")))
            if oid is None or p.get("occluded") or not p.get("point"):
                continue  # the official loader keeps only ids listed in mask_id
            x, y = p["point"]
            tracks[oid].append(Point(float(x), float(y), t=float(t), object_id=oid))
    return tracks, (float(row["width"]), float(row["height"]))


def _raw_tracks(row: Row, num: int) -> tuple[dict[int, list[Point]], tuple[float, float]]:
    fps = row.get("fps")
    if not fps:
        raise RowError(f"row {num} has no fps")
    step = max(1, int(fps // SAMPLING_FPS))
    index = {str(m): k + 1 for k, m in enumerate(row.get("mask_id") or [])}
    tracks: dict[int, list[Point]] = {oid: [] for oid in index.values()}
    for obj in row["points"] or []:
        oid = index.get(str(obj.get("object_id")))
        if oid is None:
            raise RowError(f"row {num} has points of object {obj.get('object_id')!r}, which is not in its mask_id")
        for i, p in enumerate(obj.get("points") or []):
            if p and i % step == 0:
                tracks[oid].append(Point(float(p[0]), float(p[1]), t=i / float(fps), object_id=oid))
    return tracks, (float(row["w"]), float(row["h"]))


def video_track(rows: Iterable[tuple[int, Row]], ctx: Context) -> Iterator[Result]:
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return
    raw = "frame_trajectories" not in first[1]
    fields = (["clip", "video_dataset", "exp", "w", "h", "fps", "mask_id", "points"] if raw else
              ["clip", "video_dataset", "expression", "width", "height", "mask_id", "frame_trajectories"])
    for num, row in peek(_chain(first, rows), fields, "Molmo2-VideoTrack"):
        try:
            label = row["exp" if raw else "expression"]
            if not isinstance(label, str) or not label.strip():
                raise RowError("empty expression")
            by_id, declared = (_raw_tracks if raw else _instruction_tracks)(row, num)
            path = find_track_video(ctx.root("videos"), str(row["video_dataset"]), str(row["clip"]))
            w, h = ctx.video_size(path)
            sx, sy = w / declared[0], h / declared[1]
            tracks = []
            for oid, pts in by_id.items():
                if pts:
                    pts = sorted((Point(p.x * sx, p.y * sy, p.t, None, oid) for p in pts), key=lambda p: p.t)
                    tracks.append(Track(oid, None, pts))
            if not tracks:
                raise RowError("no visible point of any object")
            yield Example(f"{ctx.source}/{row.get('id', num)}", Media("video", [ctx.media_path(path)]),
                          [Annotation("tracking", label=label.strip(), tracks=tracks)], source=ctx.source)
        except RowError as e:
            yield Bad(where([num], f"clip {row.get('clip')}"), str(e))


def _chain(first, rest):
    yield first
    yield from rest


ADAPTERS = {"molmo2-video-track": video_track}
