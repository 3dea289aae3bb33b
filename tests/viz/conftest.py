"""Tiny media for the viz tests, generated on the fly: a 160x120 clip of 8 frames at 4 fps (2 s) on a flat
grey background (so drawn colours stand out after H.264), and a result with points and one track."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from molmo2.grounding import Count, GroundingResult, Point, Track

BG = 90  # background grey of the generated clips


def _make_clip(path: Path, width: int = 160, height: int = 120, num_frames: int = 8, fps: int = 4,
              pix_fmt: str = "yuv420p", codec: str = "libx264", rotation: int | None = None) -> Path:
    """A flat grey clip (H.264 unless ``codec`` says otherwise, e.g. "ffv1" in .mkv for odd sizes); frame i has a light bar at x = 10 i .. 10 i + 5 along the top 10 rows.
    ``rotation``: a display matrix turning it that many degrees counter-clockwise (-90: a phone's portrait video)."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            s.options = {"preset": "ultrafast", "crf": "18"}
        if rotation is not None:
            s.set_display_rotation(rotation)
        for i in range(num_frames):
            rgb_HW3 = np.full((height, width, 3), BG, np.uint8)
            rgb_HW3[:10, 10 * i:10 * i + 5] = 220
            for packet in s.encode(av.VideoFrame.from_ndarray(rgb_HW3, format="rgb24")):
                out.mux(packet)
        for packet in s.encode(None):
            out.mux(packet)
    return path


@pytest.fixture
def make_clip():
    """``make_clip(path, width=160, height=120, num_frames=8, fps=4, pix_fmt="yuv420p", codec="libx264",
    rotation=None)``."""
    return _make_clip


@pytest.fixture
def clip(tmp_path) -> Path:
    return _make_clip(tmp_path / "clip.mp4")


@pytest.fixture
def video_result() -> GroundingResult:
    """Point "dog" id 1 at (40, 30) t=0.5; point id 2 at (120, 30) t=1.5; track id 3 "cat" at t=0, 0.5, 1.0."""
    return GroundingResult(
        text='<points coords="...">dog</points> and a <tracks>cat</tracks>',
        sizes=[(160.0, 120.0)],
        points=[Point(40, 30, t=0.5, object_id=1, label="dog"), Point(120, 30, t=1.5, object_id=2, label="dog")],
        tracks=[Track(3, "cat", [Point(40, 90, t=0.0), Point(80, 90, t=0.5), Point(120, 90, t=1.0)])],
        count=Count(stated=2, pointed=3),
    )
