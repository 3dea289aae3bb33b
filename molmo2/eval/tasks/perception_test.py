"""Perception Test multiple-choice video QA (``molmo2 eval --task perception-test``), validation split.

Official loader ``PerceptionTest`` (``olmo/data/academic_video_datasets.py``), eval name ``perception_test``,
metric ``perception_test_mc`` (evaluation.md §9). Two released forms are read (``--data DIR``)::

    DIR/mc_question_val/validation-00000-of-00001.parquet   the Hugging Face parquet the official code reads
                                                            (video_name, question_id, question, options,
                                                            answer_id, area, reasoning; needs pyarrow)
  or
    DIR/mc_question_valid.json      the Perception Test repository's annotations: {video_id: {"mc_question":
                                    [{"id", "question", "options", "answer_id", "area", "reasoning"}]}}
    DIR/videos/{video_name}.mp4

Prompt (the official ``qa_template``; style ``video_eval_multiple_choice``, an MC style: no prefix)::

    {question}
    A. {option 0}
    ...
    Answer with the option's letter from the given choices directly.

Greedy, at most 12 new tokens. Score: the official ``perception_test`` rule — the first standalone
capital A-D in the answer is the choice. Breakdown by ``area``.
"""

from __future__ import annotations

from pathlib import Path

from molmo2.errors import Molmo2Error
from molmo2.eval.tasks._common import (
    Item,
    check_dir,
    check_limit,
    field_of,
    read_json,
    read_parquet,
)
from molmo2.eval.tasks._mc import MultipleChoice

LAYOUT = __doc__.split("::\n\n")[1].split("\n\nPrompt")[0]
INSTRUCTION = "Answer with the option's letter from the given choices directly."


class PerceptionTest(MultipleChoice):
    name = "perception-test"
    rule = "perception_test"
    max_new_tokens = 12
    instruction = INSTRUCTION

    def load(self, data: str | Path, limit: int | None = None) -> list[Item]:
        check_limit(limit)
        root = check_dir(data, self.name, LAYOUT)
        parquet = root / "mc_question_val" / "validation-00000-of-00001.parquet"
        if parquet.is_file():
            rows, where = read_parquet([parquet]), str(parquet)
        elif (root / "mc_question_valid.json").is_file():
            where = str(root / "mc_question_valid.json")
            ann = read_json(root / "mc_question_valid.json")
            if not isinstance(ann, dict):
                raise Molmo2Error(f"{where}: expected {{video_id: {{'mc_question': [...]}}}}")
            rows = [{"video_name": vid, "question_id": q.get("id"), **q}
                    for vid, v in ann.items() for q in field_of(v, "mc_question", where)]
        else:
            raise Molmo2Error(f"{self.name}: no annotations in {root}. Expected layout:\n{LAYOUT}")
        items = []
        for k, row in enumerate(rows):
            name = field_of(row, "video_name", where)
            qid = row.get("question_id")
            items.append(self.item(f"{name}/{qid if qid is not None else k}", root / "videos" / f"{name}.mp4",
                                   field_of(row, "question", where), field_of(row, "options", where),
                                   field_of(row, "answer_id", where), row.get("area")))
            if limit is not None and len(items) >= limit:
                break
        return items


__all__ = ["PerceptionTest"]
