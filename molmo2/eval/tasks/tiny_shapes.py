"""The tiny-shapes eval task: a manifest of :mod:`molmo2.data.shapes` examples -> eval items -> scores.

Every ``pointing``, ``counting`` and ``tracking`` annotation of a manifest (image or video) becomes one
:class:`ShapesItem`, named ``"{example id}/{annotation index}"`` so that a predictions file written by
one run can be resumed by the next. The ground truth is the example's visible-instance map
(``ground_truth["masks"]``: ``ids [T, H, W]`` + ``times [T]``, read with
:meth:`~molmo2.eval.metrics.InstanceMasks.from_npz`), and every score is one of the existing metric
functions, so tiny-shapes numbers mean what the official benchmarks' numbers mean:

============ ======= ===========================================================================
kind         medium  score (molmo2.eval.metrics)
============ ======= ===========================================================================
pointing     image   ``image_pointing_prf1``: Hungarian on pixels, hit = point in the matched mask
pointing     video   ``video_pointing_prf1``: (t, x, y) matching, hit = exact time + point in mask
counting     image   ``image_count_score``: the number of points == GT (the official image rule)
counting     video   ``video_count_score``: the stated number == GT (the official video rule)
tracking     video   ``track_scores``: per-frame point-in-mask P/R/F1 and HOTA (α = 0.5)
============ ======= ===========================================================================

Scores are plain means over items within each ``kind/medium`` group (the official aggregation); the
headline of a group is ``f1`` for pointing and tracking and ``correct`` (exact accuracy) for counting.
Objects that are only slivers (below the generator's ``min_visible``) are in the masks but in no
annotation; a point on one is a false positive, as a point on any unannotated thing would be.

Scoring is pure: a prediction is a JSON record ``{"id", "text"}`` plus, when the pipeline made it, the
parsed ``grounding`` (``GroundingResult.to_dict()``); without one the text is parsed here with the
item's size. Running the model (:meth:`TinyShapes.predict`) only dispatches to the pipeline's
``point`` / ``count`` / ``track``, duck-typed, so this module imports no torch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from molmo2.data.schema import DataError, read_jsonl
from molmo2.errors import Molmo2Error
from molmo2.eval.metrics import (
    PRF1,
    CountScore,
    InstanceMasks,
    image_count_score,
    image_pointing_prf1,
    mean_pointing,
    summarize_counts,
    track_scores,
    video_count_score,
    video_pointing_prf1,
)
from molmo2.eval.report import ReportExample, points_example, union_mask
from molmo2.grounding import GroundingResult, Point, Track, parse

KINDS: tuple[str, ...] = ("pointing", "counting", "tracking")
VERBS = {"pointing": "point", "counting": "count", "tracking": "track"}
HEADLINE = {"pointing": "f1", "counting": "correct", "tracking": "f1"}


@dataclass
class ShapesItem:
    """One question of the eval: an annotation of a tiny-shapes example with its ground truth."""

    id: str  # "{example id}/{annotation index}"
    kind: str  # pointing | counting | tracking
    medium: str  # image | video
    media: Path
    label: str  # the query, e.g. "red circles"
    size: tuple[int, int]  # (width, height) in pixels
    masks: Path  # npz: ids [T, H, W], times [T]
    times: list[float]  # the ground-truth instants (one, 0.0, for an image)
    points: list[Point] = field(default_factory=list)  # pointing / counting
    tracks: list[Track] = field(default_factory=list)  # tracking

    @property
    def group(self) -> str:
        return f"{self.kind}/{self.medium}"

    @property
    def num_objects(self) -> int:
        return len(self.tracks) if self.kind == "tracking" else len(self.points)

    @property
    def duration(self) -> float:
        return float(self.times[-1]) if self.times else 0.0


def resolve_manifest(data: str | Path) -> Path:
    """A manifest path, or a folder holding ``data.jsonl`` (what ``generate_dataset`` writes)."""
    path = Path(data)
    if path.is_dir():
        if (path / "data.jsonl").is_file():
            return path / "data.jsonl"
        found = sorted(p.name for p in path.glob("*.jsonl"))
        hint = f"; it has {', '.join(found)}: pass one of them" if found else ""
        raise Molmo2Error(f"{path} has no data.jsonl{hint}")
    if not path.is_file():
        raise Molmo2Error(f"tiny-shapes data not found: {path} (pass a folder with data.jsonl or a manifest)")
    return path


def load_items(data: str | Path, limit: int | None = None, kinds: Sequence[str] = KINDS) -> list[ShapesItem]:
    """The eval items of a manifest (or a folder with ``data.jsonl``), in file order, at most ``limit``."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise Molmo2Error(f"limit must be a positive integer, got {limit!r}")
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise Molmo2Error(f"tiny-shapes scores {', '.join(KINDS)}; got {bad}")
    manifest = resolve_manifest(data)
    items: list[ShapesItem] = []
    for ex in read_jsonl(manifest):
        if ex.media.kind not in ("image", "video"):
            continue
        gt = ex.ground_truth
        if "masks" not in gt or "width" not in gt or "height" not in gt:
            raise DataError(f"{manifest}: example {ex.id!r} has no ground_truth masks/width/height; tiny-shapes "
                            "eval needs the generator's ground truth (molmo2.data.shapes)")
        base = ex.root or manifest.parent
        masks = Path(gt["masks"]) if Path(gt["masks"]).is_absolute() else base / gt["masks"]
        for k, ann in enumerate(ex.annotations):
            if ann.kind not in kinds or ann.messages is not None:
                continue
            items.append(ShapesItem(
                id=f"{ex.id}/{k}", kind=ann.kind, medium=ex.media.kind, media=ex.media_paths()[0],
                label=ann.label or "", size=(int(gt["width"]), int(gt["height"])), masks=masks,
                times=[float(t) for t in gt.get("times") or [0.0]],
                points=list(ann.points or []), tracks=list(ann.tracks or [])))
            if limit is not None and len(items) >= limit:
                return items
    return items


