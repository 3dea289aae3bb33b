"""Point tracking: per-frame point-in-mask F1, HOTA (hand cases + TrackEval cross-check), compat switches (§6a, §11)."""

from __future__ import annotations

import numpy as np
import pytest

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics import (
    InstanceMasks,
    hota,
    mean_tracking,
    point_track_mot,
    track_hota,
    track_point_prf1,
    track_scores,
)
from molmo2.grounding.types import Point, Track

W = H = 100
CENTRES = {1: (10, 10), 2: (50, 50), 3: (90, 90)}


def scene() -> tuple[InstanceMasks, list[Track]]:
    """Objects 1, 2, 3 at three times; object 2 is absent at t=1 (an empty mask in the id map)."""
    ids = np.zeros((3, H, W), dtype=np.uint16)
    for t in range(3):
        for oid, (cx, cy) in CENTRES.items():
            if oid == 2 and t == 1:
                continue
            ids[t, cy - 8 : cy + 8, cx - 8 : cx + 8] = oid
    masks = InstanceMasks.from_ids(ids, [0.0, 1.0, 2.0])
    gt = [Track(oid, "obj", [Point(cx, cy, t=float(t)) for t in range(3) if not (oid == 2 and t == 1)])
          for oid, (cx, cy) in CENTRES.items()]
    return masks, gt


def relabel(tracks: list[Track], offset: int = 10) -> list[Track]:
    return [Track(tr.object_id + offset, tr.label, list(tr.points)) for tr in tracks]


def test_perfect_tracks_score_one_in_both_modes_when_no_object_is_absent():
    masks, gt = scene()
    gt_no_absence = [tr for tr in gt if tr.object_id != 2]
    masks2 = InstanceMasks((W, H), {o: {t: masks.get(o, t) for t in (0.0, 1.0, 2.0)} for o in (1, 3)})
    for compat in ("correct", "official"):
        s = track_scores(relabel(gt_no_absence), gt_no_absence, masks2, compat)
        assert s["precision"] == s["recall"] == 1.0 and s["f1"] == pytest.approx(1.0, abs=1e-9)
        assert s["HOTA"] == s["DetA"] == s["AssA"] == 1.0


def test_absent_object_lookup_quirk():
    masks, gt = scene()
    pred = relabel(gt)
    correct = track_point_prf1(pred, gt, masks)
    assert correct.precision == correct.recall == 1.0
    # official: at t=1 the present objects are [1, 3] but the masks are [1, 2, 3]; object 3's match is
    # checked against object 2's (empty) mask, and recall divides by all 3 objects of the video
    official = track_point_prf1(pred, gt, masks, compat="official")
    frames = dict(official.frames)
    assert (frames[1.0].precision, frames[1.0].recall) == (0.5, pytest.approx(1 / 3))
    assert official.precision == pytest.approx((1 + 0.5 + 1) / 3)
    assert official.recall == pytest.approx((1 + 1 / 3 + 1) / 3)
    assert track_hota(pred, gt, masks)["HOTA"] == 1.0
    assert track_hota(pred, gt, masks, compat="official")["HOTA"] < 1.0


def test_prediction_on_a_frame_without_ground_truth_scores_zero_for_that_frame():
    masks, gt = scene()
    pred = relabel(gt)
    pred[0] = Track(11, "obj", [*pred[0].points, Point(10, 10, t=3.0)])
    s = track_point_prf1(pred, gt, masks)
    assert len(s.frames) == 4 and s.frames[-1][1].f1 == 0.0
    assert s.precision == pytest.approx(3 / 4)


def test_off_grid_times_do_not_match_a_frame():
    masks, gt = scene()
    pred = [Track(11, None, [Point(10, 10, t=0.4)])]
    s = track_point_prf1(pred, [gt[0]], masks)
    # frames 0, 1, 2 have GT and no prediction; 0.4 has a prediction and no GT: all score 0
    assert s.f1 == 0.0 and len(s.frames) == 4


