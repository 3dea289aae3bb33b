"""The exact resize (``resize_uint8``) and the uint8 patches.

The reference processor resizes with torch's float bilinear kernel in a process with several threads.
``resize_uint8`` must give its bytes whatever our thread count: torch's kernel alone does not (with one
thread it rounds a third of the values of a 640x480 -> 378x378 resize differently in the last bits)."""

from __future__ import annotations

import fractions

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from molmo2.model.vision import normalize_pixels
from molmo2.processing.image import ImageSettings, _fma32, frames_to_patches, image_to_patches, resize_uint8


@pytest.fixture
def threads():
    """Set torch's thread count inside a test; restored afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def _reference(images_NCHW: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """What the reference computes: one float call on several threads, rounded and clamped."""
    torch.set_num_threads(2)
    y = F.interpolate(images_NCHW.float(), size=(h, w), mode="bilinear", align_corners=False, antialias=False)
    return y.round().clamp(0, 255).to(torch.uint8)


def _images(rng, n, h, w, kind):
    if kind == "noise":
        return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    # smooth gradients: many values land near k + 0.5 after an exact 2x upscale
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), ((xx + yy) % 256)], -1)
    return np.broadcast_to(img.astype(np.uint8), (n, h, w, 3)).copy()


@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("n,h,w,out_h,out_w,kind", [
    (2, 480, 640, 378, 378, "noise"),  # video frames, released crop
    (1, 189, 189, 378, 378, "gradient"),  # exact 2x upscale: weights 1/4, 3/4
    (1, 1080, 1920, 378, 378, "noise"),
    (1, 200, 300, 546, 798, "noise"),  # a tiled canvas
    (1, 37, 501, 378, 378, "gradient"),
])
def test_resize_matches_reference_kernel_for_any_thread_count(threads, num_threads, n, h, w, out_h, out_w, kind):
    rng = np.random.default_rng(h * w)
    images = torch.from_numpy(_images(rng, n, h, w, kind)).permute(0, 3, 1, 2)
    want = _reference(images, out_h, out_w)
    threads(num_threads)
    got = resize_uint8(images, out_h, out_w)
    assert got.dtype == torch.uint8 and got.shape == want.shape
    assert torch.equal(got, want)


def _round_f32(q: fractions.Fraction) -> np.float32:
    """The float32 nearest to the rational ``q``, ties to even."""
    f = np.float32(float(q))  # float() rounds to float64 first: the answer is f or a neighbour
    near = [np.nextafter(f, np.float32(-np.inf)), f, np.nextafter(f, np.float32(np.inf))]
    return min(near, key=lambda v: (abs(fractions.Fraction(float(v)) - q), int(v.view(np.int32)) & 1))


def test_fma32_rounds_once():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, 3000).astype(np.float32)
    b = rng.random(3000).astype(np.float32)
    c = (rng.random(3000) * 300).astype(np.float32) * np.float32(2.0) ** rng.integers(-40, 1, 3000).astype(np.float32)
    # adversarial: a*b + c just off a float32 midpoint, where rounding twice (to float64, then float32) fails
    mid = np.float32(100.0) + np.float32(2.0**-18) * rng.integers(0, 1000, 3000).astype(np.float32)
    c[::2] = ((mid.astype(np.float64) + 2.0**-19) - a.astype(np.float64) * b)[::2].astype(np.float32)
    got = _fma32(a, b, c)
    F_ = fractions.Fraction
    want = [_round_f32(F_(float(x)) * F_(float(y)) + F_(float(z))) for x, y, z in zip(a, b, c)]
    assert got.tolist() == [float(w) for w in want]


def test_patches_stay_uint8_and_normalize_to_the_reference_floats(threads):
    rng = np.random.default_rng(0)
    s = ImageSettings()
    frames = rng.integers(0, 256, (3, 120, 160, 3), dtype=np.uint8)
    vp = frames_to_patches(frames, s)
    ip = image_to_patches(frames[0], s)
    assert vp.patches.dtype == ip.patches.dtype == torch.uint8
    # the reference's float pipeline: resize, round, clamp, normalize, patchify
    x = _reference(torch.from_numpy(frames).permute(0, 3, 1, 2), 378, 378).float()
    want = (x - 127.5) / 127.5
    want = want.permute(0, 2, 3, 1).reshape(3, 27, 14, 27, 14, 3).transpose(2, 3).reshape(3, 729, 588)
    assert torch.equal(normalize_pixels(vp.patches, s.image_mean, s.image_std), want)
    assert torch.equal(ip.patches[0], vp.patches[0])  # the global crop of an image is the frame's crop
