"""CountBenchQA (``molmo2 eval --task countbench-qa``): count what a question asks about in an image.

PaliGemma's CountBenchQA as the official ``CountQaBuilder`` builds it (eval name ``countbench_qa``,
``olmo/data/dataset_builders/count_bench_qa.py``): the CountBench parquet (``nielsr/countbench``:
``image`` {bytes}, ``image_url``, ``text``, ``number``) joined row by row with big_vision's
``countbench_paired_questions.json`` (``[{"question": ...}]``); rows without an image or with a non-RGB
image are dropped, as there. Layout (``--data DIR``)::

    DIR/countbench_paired_questions.json
    DIR/data/train-*.parquet                 the CountBench parquet shard(s); reading them needs pyarrow

Prompt: the row's ``question`` verbatim (style ``point_count``, a demo style: no prefix), greedy, at most
192 new tokens. Score: as PixMo-Count (``pixmo_count.py``): the number of points in the answer against
``number``; headline ``correct``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from molmo2.errors import Molmo2Error
from molmo2.eval.tasks._common import (
    Item,
    check_dir,
    check_limit,
    field_of,
    need_file,
    read_json,
    read_records,
)
from molmo2.eval.tasks.pixmo_count import ImageCount

LAYOUT = __doc__.split("::\n\n")[1].split("\n\n")[0]


class CountBenchQA(ImageCount):
    name = "countbench-qa"

    def load(self, data: str | Path, limit: int | None = None) -> list[Item]:
        from PIL import Image

        check_limit(limit)
        root = check_dir(data, self.name, LAYOUT)
        questions = read_json(need_file(root / "countbench_paired_questions.json",
                                        f"{self.name} questions (big_vision's countbench_paired_questions.json)"))
        rows, source = read_records(root, "train", self.name)
        where = f"{self.name} ({source})"
        if not isinstance(questions, list) or len(questions) != len(rows):
            num_q = len(questions) if isinstance(questions, list) else "no"
            raise Molmo2Error(f"{where}: countbench_paired_questions.json must list one question per parquet row "
                              f"({len(rows)} rows, {num_q} questions); they are joined by position")
        items = []
        for k, (row, q) in enumerate(zip(rows, questions)):
            image = field_of(row, "image", where)
            if image is None:
                continue
            raw = image["bytes"] if isinstance(image, Mapping) else image
            with Image.open(io.BytesIO(raw)) as im:
                if np.asarray(im).ndim != 3:
                    continue  # as the official builder: drop the non-RGB image
                size = im.size
            items.append(Item(id=str(k), media=raw, medium="image", prompt=field_of(q, "question", where),
                              max_new_tokens=self.max_new_tokens, size=(int(size[0]), int(size[1])),
                              gt={"count": int(field_of(row, "number", where))}))
            if limit is not None and len(items) >= limit:
                break
        return items


__all__ = ["CountBenchQA"]