def test_empty_videos():
    masks, gt = scene()
    both = track_scores([], [], masks)
    assert all(v == 1.0 for v in both.values())  # Molmo2's rule; TrackEval would give HOTA 0
    no_pred = track_scores([], gt, masks)
    assert no_pred["f1"] == 0.0 and no_pred["HOTA"] == 0.0
    no_gt = track_scores(relabel(gt), [], masks)
    assert no_gt["precision"] == 0.0 and no_gt["HOTA"] == 0.0
    empty_track = track_scores([Track(5, None, [])], [], masks)
    assert empty_track["f1"] == 1.0 and empty_track["HOTA"] == 1.0


def test_matching_to_the_wrong_object_within_a_frame():
    # prediction inside object 1's mask but closer to object 2's GT point
    masks = InstanceMasks((W, H), {1: {0.0: np.pad(np.ones((40, 40), bool), ((0, 60), (0, 60)))},
                                   2: {0.0: np.zeros((H, W), bool)}})
    gt = [Track(1, None, [Point(5, 5, t=0.0)]), Track(2, None, [Point(45, 45, t=0.0)])]
    s = track_point_prf1([Track(9, None, [Point(38, 38, t=0.0)])], gt, masks)
    assert s.f1 == 0.0


def test_identity_switch_costs_association_not_detection():
    masks, gt = scene()
    pred = relabel(gt)
    # tracks 11 and 13 swap objects at t=2
    p11 = [Point(10, 10, t=0.0), Point(10, 10, t=1.0), Point(90, 90, t=2.0)]
    p13 = [Point(90, 90, t=0.0), Point(90, 90, t=1.0), Point(10, 10, t=2.0)]
    pred = [Track(11, None, p11), pred[1], Track(13, None, p13)]
    s = track_scores(pred, gt, masks)
    assert s["f1"] == pytest.approx(1.0, abs=1e-9) and s["DetA"] == 1.0
    assert s["AssA"] < 1.0 and s["HOTA"] == pytest.approx(np.sqrt(s["AssA"]))
    mot = point_track_mot(pred, gt, masks)
    assert mot["num_switches"] == 2 and mot["mota"] == pytest.approx(1 - 2 / 8)
    assert mot["idf1"] == pytest.approx(12 / 16) and mot["motp"] == 0.0


def test_hota_hand_case_id_switch():
    # one GT object over 4 frames, predicted by tracker 0 then tracker 1: DetA 1, AssA 1/2
    r = hota([np.array([0])] * 4, [np.array([0])] * 2 + [np.array([1])] * 2, [np.ones((1, 1))] * 4)
    assert r["DetA"][9] == 1.0 and r["AssA"][9] == 0.5 and r["HOTA"][9] == pytest.approx(np.sqrt(0.5))


def test_hota_eps_changes_a_tie_break():
    # Found by random search (§11): the +eps of the official port breaks a Hungarian tie differently.
    g = [np.array([0, 1]), np.array([0, 1])]
    t = [np.array([0, 1]), np.array([0])]
    s = [np.ones((2, 2)), np.ones((2, 1))]
    assert hota(g, t, s)["HOTA"][9] == pytest.approx(0.7905694150420949)
    assert hota(g, t, s, compat="official")["HOTA"][9] == pytest.approx(0.5400617248673216)
    te = pytest.importorskip("trackeval")
    ref = te.metrics.HOTA().eval_sequence(_trackeval_data(g, t, s))
    assert ref["HOTA"][9] == pytest.approx(0.7905694150420949)


def test_mean_over_videos_is_a_plain_mean():
    assert mean_tracking([{"HOTA": 1.0, "f1": 0.5}, {"HOTA": 0.0, "f1": 0.0}]) == {"HOTA": 0.5, "f1": 0.25}


def test_bad_input():
    masks, gt = scene()
    with pytest.raises(Molmo2Error, match="no masks"):
        track_point_prf1([], [Track(99, None, [Point(1, 1, t=0.0)])], masks)
    with pytest.raises(Molmo2Error, match="time t"):
        track_point_prf1([Track(1, None, [Point(1, 1)])], gt, masks)
    with pytest.raises(Molmo2Error, match="repeat"):
        track_point_prf1([Track(1, None, []), Track(1, None, [])], gt, masks)
    with pytest.raises(Molmo2Error, match="compat"):
        track_hota([], gt, masks, compat="paper")
    with pytest.raises(Molmo2Error, match=r"\[0, 1\]"):
        hota([np.array([0])], [np.array([0])], [np.array([[2.0]])])
    with pytest.raises(Molmo2Error, match="twice"):
        hota([np.array([0, 0])], [np.array([0])], [np.ones((2, 1))])


