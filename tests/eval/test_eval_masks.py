"""Masks: pycocotools RLE round trips on real images, polygons, point-in-mask, IoU and boundary F
against independent computations, InstanceMasks (§4, §6b, §10, §12)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics import (
    InstanceMasks,
    as_mask,
    boundary_f,
    mask_iou,
    point_in_mask,
    polygons_to_mask,
    rle_decode,
    rle_encode,
    time_key,
)
from molmo2.eval.metrics.masks import disk, seg2bmap


def real_masks() -> dict[str, np.ndarray]:
    """Binary masks from the real images shipped in scikit-image's wheel (evaluation.md §12)."""
    data = pytest.importorskip("skimage.data")
    return {
        "horse": data.horse(),  # a ready-made silhouette
        "camera": data.camera() > 100,
        "coins": data.coins() > 110,
        "astronaut_red": data.astronaut()[..., 0] > 128,
        "coffee_blue": data.coffee()[..., 2] > 90,
    }


def column_major_runs(m: np.ndarray) -> list[int]:
    """An independent uncompressed-RLE encoder: run lengths of the column-major flattening, 0s first."""
    flat = m.astype(np.uint8).flatten(order="F")
    counts, cur, run = [], 0, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = v, 1
    counts.append(run)
    return counts


def test_pycocotools_round_trips_on_real_images():
    mask_utils = pytest.importorskip("pycocotools.mask")
    for name, m in real_masks().items():
        rle = rle_encode(m)
        assert rle["size"] == [m.shape[0], m.shape[1]] and isinstance(rle["counts"], str), name
        assert np.array_equal(rle_decode(rle), m), name
        assert int(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()})) == m.sum(), name
        unc = {"size": list(m.shape), "counts": column_major_runs(m)}
        assert np.array_equal(rle_decode(unc), m), name  # uncompressed RLE, decoded via frPyObjects


def test_iou_matches_pycocotools_on_real_images():
    mask_utils = pytest.importorskip("pycocotools.mask")
    masks = list(real_masks().values())
    rng = np.random.default_rng(0)
    for m in masks:
        other = np.roll(m, shift=tuple(rng.integers(-20, 20, 2)), axis=(0, 1))
        a = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        b = mask_utils.encode(np.asfortranarray(other.astype(np.uint8)))
        assert mask_iou(m, other) == pytest.approx(float(mask_utils.iou([b], [a], [0])[0, 0]), abs=1e-12)


