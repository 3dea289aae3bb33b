"""MVBench (``molmo2 eval --task mvbench``): 20 temporal video-understanding tasks, multiple choice.

Released as the Hugging Face dataset ``OpenGVLab/MVBench``; official loader ``MVBench``
(``olmo/data/academic_video_datasets.py``), eval name ``mvbench``, metric ``VqaEval("em_start")``
(evaluation.md §9). Layout (``--data DIR``, the unzipped repository)::

    DIR/json/{task}.json        [{"video", "question", "candidates", "answer", "start"?, "end"?}], one file per
                                task of TASKS below (missing files are skipped; none at all is an error)
    DIR/video/{prefix}/{video}  the task's video folder (TASKS); Episodic Reasoning reads
                                video/tvqa/frames_fps3_hq/{video}/video.mp4 (the official code builds it from
                                the frames at 3 fps)

Prompt (the official ``qa_template``; style ``video_eval_multiple_choice``, an MC style: no prefix)::

    {question}
    A. {candidate 0}
    ...
    Please respond with only the letter of the correct answer.

``start``/``end`` (seconds), where given, clip the video, as the official preprocessor does. Greedy, at
most 32 new tokens. Score: ``em_start`` — the answer starts with the GT letter. Breakdown by task; the
``all`` group also reports ``task_average`` (the mean of the per-task accuracies).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from molmo2.errors import Molmo2Error
from molmo2.eval.tasks._common import Item, check_dir, check_limit, field_of, read_json
from molmo2.eval.tasks._mc import MultipleChoice

LAYOUT = __doc__.split("::\n\n")[1].split("\n\nPrompt")[0]
INSTRUCTION = "Please respond with only the letter of the correct answer."
TASKS: dict[str, tuple[str, str]] = {
    "Action Sequence": ("action_sequence.json", "star/Charades_v1_480/"),
    "Action Prediction": ("action_prediction.json", "star/Charades_v1_480/"),
    "Action Antonym": ("action_antonym.json", "ssv2_video"),
    "Fine-grained Action": ("fine_grained_action.json", "Moments_in_Time_Raw/videos/"),
    "Unexpected Action": ("unexpected_action.json", "FunQA_test/test/"),
    "Object Existence": ("object_existence.json", "clevrer/video_validation/"),
    "Object Interaction": ("object_interaction.json", "star/Charades_v1_480/"),
    "Object Shuffle": ("object_shuffle.json", "perception/videos/"),
    "Moving Direction": ("moving_direction.json", "clevrer/video_validation/"),
    "Action Localization": ("action_localization.json", "sta/sta_video/"),
    "Scene Transition": ("scene_transition.json", "scene_qa/video/"),
    "Action Count": ("action_count.json", "perception/videos/"),
    "Moving Count": ("moving_count.json", "clevrer/video_validation/"),
    "Moving Attribute": ("moving_attribute.json", "clevrer/video_validation/"),
    "State Change": ("state_change.json", "perception/videos/"),
    "Fine-grained Pose": ("fine_grained_pose.json", "nturgbd/"),
    "Character Order": ("character_order.json", "perception/videos/"),
    "Egocentric Navigation": ("egocentric_navigation.json", "vlnqa/"),
    "Episodic Reasoning": ("episodic_reasoning.json", "tvqa/frames_fps3_hq/"),
    "Counterfactual Inference": ("counterfactual_inference.json", "clevrer/video_validation/"),
}


class MVBench(MultipleChoice):
    name = "mvbench"
    rule = "em_start"
    max_new_tokens = 32
    instruction = INSTRUCTION

    def load(self, data: str | Path, limit: int | None = None) -> list[Item]:
        check_limit(limit)
        root = check_dir(data, self.name, LAYOUT)
        found = [t for t, (f, _) in TASKS.items() if (root / "json" / f).is_file()]
        if not found:
            raise Molmo2Error(f"{self.name}: no task file in {root / 'json'}. Expected layout:\n{LAYOUT}")
        items = []
        for task in found:
            json_name, prefix = TASKS[task]
            where = str(root / "json" / json_name)
            rows = read_json(root / "json" / json_name)
            for k, row in enumerate(rows):
                video_name = field_of(row, "video", where)
                video = root / "video" / prefix / video_name
                if task == "Episodic Reasoning":
                    video = video / "video.mp4"
                options = [str(c) for c in field_of(row, "candidates", where)]
                answer = field_of(row, "answer", where)
                if answer not in options:
                    raise Molmo2Error(f"{where}: item {k}: the answer {answer!r} is not one of its candidates")
                clip = (float(row["start"]), float(row["end"])) if row.get("start") is not None and \
                    row.get("end") is not None else None
                items.append(self.item(f"{task}_{k}", video, field_of(row, "question", where), options,
                                       options.index(answer), task, clip))
                if limit is not None and len(items) >= limit:
                    return items
        return items

    def score(self, items: Iterable[Item], predictions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        out = super().score(items, predictions)
        per_task = [v["accuracy"] for g, v in out["groups"].items() if g.startswith("category/")]
        if per_task:
            out["groups"]["all"]["task_average"] = float(np.mean(per_task))
        return out


__all__ = ["MVBench", "TASKS"]
