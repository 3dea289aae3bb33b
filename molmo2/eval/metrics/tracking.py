"""Point-tracking metrics of Molmo2's tracking evals: per-frame point-in-mask P/R/F1 and HOTA.

Official source: ``evaluate_video_object_tracking`` (evaluation.md §6a). Per video:

- **P/R/F1**: for every time that has a predicted or a GT point, Hungarian-match predicted points to
  GT points on pixel distance; a matched prediction is a hit iff it is inside the mask of the GT
  object it was matched to; P = hits/#pred, R = hits/#GT objects in that frame; the empty rules of
  §13 (a frame with predictions but no GT scores 0). The video score is the mean over those frames.
- **HOTA**: TrackEval's HOTA (:func:`hota`, a line-by-line port of ``trackeval.metrics.HOTA``) with
  a **binary** similarity, 1 iff the predicted point is inside the GT object's mask. With binary
  similarity every α gives the same value; the reported value is α = 0.5. A video with neither GT nor
  predictions scores 1 (Molmo2's rule; TrackEval returns 0 for an empty sequence).
- Dataset scores are plain means over videos (not TrackEval's pooled ``combine_sequences``).

Frames are matched by time at millisecond resolution (``masks.time_key``); a prediction at a time
without GT points is a frame with empty GT. ``gt_times`` names the annotated times: one of them with no
GT point (every object absent) is a frame too, scoring 1 for P/R/F1 when nothing is predicted there
and 0 otherwise (the official loop over ``frame_trajectories`` entries, which keeps such frames). Predicted and GT tracks are ``molmo2.grounding.types.Track``
(pixels, ``t`` in seconds); a track's ``object_id`` names its mask in :class:`InstanceMasks`.

``compat="official"`` reproduces the released code's quirks (§6a):

1. *absent-object lookup*: the official code takes the masks of **all** objects of the video in their
   storage order (``masks.object_ids``), but the points of only the objects present in the frame, so
   Hungarian column j (the j-th present object) is looked up in the j-th object of the video. Once an
   object is absent, later objects are checked against the wrong mask. The recall denominator is the
   number of objects in the video, not in the frame. HOTA's similarity has the same misalignment
   (GT points sorted by object id, zipped with the masks in storage order).
2. HOTA's global alignment score gets ``+eps`` in its denominator, which changes Hungarian
   tie-breaks in rare cases (0.08% of random sequences, §11).

The default ``compat="correct"`` looks each matched object's mask up by its id.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics._common import PRF1, Compat, check_compat, hungarian, prf1_from_hits
from molmo2.eval.metrics.masks import InstanceMasks, point_in_mask, time_key
from molmo2.grounding.types import Point, Track

HOTA_ALPHAS = np.arange(0.05, 0.99, 0.05)  # TrackEval's 19 thresholds 0.05 .. 0.95
_ALPHA_HALF = 9  # index of α = 0.5
_EPS = np.finfo("float").eps
_HOTA_FIELDS = ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "AssRe", "AssPr", "LocA")


# --------------------------------------------------------------------------------- frame layout


@dataclass(slots=True)
class _Frame:
    t: float
    gt: list[tuple[int, float, float]]  # (object_id, x, y) in track order
    pred: list[tuple[int, float, float]]


def _frames(pred: Sequence[Track], gt: Sequence[Track], gt_times: Sequence[float] = ()) -> list[_Frame]:
    """Union of the times of predicted and GT points and of ``gt_times``, each with its points (first point
    per id and time)."""
    frames: dict[int, _Frame] = {}
    for t in gt_times:
        frames.setdefault(time_key(t), _Frame(float(t), [], []))
    for side, tracks in (("gt", gt), ("pred", pred)):
        if isinstance(tracks, Track) or not isinstance(tracks, Sequence):
            raise Molmo2Error(f"{side} tracks must be a list of Track, got {type(tracks).__name__}")
        seen_ids: set[int] = set()
        for tr in tracks:
            if not isinstance(tr, Track):
                raise Molmo2Error(f"{side} tracks must be Track objects, got {type(tr).__name__}")
            if tr.object_id in seen_ids:
                raise Molmo2Error(f"{side} tracks repeat object_id {tr.object_id}; merge them into one Track")
            seen_ids.add(tr.object_id)
            seen_times: set[int] = set()
            for p in tr.points:
                if not isinstance(p, Point) or p.t is None:
                    raise Molmo2Error(f"{side} track {tr.object_id}: every point needs a time t, got {p!r}")
                if not (math.isfinite(p.x) and math.isfinite(p.y) and math.isfinite(p.t)):
                    raise Molmo2Error(f"{side} track {tr.object_id}: non-finite point {p!r}")
                k = time_key(p.t)
                if k in seen_times:  # the official parser keeps the first point of an id in a frame
                    continue
                seen_times.add(k)
                f = frames.setdefault(k, _Frame(float(p.t), [], []))
                getattr(f, side).append((tr.object_id, float(p.x), float(p.y)))
    return [frames[k] for k in sorted(frames)]


def _gt_masks_for_frame(masks: InstanceMasks, f: _Frame, compat: str, gt_order: Sequence[int]) -> list:
    """The mask each GT column is checked against (see the module docstring for the official quirk)."""
    if compat == "official":
        empty = np.zeros((masks.size[1], masks.size[0]), dtype=bool)
        by_video = [masks.get(oid, f.t) for oid in masks.object_ids]
        by_video = [empty if m is None else m for m in by_video]
        return [by_video[j] if j < len(by_video) else None for j in range(len(gt_order))]
    return [masks.get(oid, f.t) for oid in gt_order]


def _check_gt_ids(gt: Sequence[Track], masks: InstanceMasks) -> None:
    if not isinstance(masks, InstanceMasks):
        raise Molmo2Error(f"masks must be InstanceMasks, got {type(masks).__name__}")
    missing = sorted({tr.object_id for tr in gt} - set(masks.object_ids))
    if missing:
        raise Molmo2Error(f"ground-truth tracks {missing} have no masks (masks hold {masks.object_ids})")


# ------------------------------------------------------------------------------------- P / R / F1


@dataclass(frozen=True, slots=True)
class TrackPRF1:
    """Per-video point-in-mask scores: means over frames, and the per-frame scores behind them."""

    precision: float
    recall: float
    f1: float
    frames: tuple[tuple[float, PRF1], ...]  # (time, score)


def track_point_prf1(
    pred: Sequence[Track], gt: Sequence[Track], masks: InstanceMasks, compat: Compat = "correct",
    gt_times: Sequence[float] = (),
) -> TrackPRF1:
    """Point-in-mask P/R/F1 of one video, averaged over frames (module docstring)."""
    check_compat(compat)
    _check_gt_ids(gt, masks)
    frames = _frames(pred, gt, gt_times)
    if not frames:  # nothing to find and nothing predicted
        return TrackPRF1(1.0, 1.0, 1.0, ())
    out = []
    for f in frames:
        gt_ids = [oid for oid, _, _ in f.gt]
        if not f.gt or not f.pred:
            out.append((f.t, prf1_from_hits(0, len(f.pred), len(f.gt))))
            continue
        pred_xy = np.array([(x, y) for _, x, y in f.pred])
        gt_xy = np.array([(x, y) for _, x, y in f.gt])
        rows, cols = hungarian(np.linalg.norm(pred_xy[:, None] - gt_xy[None], axis=-1))
        col_masks = _gt_masks_for_frame(masks, f, compat, gt_ids)
        hits = 0
        for i, j in zip(rows, cols):
            m = col_masks[j]
            hits += m is not None and point_in_mask(pred_xy[i, 0], pred_xy[i, 1], m)
        denom = len(masks.object_ids) if compat == "official" else None
        out.append((f.t, prf1_from_hits(hits, len(f.pred), len(f.gt), recall_denominator=denom)))
    return TrackPRF1(
        precision=float(np.mean([s.precision for _, s in out])),
        recall=float(np.mean([s.recall for _, s in out])),
        f1=float(np.mean([s.f1 for _, s in out])),
        frames=tuple(out),
    )


# ------------------------------------------------------------------------------------------ HOTA


def hota(
    gt_ids: Sequence[np.ndarray],
    tracker_ids: Sequence[np.ndarray],
    similarity: Sequence[np.ndarray],
    compat: Compat = "correct",
) -> dict[str, np.ndarray]:
    """HOTA of one sequence: TrackEval's ``HOTA.eval_sequence`` on its data layout.

    Per frame t: ``gt_ids[t]`` and ``tracker_ids[t]`` are int arrays of 0-based contiguous ids,
    ``similarity[t]`` is ``[len(gt_ids[t]), len(tracker_ids[t])]`` in [0, 1]. Returns arrays over the 19
    α of ``HOTA_ALPHAS`` for ``HOTA, DetA, AssA, DetRe, DetPr, AssRe, AssPr, LocA, HOTA_TP, HOTA_FN,
    HOTA_FP``. An empty sequence follows TrackEval (HOTA 0); the point-track wrapper handles that case.
    ``compat="official"`` adds Molmo2's ``+eps`` to the global alignment denominator.
    """
    check_compat(compat)
    if not (len(gt_ids) == len(tracker_ids) == len(similarity)):
        raise Molmo2Error("gt_ids, tracker_ids and similarity must have one entry per frame")
    gt_l = [np.asarray(g, dtype=np.int64).reshape(-1) for g in gt_ids]
    tr_l = [np.asarray(t, dtype=np.int64).reshape(-1) for t in tracker_ids]
    sims = []
    for t, (g, tr, s) in enumerate(zip(gt_l, tr_l, similarity)):
        s = np.asarray(s, dtype=np.float64).reshape(len(g), len(tr))  # raises on a wrong size
        if s.size and (not np.all(np.isfinite(s)) or s.min() < 0 or s.max() > 1):
            raise Molmo2Error(f"frame {t}: similarity must be finite and in [0, 1]")
        if len(set(g.tolist())) != len(g) or len(set(tr.tolist())) != len(tr):
            raise Molmo2Error(f"frame {t}: an id appears twice in one frame")
        if (len(g) and g.min() < 0) or (len(tr) and tr.min() < 0):
            raise Molmo2Error(f"frame {t}: ids must be non-negative indices")
        sims.append(s)
    num_gt_ids = int(max((g.max() + 1 for g in gt_l if len(g)), default=0))
    num_tr_ids = int(max((t.max() + 1 for t in tr_l if len(t)), default=0))
    num_gt_dets = sum(len(g) for g in gt_l)
    num_tr_dets = sum(len(t) for t in tr_l)

    n_a = len(HOTA_ALPHAS)
    res = {k: np.zeros(n_a) for k in (*_HOTA_FIELDS, "HOTA_TP", "HOTA_FN", "HOTA_FP")}
    if num_tr_dets == 0 or num_gt_dets == 0:
        res["HOTA_FN"][:] = num_gt_dets
        res["HOTA_FP"][:] = num_tr_dets
        res["LocA"][:] = 1.0
        return res

    potential = np.zeros((num_gt_ids, num_tr_ids))
    gt_count = np.zeros((num_gt_ids, 1))
    tr_count = np.zeros((1, num_tr_ids))
    for g, tr, s in zip(gt_l, tr_l, sims):
        denom = s.sum(0)[None, :] + s.sum(1)[:, None] - s
        sim_iou = np.zeros_like(s)
        ok = denom > 0 + _EPS
        sim_iou[ok] = s[ok] / denom[ok]
        potential[g[:, None], tr[None, :]] += sim_iou
        gt_count[g] += 1
        tr_count[0, tr] += 1
    denom = gt_count + tr_count - potential + (_EPS if compat == "official" else 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):  # ids that never occur are never indexed
        global_score = potential / denom
    matches = [np.zeros_like(potential) for _ in range(n_a)]

    for g, tr, s in zip(gt_l, tr_l, sims):
        if len(g) == 0:
            res["HOTA_FP"] += len(tr)
            continue
        if len(tr) == 0:
            res["HOTA_FN"] += len(g)
            continue
        score = global_score[g[:, None], tr[None, :]] * s
        rows, cols = hungarian(-score)
        for a, alpha in enumerate(HOTA_ALPHAS):
            ok = s[rows, cols] >= alpha - _EPS
            r, c = rows[ok], cols[ok]
            n = len(r)
            res["HOTA_TP"][a] += n
            res["HOTA_FN"][a] += len(g) - n
            res["HOTA_FP"][a] += len(tr) - n
            if n:
                res["LocA"][a] += s[r, c].sum()
                matches[a][g[r], tr[c]] += 1

    for a in range(n_a):
        m = matches[a]
        tp = max(1.0, res["HOTA_TP"][a])
        res["AssA"][a] = np.sum(m * (m / np.maximum(1, gt_count + tr_count - m))) / tp
        res["AssRe"][a] = np.sum(m * (m / np.maximum(1, gt_count))) / tp
        res["AssPr"][a] = np.sum(m * (m / np.maximum(1, tr_count))) / tp
    res["LocA"] = np.maximum(1e-10, res["LocA"]) / np.maximum(1e-10, res["HOTA_TP"])
    tp, fn, fp = res["HOTA_TP"], res["HOTA_FN"], res["HOTA_FP"]
    res["DetRe"] = tp / np.maximum(1, tp + fn)
    res["DetPr"] = tp / np.maximum(1, tp + fp)
    res["DetA"] = tp / np.maximum(1, tp + fn + fp)
    res["HOTA"] = np.sqrt(res["DetA"] * res["AssA"])
    return res


def track_hota(
    pred: Sequence[Track], gt: Sequence[Track], masks: InstanceMasks, compat: Compat = "correct",
    gt_times: Sequence[float] = (),
) -> dict[str, float]:
    """HOTA, DetA, AssA, DetRe, DetPr, LocA of one video's point tracks at α = 0.5 (module docstring)."""
    check_compat(compat)
    _check_gt_ids(gt, masks)
    frames = _frames(pred, gt, gt_times)  # an empty annotated frame holds no detections: HOTA ignores it
    if not any(f.gt or f.pred for f in frames):
        return {k: 1.0 for k in ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "LocA")}
    gt_index = {oid: i for i, oid in enumerate(sorted({tr.object_id for tr in gt if tr.points}))}
    pred_index = {oid: i for i, oid in enumerate(sorted({tr.object_id for tr in pred if tr.points}))}
    gt_ids, tr_ids, sims = [], [], []
    for f in frames:
        gt_pts = sorted(f.gt)  # official: sorted(points.items()); a fixed order also fixes tie-breaks
        pred_pts = sorted(f.pred)
        s = np.zeros((len(gt_pts), len(pred_pts)))
        if gt_pts and pred_pts:
            col_masks = _gt_masks_for_frame(masks, f, compat, [oid for oid, _, _ in gt_pts])
            for i, m in enumerate(col_masks):
                if m is None:
                    continue
                for j, (_, x, y) in enumerate(pred_pts):
                    s[i, j] = point_in_mask(x, y, m)
        gt_ids.append(np.array([gt_index[oid] for oid, _, _ in gt_pts], dtype=np.int64))
        tr_ids.append(np.array([pred_index[oid] for oid, _, _ in pred_pts], dtype=np.int64))
        sims.append(s)
    res = hota(gt_ids, tr_ids, sims, compat)
    return {k: float(res[k][_ALPHA_HALF]) for k in ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "LocA")}


def mean_tracking(per_video: Sequence[dict[str, float]]) -> dict[str, float]:
    """Plain mean over videos of every key (the official aggregation; not TrackEval's pooling)."""
    if not per_video:
        raise Molmo2Error("no per-video tracking scores to average")
    keys = per_video[0].keys()
    return {k: float(np.mean([v[k] for v in per_video])) for k in keys}


def track_scores(
    pred: Sequence[Track], gt: Sequence[Track], masks: InstanceMasks, compat: Compat = "correct",
    gt_times: Sequence[float] = (),
) -> dict[str, float]:
    """The official per-video keys: ``precision, recall, f1`` (point-in-mask) and ``HOTA, DetA, AssA, ...``."""
    prf = track_point_prf1(pred, gt, masks, compat, gt_times)
    return {"precision": prf.precision, "recall": prf.recall, "f1": prf.f1,
            **track_hota(pred, gt, masks, compat, gt_times)}


__all__ = [
    "HOTA_ALPHAS",
    "TrackPRF1",
    "hota",
    "mean_tracking",
    "track_hota",
    "track_point_prf1",
    "track_scores",
]
