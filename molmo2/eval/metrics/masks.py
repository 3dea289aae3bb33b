"""Ground-truth masks: COCO RLE and polygons, point-in-mask, mask IoU (J) and boundary F (F).

The released Molmo2 eval sets store masks as COCO RLE (compressed string counts, or uncompressed count
lists) and polygons; they are decoded with pycocotools exactly as the official ``ann_to_mask`` does
(``frPyObjects`` -> ``merge`` -> ``decode``, evaluation.md §4 and §6a), so a mask here is bit-identical
to the one the official metric saw. Our own datasets store a visible-instance map ``ids [T, H, W]``
(``molmo2.data.schema``); :class:`InstanceMasks` gives both forms one interface: "the mask of object
k at time t".

Times are matched at **millisecond** resolution (``time_key``). The official code compares floats
exactly; both agree for every time written with at most three decimals (the model writes 0.1 s, the
annotations sit on a 0.5 s or 1 s grid), and milliseconds avoid float surprises such as
``0.1 + 0.2 != 0.3`` in generated ground truth.

``mask_iou`` and ``boundary_f`` are the DAVIS 2017 definitions that MeViS' official scorer uses
(evaluation.md §6b): empty-vs-empty scores 1 for both; the boundary is ``seg2bmap`` (a pixel differs
from its right, lower or lower-right neighbour) and two boundaries match within a disk of radius
``ceil(bound_th * image diagonal)`` pixels. DAVIS dilates the whole image with ``cv2.dilate`` and
``skimage.morphology.disk``; this file asks the equivalent question only at boundary pixels (is there a
boundary pixel of the other mask at dx² + dy² <= r²?) with a k-d tree, which is several times faster
and gives the same numbers (tests compare against TrackEval's copy of the DAVIS code and a
distance-transform computation). A mask covering the whole frame has no boundary, so, as in DAVIS,
its F against an empty mask is 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics._common import require

# np.ndarray [H, W] | COCO RLE dict | list of polygons (flat [x0, y0, x1, y1, ...]) | a zero-argument
# callable returning one of those (a mask file read only when a point has to be checked against it)
MaskLike = Any


def time_key(t: float) -> int:
    """The integer millisecond a time (seconds) is matched on."""
    if not math.isfinite(t):
        raise Molmo2Error(f"times must be finite seconds, got {t}")
    return int(round(float(t) * 1000.0))


# ---------------------------------------------------------------------------------------------- RLE


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """Binary mask ``[H, W]`` -> COCO compressed RLE ``{"size": [H, W], "counts": str}`` (JSON-ready)."""
    m = _as_2d_bool(mask, "mask")
    rle = require("pycocotools.mask").encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def rle_decode(rle: Mapping[str, Any]) -> np.ndarray:
    """COCO RLE (compressed ``counts`` str/bytes, or uncompressed list of run lengths) -> bool ``[H, W]``."""
    mask_utils = require("pycocotools.mask")
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise Molmo2Error(f"an RLE must be a dict with 'size' [H, W] and 'counts', got {type(rle).__name__}")
    size = rle["size"]
    if not (isinstance(size, Sequence) and len(size) == 2 and all(int(v) >= 0 for v in size)):
        raise Molmo2Error(f"RLE 'size' must be [height, width], got {size!r}")
    h, w = int(size[0]), int(size[1])
    counts = rle["counts"]
    if isinstance(counts, list):
        if sum(int(c) for c in counts) != h * w:
            raise Molmo2Error(f"uncompressed RLE counts sum to {sum(counts)}, expected H*W = {h * w}")
        obj = mask_utils.frPyObjects({"size": [h, w], "counts": [int(c) for c in counts]}, h, w)
    elif isinstance(counts, (str, bytes)):
        obj = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    else:
        raise Molmo2Error(f"RLE 'counts' must be a string or a list of ints, got {type(counts).__name__}")
    try:
        out = mask_utils.decode(obj)
    except Exception as e:  # pycocotools raises bare errors on garbage counts
        raise Molmo2Error(f"could not decode RLE of size {h}x{w}: {e}") from None
    if out.shape != (h, w):
        raise Molmo2Error(f"RLE decoded to {out.shape}, expected ({h}, {w}); the counts are corrupt")
    return out.astype(bool)


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """COCO polygons (flat ``[x0, y0, x1, y1, ...]`` lists) -> bool ``[H, W]`` (union of the parts)."""
    mask_utils = require("pycocotools.mask")
    polys = [list(map(float, p)) for p in polygons]
    if any(len(p) < 6 or len(p) % 2 for p in polys):
        raise Molmo2Error("each polygon needs at least 3 (x, y) pairs, flat: [x0, y0, x1, y1, x2, y2, ...]")
    if not polys:
        return np.zeros((height, width), dtype=bool)
    rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    return mask_utils.decode(rle).astype(bool)


def as_mask(m: MaskLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Any mask form -> bool ``[H, W]``. ``size`` = (width, height), needed only for polygons."""
    if callable(m):
        m = m()
    if isinstance(m, np.ndarray):
        return _as_2d_bool(m, "mask")
    if isinstance(m, Mapping):
        out = rle_decode(m)
    elif isinstance(m, (list, tuple)):
        if size is None:
            raise Molmo2Error("polygon masks need the image size (width, height)")
        out = polygons_to_mask(m, height=int(size[1]), width=int(size[0]))
    else:
        raise Molmo2Error(f"a mask must be an array, an RLE dict or polygons, got {type(m).__name__}")
    if size is not None and out.shape != (int(size[1]), int(size[0])):
        raise Molmo2Error(f"mask is {out.shape[1]}x{out.shape[0]} (WxH) but the media is {size[0]}x{size[1]}")
    return out