def grounding_of(item: ShapesItem, record: Mapping[str, Any]) -> GroundingResult:
    """The parsed answer of a prediction record: its ``grounding`` if present, else its ``text`` parsed."""
    if record.get("grounding") is not None:
        return GroundingResult.from_dict(record["grounding"])
    text = record.get("text")
    if not isinstance(text, str):
        raise Molmo2Error(f"prediction {item.id!r} has neither 'grounding' nor a 'text' string")
    return parse(text, item.size, video=item.medium == "video")


class _MaskCache:
    """InstanceMasks per npz path, for the items of one example scored one after another."""

    def __init__(self, size: int = 8):
        self.size, self.items = size, {}

    def __call__(self, path: Path) -> InstanceMasks:
        hit = self.items.get(path)
        if hit is None:
            hit = self.items[path] = InstanceMasks.from_npz(path)
            while len(self.items) > self.size:
                self.items.pop(next(iter(self.items)))
        return hit


def score_item(item: ShapesItem, record: Mapping[str, Any], masks: InstanceMasks | None = None) -> dict[str, Any]:
    """The scores of one prediction (the module docstring's table), as a flat JSON-ready dict."""
    masks = masks if masks is not None else InstanceMasks.from_npz(item.masks)
    g = grounding_of(item, record)
    out: dict[str, Any] = {"id": item.id, "group": item.group, "num_gt": item.num_objects}
    if item.kind == "pointing":
        if item.medium == "image":
            t0 = item.times[0]
            gt_masks = [_mask_or_empty(masks, p.object_id, t0) for p in item.points]
            s = image_pointing_prf1(g.points, item.points, gt_masks)
        else:
            s = video_pointing_prf1([p for p in g.points if p.t is not None], item.points, masks,
                                    item.duration, item.size)
        out.update(s.to_dict(), num_pred=s.num_pred, num_hits=s.num_hits)
    elif item.kind == "counting":
        gt = len(item.points)
        c = image_count_score(len(g.points), gt) if item.medium == "image" else video_count_score(g.text, gt)
        out.update(correct=c.correct, close=c.close, valid=c.valid, pred=c.pred, gt=c.gt)
    else:
        s = track_scores(g.tracks, item.tracks, masks)
        out.update(s, num_pred=sum(len(t.points) for t in g.tracks))
    return out


