"""NExT-QA multiple choice (``molmo2 eval --task nextqa``): causal / temporal / descriptive video questions.

Official loader ``NeXTQA`` (``olmo/data/academic_video_datasets.py``), eval name ``nextqa_mc:test``, metric
``nextqa_mc`` (evaluation.md §9). Two released forms of the test split are read (``--data DIR``)::

    DIR/MC/test-00000-of-00001.parquet     the Hugging Face NExTQA "MC" test parquet (needs pyarrow), videos
    DIR/NExTVideo/{video}.mp4              named by its ``video`` column (what the official code reads)
  or
    DIR/test.csv                           the NExT-QA repository's CSV (video, question, a0..a4, answer,
    DIR/map_vid_vidorID.json               type, ...), the id map, and the videos as the official code
    DIR/NExTVideo-all-videos/{vidorID}.mp4 lays them out for its CSV splits

Prompt (the official ``mc_qoa_template``; style ``video_eval_multiple_choice``, an MC style: no prefix)::

    {question}
    A. {a0}
    ...
    E. {a4}
    Answer with the option's letter from the given choices directly.

Greedy, at most 12 new tokens. Score: the official MMMU-style ``nextqa`` parser (``official_choice``),
without its random fallback (see ``_mc.py``: ``accuracy_random_fallback`` is the official number in
expectation); ``answer`` is the 0-based GT index. Breakdown by question
``type`` (CW, CH, TN, TC, TP, DL, DC, DO).
"""

from __future__ import annotations

from pathlib import Path

from molmo2.errors import Molmo2Error
from molmo2.eval.tasks._common import (
    Item,
    check_dir,
    check_limit,
    field_of,
    read_csv,
    read_json,
    read_parquet,
)
from molmo2.eval.tasks._mc import MultipleChoice

LAYOUT = __doc__.split("::\n\n")[1].split("\n\nPrompt")[0]
INSTRUCTION = "Answer with the option's letter from the given choices directly."


class NeXTQA(MultipleChoice):
    name = "nextqa"
    rule = "nextqa"
    split = "test"
    max_new_tokens = 12
    instruction = INSTRUCTION

    def load(self, data: str | Path, limit: int | None = None) -> list[Item]:
        check_limit(limit)
        root = check_dir(data, self.name, LAYOUT)
        shards = sorted((root / "MC").glob(f"{self.split}-*.parquet")) if (root / "MC").is_dir() else []
        if shards:
            rows, where = read_parquet(shards), str(shards[0])
            videos = {r["video"]: root / "NExTVideo" / f"{r['video']}.mp4" for r in rows if "video" in r}
        elif (root / f"{self.split}.csv").is_file():
            where = str(root / f"{self.split}.csv")
            rows = read_csv(root / f"{self.split}.csv")
            id_map_path = root / "map_vid_vidorID.json"
            if not id_map_path.is_file():
                raise Molmo2Error(f"{self.name}: {id_map_path} not found; the CSV split needs the video id map of the "
                                  "NExT-QA repository (map_vid_vidorID.json)")
            id_map = read_json(id_map_path)
            videos = {}
            for r in rows:
                vid = str(field_of(r, "video", where))
                if vid not in id_map:
                    raise Molmo2Error(f"{where}: video {vid} is not in map_vid_vidorID.json")
                videos[r["video"]] = root / "NExTVideo-all-videos" / f"{id_map[vid]}.mp4"
        else:
            raise Molmo2Error(f"{self.name}: no annotations in {root}. Expected layout:\n{LAYOUT}")
        items = []
        for k, row in enumerate(rows):
            options = [str(field_of(row, f"a{i}", where)).strip() for i in range(5)]
            qtype = row.get("type")
            items.append(self.item(f"{row['video']}_{k}_type_{qtype}", videos[field_of(row, "video", where)],
                                   str(field_of(row, "question", where)).strip(), options,
                                   field_of(row, "answer", where), None if qtype is None else str(qtype)))
            if limit is not None and len(items) >= limit:
                break
        return items


__all__ = ["NeXTQA"]
