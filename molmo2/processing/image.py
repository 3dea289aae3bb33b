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
uint8, then normalized as ``(x - 255*mean) / (255*std)``.
"""

from __future__ import annotations

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


def resize_normalize(images_NCHW: torch.Tensor, height: int, width: int, s: ImageSettings) -> torch.Tensor:
    """uint8 ``[N, 3, H, W]`` -> normalized float32 ``[N, 3, height, width]``."""
    x = F.interpolate(images_NCHW.float(), size=(height, width), mode="bilinear", align_corners=False,
                      antialias=False)
    x = x.round().clamp(0, 255)
    mean = torch.tensor(s.image_mean, dtype=torch.float32) * 255.0
    std = torch.tensor(s.image_std, dtype=torch.float32) * 255.0
    return (x - mean[:, None, None]) / std[:, None, None]


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
    """One image: ``patches [num_crops, P, patch_dim]`` (global crop first), ``pooling [tokens, K]``
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

    canvas = resize_normalize(img, canvas_h, canvas_w, s)
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

    global_crop = resize_normalize(img, crop, crop, s)
    low = pool_windows(torch.arange(n * n, dtype=torch.int32).reshape(n, n), ph, pw)
    patches = patchify(torch.cat([global_crop, crops]), p)
    pooling = torch.cat([low.reshape(-1, ph * pw), high.reshape(-1, ph * pw)])
    grid = (low.shape[0], low.shape[1], high.shape[0], high.shape[1])
    return ImagePatches(patches, pooling.long(), grid)


def frames_to_patches(frames_THWC: np.ndarray | torch.Tensor, s: ImageSettings) -> ImagePatches:
    """Video frames: each frame is one global crop, pooled ``video_pooling_size``. Pooling indices are
    offset per frame; ``grid = (T, rows, cols, 0)``."""
    frames = torch.as_tensor(np.ascontiguousarray(frames_THWC)).permute(0, 3, 1, 2)
    T = frames.shape[0]
    n = s.patches_per_side
    ph, pw = s.video_pooling_size
    # written chunk by chunk into one preallocated tensor: the float working set stays at 8 frames
    patches = torch.empty((T, n * n, s.patch_size * s.patch_size * 3), dtype=torch.float32)
    for i in range(0, T, 8):
        patches[i : i + 8] = patchify(resize_normalize(frames[i : i + 8], s.crop_size, s.crop_size, s), s.patch_size)
    win = pool_windows(torch.arange(n * n, dtype=torch.int32).reshape(n, n), ph, pw)
    rows, cols = win.shape[:2]
    win = win.reshape(1, rows * cols, ph * pw).long()
    offsets = (torch.arange(T) * n * n).view(T, 1, 1)
    pooling = torch.where(win >= 0, win + offsets, -1).reshape(T * rows * cols, ph * pw)
    return ImagePatches(patches, pooling, (T, rows, cols, 0))
