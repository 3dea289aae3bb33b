"""J&F for predicted masks: the MeViS/referring protocol and the DAVIS multi-object protocol.

Molmo2 answers tracking questions with points; its headline "J&F" needs masks made from those points
by a promptable segmenter that the official repo does not contain (evaluation.md §6b). These functions
score masks once you have them:

- :func:`referring_j_and_f` — MeViS ``tools/eval_mevis.py``: per expression, GT = union of the target
  objects' masks per frame, prediction = one mask per frame; J = mean over frames of ``mask_iou``,
  F = mean over frames of ``boundary_f`` (``bound_th=0.008``); ``J&F = (J + F) / 2``. The dataset
  score averages J and F over expressions, then takes their mean (``mean_j_and_f``).
- :func:`multi_object_j_and_f` — DAVIS 2017 / TrackEval ``JAndF`` (``optim_type="J"``): predicted and
  GT object ids are matched one-to-one maximizing mean J over frames (frames where an object is absent
  count as an empty mask, so empty-vs-empty = 1); when there are fewer predicted than GT objects the
  predictions are padded with empty tracks, exactly as TrackEval does. J/F-Mean average per GT object,
  J/F-Recall are the fraction of frames above 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics._common import hungarian
from molmo2.eval.metrics.masks import boundary_f, mask_iou

_EPS = np.finfo("float").eps


def referring_j_and_f(gt: np.ndarray, pred: np.ndarray, bound_th: float = 0.008) -> dict[str, float]:
    """J, F and J&F of one expression; ``gt``/``pred`` are bool ``[T, H, W]`` (GT already the union)."""
    g, p = _video(gt, "gt"), _video(pred, "pred")
    if g.shape != p.shape:
        raise Molmo2Error(f"gt and pred masks differ in shape: {g.shape} vs {p.shape}")
    j = float(np.mean(mask_iou(g, p)))
    f = float(np.mean(boundary_f(g, p, bound_th=bound_th)))
    return {"J": j, "F": f, "J&F": (j + f) / 2}


def mean_j_and_f(per_expression: Sequence[dict[str, float]]) -> dict[str, float]:
    """Dataset J, F and J&F: means over expressions, J&F = (mean J + mean F) / 2."""
    if not per_expression:
        raise Molmo2Error("no per-expression J&F scores to average")
    j = float(np.mean([r["J"] for r in per_expression]))
    f = float(np.mean([r["F"] for r in per_expression]))
    return {"J": j, "F": f, "J&F": (j + f) / 2}


def multi_object_j_and_f(gt_ids: np.ndarray, pred_ids: np.ndarray, bound_th: float = 0.008) -> dict[str, float]:
    """DAVIS-style J&F of one video from instance maps ``[T, H, W]`` (0 = background, else object id)."""
    g, p = _ids(gt_ids, "gt_ids"), _ids(pred_ids, "pred_ids")
    if g.shape != p.shape:
        raise Molmo2Error(f"gt and pred instance maps differ in shape: {g.shape} vs {p.shape}")
    gt_objs = [int(v) for v in np.unique(g) if v != 0]
    pr_objs = [int(v) for v in np.unique(p) if v != 0]
    num_t = g.shape[0]
    if not gt_objs:
        raise Molmo2Error("the ground truth has no objects; J&F is undefined for an empty video")
    num_pad = max(0, len(gt_objs) - len(pr_objs))
    gt_m = [g == o for o in gt_objs]
    pr_m = [p == o for o in pr_objs] + [np.zeros_like(g, dtype=bool)] * num_pad
    j = np.zeros((len(pr_m), len(gt_m), num_t))
    for k, pm in enumerate(pr_m):
        for i, gm in enumerate(gt_m):
            j[k, i] = mask_iou(gm, pm)
    rows, cols = hungarian(-j.mean(axis=2))
    j_m = j[rows, cols]
    f_m = np.stack([boundary_f(gt_m[c], pr_m[r], bound_th=bound_th) for r, c in zip(rows, cols)])
    res = {
        "J-Mean": float(np.mean(j_m.mean(axis=1))),
        "J-Recall": float(np.mean((j_m > 0.5 + _EPS).mean(axis=1))),
        "F-Mean": float(np.mean(f_m.mean(axis=1))),
        "F-Recall": float(np.mean((f_m > 0.5 + _EPS).mean(axis=1))),
        "num_gt_objects": len(gt_objs),
    }
    res["J&F"] = (res["J-Mean"] + res["F-Mean"]) / 2
    return res


def _video(a: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or 0 in arr.shape:
        raise Molmo2Error(f"{what} must be a non-empty [T, H, W] mask array, got shape {arr.shape}")
    return arr.astype(bool)


def _ids(a: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or 0 in arr.shape or not np.issubdtype(arr.dtype, np.integer):
        raise Molmo2Error(f"{what} must be a non-empty integer [T, H, W] instance map, got {arr.dtype} {arr.shape}")
    return arr


__all__ = ["mean_j_and_f", "multi_object_j_and_f", "referring_j_and_f"]
