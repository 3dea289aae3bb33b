"""Eval tasks, one file per benchmark, and the registry the runner and ``molmo2 eval --task`` use.

A task is an object with ``name``, ``load(data, limit) -> items`` (each item has a stable ``id``),
``predict(pipe, item, **options) -> record`` (a JSON-ready dict with ``id``; the only step that runs the
model) and ``score(items, {id: record}) -> metrics`` (pure). Tasks are imported on demand.
"""

from __future__ import annotations

import importlib
from typing import Any

from molmo2.errors import Molmo2Error

TASKS: dict[str, str] = {
    "tiny-shapes": "molmo2.eval.tasks.tiny_shapes:TinyShapes",
}


def get_task(name: str) -> Any:
    """A task instance by its registry name, e.g. ``get_task("tiny-shapes")``."""
    if name not in TASKS:
        raise Molmo2Error(f"unknown eval task {name!r}; known: {', '.join(sorted(TASKS))}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


__all__ = ["TASKS", "get_task"]
