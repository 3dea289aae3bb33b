"""CLEAR-MOT / IDF1 against motmetrics: its shipped real tracks (TUD) and random sequences (§10, §11 b).

motmetrics 1.4.0 calls ``np.asfarray``, which numpy 2 removed; the fixture below restores it for the
duration of a test (test-only shim; our implementation does not use motmetrics).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics import MOTCHALLENGE_KEYS, box_iou_distance, clear_mot

# motmetrics' own expected values (motmetrics/tests/test_metrics.py::test_motchallenge_files), in the
# order of MOTCHALLENGE_KEYS
MOTMETRICS_EXPECTED = {
    "TUD-Campus": [0.557659, 0.729730, 0.451253, 0.582173, 0.941441, 8, 1, 6, 1, 13, 150, 7, 7, 0.526462, 0.277201],
    "TUD-Stadtmitte": [0.644619, 0.819760, 0.531142, 0.608997, 0.939920, 10, 5, 4, 1, 45, 452, 7, 6, 0.564014,
                       0.345904],
}


@pytest.fixture
def mm(monkeypatch):
    if not hasattr(np, "asfarray"):
        monkeypatch.setattr(np, "asfarray", lambda a, dtype=np.float64: np.asarray(a, dtype=dtype), raising=False)
    return pytest.importorskip("motmetrics")


def _data_dir() -> Path:
    spec = pytest.importorskip("importlib.util").find_spec("motmetrics")
    if spec is None or spec.origin is None:
        pytest.skip("motmetrics is not installed")
    return Path(spec.origin).parent / "data"


def _load(name: str):
    """Our own reading of the MOT15 csv files (frame, id, x, y, w, h, ...) and our own box IoU."""
    gt = np.loadtxt(_data_dir() / name / "gt.txt", delimiter=",")
    dt = np.loadtxt(_data_dir() / name / "test.txt", delimiter=",")
    gt_ids, tr_ids, dists = [], [], []
    for f in sorted(set(gt[:, 0]) | set(dt[:, 0])):
        g, d = gt[gt[:, 0] == f], dt[dt[:, 0] == f]
        gt_ids.append(g[:, 1].astype(int).tolist())
        tr_ids.append(d[:, 1].astype(int).tolist())
        dists.append(box_iou_distance(g[:, 2:6], d[:, 2:6], max_distance=0.5))
    return gt_ids, tr_ids, dists


@pytest.mark.parametrize("name", ["TUD-Campus", "TUD-Stadtmitte"])
def test_real_tracks_match_motmetrics_published_results(name):
    ours = clear_mot(*_load(name))
    for key, want in zip(MOTCHALLENGE_KEYS, MOTMETRICS_EXPECTED[name]):
        assert ours[key] == pytest.approx(want, abs=1e-6), key


@pytest.mark.parametrize("name", ["TUD-Campus", "TUD-Stadtmitte"])
def test_real_tracks_match_motmetrics_live(mm, name):
    gt = mm.io.loadtxt(str(_data_dir() / name / "gt.txt"))
    dt = mm.io.loadtxt(str(_data_dir() / name / "test.txt"))
    acc = mm.utils.compare_to_groundtruth(gt, dt, "iou", distth=0.5)
    ref = mm.metrics.create().compute(acc, metrics=[*MOTCHALLENGE_KEYS, "idtp", "idfp", "idfn", "num_matches"])
    ours = clear_mot(*_load(name))
    for key in [*MOTCHALLENGE_KEYS, "idtp", "idfp", "idfn", "num_matches"]:
        assert ours[key] == pytest.approx(float(ref[key].iloc[0]), rel=1e-12, abs=1e-12), key


def _random_sequence(rng):
    num_t, n_o, n_h = rng.integers(1, 12), rng.integers(1, 5), rng.integers(1, 5)
    gt_ids, tr_ids, dists = [], [], []
    for _ in range(num_t):
        o = [int(i) for i in np.flatnonzero(rng.random(n_o) < 0.7)]
        h = [int(i) + 100 for i in np.flatnonzero(rng.random(n_h) < 0.7)]
        d = rng.random((len(o), len(h))).round(2)  # rounding makes ties, which the solvers must agree on
        d[rng.random(d.shape) < 0.4] = np.nan
        gt_ids.append(o)
        tr_ids.append(h)
        dists.append(d)
    return gt_ids, tr_ids, dists


def test_random_sequences_match_motmetrics(mm):
    rng = np.random.default_rng(0)
    keys = [*MOTCHALLENGE_KEYS, "idtp", "num_matches"]
    mh = mm.metrics.create()
    for _ in range(25):
        gt_ids, tr_ids, dists = _random_sequence(rng)
        acc = mm.MOTAccumulator(auto_id=True)
        for o, h, d in zip(gt_ids, tr_ids, dists):
            acc.update(o, h, d)
        ref = mh.compute(acc, metrics=keys)
        ours = clear_mot(gt_ids, tr_ids, dists)
        for k in keys:
            want = float(ref[k].iloc[0])
            assert (math.isnan(want) and math.isnan(ours[k])) or ours[k] == pytest.approx(want, abs=1e-12), k


def test_hand_case_switch_fragmentation_and_identity():
    # GT a over 4 frames; tracker x on frames 0-1, lost on 2, tracker y on 3 (a switch after a gap)
    gt = [["a"]] * 4
    tr = [["x"], ["x"], [], ["y"]]
    d = [np.array([[0.1]]), np.array([[0.3]]), np.zeros((1, 0)), np.array([[0.2]])]
    r = clear_mot(gt, tr, d)
    assert (r["num_matches"], r["num_switches"], r["num_misses"], r["num_false_positives"]) == (2, 1, 1, 0)
    assert r["num_fragmentations"] == 1 and r["mota"] == pytest.approx(1 - 2 / 4)
    assert r["motp"] == pytest.approx(0.2) and r["mostly_tracked"] == 0 and r["partially_tracked"] == 1
    assert r["idtp"] == 2 and r["idf1"] == pytest.approx(4 / 7)


def test_carry_forward_beats_a_cheaper_new_pairing():
    # frame 1: a-x matched. frame 2: a-y is cheaper, but a-x is still pairable, so it is kept (no switch)
    r = clear_mot([["a"], ["a"]], [["x"], ["x", "y"]], [np.array([[0.4]]), np.array([[0.45, 0.01]])])
    assert r["num_switches"] == 0 and r["num_false_positives"] == 1


def test_empty_inputs():
    r = clear_mot([[], []], [[], []], [np.zeros((0, 0))] * 2)
    assert r["num_objects"] == 0 and math.isnan(r["mota"]) and math.isnan(r["idf1"])
    r = clear_mot([["a"]], [[]], [np.zeros((1, 0))])
    assert r["mota"] == 0.0 and r["idf1"] == 0.0 and r["num_misses"] == 1


def test_bad_input():
    with pytest.raises(Molmo2Error, match="one entry per frame"):
        clear_mot([["a"]], [], [])
    with pytest.raises(Molmo2Error, match=r"\[1, 1\]"):
        clear_mot([["a"]], [["x"]], [np.zeros((2, 2))])
    with pytest.raises(Molmo2Error, match="twice"):
        clear_mot([["a", "a"]], [["x"]], [np.zeros((2, 1))])


def test_box_iou_distance():
    d = box_iou_distance([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 10, 10], [50, 50, 1, 1]], max_distance=0.7)
    assert d[0, 0] == 0.0 and d[0, 1] == pytest.approx(1 - 50 / 150) and np.isnan(d[0, 2])
