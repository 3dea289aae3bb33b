"""J&F: the MeViS per-expression protocol (hand cases) and the DAVIS multi-object protocol against
TrackEval's ``JAndF`` on random moving blobs and on a video made from a real silhouette (§6b, §10)."""

from __future__ import annotations

import numpy as np
import pytest

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics import boundary_f, mask_iou, mean_j_and_f, multi_object_j_and_f, referring_j_and_f


def test_referring_j_and_f_hand_cases():
    gt = np.zeros((2, 20, 20), bool)
    gt[:, 5:15, 5:15] = True
    r = referring_j_and_f(gt, gt)
    assert r == {"J": 1.0, "F": 1.0, "J&F": 1.0}
    half = gt.copy()
    half[1] = False  # frame 1 predicted empty: J = F = 0 there
    r = referring_j_and_f(gt, half)
    assert r["J"] == 0.5 and r["F"] == 0.5 and r["J&F"] == 0.5
    empty = np.zeros_like(gt)
    assert referring_j_and_f(empty, empty)["J&F"] == 1.0  # empty vs empty is a perfect frame
    shifted = np.roll(gt, 3, axis=2)
    r = referring_j_and_f(gt, shifted)
    assert r["J"] == pytest.approx(float(np.mean(mask_iou(gt, shifted))))
    assert r["F"] == pytest.approx(float(np.mean(boundary_f(gt, shifted))))
    agg = mean_j_and_f([{"J": 1.0, "F": 0.5}, {"J": 0.0, "F": 0.5}])
    assert agg == {"J": 0.5, "F": 0.5, "J&F": 0.5}


def test_multi_object_hand_cases():
    gt = np.zeros((2, 20, 20), np.uint8)
    gt[:, 2:8, 2:8] = 1
    gt[:, 12:18, 12:18] = 2
    pred = np.where(gt == 1, 7, np.where(gt == 2, 9, 0)).astype(np.uint8)  # other ids, same masks
    r = multi_object_j_and_f(gt, pred)
    assert r["J-Mean"] == r["F-Mean"] == r["J&F"] == 1.0 and r["num_gt_objects"] == 2
    only_one = np.where(pred == 7, 7, 0).astype(np.uint8)  # object 2 missed: padded with an empty track
    assert multi_object_j_and_f(gt, only_one)["J-Mean"] == 0.5


def test_bad_input():
    with pytest.raises(Molmo2Error, match="no objects"):
        multi_object_j_and_f(np.zeros((1, 4, 4), np.uint8), np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(Molmo2Error, match="integer"):
        multi_object_j_and_f(np.zeros((1, 4, 4), bool), np.zeros((1, 4, 4), bool))
    with pytest.raises(Molmo2Error, match="shape"):
        referring_j_and_f(np.zeros((1, 4, 4)), np.zeros((2, 4, 4)))
    with pytest.raises(Molmo2Error, match="no per-expression"):
        mean_j_and_f([])


# --------------------------------------------------------------------------- cross-check: TrackEval


def _trackeval_data(gt: np.ndarray, pr: np.ndarray) -> dict:
    mask_utils = pytest.importorskip("pycocotools.mask")
    gos = [o for o in np.unique(gt) if o]
    pos = [o for o in np.unique(pr) if o]
    data = {"num_timesteps": gt.shape[0], "num_gt_ids": len(gos), "num_tracker_ids": len(pos),
            "gt_ids": [], "tracker_ids": [], "gt_dets": [], "tracker_dets": []}
    for t in range(gt.shape[0]):
        gi = [i for i, o in enumerate(gos) if (gt[t] == o).any()]
        ti = [i for i, o in enumerate(pos) if (pr[t] == o).any()]
        data["gt_ids"].append(np.array(gi, int))
        data["tracker_ids"].append(np.array(ti, int))
        data["gt_dets"].append([mask_utils.encode(np.asfortranarray((gt[t] == gos[i]).astype(np.uint8))) for i in gi])
        data["tracker_dets"].append([mask_utils.encode(np.asfortranarray((pr[t] == pos[i]).astype(np.uint8)))
                                     for i in ti])
    return data


def _blobs(rng, num_t: int, h: int, w: int, n: int) -> np.ndarray:
    ids = np.zeros((num_t, h, w), np.uint16)
    yy, xx = np.mgrid[:h, :w]
    for o in range(1, n + 1):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(2, h / 3)
        vx, vy = rng.normal(0, 3, 2)
        for t in range(num_t):
            if rng.random() < 0.15:
                continue  # the object is out of view in this frame
            ids[t][(xx - cx - vx * t) ** 2 + (yy - cy - vy * t) ** 2 < r * r] = o
    return ids


KEYS = ("J-Mean", "J-Recall", "F-Mean", "F-Recall", "J&F")


def _check(gt, pr):
    te = pytest.importorskip("trackeval")
    pytest.importorskip("cv2")
    pytest.importorskip("skimage")
    ref = te.metrics.JAndF().eval_sequence(_trackeval_data(gt, pr))
    ours = multi_object_j_and_f(gt, pr)
    for k in KEYS:
        assert ours[k] == pytest.approx(ref[k], abs=1e-12), k


def test_multi_object_j_and_f_matches_trackeval_on_random_blobs():
    rng = np.random.default_rng(0)
    done = 0
    while done < 25:
        num_t, h, w = rng.integers(1, 6), rng.integers(20, 80), rng.integers(20, 80)
        gt, pr = _blobs(rng, num_t, h, w, rng.integers(1, 4)), _blobs(rng, num_t, h, w, rng.integers(0, 4))
        if not gt.any():
            continue
        _check(gt, pr)
        done += 1


def test_multi_object_j_and_f_matches_trackeval_on_a_real_silhouette():
    data = pytest.importorskip("skimage.data")
    horse = data.horse()[::2, ::2]  # 164 x 200
    gt = np.stack([np.roll(horse, 4 * t, axis=1) for t in range(4)]).astype(np.uint8)
    pred = np.stack([np.roll(horse, 4 * t + (t % 2) * 3, axis=1) for t in range(4)]).astype(np.uint8) * 5
    _check(gt, pred)
