"""Fixtures for pipeline and CLI-verb tests: one tiny random checkpoint written by our own
``save_pretrained`` (no transformers import, so it builds in well under a second), and small media
generated in the test: an image, an image set and a short video file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from reference import write_side_files

from molmo2.checkpoint import save_pretrained
from molmo2.config import Molmo2Config
from molmo2.model import Molmo2Model


def write_tiny_checkpoint(out: Path, seed: int = 0, max_frames: int = 8) -> Path:
    """A random ``tiny`` Molmo2 in the hub layout, with the test tokenizer and 56 px crops."""
    torch.manual_seed(seed)
    model = Molmo2Model(Molmo2Config.from_name("tiny"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.normal_(0, 0.5 / p.shape[-1] ** 0.5 if p.dim() > 1 else 0.05)
    save_pretrained(model, out)
    write_side_files(out, num_frames=max_frames)
    return out


def write_video(path: Path, num_frames: int = 25, fps: int = 10, size: tuple[int, int] = (64, 48)) -> Path:
    """An mpeg4 video whose frames are flat grey levels plus a moving square."""
    import av

    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(num_frames):
            arr = np.full((h, w, 3), (i * 10) % 256, np.uint8)
            x = (i * 2) % (w - 8)
            arr[10:18, x:x + 8] = (255, 0, 0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-molmo2"))


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(d / "a.png")
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(d / "b.jpg")
    write_video(d / "clip.mp4")
    return d
