"""``compat="official"`` against a transcription of the released code on random inputs.

The functions prefixed ``official_`` below are copied from allenai/molmo2@f3cb108
(``olmo/eval/object_tracking_utils.py``: ``evaluate_frame_predictions``, ``load_masks_at_frame`` with
the 1:1 frame mapping, ``evaluate_video_tracks_with_masks``, ``HOTAMetric.prepare_data_for_hota``;
``olmo/eval/evaluators.py``: ``VixMoPointEval``), trimmed to the arithmetic, with masks given as arrays
instead of RLE. Our implementation must give the same numbers, quirks included.
"""

from __future__ import annotations

import numpy as np
import pytest

from molmo2.eval.metrics import InstanceMasks, hota, track_hota, track_point_prf1, video_pointing_prf1
from molmo2.grounding.types import Point, Track

scipy_distance = pytest.importorskip("scipy.spatial.distance")
scipy_optimize = pytest.importorskip("scipy.optimize")


def official_in_region(point, mask):
    h, w = mask.shape
    x, y = int(round(point[0])), int(round(point[1]))
    if x < 0 or x >= w or y < 0 or y >= h:
        return False
    return mask[y, x]


def official_f1(p, r):
    return 0.0 if p == 0 or r == 0 else 2 * (p * r) / (p + r + 1e-10)


def official_frame(pred_points, gt_points, masks):
    if len(gt_points) == 0:
        v = float(len(pred_points) == 0)
        return v, v, v
    if len(pred_points) == 0:
        return 0.0, 0.0, 0.0
    pred_points, gt_points = np.array(pred_points), np.array(gt_points)
    row, col = scipy_optimize.linear_sum_assignment(scipy_distance.cdist(pred_points, gt_points))
    cnt = sum(bool(official_in_region(pred_points[i], masks[j])) for i, j in zip(row, col))
    p = cnt / len(pred_points)
    r = 1.0 if len(masks) == 0 else cnt / len(masks)
    return p, r, official_f1(p, r)


def official_masks_at(gt_masks, frame_idx, h, w):
    empty = np.zeros((h, w), dtype=bool)
    out = []
    for mask_list in gt_masks.values():
        m = mask_list[frame_idx] if frame_idx < len(mask_list) and mask_list[frame_idx] is not None else empty
        out.append(m.astype(bool))
    return out


def official_video_prf1(pred_tracks, gt_tracks, gt_masks, h, w):
    pred_by = {e["frame"]: e for e in pred_tracks}
    gt_by = {e["frame"]: e for e in gt_tracks}
    frames = set(pred_by) | set(gt_by)
    if not frames:
        return 1.0, 1.0, 1.0
    scores = []
    for f in sorted(frames):
        pf, gf = pred_by.get(f), gt_by.get(f)
        pred_points = [tuple(d["point"]) for d in pf["points"].values()] if pf else []
        gt_points = [tuple(d["point"]) for d in gf["points"].values()] if gf else []
        scores.append(official_frame(pred_points, gt_points, official_masks_at(gt_masks, f, h, w)))
    return tuple(float(np.mean([s[k] for s in scores])) for k in range(3))


def official_hota_data(pred_tracks, gt_tracks, gt_masks, h, w):
    pred_by = {e["frame"]: e for e in pred_tracks}
    gt_by = {e["frame"]: e for e in gt_tracks}
    all_gt = sorted({k for e in gt_tracks for k in e["points"]})
    all_pr = sorted({k for e in pred_tracks for k in e["points"]})
    gt_idx = {o: i for i, o in enumerate(all_gt)}
    pr_idx = {o: i for i, o in enumerate(all_pr)}
    g_ids, t_ids, sims = [], [], []
    for f in sorted(set(pred_by) | set(gt_by)):
        gf, pf = gt_by.get(f), pred_by.get(f)
        g = sorted(gf["points"].items()) if gf else []
        p = sorted(pf["points"].items()) if pf else []
        s = np.zeros((len(g), len(p)))
        if g and p:
            masks = official_masks_at(gt_masks, f, h, w)
            for i, (_, mask) in enumerate(zip(g, masks)):
                for j, (_, d) in enumerate(p):
                    s[i, j] = float(bool(official_in_region(d["point"], mask)))
        g_ids.append(np.array([gt_idx[o] for o, _ in g], dtype=int))
        t_ids.append(np.array([pr_idx[o] for o, _ in p], dtype=int))
        sims.append(s)
    return g_ids, t_ids, sims