def _boundary_f_by_distance(gt: np.ndarray, pred: np.ndarray, bound_th: float = 0.008) -> float:
    """Independent F: a boundary pixel matches if the other boundary is within Euclidean distance r."""
    ndimage = pytest.importorskip("scipy.ndimage")
    r = np.ceil(bound_th * np.linalg.norm(gt.shape))
    bg, bp = seg2bmap(gt), seg2bmap(pred)
    if not bg.any() and not bp.any():
        return 1.0
    if not bg.any() or not bp.any():
        return 0.0
    dist_to_gt = ndimage.distance_transform_edt(~bg)
    dist_to_pred = ndimage.distance_transform_edt(~bp)
    precision = float((dist_to_gt[bp] <= r).mean())
    recall = float((dist_to_pred[bg] <= r).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _boundary_f_trackeval(gt: np.ndarray, pred: np.ndarray) -> float:
    """TrackEval's copy of the DAVIS code (cv2.dilate + skimage disk) on pycocotools RLE."""
    te = pytest.importorskip("trackeval")
    pytest.importorskip("cv2")
    mask_utils = pytest.importorskip("pycocotools.mask")
    g = [[mask_utils.encode(np.asfortranarray(gt.astype(np.uint8)))]]
    p = [[mask_utils.encode(np.asfortranarray(pred.astype(np.uint8)))]]
    return float(te.metrics.JAndF._compute_f(g, p, 0, 0, 0.008)[0])


def test_boundary_f_matches_davis_code_and_a_distance_transform_on_real_images():
    rng = np.random.default_rng(1)
    for name, m in list(real_masks().items())[:3]:
        for shift in [tuple(rng.integers(-6, 6, 2)), tuple(rng.integers(-30, 30, 2))]:
            other = np.roll(m, shift=shift, axis=(0, 1))
            ours = boundary_f(m, other)
            assert ours == pytest.approx(_boundary_f_by_distance(m, other), abs=1e-12), (name, shift)
            assert ours == pytest.approx(_boundary_f_trackeval(m, other), abs=1e-12), (name, shift)


@settings(max_examples=40, deadline=None)
@given(arrays(np.bool_, (17, 23)), arrays(np.bool_, (17, 23)))
def test_boundary_f_and_iou_properties(a, b):
    assert boundary_f(a, b) == pytest.approx(_boundary_f_by_distance(a, b), abs=1e-12)
    assert boundary_f(a, b) == pytest.approx(boundary_f(b, a), abs=1e-12)  # F is symmetric
    assert mask_iou(a, a) == 1.0 and boundary_f(a, a) == 1.0
    j = mask_iou(a, b)
    assert 0.0 <= j <= 1.0 and j == mask_iou(b, a)


def test_iou_and_f_edge_cases():
    empty = np.zeros((5, 5), bool)
    full = np.ones((5, 5), bool)
    assert mask_iou(empty, empty) == 1.0 and boundary_f(empty, empty) == 1.0
    assert mask_iou(empty, full) == 0.0 and boundary_f(empty, full) == 1.0  # DAVIS: a full mask has no boundary
    part = np.zeros((5, 5), bool)
    part[1:3, 1:3] = True
    assert boundary_f(empty, part) == 0.0 and boundary_f(part, empty) == 0.0
    assert mask_iou(np.stack([empty, full]), np.stack([empty, empty])).tolist() == [1.0, 0.0]
    void = np.zeros((5, 5), bool)
    void[:, 2:] = True
    half = np.zeros((5, 5), bool)
    half[:, 3:] = True
    assert mask_iou(empty, half, void=void) == 1.0  # the difference is all in the void
    with pytest.raises(Molmo2Error, match="shape"):
        mask_iou(empty, np.zeros((4, 5)))


def test_disk_matches_skimage():
    morph = pytest.importorskip("skimage.morphology")
    for r in range(0, 9):
        assert np.array_equal(disk(r), morph.disk(r).astype(bool)), r


def test_polygons_and_mask_forms():
    m = polygons_to_mask([[2, 2, 8, 2, 8, 6, 2, 6]], height=10, width=12)
    assert m.shape == (10, 12) and m[4, 5] and not m[0, 0]
    assert np.array_equal(as_mask([[2, 2, 8, 2, 8, 6, 2, 6]], size=(12, 10)), m)
    assert np.array_equal(as_mask(rle_encode(m)), m)
    assert as_mask(np.array([[0, 2]])).tolist() == [[False, True]]
    with pytest.raises(Molmo2Error, match="size"):
        as_mask([[2, 2, 8, 2, 8, 6]])
    with pytest.raises(Molmo2Error, match="3 \\(x, y\\) pairs"):
        polygons_to_mask([[1, 2, 3, 4]], 5, 5)
    with pytest.raises(Molmo2Error, match="media is"):
        as_mask(rle_encode(m), size=(10, 10))


def test_bad_rle():
    with pytest.raises(Molmo2Error, match="'size'"):
        rle_decode({"counts": "abc"})
    with pytest.raises(Molmo2Error, match="sum to"):
        rle_decode({"size": [2, 2], "counts": [1, 1]})
    with pytest.raises(Molmo2Error):
        rle_decode({"size": [2, 2], "counts": 5})


def test_point_in_mask_rounding():
    m = np.zeros((3, 3), bool)
    m[1, 1] = True
    assert point_in_mask(1.4, 0.6, m) and point_in_mask(0.5, 1.5, m) is False  # round(0.5) = 0
    assert point_in_mask(1.9, 1.9, m, rounding="floor") and not point_in_mask(1.9, 1.9, m)
    full = np.ones((3, 3), bool)
    assert point_in_mask(-0.4, 0, full) and not point_in_mask(-0.6, 0, full)  # rounds to 0 / -1
    assert not point_in_mask(3.0, 1, m) and not point_in_mask(float("nan"), 1, m)


def test_instance_masks_from_ids_and_from_dict():
    ids = np.zeros((2, 4, 5), np.uint16)
    ids[0, 1, 1] = 3
    ids[1, 2, 2] = 4
    im = InstanceMasks.from_ids(ids, [0.5, 1.0])
    assert im.object_ids == [3, 4] and im.size == (5, 4)
    assert im.get(3, 0.5)[1, 1] and not im.get(3, 1.0).any()  # annotated, not visible
    assert im.get(3, 0.75) is None and im.has(4, 1.0) and im.times(4) == [0.5, 1.0]
    d = InstanceMasks((5, 4), {3: {0.5: rle_encode(ids[0] == 3)}})
    assert np.array_equal(d.get(3, 0.5), im.get(3, 0.5)) and d.get(3, 1.0) is None and d.get(9, 0.5) is None
    assert time_key(0.1 + 0.2) == time_key(0.3)


def test_instance_masks_npz(tmp_path):
    ids = np.zeros((1, 3, 3), np.uint16)
    ids[0, 0, 0] = 1
    np.savez(tmp_path / "gt.npz", ids=ids, times=np.array([0.0]))
    assert InstanceMasks.from_npz(tmp_path / "gt.npz").get(1, 0.0)[0, 0]
    np.savez(tmp_path / "bad.npz", foo=ids)
    with pytest.raises(Molmo2Error, match="'ids'"):
        InstanceMasks.from_npz(tmp_path / "bad.npz")
    with pytest.raises(Molmo2Error, match="not found"):
        InstanceMasks.from_npz(tmp_path / "missing.npz")
    with pytest.raises(Molmo2Error, match="frames"):
        InstanceMasks.from_ids(ids, [0.0, 1.0])
    with pytest.raises(Molmo2Error, match="distinct"):
        InstanceMasks.from_ids(np.zeros((2, 2, 2), np.uint8), [0.0, 0.0001])


def test_importing_the_metrics_needs_neither_torch_nor_scipy():
    code = "import sys, molmo2.eval; print('torch' in sys.modules, 'scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