def _mask_or_empty(masks: InstanceMasks, object_id: int | None, t: float) -> np.ndarray:
    m = None if object_id is None else masks.get(object_id, t)
    return np.zeros((masks.size[1], masks.size[0]), dtype=bool) if m is None else m


def summarize(item_scores: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per ``kind/medium`` group: ``num`` and the plain means the official evaluators report."""
    by_group: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for s in item_scores:
        by_group[s["group"]].append(s)
    out: dict[str, dict[str, float]] = {}
    for group in sorted(by_group, key=_group_order):
        rows = by_group[group]
        kind, medium = group.split("/")
        if kind == "pointing":
            m = mean_pointing([PRF1.from_row(r) for r in rows])
        elif kind == "counting":
            scores = [CountScore(r["correct"], r["close"], r["valid"], r["pred"], r["gt"]) for r in rows]
            full = summarize_counts(scores, medium=medium)
            m = {k: full[k] for k in ("correct", "close", "valid")}
        else:
            keys = ("f1", "precision", "recall", "HOTA", "DetA", "AssA")
            m = {k: float(sum(r[k] for r in rows) / len(rows)) for k in keys}
        out[group] = {"num": len(rows), **m}
    return out


def _group_order(group: str) -> tuple[int, str]:
    kind, medium = group.split("/")
    return KINDS.index(kind), medium


class TinyShapes:
    """The task object the runner drives: ``load`` items, ``predict`` one, ``score`` them all."""

    name = "tiny-shapes"

    def load(self, data: str | Path, limit: int | None = None) -> list[ShapesItem]:
        return load_items(data, limit)

    def predict(self, pipe: Any, item: ShapesItem, **options: Any) -> dict[str, Any]:
        """Ask the pipeline (``point`` / ``count`` / ``track``) and return the prediction record."""
        answer = getattr(pipe, VERBS[item.kind])(item.media, item.label, **options)
        return {"id": item.id, "kind": item.kind, "medium": item.medium, "label": item.label,
                "text": answer.text, "grounding": answer.grounding.to_dict(),
                "finish_reason": getattr(answer, "finish_reason", None)}

    def example(self, item: ShapesItem, record: Mapping[str, Any], row: Mapping[str, Any]) -> ReportExample:
        """The item's frame (a video: its most crowded annotated instant) with true and predicted points."""
        g = grounding_of(item, record)
        if item.kind == "tracking":
            true, pred = [p for tr in item.tracks for p in tr.points], [p for tr in g.tracks for p in tr.points]
        else:
            true, pred = item.points, g.points
        caption = f"{item.group} {item.label!r}"
        if item.kind == "counting":
            caption += f": answered {row.get('pred')}, true count {row.get('gt')}"
        ids = sorted({p.object_id for p in true if p.object_id is not None})
        masks = InstanceMasks.from_npz(item.masks)
        return points_example(item.id, item.media, item.medium, item.size, true, pred, caption,
                              mask_at=lambda t: union_mask(masks, ids, item.times[0] if t is None else t))

    def score(self, items: Iterable[ShapesItem], predictions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """Metrics of the items that have a prediction: per group, the headline per group, per item."""
        items = list(items)
        masks = _MaskCache()
        per_item = [score_item(it, predictions[it.id], masks(it.masks)) for it in items if it.id in predictions]
        groups = summarize(per_item)
        headline = {g: {"metric": HEADLINE[g.split("/")[0]], "value": v[HEADLINE[g.split("/")[0]]]}
                    for g, v in groups.items()}
        return {"task": self.name, "num_items": len(items), "num_scored": len(per_item),
                "num_missing": len(items) - len(per_item), "groups": groups, "headline": headline,
                "per_item": per_item}


__all__ = ["KINDS", "ShapesItem", "TinyShapes", "grounding_of", "load_items", "resolve_manifest", "score_item",
           "summarize"]
