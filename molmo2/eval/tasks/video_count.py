"""Molmo2-VideoCountEval (``molmo2 eval --task molmo2-video-count``): how many, in a video clip.

Released as the Hugging Face dataset ``allenai/Molmo2-VideoCountEval``, split ``val``; official loader
``Molmo2VideoCountEval`` (``olmo/data/molmo2_datasets.py``), metric ``VixMoPointCountEval``
(evaluation.md §5). Layout (``--data DIR``, the official ``VIDEO_DATA_HOME``; the videos are the 2 fps
files of Molmo2-VideoPointEval)::

    DIR/Molmo2-VideoCountEval/        the dataset: data/val-*.parquet, val/*.arrow (save_to_disk)
                                      or val.jsonl; or these files in DIR
    DIR/<video subdirs>/{video_id}_2fps.mp4   as for molmo2-video-point (by video_source)

Fields per row: ``video_id``, ``video_source``, ``label``, ``question``, ``count``, ``category``
(object / animal / action/event), ``clip_start``, ``clip_end`` (seconds; the question is about that clip,
which is cut before sampling, as the official preprocessor does with ``clip_start_time``).

Prompt: the row's ``question`` verbatim (style ``video_count``, a demo style: no prefix), greedy, at most
2048 new tokens. Score: :func:`~molmo2.eval.metrics.video_count_score` — the **stated** number (``int``,
``a total of N``, ...) against ``count``: ``correct`` (exact, the headline), ``close``
(``|d| <= 1 + floor(0.05 gt)``), ``valid``; ``summarize_counts`` adds ``acc_{category}``, the GT-count bins
and ``per_category_average``. Default ``compat="correct"`` reads "There are none." as 0; set
``VideoCountEval.compat = "official"`` for the official regex, which never matches it.

Uncertain: the hub file layout was not seen, so any parquet file whose name holds the split is read (any
depth), as are a save_to_disk copy and a JSONL export; field names are the official loader's.
With ``--endpoint`` the clip is sent as the request field ``clip``, which ``molmo2 serve`` honours (same
answers as ``--model``, tested); a server without molmo2's extensions (vLLM) would answer about the whole
video, so the client refuses its answer to a clipped question instead of scoring it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from molmo2.eval.metrics import CountScore, summarize_counts, video_count_score
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
from molmo2.eval.tasks.video_point import find_point_video

LAYOUT = __doc__.split("::\n\n")[1].split("\n\n")[0]


class VideoCountEval:
    name = "molmo2-video-count"
    local_name = "Molmo2-VideoCountEval"
    max_new_tokens = 2048
    compat = "correct"

    def load(self, data: str | Path, limit: int | None = None) -> list[Item]:
        check_limit(limit)
        root = check_dir(data, self.name, LAYOUT)
        rows, source = read_records(hf_folder(root, self.local_name), "val", self.name)
        where = f"{self.name} ({source})"
        items = []
        for k, row in enumerate(rows):
            video_id, label = field_of(row, "video_id", where), field_of(row, "label", where)
            start, end = row.get("clip_start"), row.get("clip_end")
            clip = None if start is None or end is None else (float(start), float(end))
            items.append(Item(
                id=f"{video_id}/{label}/{k}", media=find_point_video(root, video_id, row.get("video_source")),
                medium="video", prompt=field_of(row, "question", where), max_new_tokens=self.max_new_tokens,
                category=row.get("category"), clip=clip, gt={"count": int(field_of(row, "count", where))}))
            if limit is not None and len(items) >= limit:
                break
        return items

    def predict(self, pipe: Any, item: Item, **options: Any) -> dict[str, Any]:
        return ask(pipe, item, **options)

    def score_one(self, item: Item, record: Mapping[str, Any]) -> dict[str, Any]:
        c = video_count_score(text_of(item, record), item.gt["count"], compat=self.compat)
        return {"correct": c.correct, "close": c.close, "valid": c.valid, "pred": c.pred, "gt": c.gt}

    def example(self, item: Item, record: Mapping[str, Any], row: Mapping[str, Any]) -> Any:
        return grounded_example(item, record, [], f"{item.prompt} stated {row['pred']}, true count {row['gt']}")

    @staticmethod
    def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
        scores = [CountScore(r["correct"], r["close"], r["valid"], r["pred"], r["gt"]) for r in rows]
        cats = [r["category"] for r in rows]
        return summarize_counts(scores, cats if all(c is not None for c in cats) else None, medium="video")

    def score(self, items: Iterable[Item], predictions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        return score_items(self.name, items, predictions, self.score_one, self.summarize, "correct")


__all__ = ["VideoCountEval"]
