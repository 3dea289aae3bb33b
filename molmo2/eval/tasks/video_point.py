"""Molmo2-VideoPointEval (``molmo2 eval --task molmo2-video-point``): point to every instance in a video.

Released as the Hugging Face dataset ``allenai/Molmo2-VideoPointEval``, split ``val``; the official loader
is ``Molmo2VideoPointEval`` (``olmo/data/molmo2_datasets.py``) and the metric ``VixMoPointEval``
(evaluation.md §4). Layout read here (``--data DIR``, the official ``VIDEO_DATA_HOME``)::

    DIR/Molmo2-VideoPointEval/        the dataset: data/val-*.parquet, val/*.arrow (save_to_disk)
                                      or val.jsonl; or these files in DIR
    DIR/youtube-cc/youtube-cc-{exist,kw,temporal}-2fps/{video_id}_2fps.mp4     video_source "youtube"
    DIR/MammalNet/trimmed_video-2fps/{video_id}_2fps.mp4                       video_source "MammalNet"
    DIR/generated_videos/{video_id}_2fps.mp4                                   video_source "generated"
    (a video_id "a/b" lives at <subdir>/a-2fps/b_2fps.mp4)

Fields used, per row (from the official loader): ``video_id``, ``video_source``, ``label``, ``points``
(``[{"x", "y"}]`` pixels, one per GT instance), ``two_fps_timestamps`` (the time of each point),
``masks`` (per instance: ``[{"frame_id", "rle"}]``, ``frame_id`` counted at 2 fps, so ``t = frame_id / 2``),
``video_duration``, ``width``, ``height``.

Prompt: ``How many "{label}" are there in the video?`` (style ``video_point_count``, a demo style: no
prefix), greedy, at most 2048 new tokens. Score: :func:`~molmo2.eval.metrics.video_pointing_prf1` on the
answer's points parsed at the row's ``width`` x ``height`` — one-to-one matching in normalized (t, x, y),
a hit needs the exact time of an annotated mask of the matched instance and the point inside it; means of
precision/recall/F1 over videos, headline ``f1``. Breakdown by ``video_source``.

Uncertain: the file layout of the hub repo was not seen, so any parquet file whose name holds the split is
read (any depth), as are a save_to_disk copy and a JSONL export; the field names are the official loader's. Rows are read in file order; item ids are ``{video_id}/{label}/{row index}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics import PRF1, InstanceMasks, mean_pointing, video_pointing_prf1
from molmo2.eval.tasks._common import (
    Item,
    ask,
    check_dir,
    check_limit,
    field_of,
    grounded_example,
    hf_folder,
    read_records,
    score_items,
    text_of,
)
from molmo2.grounding import Point, parse

VIDEO_POINT_SUBDIRS = {
    "youtube": ["youtube-cc/youtube-cc-exist-2fps", "youtube-cc/youtube-cc-kw-2fps",
                "youtube-cc/youtube-cc-temporal-2fps"],
    "MammalNet": ["MammalNet/trimmed_video-2fps"],
    "generated": ["generated_videos"],
}
LAYOUT = __doc__.split("::\n\n")[1].split("\n\n")[0]


def find_point_video(root: Path, video_id: str, video_source: str | None) -> Path:
    """The official ``_find_video_point_path_by_id``: ``<subdir>/{video_id}_2fps.mp4`` under ``root``."""
    subdirs = VIDEO_POINT_SUBDIRS.get(video_source or "") or [s for g in VIDEO_POINT_SUBDIRS.values() for s in g]
    if "/" in video_id:
        prefix, name = video_id.rsplit("/", 1)
        candidates = [root / s / f"{prefix}-2fps" / f"{name}_2fps.mp4" for s in subdirs]
    else:
        candidates = [root / s / f"{video_id}_2fps.mp4" for s in subdirs]
    for c in candidates:
        if c.is_file():
            return c
    raise Molmo2Error(f"video {video_id!r} (video_source {video_source!r}) not found; looked for "
                      f"{', '.join(str(c) for c in candidates)}. The videos are converted to 2 fps as the dataset "
                      "card says, named {video_id}_2fps.mp4")


class VideoPointEval:
    name = "molmo2-video-point"
    local_name = "Molmo2-VideoPointEval"
    max_new_tokens = 2048

    def load(self, data: str | Path, limit: int | None = None) -> list[Item]:
        check_limit(limit)
        root = check_dir(data, self.name, LAYOUT)
        rows, source = read_records(hf_folder(root, self.local_name), "val", self.name)
        where = f"{self.name} ({source})"
        items = []
        for k, row in enumerate(rows):
            video_id, label = field_of(row, "video_id", where), field_of(row, "label", where)
            points, times = field_of(row, "points", where), field_of(row, "two_fps_timestamps", where)
            masks = field_of(row, "masks", where)
            if not (len(points) == len(times) == len(masks)):
                raise Molmo2Error(f"{where}: row {k} ({video_id}) has {len(points)} points, {len(times)} "
                                  f"two_fps_timestamps and {len(masks)} mask lists; they must align (one per instance)")
            size = (int(field_of(row, "width", where)), int(field_of(row, "height", where)))
            gt_points = [Point(float(p["x"]), float(p["y"]), t=float(t)) for p, t in zip(points, times)]
            gt_masks = [{m["frame_id"] / 2.0: m["rle"] for m in inst} for inst in masks]
            items.append(Item(
                id=f"{video_id}/{label}/{k}", media=find_point_video(root, video_id, row.get("video_source")),
                medium="video", prompt=f'How many "{label}" are there in the video?',
                max_new_tokens=self.max_new_tokens, category=row.get("video_source"), size=size,
                gt={"points": gt_points, "masks": gt_masks,
                    "duration": float(field_of(row, "video_duration", where))}))
            if limit is not None and len(items) >= limit:
                break
        return items

    def predict(self, pipe: Any, item: Item, **options: Any) -> dict[str, Any]:
        return ask(pipe, item, **options)

    def score_one(self, item: Item, record: Mapping[str, Any]) -> dict[str, Any]:
        pred = [p for p in parse(text_of(item, record), item.size, video=True).points if p.t is not None]
        s = video_pointing_prf1(pred, item.gt["points"], item.gt["masks"], item.gt["duration"], item.size)
        return s.to_row()

    def example(self, item: Item, record: Mapping[str, Any], row: Mapping[str, Any]) -> Any:
        masks = InstanceMasks(item.size, dict(enumerate(item.gt["masks"])))
        return grounded_example(item, record, item.gt["points"], item.prompt, masks=masks)

    @staticmethod
    def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
        return mean_pointing([PRF1.from_row(r) for r in rows])

    def score(self, items: Iterable[Item], predictions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        return score_items(self.name, items, predictions, self.score_one, self.summarize, "f1")


__all__ = ["VIDEO_POINT_SUBDIRS", "VideoPointEval", "find_point_video"]