def random_video(rng, size=24):
    """Objects with box masks that vanish in some frames; GT points inside; noisy predicted tracks."""
    num_t, num_o = int(rng.integers(1, 6)), int(rng.integers(1, 5))
    oids = [int(o) for o in rng.choice(np.arange(1, 9), num_o, replace=False)]  # storage order != id order
    masks = {o: [] for o in oids}
    gt_frames = {}
    for t in range(num_t):
        for o in oids:
            if rng.random() < 0.3:
                masks[o].append(None)
                continue
            x0, y0 = rng.integers(0, size - 4, 2)
            x1, y1 = x0 + rng.integers(2, 10), y0 + rng.integers(2, 10)
            m = np.zeros((size, size), bool)
            m[y0:y1, x0:x1] = True
            masks[o].append(m)
            ys, xs = np.nonzero(m)
            k = rng.integers(len(xs))
            gt_frames.setdefault(t, {})[o] = {"point": [float(xs[k]), float(ys[k])]}
    pred_frames = {}
    for t in range(num_t + 1):
        for pid in range(int(rng.integers(0, 4))):
            if rng.random() < 0.7:
                base = rng.choice(list(gt_frames.get(t, {0: {"point": [5.0, 5.0]}}).values()))["point"]
                pt = [float(np.clip(base[0] + rng.normal(0, 3), 0, size - 1)),
                      float(np.clip(base[1] + rng.normal(0, 3), 0, size - 1))]
                pred_frames.setdefault(t, {})[100 + pid] = {"point": pt}
    gt_tracks = [{"frame": t, "points": pts} for t, pts in sorted(gt_frames.items())]
    pred_tracks = [{"frame": t, "points": pts} for t, pts in sorted(pred_frames.items())]
    return gt_tracks, pred_tracks, masks, size


def to_ours(gt_tracks, pred_tracks, masks, size):
    def tracks(entries, order):
        by_id = {}
        for e in entries:
            for o, d in e["points"].items():
                by_id.setdefault(o, []).append(Point(d["point"][0], d["point"][1], t=float(e["frame"])))
        return [Track(o, None, by_id[o]) for o in order if o in by_id]

    gt_order = list(dict.fromkeys(o for e in gt_tracks for o in e["points"]))  # first-appearance order
    inst = InstanceMasks((size, size), {o: {float(t): m for t, m in enumerate(ms) if m is not None}
                                        for o, ms in masks.items()})
    pr_order = sorted({o for e in pred_tracks for o in e["points"]})
    return tracks(pred_tracks, pr_order), tracks(gt_tracks, gt_order), inst


def test_tracking_official_mode_equals_the_released_code():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(150):
        gt_tracks, pred_tracks, masks, size = random_video(rng)
        # the official per-frame GT order is the dataset's dict order; ours is the track order, so
        # compare on videos where both orders agree (objects enter in storage order)
        pred, gt, inst = to_ours(gt_tracks, pred_tracks, masks, size)
        first_frame_orders = all(list(e["points"]) == [o for o in (t.object_id for t in gt) if o in e["points"]]
                                 for e in gt_tracks)
        if not first_frame_orders:
            continue
        want = official_video_prf1(pred_tracks, gt_tracks, masks, size, size)
        got = track_point_prf1(pred, gt, inst, compat="official")
        assert (got.precision, got.recall, got.f1) == pytest.approx(want, abs=1e-12)
        g, t, s = official_hota_data(pred_tracks, gt_tracks, masks, size, size)
        if sum(map(len, g)) or sum(map(len, t)):
            want_hota = float(hota(g, t, s, compat="official")["HOTA"][9])
            assert track_hota(pred, gt, inst, compat="official")["HOTA"] == pytest.approx(want_hota, abs=1e-12)
        checked += 1
    assert checked >= 60


def official_video_pointing(pred, gt, gt_masks, duration, w, h):
    if len(gt) == 0:
        v = float(len(pred) == 0)
        return v, v, v
    if len(pred) == 0:
        return 0.0, 0.0, 0.0

    def norm(tr):
        return [(round(t / duration * 100, 1), round(x / w * 100, 1), round(y / h * 100, 1)) for t, x, y in tr]

    row, col = scipy_optimize.linear_sum_assignment(scipy_distance.cdist(norm(pred), norm(gt)))
    cnt = sum(1 for i, j in zip(row, col)
              if pred[i][0] in gt_masks[j] and official_in_region(pred[i][1:], gt_masks[j][pred[i][0]]))
    p, r = cnt / len(pred), cnt / len(gt_masks)
    return p, r, official_f1(p, r)


def test_video_pointing_equals_the_released_code():
    rng = np.random.default_rng(1)
    w, h, duration = 40, 30, 6.0
    grid = np.arange(0, duration, 0.5)
    for _ in range(200):
        n_gt = int(rng.integers(0, 4))
        gt, gt_masks = [], []
        for _ in range(n_gt):
            masks = {}
            for t in rng.choice(grid, int(rng.integers(1, 4)), replace=False):
                m = np.zeros((h, w), bool)
                x0, y0 = rng.integers(0, w - 5), rng.integers(0, h - 5)
                m[y0 : y0 + rng.integers(3, 12), x0 : x0 + rng.integers(3, 12)] = True
                masks[float(t)] = m
            t0 = float(rng.choice(list(masks)))
            ys, xs = np.nonzero(masks[t0])
            gt.append((t0, float(xs[0]), float(ys[0])))
            gt_masks.append(masks)
        pred = [(float(rng.choice(np.concatenate([grid, grid + 0.1]))), float(rng.uniform(0, w)), float(rng.uniform(0, h)))
                for _ in range(int(rng.integers(0, 4)))]
        want = official_video_pointing(pred, gt, gt_masks, duration, w, h)
        got = video_pointing_prf1([Point(x, y, t=t) for t, x, y in pred], [Point(x, y, t=t) for t, x, y in gt],
                                  gt_masks, duration, (w, h))
        assert (got.precision, got.recall, got.f1) == pytest.approx(want, abs=1e-12)
