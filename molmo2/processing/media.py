"""Turning user images (path, bytes, PIL, numpy) into RGB uint8 arrays, with clear errors."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from molmo2.errors import MediaError

ImageLike = Any  # str | os.PathLike | bytes | PIL.Image.Image | np.ndarray


def load_image(image: ImageLike) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]``. Files and bytes get their EXIF orientation applied."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    source = "image"
    if isinstance(image, (str, os.PathLike)):
        path = Path(image).expanduser()
        source = str(path)
        if not path.is_file():
            raise MediaError(f"image file not found: {path}")
        if path.stat().st_size == 0:
            raise MediaError(f"image file is empty (0 bytes): {path}")
        image = path.read_bytes()
    if isinstance(image, (bytes, bytearray, memoryview)):
        try:
            pil = Image.open(io.BytesIO(bytes(image)))
            pil.load()
            image = ImageOps.exif_transpose(pil)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise MediaError(
                f"could not decode {source} as an image ({e}); supported formats are those Pillow reads "
                "(PNG, JPEG, WebP, GIF, BMP, TIFF ...)"
            ) from e
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[-1] == 4 and image.dtype == np.uint8:
        image = Image.fromarray(image, "RGBA")
    if isinstance(image, Image.Image):
        if image.width == 0 or image.height == 0:
            raise MediaError(f"{source} has no pixels ({image.width}x{image.height})")
        if "A" in image.getbands() or image.info.get("transparency") is not None:
            # transparency is composited onto white, as the reference processor does
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        arr = np.array(image.convert("RGB"))
    elif isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=-1)
        if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
            raise MediaError(f"image array must be [H, W, 3] (RGB), got shape {arr.shape}")
        if arr.shape[-1] == 1:
            arr = np.repeat(arr, 3, axis=-1)
        arr = arr[..., :3]
        if arr.dtype != np.uint8:
            if np.issubdtype(arr.dtype, np.floating) and arr.size and arr.max() <= 1.0:
                arr = arr * 255.0
            arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
    else:
        raise MediaError(
            f"unsupported image type {type(image).__name__}; pass a path, bytes, a PIL image or an "
            "[H, W, 3] uint8 numpy array"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise MediaError(f"{source} has no pixels (shape {arr.shape})")
    return np.ascontiguousarray(arr)
