"""What the benchmark adapters share: reading released annotation files, one item type, asking the model,
and the result layout the runner and the report expect.

Every adapter (one file per benchmark) turns its released files into :class:`Item` objects — a medium,
the prompt the released model was evaluated with, the answer budget of the official eval, and the
ground truth — asks ``pipe.ask(media, prompt)`` (the local ``Molmo2`` pipeline or the OpenAI-compatible
``RemoteModel``; both return the answer text) and scores the **text** with the metric functions of
:mod:`molmo2.eval.metrics`. Grounded answers are parsed here with the image/video size the dataset
declares, as the official evaluators do (``extract_points(text, W, H)`` with the metadata's size), so a
record scores the same whichever model or server produced it.

Annotation files are read as released: Hugging Face dataset files (parquet shards, needing ``pyarrow``;
a ``datasets`` ``save_to_disk`` folder; or a JSONL export, ``Dataset.to_json``), JSON and CSV. The file
formats are read by :func:`molmo2.data.adapters.open_rows` (shared with the training-data adapters);
what is eval-specific is finding a split's files in a benchmark's folder (:func:`read_records`, lenient
about shard names, since the hub layouts of the Molmo2 eval sets were not seen) and naming the file and
field it expected when something is missing.

Scores follow one layout (the report's): ``groups`` maps ``"all"`` and ``"category/<name>"`` to
``{"num": n, metric: value, ...}``; ``headline`` names each group's headline metric. Grounding tasks
also have ``example(item, record, row)``: the item's frame with its true and predicted points for the
HTML report (:func:`grounded_example`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from molmo2.errors import Molmo2Error
from molmo2.eval.report import ReportExample, points_example, union_mask
from molmo2.grounding import Point, parse

VIDEO_ONLY_OPTIONS = ("max_frames", "max_fps", "clip")


@dataclass
class Item:
    """One question of a benchmark with its ground truth (``gt``: task-specific, JSON-ready or arrays)."""

    id: str
    media: Path | bytes  # a file, or the encoded image (CountBenchQA ships image bytes)
    medium: str  # "image" | "video"
    prompt: str
    max_new_tokens: int
    category: str | None = None
    size: tuple[int, int] | None = None  # (width, height) the dataset declares, for parsing answers
    clip: tuple[float, float] | None = None  # (start, end) seconds of the video the question is about
    max_fps: float | None = None  # frame sampling rate the official eval uses, when it overrides the default
    gt: dict[str, Any] = field(default_factory=dict)


def check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise Molmo2Error(f"limit must be a positive integer, got {limit!r}")


def hf_folder(root: Path, local_name: str) -> Path:
    """Where a Hugging Face dataset sits: ``root/<local_name>`` (the official cache layout) or ``root`` itself."""
    sub = root / local_name
    return sub if sub.is_dir() else root


def check_dir(data: str | Path, task: str, layout: str) -> Path:
    """``data`` as an existing folder, or an error that shows the layout the task reads."""
    path = Path(data)
    if not path.is_dir():
        raise Molmo2Error(f"{task}: --data must be the benchmark's folder, {path} is not one. Expected layout:\n"
                          f"{layout}")
    return path


# --------------------------------------------------------------------------------- annotation files


def _plain(v: Any) -> Any:
    """pandas/pyarrow cell values -> plain Python (lists, dicts, ints, floats, None)."""
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()] if v.dtype == object else v.tolist()
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _rows(src: Path, split: str | None = None) -> list[dict[str, Any]]:
    from molmo2.data.adapters import open_rows

    return [_plain(r) for r in open_rows(src, split)[1]]


def read_parquet(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The rows of parquet files, in order (needs pyarrow)."""
    return [r for p in paths for r in _rows(p)]