def _as_2d_bool(m: Any, what: str) -> np.ndarray:
    a = np.asarray(m)
    if a.ndim != 2:
        raise Molmo2Error(f"{what} must be 2-D [H, W], got shape {a.shape}")
    if a.dtype != bool:
        if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
            raise Molmo2Error(f"{what} must be boolean or numeric, got dtype {a.dtype}")
        a = a != 0
    return a


# ----------------------------------------------------------------------------------- point in mask


def point_in_mask(x: float, y: float, mask: np.ndarray, rounding: str = "round") -> bool:
    """Whether pixel (x, y) is inside ``mask[y, x]``; out of bounds is outside.

    ``rounding="round"`` is the official ``is_point_in_region`` (Python ``round``: half to even) used by
    image pointing, video pointing and tracking; ``"floor"`` is Point-Bench's ``int()`` (evaluation.md
    §7, §13). Coordinates are those of ``molmo2.grounding.types.Point`` (pixels, origin top-left).
    """
    if not (math.isfinite(x) and math.isfinite(y)):
        return False
    if rounding == "round":
        xi, yi = int(round(float(x))), int(round(float(y)))
    elif rounding == "floor":
        xi, yi = int(x), int(y)  # official Point-Bench: int() truncates toward zero
    else:
        raise Molmo2Error(f"rounding must be 'round' or 'floor', got {rounding!r}")
    h, w = mask.shape[:2]
    if xi < 0 or yi < 0 or xi >= w or yi >= h:
        return False
    return bool(mask[yi, xi])


# --------------------------------------------------------------------------------------- J and F


