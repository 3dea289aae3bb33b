"""Image pixels for Molmo2: a low-res global crop plus overlapping high-res crops, patchified.

Pipeline (model.md section 6), in plain torch so it needs no torchvision:

1. Tiling: choose (rows, cols) with rows*cols <= max_crops that needs the least down-scaling (or, if
   none is needed, the least up-scaling) of the image minus the overlap margins.
2. Resize the whole image (bilinear, no antialias, aspect ratio ignored) to the tiled canvas and cut
   crops with stride ``crop - margins``; the overlapping margin patches of inner crop edges are dropped
   from the patch map so every canvas patch is represented exactly once.
3. Pool the patch map in 2x2 windows (images) or 3x3 (video frames); windows are padded with -1.
4. The global crop is the whole image resized to one crop.

Resizing matches the reference byte for byte: uint8 is resized in float32, rounded and clamped back to
uint8 (``resize_uint8``). The patches stay uint8 (``[N, P, patch_dim]``, a quarter of float32's memory);
the model normalizes them at the last moment as ``(x - 255*mean) / (255*std)``
(``molmo2.model.vision.normalize_pixels``), which gives the reference processor's float32 values bit for
bit.

Speed: ``F.interpolate`` on one image at a time gives the float values, and only the few that lie next to
a rounding boundary are recomputed with the reference kernel's exact float32 arithmetic (fused
multiply-adds), so the bytes do not depend on the thread count. Torch's native uint8 bilinear resize is
faster still but rounds differently (it changed about 20% of the bytes of a 640x480 frame); a full
separable reimplementation would need the fused multiply-adds everywhere (float64 emulation, slower).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class ImageSettings:
    """Image and video-frame preprocessing settings (``preprocessor_config.json`` /
    ``video_preprocessor_config.json``)."""

    crop_size: int = 378
    patch_size: int = 14
    max_crops: int = 8
    overlap_margins: tuple[int, int] = (4, 4)
    pooling_size: tuple[int, int] = (2, 2)
    video_pooling_size: tuple[int, int] = (3, 3)
    # applied by the model to the uint8 patches (VisionConfig.pixel_mean / pixel_std), not here
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    extra: dict = field(default_factory=dict)

    @property
    def patches_per_side(self) -> int:
        return self.crop_size // self.patch_size


def select_tiling(height: float, width: float, window: int, max_crops: int) -> tuple[int, int]:
    """(rows, cols) of the tiling. Ties go to the earliest candidate sorted by (rows*cols, rows).

    As in the released processor, ``height``/``width`` are the image size minus the total margin and may
    be <= 0 for tiny images; the arithmetic is float32 so ties break exactly as the reference does."""
    tilings = [(h, w) for h, w in itertools.product(range(1, max_crops + 1), repeat=2) if h * w <= max_crops]
    tilings.sort(key=lambda t: (t[0] * t[1], t[0]))
    candidates = torch.tensor(tilings, dtype=torch.int32) * window
    scales = (candidates.to(torch.float32) / torch.tensor([height, width], dtype=torch.float32)).amin(-1)
    if bool(torch.all(scales < 1)):
        return tilings[int(scales.argmax())]
    scales = torch.where(scales < 1.0, 10e9, scales)
    return tilings[int(scales.argmin())]


def crop_geometry(height: int, width: int, s: ImageSettings) -> tuple[int, int, int, int]:
    """(rows, cols, canvas_height, canvas_width) for one image."""
    left, right = s.overlap_margins
    window = (s.patches_per_side - left - right) * s.patch_size
    margin = (left + right) * s.patch_size
    rows, cols = select_tiling(height - margin, width - margin, window, s.max_crops)
    return rows, cols, rows * window + margin, cols * window + margin


# A float32 bilinear value this close to k + 0.5 may round either way depending on the last bits; it is
# recomputed exactly. Every float32 evaluation of the same weighted sum is within ~1e-4 of the reference
# (values <= 255, a few roundings of relative size 6e-8), far inside this margin.
_HALF_TOL = 2.0**-10
# torch's TensorIterator runs a loop serially below this many elements (at::internal::GRAIN_SIZE)
_GRAIN = 12288


@functools.lru_cache(maxsize=64)
def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(i0, i1, w0, w1) of one axis as torch's CPU kernel computes them: float32, the source position
    ``scale * (d + 0.5) - 0.5`` as one fused multiply-add (exact in float64 here: at most 40 bits)."""
    scale = np.float32(n_in) / np.float32(n_out)
    src = (np.float64(scale) * (np.arange(n_out, dtype=np.float64) + 0.5) - 0.5).astype(np.float32)
    src = np.maximum(src, np.float32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    w1 = np.clip(src - i0.astype(np.float32), np.float32(0), np.float32(1))
    return i0, i0 + (i0 < n_in - 1), np.float32(1) - w1, w1


def _fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 ``a * b + c`` rounded once, like a fused multiply-add: the product is exact in float64,
    the sum is rounded to odd (TwoSum gives its error), so that rounding on to float32 is correct."""
    p, c = a.astype(np.float64) * b, c.astype(np.float64)
    s = p + c
    bb = s - p
    err = (p - (s - bb)) + (c - bb)
    bits = s.view(np.int64)
    inexact_even = (err != 0) & ((bits & 1) == 0)
    bits = np.where(inexact_even, bits + np.where((err > 0) == (s > 0), 1, -1), bits)
    return bits.view(np.float64).astype(np.float32)


def _bilinear_exact(img_CHW: np.ndarray, c: np.ndarray, y: np.ndarray, x: np.ndarray, rows, cols) -> np.ndarray:
    """The reference's float32 value at output pixels ``(c, y, x)``: torch's CPU bilinear kernel (as it runs
    on several threads) computes ``t_r = fma(x_r0, w0, x_r1 * w1)`` along each of the two source
    rows, then ``fma(t_0, h0, t_1 * h1)``."""
    r0, r1, h0, h1 = (a[y] for a in rows)
    c0, c1, w0, w1 = (a[x] for a in cols)
    px = [img_CHW[c, r, k].astype(np.float32) for r in (r0, r1) for k in (c0, c1)]
    t0 = _fma32(px[0], w0, px[1] * w1)
    t1 = _fma32(px[2], w0, px[3] * w1)
    return _fma32(t0, h0, t1 * h1)


def resize_uint8(images_NCHW: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 ``[N, 3, H, W]`` (any strides) -> uint8 ``[N, 3, height, width]``: bilinear without antialias
    in float32, rounded half to even and clamped, byte for byte as the reference processor resizing the
    N images in one call; computed one image at a time (the float working set is one image).

    Torch's float kernel (which the reference runs) does not round the same way in every case: a call
    with fewer than ``_GRAIN`` output values runs serially and rounds one way; a larger one, split over
    several threads, rounds as ``_bilinear_exact`` (fused multiply-adds); a large one with a single
    thread rounds like the serial case (a third of the float values of a 640x480 -> 378x378 resize differ
    in their last bits, enough to change bytes). The reference ran with several threads. So for a large
    call ``F.interpolate`` gives the values and the few within ``_HALF_TOL`` of a rounding boundary
    (typically 0.2%) are recomputed by ``_bilinear_exact``: the bytes no longer depend on the thread
    count (``torch.set_num_threads(1)``, as in DataLoader workers, used to change them)."""
    N, C, H, W = images_NCHW.shape
    if (H, W) == (height, width):  # the kernel copies (weights 1 and 0): frames resized while decoding
        return images_NCHW.contiguous()
    out = torch.empty((N, C, height, width), dtype=torch.uint8)
    serial = N * C * height * width < _GRAIN  # then our per-image calls are serial too: exact as they are
    rows, cols = _axis_weights(H, height), _axis_weights(W, width)
    for i in range(N):
        img = images_NCHW[i : i + 1]
        # a channels-last view of an [H, W, 3] array resizes fastest this way (a contiguous copy was slower)
        y = F.interpolate(img.float(), size=(height, width), mode="bilinear", align_corners=False, antialias=False)
        r = y.round()
        near = (y - r).abs_() > 0.5 - _HALF_TOL
        flat = np.flatnonzero(near.numpy()) if not serial else ()  # numpy's is 4x faster than torch's here
        if len(flat):
            c, yy, xx = np.unravel_index(flat, (C, height, width))
            exact = _bilinear_exact(img[0].numpy(), c, yy, xx, rows, cols)
            r[0, torch.from_numpy(c), torch.from_numpy(yy), torch.from_numpy(xx)] = torch.from_numpy(np.rint(exact))
        out[i] = r.clamp_(0, 255)  # integral values: the uint8 cast is exact
    return out


def patchify(crops_NCHW: torch.Tensor, patch: int) -> torch.Tensor:
    """``[N, C, H, W]`` -> ``[N, (H/p)*(W/p), p*p*C]``, patches row-major, pixels (row, col, channel)."""
    N, C, H, W = crops_NCHW.shape
    x = crops_NCHW.permute(0, 2, 3, 1).reshape(N, H // patch, patch, W // patch, patch, C)
    return x.transpose(2, 3).reshape(N, (H // patch) * (W // patch), patch * patch * C)


def pool_windows(index_grid: torch.Tensor, pool_h: int, pool_w: int) -> torch.Tensor:
    """Group a ``[h, w]`` patch-index grid into pooling windows ``[rows, cols, pool_h*pool_w]``, padding
    with -1 (half before, the rest after)."""
    h, w = index_grid.shape
    pad_h, pad_w = (-h) % pool_h, (-w) % pool_w
    grid = F.pad(index_grid, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2), value=-1)
    rows, cols = grid.shape[0] // pool_h, grid.shape[1] // pool_w
    return grid.reshape(rows, pool_h, cols, pool_w).permute(0, 2, 1, 3).reshape(rows, cols, pool_h * pool_w)


@dataclass
class ImagePatches:
    """One image: uint8 ``patches [num_crops, P, patch_dim]`` (global crop first), ``pooling [tokens, K]``
    (indices local to this image; global tokens first), ``grid = (low_h, low_w, high_h, high_w)``."""

    patches: torch.Tensor
    pooling: torch.Tensor
    grid: tuple[int, int, int, int]


def to_uint8_chw(image: np.ndarray) -> torch.Tensor:
    """``[H, W, 3]`` uint8 array -> ``[1, 3, H, W]`` tensor."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]


def image_to_patches(image_HWC: np.ndarray, s: ImageSettings) -> ImagePatches:
    """The multi-crop pipeline for one RGB uint8 image."""
    H, W = image_HWC.shape[:2]
    img = to_uint8_chw(image_HWC)
    crop, p = s.crop_size, s.patch_size
    n = s.patches_per_side
    left, right = s.overlap_margins
    rows, cols, canvas_h, canvas_w = crop_geometry(H, W, s)
    window = (n - left - right) * p

    canvas = resize_uint8(img, canvas_h, canvas_w)
    crops = canvas.unfold(2, crop, window).unfold(3, crop, window)  # [1, C, rows, cols, crop, crop]
    crops = crops.permute(0, 2, 3, 1, 4, 5).reshape(rows * cols, 3, crop, crop)

    # which crop patch represents each canvas patch: drop inner overlap margins
    idx = torch.arange(rows * cols * n * n, dtype=torch.int32).reshape(rows, cols, n, n)
    if left:
        idx[1:, :, :left, :] = -1
        idx[:, 1:, :, :left] = -1
    if right:
        idx[:-1, :, -right:, :] = -1
        idx[:, :-1, :, -right:] = -1
    idx = idx.permute(0, 2, 1, 3).reshape(-1)
    idx = idx[idx >= 0].reshape(canvas_h // p, canvas_w // p)
    ph, pw = s.pooling_size
    high = pool_windows(idx, ph, pw)
    high = torch.where(high >= 0, high + n * n, -1)  # crops come after the global crop

    global_crop = resize_uint8(img, crop, crop)
    low = pool_windows(torch.arange(n * n, dtype=torch.int32).reshape(n, n), ph, pw)
    patches = patchify(torch.cat([global_crop, crops]), p)
    pooling = torch.cat([low.reshape(-1, ph * pw), high.reshape(-1, ph * pw)])
    grid = (low.shape[0], low.shape[1], high.shape[0], high.shape[1])
    return ImagePatches(patches, pooling.long(), grid)


def frames_to_patches(frames_THWC: np.ndarray | torch.Tensor, s: ImageSettings) -> ImagePatches:
    """Video frames (uint8 ``[T, H, W, 3]``): each frame is one global crop, pooled ``video_pooling_size``.
    Pooling indices are offset per frame; ``grid = (T, rows, cols, 0)``."""
    frames = torch.as_tensor(np.ascontiguousarray(frames_THWC)).permute(0, 3, 1, 2)
    T = frames.shape[0]
    n, p = s.patches_per_side, s.patch_size
    ph, pw = s.video_pooling_size
    # frame by frame into one uint8 tensor: neither the resized frames nor any float copy of the clip exist
    patches = torch.empty((T, n * n, p * p * 3), dtype=torch.uint8)
    for t in range(T):
        patches[t] = patchify(resize_uint8(frames[t : t + 1], s.crop_size, s.crop_size), p)[0]
    win = pool_windows(torch.arange(n * n, dtype=torch.int32).reshape(n, n), ph, pw)
    rows, cols = win.shape[:2]
    win = win.reshape(1, rows * cols, ph * pw).long()
    offsets = (torch.arange(T) * n * n).view(T, 1, 1)
    pooling = torch.where(win >= 0, win + offsets, -1).reshape(T * rows * cols, ph * pw)
    return ImagePatches(patches, pooling, (T, rows, cols, 0))