def read_arrow(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The rows of Arrow IPC files, as ``datasets``' ``save_to_disk`` writes them (``data-00000-of-00001.arrow``
    next to ``state.json``): the official eval code's local cache of a hub dataset."""
    return [r for p in paths for r in _rows(p)]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return _rows(path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise Molmo2Error(f"{path}: not valid JSON ({e})") from None


def read_csv(path: Path) -> list[dict[str, Any]]:
    import pandas as pd

    return [_plain(r) for r in pd.read_csv(path).to_dict("records")]


def read_records(folder: Path, split: str, what: str) -> tuple[list[dict[str, Any]], str]:
    """The rows of a Hugging Face dataset split stored in ``folder``: its parquet shards (any depth, the
    file name containing ``split``, e.g. ``data/val-00000-of-00001.parquet``), else a ``save_to_disk``
    copy (a ``DatasetDict`` folder with ``dataset_dict.json``, or ``{split}/data-*.arrow``), else a JSONL
    export named like the split (``val.jsonl``). Returns (rows, what was read)."""
    shards = sorted(p for p in folder.rglob("*.parquet") if split in p.name)
    if shards:
        return read_parquet(shards), ", ".join(str(p.relative_to(folder)) for p in shards)
    if (folder / "dataset_dict.json").is_file():
        return _rows(folder, split), f"{split}/ (save_to_disk)"
    arrows = sorted((folder / split).glob("*.arrow")) if (folder / split).is_dir() else []
    if arrows:
        return read_arrow(arrows), ", ".join(str(p.relative_to(folder)) for p in arrows)
    for name in (f"{split}.jsonl", f"{split}.json"):
        if (folder / name).is_file():
            path = folder / name
            return _rows(path), name
    raise Molmo2Error(f"{what}: no annotations for split {split!r} in {folder}; expected the Hugging Face dataset "
                      f"files (parquet shards such as data/{split}-00000-of-00001.parquet), a save_to_disk copy "
                      f"({split}/data-00000-of-00001.arrow) or a JSONL export {split}.jsonl")


def field_of(row: Mapping[str, Any], key: str, where: str) -> Any:
    """``row[key]``, or an error naming the file and the missing field."""
    if key not in row:
        raise Molmo2Error(f"{where}: a row has no field {key!r} (fields: {', '.join(sorted(row))}); is this the "
                          "released file of this benchmark?")
    return row[key]


def need_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise Molmo2Error(f"{what} not found: {path}")
    return path


def pixmo_image(images: Path, url: str) -> Path:
    """The local copy of a PixMo image: ``images/<sha256 of its URL>`` (the official download cache)."""
    name = hashlib.sha256(url.encode("utf-8")).hexdigest()
    path = images / name
    if path.is_file():
        return path
    found = sorted(images.glob(name + ".*"))
    if found:
        return found[0]
    raise Molmo2Error(f"image of {url} not found: expected {path} (files are named by the sha256 of their URL, as "
                      "the official download_pixmo_urls stores them)")


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, after EXIF orientation (what the model sees)."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        return int(im.width), int(im.height)


def video_size(path: Path) -> tuple[int, int]:
    from molmo2.processing.video import probe_video

    meta = probe_video(path)
    return int(meta.width), int(meta.height)


def pick_template(templates: Sequence[str], item_id: str, seed: int | None) -> str:
    """The prompt template an item is asked with: the first (canonical) one when ``seed`` is None, else a
    draw seeded by ``(seed, item id)`` alone, so the choice is the same in every run, process and order
    (a resumed run, ``--limit`` or a shuffled file ask each item the same question). The official eval
    draws per item from its own seeded RNG stream (``rng.randint``), which depends on the item order and
    cannot be reproduced without its data loader; this is the reproducible equivalent."""
    if not templates:
        raise Molmo2Error("no prompt templates to choose from")
    if seed is None:
        return templates[0]
    digest = hashlib.sha256(f"{int(seed)}/{item_id}".encode()).digest()
    return templates[int.from_bytes(digest[:8], "big") % len(templates)]


def mc_prompt(question: str, options: Sequence[str], instruction: str) -> str:
    """``question`` + ``A. option`` lines + an instruction line (the academic MC templates)."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    lines = [f"{letters[i]}. {o}" for i, o in enumerate(options)]
    return "\n".join([question, *lines, instruction])


# ---------------------------------------------------------------------------------------- predict


def ask(pipe: Any, item: Item, **options: Any) -> dict[str, Any]:
    """Ask ``pipe`` (``Molmo2`` or ``RemoteModel``) the item's prompt; the prediction record."""
    opts = {"max_new_tokens": item.max_new_tokens}
    opts.update({k: v for k, v in options.items() if v is not None})
    if item.medium == "video":
        if item.clip is not None:
            opts["clip"] = item.clip
        if item.max_fps is not None and "max_fps" not in options:
            opts["max_fps"] = item.max_fps
    else:
        opts = {k: v for k, v in opts.items() if k not in VIDEO_ONLY_OPTIONS}
    answer = pipe.ask(item.media, item.prompt, **opts)
    return {"id": item.id, "prompt": item.prompt, "text": answer.text, "grounding": answer.grounding.to_dict(),
            "finish_reason": getattr(answer, "finish_reason", None)}


def text_of(item: Item, record: Mapping[str, Any]) -> str:
    text = record.get("text")
    if not isinstance(text, str):
        raise Molmo2Error(f"prediction {item.id!r} has no 'text' string")
    return text


def answer_points(item: Item, record: Mapping[str, Any]) -> list[Point]:
    """The points (and the points of the tracks) of a prediction, parsed at the item's size."""
    g = parse(text_of(item, record), _size_of(item), video=item.medium == "video")
    return [*g.points, *(p for tr in g.tracks for p in tr.points)]


def grounded_example(item: Item, record: Mapping[str, Any], true: Sequence[Point], caption: str = "", *,
                     pred: Sequence[Point] | None = None, mask: Any = None, masks: Any = None) -> ReportExample:
    """The report example of an item: its frame, ``true`` points and the answer's points (``pred``:
    the points as scored, default: all the answer's points and track points); tinted: ``mask`` (an
    array or a mask file), or the union of every object of ``masks`` (``InstanceMasks``) at the instant
    shown."""
    pred = answer_points(item, record) if pred is None else pred
    mask_at = None if masks is None else (lambda t: union_mask(masks, masks.object_ids, t))
    return points_example(item.id, item.media, item.medium, _size_of(item), true, pred, caption,
                          time_offset=item.clip[0] if item.clip else 0.0, mask=mask, mask_at=mask_at)


def _size_of(item: Item) -> tuple[int, int]:
    if item.size is None:  # only the clips of VideoCountEval: read from the file when needed
        item.size = video_size(item.media) if item.medium == "video" else image_size(item.media)
    return item.size


# ------------------------------------------------------------------------------------------ score


def score_items(task: str, items: Iterable[Item], predictions: Mapping[str, Mapping[str, Any]],
                score_one: Callable[[Item, Mapping[str, Any]], dict[str, Any]],
                summarize: Callable[[list[dict[str, Any]]], dict[str, float]], headline: str) -> dict[str, Any]:
    """Score every item that has a prediction; ``summarize`` the rows of ``all`` and of each category."""
    items = list(items)
    per_item = []
    for it in items:
        if it.id in predictions:
            row = score_one(it, predictions[it.id])
            per_item.append({"id": it.id, "category": it.category, **row})
    groups: dict[str, dict[str, Any]] = {}
    if per_item:
        groups["all"] = {"num": len(per_item), **summarize(per_item)}
        for cat in sorted({r["category"] for r in per_item if r["category"] is not None}):
            rows = [r for r in per_item if r["category"] == cat]
            groups[f"category/{cat}"] = {"num": len(rows), **summarize(rows)}
    return {"task": task, "num_items": len(items), "num_scored": len(per_item),
            "num_missing": len(items) - len(per_item), "groups": groups,
            "headline": {g: {"metric": headline, "value": v.get(headline, math.nan)} for g, v in groups.items()},
            "per_item": per_item}


def mean_of(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, float]:
    return {k: float(np.mean([float(r[k]) for r in rows])) for k in keys}


__all__ = ["Item", "answer_points", "ask", "check_dir", "check_limit", "field_of", "grounded_example", "hf_folder",
           "image_size", "mc_prompt", "mean_of", "need_file", "pick_template", "pixmo_image", "read_arrow", "read_csv",
           "read_json", "read_jsonl", "read_parquet", "read_records", "score_items", "text_of", "video_size"]