def mask_iou(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float | np.ndarray:
    """DAVIS ``db_eval_iou`` (region similarity J): |gt ∩ pred| / |gt ∪ pred|, 1 when both are empty.

    ``gt``/``pred`` are ``[H, W]`` (returns a float) or ``[T, H, W]`` (returns ``[T]``); ``void`` pixels
    are ignored.
    """
    gt_b, pred_b = _pair(gt, pred)
    keep = np.ones_like(gt_b) if void is None else ~_broadcast_void(void, gt_b)
    inter = np.sum(gt_b & pred_b & keep, axis=(-2, -1))
    union = np.sum((gt_b | pred_b) & keep, axis=(-2, -1))
    j = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    return float(j) if j.ndim == 0 else j.astype(np.float64)


def disk(radius: int) -> np.ndarray:
    """``skimage.morphology.disk``: the pixels with x² + y² <= r² (a ``[2r+1, 2r+1]`` bool array)."""
    r = int(radius)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (xx * xx + yy * yy) <= r * r


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """DAVIS ``_seg2bmap``: 1-pixel-wide boundary of a binary mask (offset half a pixel to the origin)."""
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def boundary_f(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = 0.008
) -> float | np.ndarray:
    """DAVIS ``db_eval_boundary`` (contour accuracy F) per frame; ``[H, W]`` -> float, ``[T, H, W]`` -> ``[T]``.

    Tolerance radius r: ``bound_th`` pixels if it is >= 1, else ``ceil(bound_th * sqrt(H² + W²))``.
    """
    gt_b, pred_b = _pair(gt, pred)
    if bound_th <= 0:
        raise Molmo2Error(f"bound_th must be positive, got {bound_th}")
    void_b = None if void is None else _broadcast_void(void, gt_b)
    if gt_b.ndim == 2:
        return _boundary_f_2d(gt_b, pred_b, None if void_b is None else void_b, bound_th)
    return np.array(
        [_boundary_f_2d(g, p, None if void_b is None else void_b[i], bound_th)
         for i, (g, p) in enumerate(zip(gt_b, pred_b))],
        dtype=np.float64,
    )


def _boundary_f_2d(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None, bound_th: float) -> float:
    bound_pix = bound_th if bound_th >= 1 - np.finfo(float).eps else math.ceil(bound_th * math.hypot(*gt.shape))
    if void is not None:
        gt, pred = gt & ~void, pred & ~void
    fg_boundary = seg2bmap(pred)
    gt_boundary = seg2bmap(gt)
    n_fg, n_gt = int(fg_boundary.sum()), int(gt_boundary.sum())
    if n_fg == 0 and n_gt == 0:
        return 1.0
    if n_fg == 0 or n_gt == 0:
        return 0.0  # DAVIS: P=1,R=0 or P=0,R=1 -> F = 0
    # "inside the other boundary dilated by disk(r)" == "an other-boundary pixel at dx² + dy² <= r²";
    # a nearest-neighbour query over the boundary pixels only is much cheaper than dilating the image
    cKDTree = require("scipy.spatial").cKDTree
    fg_pts, gt_pts = np.argwhere(fg_boundary), np.argwhere(gt_boundary)
    reach = math.sqrt(bound_pix * bound_pix + 0.5)  # squared integer distances: r² counts, r² + 1 does not
    d_fg, _ = cKDTree(gt_pts).query(fg_pts, distance_upper_bound=reach)
    d_gt, _ = cKDTree(fg_pts).query(gt_pts, distance_upper_bound=reach)
    precision = float(np.isfinite(d_fg).sum()) / n_fg
    recall = float(np.isfinite(d_gt).sum()) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g, p = np.asarray(gt), np.asarray(pred)
    if g.shape != p.shape:
        raise Molmo2Error(f"ground-truth and predicted masks differ in shape: {g.shape} vs {p.shape}")
    if g.ndim not in (2, 3) or 0 in g.shape:
        raise Molmo2Error(f"masks must be non-empty [H, W] or [T, H, W] arrays, got shape {g.shape}")
    return g.astype(bool), p.astype(bool)


def _broadcast_void(void: np.ndarray, like: np.ndarray) -> np.ndarray:
    v = np.asarray(void).astype(bool)
    try:
        return np.broadcast_to(v, like.shape)
    except ValueError:
        raise Molmo2Error(f"void mask of shape {v.shape} does not fit masks of shape {like.shape}") from None


# ------------------------------------------------------------------------------ instance masks


class InstanceMasks:
    """The ground-truth mask of each object at each annotated time of one video (or one image).

    Two sources, one interface (``get(object_id, t)``):

    - ``InstanceMasks(size, {object_id: {t: mask}})`` where a mask is an array, an RLE dict or polygons
      (the released eval sets); decoded on first use and cached. An object has a mask only at the times
      listed for it.
    - ``InstanceMasks.from_ids(ids_THW, times)`` / ``from_npz(path)``: the schema's visible-instance map;
      every object is annotated at every time (an empty mask where it is not visible).

    ``size`` is (width, height) in pixels. For a single image use ``t = 0.0``.
    """

    def __init__(self, size: tuple[int, int], masks: Mapping[int, Mapping[float, MaskLike]]):
        self.size = _check_size(size)
        self._entries: dict[int, dict[int, tuple[float, MaskLike]]] = {}
        for oid, by_time in masks.items():
            if not isinstance(by_time, Mapping):
                raise Molmo2Error(f"masks of object {oid!r} must map time (s) -> mask, got {type(by_time).__name__}")
            self._entries[int(oid)] = {time_key(t): (float(t), m) for t, m in by_time.items()}
        self._ids: np.ndarray | None = None
        self._frame_of: dict[int, int] = {}
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    @classmethod
    def from_ids(
        cls, ids: np.ndarray, times: Sequence[float], object_ids: Iterable[int] | None = None
    ) -> InstanceMasks:
        """From a visible-instance map ``ids [T, H, W]`` (0 = background) and its ``times [T]`` in seconds."""
        ids = np.asarray(ids)
        if ids.ndim == 2:
            ids = ids[None]
        if ids.ndim != 3 or not np.issubdtype(ids.dtype, np.integer):
            raise Molmo2Error(f"ids must be an integer array [T, H, W], got {ids.dtype} {ids.shape}")
        times_a = np.asarray(times, dtype=np.float64).reshape(-1)
        if len(times_a) != ids.shape[0]:
            raise Molmo2Error(f"ids has {ids.shape[0]} frames but times has {len(times_a)} entries")
        keys = [time_key(t) for t in times_a]
        if len(set(keys)) != len(keys):
            raise Molmo2Error("times must be distinct (at millisecond resolution)")
        self = cls((ids.shape[2], ids.shape[1]), {})
        self._ids = ids
        self._frame_of = {k: i for i, k in enumerate(keys)}
        oids = np.unique(ids[ids != 0]) if object_ids is None else np.asarray(list(object_ids))
        self._entries = {int(o): {k: (float(t), None) for k, t in zip(keys, times_a)} for o in oids}
        return self

    @classmethod
    def from_npz(cls, path: str | Path) -> InstanceMasks:
        """Read a schema ground-truth file (``ids [T, H, W]``, ``times [T]``; ``molmo2.data.schema``)."""
        path = Path(path)
        if not path.is_file():
            raise Molmo2Error(f"ground-truth mask file not found: {path}")
        try:
            with np.load(path) as z:
                ids, times = z["ids"], z["times"]
        except (KeyError, ValueError, OSError) as e:
            raise Molmo2Error(f"{path}: not a mask file with 'ids' [T, H, W] and 'times' [T]: {e}") from None
        return cls.from_ids(ids, times)

    @property
    def object_ids(self) -> list[int]:
        return list(self._entries)

    def times(self, object_id: int) -> list[float]:
        return sorted(t for t, _ in self._entries.get(int(object_id), {}).values())

    def has(self, object_id: int, t: float) -> bool:
        return time_key(t) in self._entries.get(int(object_id), {})

    def get(self, object_id: int, t: float) -> np.ndarray | None:
        """The bool mask ``[H, W]`` of the object at exactly time t (ms), or None if not annotated then."""
        oid, k = int(object_id), time_key(t)
        entry = self._entries.get(oid, {}).get(k)
        if entry is None:
            return None
        hit = self._cache.get((oid, k))
        if hit is not None:
            return hit
        if self._ids is not None:
            out = self._ids[self._frame_of[k]] == oid
        else:
            out = as_mask(entry[1], self.size)
        self._cache[(oid, k)] = out
        return out


def _check_size(size: Any) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise Molmo2Error(f"size must be (width, height) in pixels, got {size!r}") from None
    if w <= 0 or h <= 0:
        raise Molmo2Error(f"size must be positive (width, height), got {size!r}")
    return w, h
