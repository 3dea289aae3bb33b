"""Images from paths, bytes, PIL and numpy; bad images give MediaError."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from molmo2.errors import MediaError
from molmo2.processing.media import load_image


def _png_bytes(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_all_sources_agree(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    path.write_bytes(_png_bytes(arr))
    for source in (path, str(path), path.read_bytes(), Image.open(path), arr):
        got = load_image(source)
        assert got.dtype == np.uint8 and got.shape == (7, 9, 3)
        assert np.array_equal(got, arr)


def test_grayscale_and_float_arrays():
    assert load_image(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert load_image(np.ones((4, 5, 3), np.float32)).max() == 255


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (10, 4))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    assert load_image(buf.getvalue()).shape == (10, 4, 3)


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make,match", [
    (lambda p: p / "missing.png", "not found"),
    (lambda p: _write(p / "empty.png", b""), "empty"),
    (lambda p: _write(p / "junk.png", b"not an image at all"), "could not decode"),
    (lambda p: np.zeros((0, 5, 3), np.uint8), "no pixels"),
    (lambda p: np.zeros((5, 5, 2), np.uint8), r"\[H, W, 3\]"),
    (lambda p: 12345, "unsupported image type"),
])
def test_bad_images(tmp_path, make, match):
    with pytest.raises(MediaError, match=match):
        load_image(make(tmp_path))
