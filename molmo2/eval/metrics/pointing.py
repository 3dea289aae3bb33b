"""Pointing metrics: image pointing (PixMo-Points eval), video pointing (Molmo2-VideoPointEval), Point-Bench.

All three are the official rules (evaluation.md §4, §7, §13), written as pure functions of parsed
points (``molmo2.grounding.types.Point``, pixels) and ground-truth masks:

- **image pointing** — Hungarian matching of predicted to GT points on pixel distance, then a matched
  prediction is a hit iff it lies inside the mask of the GT instance it was matched to.
- **video pointing** — the same, but the matching cost is the Euclidean distance in the normalized
  ``(round(t/duration*100, 1), round(x/W*100, 1), round(y/H*100, 1))`` space, and a hit needs the
  predicted time to be **exactly** a time at which the matched instance has a mask (no tolerance; an
  off-grid time never hits) and the point inside that mask. A prediction may land on any annotated
  frame of its instance, not only on the GT point's own time.
- **Point-Bench** — success iff there is at least one point and every point is inside the mask
  (coordinates truncated with ``int()``); the score is the unweighted mean of five category means.

The matching ignores masks on purpose (it is the official rule), so a point inside instance A that is
closer to instance B's GT point is matched to B and misses; tests pin this "wrong instance" case.
Empty GT scores 1 iff there are no predictions; predictions with empty GT, or no predictions with
non-empty GT, score 0. Per-example scores are averaged with a plain mean over examples (§2).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics._common import PRF1, finite_xy, hungarian, mean_prf1, prf1_from_hits
from molmo2.eval.metrics.masks import InstanceMasks, MaskLike, as_mask, point_in_mask
from molmo2.grounding.types import Point

POINT_BENCH_CATEGORIES: tuple[str, ...] = ("affordable", "counting", "reasoning", "spatial", "steerable")

PointsLike = Sequence[Point] | Sequence[Sequence[float]] | np.ndarray


def _xy(points: PointsLike, what: str) -> np.ndarray:
    """Points or (x, y) rows -> float array ``[N, 2]``."""
    if isinstance(points, np.ndarray):
        arr = points.astype(np.float64)
        if arr.size == 0:
            return np.zeros((0, 2))
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise Molmo2Error(f"{what} must be [N, 2] (x, y) pixels, got shape {arr.shape}")
    else:
        rows = []
        for p in points:
            if isinstance(p, Point):
                rows.append((p.x, p.y))
            elif isinstance(p, Sequence) and len(p) == 2:
                rows.append((float(p[0]), float(p[1])))
            else:
                raise Molmo2Error(f"{what} must be Points or (x, y) pairs, got {p!r}")
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
    for x, y in arr:
        finite_xy(x, y, what)
    return arr


def image_pointing_prf1(pred: PointsLike, gt_points: PointsLike, gt_masks: Sequence[MaskLike] | np.ndarray,
                        size: tuple[int, int] | None = None) -> PRF1:
    """P/R/F1 of one image (PixMo-Points eval, ``PointingEval``; evaluation.md §7).

    ``gt_masks[j]`` is the mask of GT instance ``j`` (``[N, H, W]`` array, or a list of arrays / RLE
    dicts / polygons; polygons need ``size`` = (width, height)).
    """
    pred_xy, gt_xy = _xy(pred, "predicted points"), _xy(gt_points, "ground-truth points")
    masks = [as_mask(m, size) for m in gt_masks]
    if len(masks) != len(gt_xy):
        raise Molmo2Error(f"{len(gt_xy)} ground-truth points but {len(masks)} masks: give one mask per point")
    if len(gt_xy) == 0 or len(pred_xy) == 0:
        return prf1_from_hits(0, len(pred_xy), len(gt_xy))
    cost = np.linalg.norm(pred_xy[:, None, :] - gt_xy[None, :, :], axis=-1)  # [P, G] = scipy cdist
    rows, cols = hungarian(cost)
    hits = sum(point_in_mask(pred_xy[i, 0], pred_xy[i, 1], masks[j]) for i, j in zip(rows, cols))
    return prf1_from_hits(int(hits), len(pred_xy), len(gt_xy))


def video_pointing_prf1(
    pred: Sequence[Point],
    gt_points: Sequence[Point],
    gt_masks: InstanceMasks | Sequence[Mapping[float, MaskLike]],
    duration: float,
    size: tuple[float, float],
) -> PRF1:
    """P/R/F1 of one video (Molmo2-VideoPointEval, ``VixMoPointEval``; evaluation.md §4).

    ``pred`` and ``gt_points`` are Points with ``t`` (seconds) in pixels of a ``size`` = (W, H) frame.
    ``gt_masks`` gives each GT instance's masks by time: either a list aligned with ``gt_points``
    (``{t: mask}`` per instance, as the released set stores them), or :class:`InstanceMasks` looked up
    by each GT point's ``object_id``.
    """
    if not (math.isfinite(duration) and duration > 0):
        raise Molmo2Error(f"video duration must be a positive number of seconds, got {duration}")
    w, h = _size(size)
    for what, pts in (("predicted", pred), ("ground-truth", gt_points)):
        for p in pts:
            if not isinstance(p, Point) or p.t is None:
                raise Molmo2Error(f"{what} video points must be Points with a time t, got {p!r}")
            finite_xy(p.x, p.y, f"{what} points")
            if not math.isfinite(p.t):
                raise Molmo2Error(f"{what} point time must be finite, got {p.t}")
    lookup = _instance_lookup(gt_points, gt_masks, (int(round(w)), int(round(h))))
    if len(gt_points) == 0 or len(pred) == 0:
        return prf1_from_hits(0, len(pred), len(gt_points))

    def norm(points: Sequence[Point]) -> np.ndarray:  # official normalize_timestamps_and_points
        return np.array([(round(p.t / duration * 100, 1), round(p.x / w * 100, 1), round(p.y / h * 100, 1))
                         for p in points])

    pred_n, gt_n = norm(pred), norm(gt_points)
    rows, cols = hungarian(np.linalg.norm(pred_n[:, None, :] - gt_n[None, :, :], axis=-1))
    hits = 0
    for i, j in zip(rows, cols):
        p = pred[i]
        mask = lookup(int(j), float(p.t))
        hits += mask is not None and point_in_mask(p.x, p.y, mask)
    return prf1_from_hits(hits, len(pred), len(gt_points))


def _instance_lookup(gt_points: Sequence[Point], gt_masks: Any, size: tuple[int, int]):
    """-> f(gt index, t) = mask of that GT instance at exactly t, or None."""
    if isinstance(gt_masks, InstanceMasks):
        ids = [p.object_id for p in gt_points]
        if any(i is None for i in ids):
            raise Molmo2Error("with InstanceMasks every ground-truth point needs its object_id")
        missing = sorted({i for i in ids if i not in gt_masks.object_ids})
        if missing:
            raise Molmo2Error(f"ground-truth object ids {missing} have no masks")
        return lambda j, t: gt_masks.get(ids[j], t)
    if isinstance(gt_masks, (str, bytes)) or not isinstance(gt_masks, Sequence):
        raise Molmo2Error("gt_masks must be InstanceMasks or a list of {time: mask} per ground-truth point")
    if len(gt_masks) != len(gt_points):
        raise Molmo2Error(f"{len(gt_points)} ground-truth points but {len(gt_masks)} mask sets")
    inst = InstanceMasks(size, {j: m for j, m in enumerate(gt_masks)})
    return inst.get


def _size(size: Any) -> tuple[float, float]:
    try:
        w, h = (float(v) for v in size)
    except (TypeError, ValueError):
        raise Molmo2Error(f"size must be (width, height) in pixels, got {size!r}") from None
    if not (w > 0 and h > 0):
        raise Molmo2Error(f"size must be positive, got {size!r}")
    return w, h


def mean_pointing(scores: Sequence[PRF1]) -> dict[str, float]:
    """Dataset scores: plain means of per-example precision/recall/F1, plus ``valid`` (had ≥1 prediction)."""
    out = mean_prf1(list(scores))
    out["valid"] = float(np.mean([s.num_pred > 0 for s in scores])) if scores else math.nan
    return out


# -------------------------------------------------------------------------------------- Point-Bench


def point_bench_mask(image: np.ndarray) -> np.ndarray:
    """A Point-Bench mask image -> bool ``[H, W]``: a pixel is in the mask if any channel is > 127."""
    a = np.asarray(image)
    if a.ndim == 3:
        return (a > 127).any(axis=-1)
    if a.ndim == 2:
        return a > 127
    raise Molmo2Error(f"a Point-Bench mask must be an [H, W] or [H, W, C] image, got shape {a.shape}")


def point_bench_success(pred: PointsLike, mask: np.ndarray, size: tuple[int, int] | None = None) -> bool:
    """One Point-Bench item (``PointBenchEval``, evaluation.md §7): ≥1 point and all inside the mask.

    Coordinates are truncated with ``int()``; a point outside the image ``size`` = (W, H) (default: the
    mask's shape) or outside the mask's shape fails (the released masks sometimes differ in size).
    """
    m = np.asarray(mask).astype(bool)
    if m.ndim != 2:
        raise Molmo2Error(f"mask must be [H, W], got shape {m.shape}; use point_bench_mask() on images")
    xy = _xy(pred, "predicted points")
    if len(xy) == 0:
        return False
    img_w, img_h = (m.shape[1], m.shape[0]) if size is None else (int(size[0]), int(size[1]))
    for x, y in xy:
        xi, yi = int(x), int(y)
        if not (0 <= xi < img_w and 0 <= yi < img_h):
            return False
        if not point_in_mask(x, y, m, rounding="floor"):
            return False
    return True


def point_bench_scores(items: Iterable[tuple[str, bool]]) -> dict[str, float]:
    """(category, success) pairs -> the five category means and ``average`` (their unweighted mean).

    A category with no items is NaN and makes ``average`` NaN, so a partial run cannot pass for a full one.
    """
    by_cat: dict[str, list[bool]] = {c: [] for c in POINT_BENCH_CATEGORIES}
    for cat, ok in items:
        if cat not in by_cat:
            raise Molmo2Error(f"unknown Point-Bench category {cat!r}; expected one of {POINT_BENCH_CATEGORIES}")
        by_cat[cat].append(bool(ok))
    out = {c: (float(np.mean(v)) if v else math.nan) for c, v in by_cat.items()}
    out["average"] = float(np.mean([out[c] for c in POINT_BENCH_CATEGORIES]))
    return out


__all__ = [
    "POINT_BENCH_CATEGORIES",
    "image_pointing_prf1",
    "mean_pointing",
    "point_bench_mask",
    "point_bench_scores",
    "point_bench_success",
    "video_pointing_prf1",
]
