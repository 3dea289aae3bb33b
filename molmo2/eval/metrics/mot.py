"""CLEAR-MOT and identity (IDF1) metrics, the MOTChallenge definitions as ``motmetrics`` computes them.

Molmo2's own tracking evals report point-in-mask F1 and HOTA (``tracking.py``); CLEAR-MOT and IDF1 are
added because every tracking paper reports them and because ``motmetrics`` ships real tracker output with
published results to pin an implementation against (evaluation.md §10, §11 b).

Input per frame: the GT ids present, the tracker ids present, and a distance matrix ``[n_gt, n_tr]`` with
NaN for pairs that may not match (e.g. box IoU below 0.5, or a point outside the mask). The frame loop
is ``motmetrics.MOTAccumulator.update`` (Bernardin & Stiefelhagen 2008):

1. keep last frame's correspondence of a GT id if the same tracker id is present and pairable;
2. match the rest by minimum total distance (scipy Hungarian; unpairable edges get motmetrics' large
   finite cost and are dropped afterwards); a GT id matched to a different tracker id than its last
   one is an ID **switch**;
3. unmatched GT are misses, unmatched tracker detections false positives.

MOTA = 1 - (misses + switches + FP) / #GT detections; MOTP = mean distance of matched pairs (for an IoU
distance that is 1 - IoU, as motmetrics reports it); MT/PT/ML = GT ids tracked in >= 80%, [20, 80)%, < 20%
of their frames; fragmentations = tracked -> missed transitions inside a GT id's tracked span. Identity
metrics (Ristani et al. 2016): one global one-to-one GT/tracker id assignment maximizing the number of
frames where the pair is pairable (IDTP); IDF1 = 2 IDTP / (#GT dets + #tracker dets).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics._common import hungarian
from molmo2.eval.metrics.masks import InstanceMasks, point_in_mask, time_key
from molmo2.grounding.types import Track

MOTCHALLENGE_KEYS: tuple[str, ...] = (
    "idf1", "idp", "idr", "recall", "precision", "num_unique_objects", "mostly_tracked", "partially_tracked",
    "mostly_lost", "num_false_positives", "num_misses", "num_switches", "num_fragmentations", "mota", "motp",
)


def box_iou_distance(gt_xywh: np.ndarray, pred_xywh: np.ndarray, max_distance: float = 0.5) -> np.ndarray:
    """``1 - IoU`` of boxes ``[x, y, w, h]`` as ``[n_gt, n_pred]``, NaN where it exceeds ``max_distance``."""
    a = np.asarray(gt_xywh, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(pred_xywh, dtype=np.float64).reshape(-1, 4)
    a0, a1 = a[:, None, :2], a[:, None, :2] + a[:, None, 2:]
    b0, b1 = b[None, :, :2], b[None, :, :2] + b[None, :, 2:]
    inter = np.prod(np.maximum(np.minimum(a1, b1) - np.maximum(a0, b0), 0), axis=-1)
    union = np.prod(np.maximum(a1 - a0, 0), -1) + np.prod(np.maximum(b1 - b0, 0), -1) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(inter == 0, 0.0, inter / union)
    dist = 1.0 - iou
    return np.where(dist > max_distance, np.nan, dist)


def _large_cost(d: np.ndarray) -> np.ndarray:
    """motmetrics ``add_expensive_edges``: NaN/inf -> a cost no optimal feasible matching would use."""
    valid = np.isfinite(d)
    if valid.all():
        return d.copy()
    if not valid.any():
        return np.zeros_like(d)
    c = np.abs(d[valid]).max() + 1
    return np.where(valid, d, 2 * min(d.shape) * c + 1)


def clear_mot(
    gt_ids: Sequence[Sequence[Hashable]],
    tracker_ids: Sequence[Sequence[Hashable]],
    distances: Sequence[np.ndarray],
) -> dict[str, float]:
    """CLEAR-MOT + identity metrics of one sequence (module docstring). Ids may be any hashables.

    Returns the ``MOTCHALLENGE_KEYS`` plus ``num_frames, num_objects, num_predictions, num_matches,
    num_detections, idtp, idfp, idfn``. Ratios with a zero denominator are NaN (motmetrics' ``quiet_divide``).
    """
    if not (len(gt_ids) == len(tracker_ids) == len(distances)):
        raise Molmo2Error("gt_ids, tracker_ids and distances must have one entry per frame")
    last_match: dict[Hashable, Hashable] = {}  # gt id -> tracker id of its last correspondence
    states: dict[Hashable, list[bool]] = {}  # gt id -> tracked? per frame it is present
    pair_frames: dict[tuple[Hashable, Hashable], int] = {}
    gt_freq: dict[Hashable, int] = {}
    tr_freq: dict[Hashable, int] = {}
    n_match = n_switch = n_fp = n_miss = 0
    dist_sum = 0.0
    for t, (o_ids, h_ids, d) in enumerate(zip(gt_ids, tracker_ids, distances)):
        o_ids, h_ids = list(o_ids), list(h_ids)
        if len(set(o_ids)) != len(o_ids) or len(set(h_ids)) != len(h_ids):
            raise Molmo2Error(f"frame {t}: an id appears twice in one frame")
        d = np.asarray(d, dtype=np.float64)
        if d.size == 0:
            d = np.full((len(o_ids), len(h_ids)), np.nan)
        if d.shape != (len(o_ids), len(h_ids)):
            raise Molmo2Error(f"frame {t}: distances must be [{len(o_ids)}, {len(h_ids)}], got {d.shape}")
        for o in o_ids:
            gt_freq[o] = gt_freq.get(o, 0) + 1
        for h in h_ids:
            tr_freq[h] = tr_freq.get(h, 0) + 1
        for i, j in zip(*np.nonzero(np.isfinite(d))):
            key = (o_ids[i], h_ids[j])
            pair_frames[key] = pair_frames.get(key, 0) + 1
        o_done = np.zeros(len(o_ids), dtype=bool)
        h_done = np.zeros(len(h_ids), dtype=bool)
        if o_ids and h_ids:
            h_pos = {h: j for j, h in enumerate(h_ids)}
            for i, o in enumerate(o_ids):  # 1. carry correspondences forward
                j = h_pos.get(last_match.get(o, _MISSING))
                if j is not None and not h_done[j] and np.isfinite(d[i, j]):
                    o_done[i] = h_done[j] = True
                    n_match += 1
                    dist_sum += d[i, j]
            rest = d.copy()
            rest[o_done, :] = np.nan
            rest[:, h_done] = np.nan
            rows, cols = hungarian(_large_cost(rest))  # 2. Hungarian on the rest
            for i, j in zip(rows, cols):
                if not np.isfinite(rest[i, j]):
                    continue
                o, h = o_ids[i], h_ids[j]
                if o in last_match and last_match[o] != h:
                    n_switch += 1
                else:
                    n_match += 1
                dist_sum += rest[i, j]
                o_done[i] = h_done[j] = True
                last_match[o] = h
        n_miss += int((~o_done).sum())  # 3. misses and false positives
        n_fp += int((~h_done).sum())
        for i, o in enumerate(o_ids):
            states.setdefault(o, []).append(bool(o_done[i]))

    num_objects = sum(gt_freq.values())
    num_predictions = sum(tr_freq.values())
    num_detections = n_match + n_switch
    ratios = [sum(s) / len(s) for s in states.values()]
    frag = 0
    for s in states.values():
        tracked = [i for i, v in enumerate(s) if v]
        if tracked:
            span = s[tracked[0] : tracked[-1] + 1]
            frag += sum(1 for a, b in zip(span[:-1], span[1:]) if a and not b)
    idtp = _id_true_positives(gt_freq, tr_freq, pair_frames)
    out = {
        "num_frames": len(gt_ids),
        "num_objects": num_objects,
        "num_predictions": num_predictions,
        "num_unique_objects": len(gt_freq),
        "num_matches": n_match,
        "num_switches": n_switch,
        "num_false_positives": n_fp,
        "num_misses": n_miss,
        "num_detections": num_detections,
        "num_fragmentations": frag,
        "mostly_tracked": sum(r >= 0.8 for r in ratios),
        "partially_tracked": sum(0.2 <= r < 0.8 for r in ratios),
        "mostly_lost": sum(r < 0.2 for r in ratios),
        "mota": 1.0 - _div(n_miss + n_switch + n_fp, num_objects),
        "motp": _div(dist_sum, num_detections),
        "precision": _div(num_detections, n_fp + num_detections),
        "recall": _div(num_detections, num_objects),
        "idtp": idtp,
        "idfn": num_objects - idtp,
        "idfp": num_predictions - idtp,
        "idp": _div(idtp, num_predictions),
        "idr": _div(idtp, num_objects),
        "idf1": _div(2 * idtp, num_objects + num_predictions),
    }
    return out


_MISSING = object()


def _div(a: float, b: float) -> float:
    return math.nan if b == 0 else a / b


def _id_true_positives(gt_freq: dict, tr_freq: dict, pair_frames: dict) -> int:
    """Max over one-to-one GT/tracker id assignments of the frames where the pair is pairable."""
    if not gt_freq or not tr_freq:
        return 0
    gi = {o: i for i, o in enumerate(gt_freq)}
    hi = {h: j for j, h in enumerate(tr_freq)}
    tp = np.zeros((len(gi), len(hi)))
    for (o, h), n in pair_frames.items():
        tp[gi[o], hi[h]] = n
    rows, cols = hungarian(tp, maximize=True)
    return int(tp[rows, cols].sum())


def point_track_mot(pred: Sequence[Track], gt: Sequence[Track], masks: InstanceMasks) -> dict[str, float]:
    """CLEAR-MOT/IDF1 of predicted point tracks: a pair is pairable iff the predicted point is inside the
    GT object's mask at that time; its distance (MOTP) is the pixel distance to the GT point.

    Frames are the union of predicted and GT point times (millisecond keys, as in ``tracking.py``).
    """
    if not isinstance(masks, InstanceMasks):
        raise Molmo2Error(f"masks must be InstanceMasks, got {type(masks).__name__}")
    frames: dict[int, tuple[float, dict[int, tuple[float, float]], dict[int, tuple[float, float]]]] = {}
    for side, tracks in ((1, gt), (2, pred)):
        for tr in tracks:
            for p in tr.points:
                if p.t is None:
                    raise Molmo2Error(f"track {tr.object_id}: every point needs a time t")
                f = frames.setdefault(time_key(p.t), (float(p.t), {}, {}))
                f[side].setdefault(tr.object_id, (float(p.x), float(p.y)))
    gt_l, tr_l, d_l = [], [], []
    for k in sorted(frames):
        t, g, h = frames[k]
        d = np.full((len(g), len(h)), np.nan)
        for i, (oid, (gx, gy)) in enumerate(g.items()):
            m = masks.get(oid, t)
            if m is None:
                continue
            for j, (px, py) in enumerate(h.values()):
                if point_in_mask(px, py, m):
                    d[i, j] = math.hypot(px - gx, py - gy)
        gt_l.append(list(g))
        tr_l.append(list(h))
        d_l.append(d)
    return clear_mot(gt_l, tr_l, d_l)


__all__ = ["MOTCHALLENGE_KEYS", "box_iou_distance", "clear_mot", "point_track_mot"]
