"""Run an eval task with the local ``Molmo2`` pipeline: predictions to JSONL as they come, resumable.

    result = evaluate("tiny-shapes", "runs/shapes/final", "data/shapes-val", predictions_path="out/p.jsonl")
    result.metrics["groups"]["pointing/image"]["f1"]

Why it is built this way: a run over a benchmark can take hours on a CPU and is killed now and then, so
every prediction is appended (and flushed) to the predictions file the moment it exists, and a second
run with the same file asks the model only about the items the file does not already hold. A line cut
short by a kill is dropped (the file is truncated to its last complete line) and that item is asked
again. Each record carries the model it came from; resuming with another model is refused, because a
file mixing two models would score neither. Scoring is the task's own pure function of the items and
the records (``molmo2.eval.tasks``), so a predictions file can also be re-scored without a model
(:func:`score_predictions`). ``EvalResult.examples`` are the few items the HTML report draws
(:func:`molmo2.eval.report.pick_examples`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molmo2.errors import Molmo2Error
from molmo2.eval.report import ReportExample, pick_examples
from molmo2.eval.tasks import get_task


@dataclass
class EvalResult:
    """``metrics``: the task's scores (``groups``, ``headline``, counts) plus run info; ``per_item``: one
    dict of scores per item; ``num_new`` items were asked in this run, ``num_resumed`` came from the file;
    ``examples``: the items the HTML report draws (true vs predicted points), worst to best."""

    metrics: dict[str, Any]
    per_item: list[dict[str, Any]] = field(default_factory=list)
    predictions_path: Path | None = None
    num_new: int = 0
    num_resumed: int = 0
    examples: list[ReportExample] = field(default_factory=list)


def read_predictions(path: str | Path) -> dict[str, dict[str, Any]]:
    """The records of a predictions file by item id (later lines win). A last line without its newline
    (a run killed mid-write) is cut off the file; any other unreadable line raises."""
    path = Path(path)
    if not path.exists():
        return {}
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with path.open("r+b") as f:
            f.truncate(keep)
        data = data[:keep]
    records: dict[str, dict[str, Any]] = {}
    for num, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise Molmo2Error(f"{path}:{num}: not a JSON line ({e}); fix or delete the predictions file") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
            raise Molmo2Error(f"{path}:{num}: a prediction must be a JSON object with a string 'id'")
        records[rec["id"]] = rec
    return records


def _pipeline(model_or_pipeline: Any, device: str, dtype: str) -> Any:
    """A ``Molmo2`` loaded from a path / repo id; a pipeline (anything with point/count/track) as is."""
    if isinstance(model_or_pipeline, (str, Path)):
        from molmo2.inference.pipeline import Molmo2

        return Molmo2.from_pretrained(model_or_pipeline, device=device, dtype=dtype)
    if not all(hasattr(model_or_pipeline, v) for v in ("point", "count", "track")):
        raise Molmo2Error("evaluate needs a model directory / repo id or a Molmo2 pipeline, got "
                          f"{type(model_or_pipeline).__name__}")
    return model_or_pipeline


def evaluate(
    task: str | Any,
    model_or_pipeline: Any,
    data: str | Path,
    limit: int | None = None,
    predictions_path: str | Path | None = None,
    *,
    model_name: str | None = None,
    progress: bool | Callable[[int, int], None] = True,
    device: str = "cpu",
    dtype: str = "float32",
    **options: Any,
) -> EvalResult:
    """Predict every item of ``task`` on ``data`` not already in ``predictions_path``, then score them all.

    task: a registry name (``molmo2.eval.tasks.TASKS``) or a task object. model_or_pipeline: a model
    directory / Hugging Face repo id (loaded with ``device`` and ``dtype``) or a ``Molmo2`` pipeline.
    limit: the first ``limit`` items only. predictions_path: the JSONL file to append to and resume from
    (None: keep predictions in memory only). model_name: recorded with each prediction (default: the
    path given). progress: a tqdm bar on stderr (True), none (False), or ``fn(done, total)``.
    options: passed to the pipeline's verbs (``max_new_tokens``, ``max_frames``, ...).
    """
    task = get_task(task) if isinstance(task, str) else task
    items = task.load(data, limit)
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        raise Molmo2Error(f"task {task.name!r} produced duplicate item ids; they must be unique to resume")
    path = None if predictions_path is None else Path(predictions_path)
    records = read_predictions(path) if path is not None else {}
    todo = [it for it in items if it.id not in records]
    num_resumed = len(items) - len(todo)

    if model_name is None and isinstance(model_or_pipeline, (str, Path)):
        model_name = str(model_or_pipeline)
    wanted = set(ids)
    others = {r.get("model") for i, r in records.items() if i in wanted} - {None, model_name}
    if model_name is not None and others:
        raise Molmo2Error(f"{path} holds predictions of {sorted(others)}, not {model_name!r}; use another "
                          "predictions file (--out) or delete it to start over")
    asked = {it.id: it.prompt for it in items if hasattr(it, "prompt")}
    changed = sorted(i for i, r in records.items() if i in asked and r.get("prompt") not in (None, asked[i]))
    if changed:
        raise Molmo2Error(f"{path} holds predictions asked with other prompts (e.g. item {changed[0]!r}: "
                          f"{records[changed[0]]['prompt']!r}); a different --prompt-seed needs another --out")
    pipe = _pipeline(model_or_pipeline, device, dtype) if todo else None

    bar, report = None, None
    if callable(progress):
        report = progress
    elif progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), initial=num_resumed, desc=f"eval {task.name}", unit="item", file=sys.stderr,
                   dynamic_ncols=True)
    out = None
    if path is not None and todo:
        path.parent.mkdir(parents=True, exist_ok=True)
        out = path.open("a")
    try:
        for k, item in enumerate(todo):
            rec = task.predict(pipe, item, **options)
            assert rec.get("id") == item.id, (rec.get("id"), item.id)
            rec = {**rec, "model": model_name}
            records[item.id] = rec
            if out is not None:
                out.write(json.dumps(rec) + "\n")
                out.flush()
            if bar is not None:
                bar.update(1)
            if report is not None:
                report(num_resumed + k + 1, len(items))
    finally:
        if out is not None:
            out.close()
        if bar is not None:
            bar.close()
    metrics = task.score(items, records)
    per_item = metrics.pop("per_item", [])
    metrics.update(model=model_name, data=str(data), limit=limit)
    return EvalResult(metrics, per_item, path, len(todo), num_resumed,
                      pick_examples(task, items, records, per_item, metrics))


def score_predictions(task: str | Any, data: str | Path, predictions_path: str | Path,
                      limit: int | None = None) -> EvalResult:
    """Score an existing predictions file without a model (items it lacks count as missing)."""
    task = get_task(task) if isinstance(task, str) else task
    items = task.load(data, limit)
    records = read_predictions(predictions_path)
    metrics = task.score(items, records)
    per_item = metrics.pop("per_item", [])
    metrics.update(data=str(data), limit=limit)
    return EvalResult(metrics, per_item, Path(predictions_path), 0, metrics.get("num_scored", 0),
                      pick_examples(task, items, records, per_item, metrics))


__all__ = ["EvalResult", "evaluate", "read_predictions", "score_predictions"]
