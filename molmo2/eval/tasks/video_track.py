"""Molmo2-VideoTrackEval (``molmo2 eval --task molmo2-video-track``): track every object a phrase names.

Released as the Hugging Face dataset ``allenai/Molmo2-VideoTrackEval``, split ``test``; official loader
``Molmo2VideoTrackEval`` (``olmo/data/molmo2_video_track_datasets.py``), metric
``VideoObjectTrackingEval`` at 1 fps (evaluation.md §6a). Layout (``--data DIR``, the official
``VIDEO_DATA_HOME``)::

    DIR/Molmo2-VideoTrackEval/        the dataset: data/test-*.parquet, test/*.arrow (save_to_disk)
                                      or test.jsonl; or these files in DIR
    DIR/video_track/<source home>/videos/test/{clip}.mp4     source homes: APTv2, DanceTrack, SportsMOT,
                                                            personpath22, sav (by the row's video_dataset)

Fields per row: ``id``, ``exp`` (the expression), ``w``, ``h``, ``fps``, ``clip``, ``video_dataset``,
``mask_id`` (object ids), ``points`` (``[{"object_id", "points": [[x, y] | None per frame]}]``, pixels),
``masks`` (``[{"object_id", "masks": [RLE | polygons | None per frame]}]``). Frame ``i`` is at ``i / fps`` s.
Ground truth is every frame with ``i % (fps // 1) == 0`` (1 fps), as the official loader keeps.

Prompt: ``Track {exp} in 1 FPS.`` (the first ``video_point_track_per_frame`` template at 1 fps; style
``video_point_track_per_frame`` is a demo style: no prefix), frames sampled at most 1 fps, greedy, at most
4096 new tokens. Score: :func:`~molmo2.eval.metrics.track_scores` on the answer's tracks parsed at
``w`` x ``h`` — per-frame point-in-mask precision/recall/F1 averaged over frames, and HOTA (binary
point-in-mask similarity); means over videos, headline ``f1``. ``compat="official"`` (class attribute)
reproduces the official absent-object mask lookup. Breakdown by the official configs (animal = APTv2,
dance = dancetrack, sports = sportsmot, person = personpath22, misc = sav).

Uncertain: the official eval draws one of the ten templates per item from an RNG stream we cannot
reproduce; we ask with the first, or with ``prompt_seed`` (``molmo2 eval --prompt-seed``) draw one per
item reproducibly (``_templates.py``). The official sampler picks a video fps from candidates with a 1 fps
minimum; we cap sampling at 1 fps (the rate the ground truth is kept at). The hub file layout was not
seen, so any parquet file whose name holds the split is read (any depth), as are a save_to_disk copy and
a JSONL export; field names are the loader's.
J&F (the paper's headline) needs masks made from points by a segmenter the release does not include.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics import InstanceMasks, track_scores
from molmo2.eval.tasks._common import (
    Item,
    ask,
    check_dir,
    check_limit,
    field_of,
    grounded_example,
    hf_folder,
    mean_of,
    pick_template,
    read_records,
    score_items,
    text_of,
)
from molmo2.eval.tasks._templates import TRACK_TEMPLATES
from molmo2.grounding import Point, Track, parse

SOURCE_HOMES = {"APTv2": "APTv2", "dancetrack": "DanceTrack", "sportsmot": "SportsMOT",
                "personpath22": "personpath22", "sav": "sav"}
CONFIGS = {"APTv2": "animal", "dancetrack": "dance", "sportsmot": "sports", "personpath22": "person",
           "sav": "misc"}
TRACK_KEYS = ("f1", "precision", "recall", "HOTA", "DetA", "AssA")
LAYOUT = __doc__.split("::\n\n")[1].split("\n\n")[0]


def merge_tracks(tracks: Sequence[Track]) -> list[Track]:
    """One track per object id (an answer may repeat an id in two tags), points with a time only."""
    by_id: dict[int, Track] = {}
    for tr in tracks:
        pts = [p for p in tr.points if p.t is not None]
        if tr.object_id in by_id:
            by_id[tr.object_id].points.extend(pts)
        else:
            by_id[tr.object_id] = Track(tr.object_id, tr.label, pts)
    for tr in by_id.values():
        tr.points.sort(key=lambda p: p.t)
    return list(by_id.values())


def score_tracks(item: Item, record: Mapping[str, Any], compat: str) -> dict[str, Any]:
    """The per-video tracking keys of a prediction (shared by the tracking adapters)."""
    pred = merge_tracks(parse(text_of(item, record), item.size, video=True).tracks)
    masks = InstanceMasks(item.size, item.gt["masks"])
    out = track_scores(pred, item.gt["tracks"], masks, compat=compat)
    return {k: out[k] for k in TRACK_KEYS}


class VideoTrackEval:
    name = "molmo2-video-track"
    local_name = "Molmo2-VideoTrackEval"
    max_new_tokens = 4096
    sampling_fps = 1
    compat = "correct"
    prompt_seed: int | None = None

    def load(self, data: str | Path, limit: int | None = None) -> list[Item]:
        check_limit(limit)
        root = check_dir(data, self.name, LAYOUT)
        rows, source = read_records(hf_folder(root, self.local_name), "test", self.name)
        where = f"{self.name} ({source})"
        items = []
        for row in rows:
            src = field_of(row, "video_dataset", where)
            if src not in SOURCE_HOMES:
                raise Molmo2Error(f"{where}: unknown video_dataset {src!r}; the eval sources are "
                                  f"{', '.join(SOURCE_HOMES)}")
            video = root / "video_track" / SOURCE_HOMES[src] / "videos" / "test" / f"{field_of(row, 'clip', where)}.mp4"
            if not video.is_file():
                raise Molmo2Error(f"{self.name}: video not found: {video} (clips are made by the official download "
                                  "step of Molmo2-VideoTrackEval for each source)")
            exp = field_of(row, "exp", where)
            tracks, masks = self._ground_truth(row, where, exp)
            item_id = str(field_of(row, "id", where))
            template = pick_template(TRACK_TEMPLATES, item_id, self.prompt_seed)
            items.append(Item(
                id=item_id, media=video, medium="video",
                prompt=template.format(label=exp, fps=self.sampling_fps), max_new_tokens=self.max_new_tokens,
                category=CONFIGS[src], size=(int(field_of(row, "w", where)), int(field_of(row, "h", where))),
                max_fps=float(self.sampling_fps), gt={"tracks": tracks, "masks": masks}))
            if limit is not None and len(items) >= limit:
                break
        return items

    def _ground_truth(self, row: Mapping[str, Any], where: str, label: str) -> tuple[list[Track], dict]:
        fps = float(field_of(row, "fps", where))
        step = max(1, int(fps // self.sampling_fps))
        index = {str(oid): k + 1 for k, oid in enumerate(field_of(row, "mask_id", where))}
        masks: dict[int, dict[float, Any]] = {oid: {} for oid in index.values()}
        for entry in field_of(row, "masks", where):
            oid = index.get(str(entry["object_id"]))
            if oid is None:
                raise Molmo2Error(f"{where}: row {row.get('id')!r} has masks of object {entry['object_id']!r}, "
                                  f"which is not in its mask_id {list(index)}")
            masks[oid] = {i / fps: m for i, m in enumerate(entry["masks"]) if m}
        tracks = []
        for obj in field_of(row, "points", where):
            oid = index.get(str(obj["object_id"]))
            if oid is None:
                raise Molmo2Error(f"{where}: row {row.get('id')!r} has points of object {obj['object_id']!r}, "
                                  f"which is not in its mask_id {list(index)}")
            pts = [Point(float(p[0]), float(p[1]), t=i / fps, object_id=oid)
                   for i, p in enumerate(obj["points"]) if p and i % step == 0]
            if pts:
                tracks.append(Track(oid, label, pts))
        return tracks, masks

    def predict(self, pipe: Any, item: Item, **options: Any) -> dict[str, Any]:
        return ask(pipe, item, **options)

    def score_one(self, item: Item, record: Mapping[str, Any]) -> dict[str, Any]:
        return score_tracks(item, record, self.compat)

    def example(self, item: Item, record: Mapping[str, Any], row: Mapping[str, Any]) -> Any:
        return grounded_example(item, record, [p for tr in item.gt["tracks"] for p in tr.points], item.prompt,
                                masks=InstanceMasks(item.size, item.gt["masks"]))

    @staticmethod
    def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
        return mean_of(rows, TRACK_KEYS)

    def score(self, items: Iterable[Item], predictions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        return score_items(self.name, items, predictions, self.score_one, self.summarize, "f1")


__all__ = ["CONFIGS", "SOURCE_HOMES", "VideoTrackEval", "merge_tracks", "score_tracks"]
