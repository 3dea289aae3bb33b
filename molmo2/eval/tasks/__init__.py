"""Eval tasks, one file per benchmark, and the registry the runner and ``molmo2 eval --task`` use.

A task is an object with ``name``, ``load(data, limit) -> items`` (each item has a stable ``id``),
``predict(pipe, item, **options) -> record`` (a JSON-ready dict with ``id``; the only step that runs the
model) and ``score(items, {id: record}) -> metrics`` (pure). Tasks are imported on demand. Each adapter's
docstring gives the released file layout it reads, the prompt and the scoring rule.
"""

from __future__ import annotations

import importlib
from typing import Any

from molmo2.errors import Molmo2Error

TASKS: dict[str, str] = {
    "tiny-shapes": "molmo2.eval.tasks.tiny_shapes:TinyShapes",
    "molmo2-video-point": "molmo2.eval.tasks.video_point:VideoPointEval",
    "molmo2-video-count": "molmo2.eval.tasks.video_count:VideoCountEval",
    "molmo2-video-track": "molmo2.eval.tasks.video_track:VideoTrackEval",
    "mevis": "molmo2.eval.tasks.mevis:MeViS",
    "ref-youtube-vos": "molmo2.eval.tasks.ref_youtube_vos:RefYouTubeVOS",
    "ref-davis17": "molmo2.eval.tasks.ref_davis17:RefDAVIS17",
    "reasonvos": "molmo2.eval.tasks.reasonvos:ReasonVOS",
    "point-bench": "molmo2.eval.tasks.point_bench:PointBench",
    "pixmo-points": "molmo2.eval.tasks.pixmo_points:PixMoPoints",
    "pixmo-count": "molmo2.eval.tasks.pixmo_count:PixMoCount",
    "countbench-qa": "molmo2.eval.tasks.countbench_qa:CountBenchQA",
    "nextqa": "molmo2.eval.tasks.nextqa:NeXTQA",
    "mvbench": "molmo2.eval.tasks.mvbench:MVBench",
    "perception-test": "molmo2.eval.tasks.perception_test:PerceptionTest",
}


def get_task(name: str) -> Any:
    """A task instance by its registry name, e.g. ``get_task("tiny-shapes")``."""
    if name not in TASKS:
        raise Molmo2Error(f"unknown eval task {name!r}; known: {', '.join(sorted(TASKS))}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


__all__ = ["TASKS", "get_task"]