def test_duplicate_point_in_one_frame_keeps_the_first():
    masks, gt = scene()
    pred = [Track(11, None, [Point(10, 10, t=0.0), Point(90, 90, t=0.0)])]
    s = track_point_prf1(pred, [gt[0]], masks)
    assert s.frames[0][1].num_pred == 1 and s.frames[0][1].num_hits == 1


# ------------------------------------------------------------------------- cross-check: TrackEval


def _trackeval_data(gt_ids, tr_ids, sims):
    return {
        "num_gt_ids": int(max((g.max() + 1 for g in gt_ids if len(g)), default=0)),
        "num_tracker_ids": int(max((t.max() + 1 for t in tr_ids if len(t)), default=0)),
        "num_gt_dets": sum(len(g) for g in gt_ids),
        "num_tracker_dets": sum(len(t) for t in tr_ids),
        "num_timesteps": len(gt_ids),
        "gt_ids": gt_ids,
        "tracker_ids": tr_ids,
        "similarity_scores": sims,
    }


def _random_sequence(rng, binary: bool):
    """1-7 frames, 1-4 ids per side, random presence and similarity (§11's recipe)."""
    num_t, n_g, n_t = rng.integers(1, 8), rng.integers(1, 5), rng.integers(1, 5)
    p_g, p_t, p_s = rng.uniform(0.2, 1.0, 3)
    g = [np.flatnonzero(rng.random(n_g) < p_g) for _ in range(num_t)]
    t = [np.flatnonzero(rng.random(n_t) < p_t) for _ in range(num_t)]
    if binary:
        s = [(rng.random((len(a), len(b))) < p_s).astype(float) for a, b in zip(g, t)]
    else:
        s = [rng.random((len(a), len(b))) * (rng.random((len(a), len(b))) < p_s) for a, b in zip(g, t)]
    return g, t, s


HOTA_KEYS = ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "AssRe", "AssPr", "LocA", "HOTA_TP", "HOTA_FN", "HOTA_FP")


def _crosscheck(num: int, seed: int) -> dict[str, int]:
    te = pytest.importorskip("trackeval")
    metric = te.metrics.HOTA()
    rng = np.random.default_rng(seed)
    stats = {"sequences": 0, "differ_correct": 0, "differ_official": 0, "both_empty": 0}
    for i in range(num):
        g, t, s = _random_sequence(rng, binary=i % 2 == 0)
        if not any(len(a) for a in g) and not any(len(b) for b in t):
            stats["both_empty"] += 1  # TrackEval: HOTA 0; Molmo2's video rule: 1 (tested above)
        with np.errstate(divide="ignore", invalid="ignore"):
            ref = metric.eval_sequence(_trackeval_data(g, t, s))
        ours, official = hota(g, t, s), hota(g, t, s, compat="official")
        stats["sequences"] += 1
        same = all(np.allclose(ours[k], ref[k], rtol=0, atol=1e-12) for k in HOTA_KEYS)
        stats["differ_correct"] += not same
        stats["differ_official"] += not all(np.allclose(official[k], ref[k], rtol=0, atol=1e-12) for k in HOTA_KEYS)
    return stats


def test_hota_matches_trackeval_on_random_sequences():
    stats = _crosscheck(400, seed=0)
    assert stats["differ_correct"] == 0, stats
    assert stats["differ_official"] <= 0.01 * stats["sequences"], stats


@pytest.mark.slow
def test_hota_matches_trackeval_on_thousands_of_random_sequences():
    stats = _crosscheck(10_000, seed=1)
    assert stats["differ_correct"] == 0, stats
    assert stats["differ_official"] <= 0.005 * stats["sequences"], stats
    print(stats)
