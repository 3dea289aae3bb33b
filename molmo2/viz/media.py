"""The media a result is drawn on: one image, an image set, or a video file, told apart once.

Images are loaded with Pillow (EXIF orientation applied, as ``molmo2.processing.media.load_image``
does, so points line up with what the model saw). Videos are opened with PyAV and streamed frame by
frame at their own rate (``open_video``); nothing here holds a whole video in memory. Times are seconds
from the stream's first frame, the clock of the model's timestamps (``molmo2.processing.video``). A video
with a display rotation (a phone's portrait video) is turned upright with FFmpeg's own filters, as
``molmo2.processing.video`` turns what the model sees, and ``VideoInfo`` gives the displayed size.

From ``molmo2.processing`` it imports only ``media`` and ``video``, which import no torch (drawing needs
none); the rest it repeats instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from molmo2.errors import MediaError
from molmo2.processing.video import display_quarter_turns

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".mpg", ".mpeg", ".ts", ".flv",
                            ".wmv", ".3gp", ".ogv"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


def import_av():
    try:
        import av
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("drawing on videos needs PyAV: pip install 'molmo2[video]' (or pip install av)") from e
    return av


def is_video_path(media: Any) -> bool:
    return isinstance(media, (str, os.PathLike)) and Path(media).suffix.lower() in VIDEO_SUFFIXES


def is_image_set(media: Any) -> bool:
    return isinstance(media, (list, tuple))


def load_image(image: Any):
    """An RGB PIL image from a path, bytes, a PIL image or a uint8 array ``[H, W, 3]``: exactly the
    pixels the model sees (``molmo2.processing.media.load_image``: EXIF orientation, alpha on white)."""
    from PIL import Image

    from molmo2.processing.media import load_image as load_rgb

    if not isinstance(image, (str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray)):
        raise MediaError(f"unsupported media type {type(image).__name__}; pass an image path, a PIL image, an "
                         "[H, W, 3] uint8 array, a list of those (image set), or a video file path")
    return Image.fromarray(load_rgb(image), "RGB")


@dataclass(frozen=True)
class VideoInfo:
    """The first video stream of a file, as the writers need it."""

    width: int
    height: int
    fps: float  # average frame rate
    rate: Fraction  # the same, exact (for the encoder)
    duration: float  # seconds
    num_frames: int  # the container's count (0 if it keeps none)
    time_base: Fraction
    start_pts: int  # pts of the first frame (0 in most files)
    rotation: int = 0  # degrees the frames are turned counter-clockwise to show upright (width, height: after)


class _Upright:
    """Turns decoded frames ``quarter_turns`` times counter-clockwise in their own pixel format with the
    filters ffmpeg's autorotate inserts (``transpose``, or ``hflip,vflip``), and drops their display
    matrix, which no longer applies (an encoder or a second reader would turn them again)."""

    _FILTERS = {1: [("transpose", "cclock")], 2: [("hflip", None), ("vflip", None)], 3: [("transpose", "clock")]}

    def __init__(self, quarter_turns: int):
        assert quarter_turns in self._FILTERS, quarter_turns
        self.filters = self._FILTERS[quarter_turns] + [("sidedata", "mode=delete:type=DISPLAYMATRIX")]
        self.graph, self.key = None, None

    def __call__(self, frame):
        key = (frame.width, frame.height, frame.format.name, frame.time_base)
        if key != self.key:  # the first frame, or the stream changed size or format
            av = import_av()
            graph = av.filter.Graph()
            nodes = [graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                                      time_base=frame.time_base or Fraction(1, 1000))]
            nodes += [graph.add(name, args) for name, args in self.filters] + [graph.add("buffersink")]
            graph.link_nodes(*nodes).configure()
            self.graph, self.key = graph, key
        self.graph.vpush(frame)
        out = self.graph.vpull()
        out.pts, out.time_base = frame.pts, frame.time_base
        return out


class VideoReader:
    """A video file opened with PyAV; ``frames()`` yields ``(t, av.VideoFrame)`` in display order, upright.

    ``t`` is seconds from the first frame. The first frame is decoded on opening (PyAV exposes the display
    rotation only on frames) and is the first that ``frames()`` yields. Use as a context manager, or call
    ``close()``.
    """

    def __init__(self, path: str | os.PathLike, *, threads: bool = True):
        av = import_av()
        path = Path(path).expanduser()
        if not path.is_file():
            raise MediaError(f"video file not found: {path}; check the path")
        if path.stat().st_size == 0:
            raise MediaError(f"video file is empty (0 bytes): {path}; it was probably not fully written")
        self.name = str(path)
        try:
            self.container = av.open(str(path), mode="r", metadata_errors="ignore")
        except av.FFmpegError as e:
            raise MediaError(f"could not read {path} as a video ({e}); it is corrupt or not a video file; "
                             "re-encode it (e.g. ffmpeg -i in -c:v libx264 out.mp4)") from e
        if not self.container.streams.video:
            self.container.close()
            raise MediaError(f"{path} has no video stream; pass a video file")
        self.stream = self.container.streams.video[0]
        if threads:
            self.stream.thread_type = "AUTO"  # frame threads: sequential decoding of every frame
        s = self.stream
        tb = s.time_base or Fraction(1, 90000)
        rate = s.average_rate or s.guessed_rate or s.base_rate or Fraction(30)
        start = s.start_time or 0
        if s.duration:
            duration = float(s.duration * tb)
        elif self.container.duration:
            duration = self.container.duration / 1e6
        else:
            duration = (s.frames or 0) / float(rate)
        self._decoded = self.container.decode(self.stream)
        try:
            self._first = self._next()
        except MediaError:
            self.container.close()
            raise
        turns = display_quarter_turns(self._first) if self._first is not None else 0
        self._upright = _Upright(turns) if turns else None
        width, height = int(s.codec_context.width), int(s.codec_context.height)
        if turns % 2:
            width, height = height, width
        self.info = VideoInfo(width, height, float(rate), Fraction(rate), duration, int(s.frames or 0), Fraction(tb),
                              int(start), 90 * turns)

    def _next(self):
        """The next decoded frame, as coded (None at the end)."""
        av = import_av()
        try:
            return next(self._decoded, None)
        except av.FFmpegError as e:
            raise MediaError(f"could not decode {self.name} ({e}); the file is corrupt; re-encode it") from e

    def frames(self) -> Iterator[tuple[float, Any]]:
        info = self.info
        index = 0
        frame, self._first = self._first, None
        while frame is not None:
            t = (float((frame.pts - info.start_pts) * info.time_base) if frame.pts is not None
                 else index / info.fps)
            yield t, self._upright(frame) if self._upright is not None else frame
            index += 1
            frame = self._next()
        if index == 0:
            raise MediaError(f"{self.name} has no decodable video frames")

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def video_size(path: str | os.PathLike) -> tuple[int, int]:
    with VideoReader(path, threads=False) as r:
        return r.info.width, r.info.height
