"""What the pipeline accepts as media, how it tells images from videos, and the cache key of each.

``Molmo2.ask(media, ...)`` takes, for ``media``:

* one image: a path, ``bytes``, a PIL image or an ``[H, W, 3]`` array;
* an image set: a list (or tuple) of those;
* a video: a path or ``bytes`` of a video file, a ``Video`` (``molmo2.processing.video``), or a pair
  ``(frames [T, H, W, 3] uint8, timestamps [T] seconds)`` of frames you sampled yourself.

Paths and bytes are told apart by content only where needed: a known video extension is a video, a
known image extension an image; anything else is tried as an image, then as a video.

The key (``media_key``) identifies the media *before* it is decoded, so that a second question about
the same video skips decoding: a path by (resolved path, size, mtime), everything else by a hash of its
content, plus the video options that change what is sampled (max_frames, max_fps, clip).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from molmo2.errors import MediaError
from molmo2.processing.media import load_image
from molmo2.processing.video import Video, load_video

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv",
                              ".3gp", ".ts", ".mts", ".ogv"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"})


@dataclass(frozen=True)
class VideoOptions:
    """How a video is sampled: at most ``max_frames`` frames at most ``max_fps`` per second, over
    ``clip=(start, end)`` seconds (the whole video when None); ``slowfast=K``: full detail on every
    K-th frame only (``Molmo2Processor.prepare``)."""

    max_frames: int
    max_fps: float
    clip: tuple[float, float] | None = None
    slowfast: int | None = None

    def validate(self) -> VideoOptions:
        if isinstance(self.max_frames, bool) or not isinstance(self.max_frames, (int, np.integer)) \
                or self.max_frames < 1:
            raise MediaError(f"max_frames must be a positive integer, got {self.max_frames!r}; "
                             "the released models use 384 (fewer is faster)")
        if not isinstance(self.max_fps, (int, float)) or not self.max_fps > 0:
            raise MediaError(f"max_fps must be a positive number of frames per second, got {self.max_fps!r}; use 2.0")
        if self.clip is not None:
            try:
                a, b = (float(x) for x in self.clip)
            except (TypeError, ValueError) as e:
                raise MediaError(f"clip must be (start, end) in seconds, got {self.clip!r}") from e
            if not (np.isfinite(a) and np.isfinite(b)) or a < 0 or b <= a:
                raise MediaError(f"clip must be (start, end) seconds with 0 <= start < end, got {self.clip!r}")
        if self.slowfast is not None and (isinstance(self.slowfast, bool) or not isinstance(self.slowfast, int)
                                          or self.slowfast < 1):
            raise MediaError(f"slowfast must be a positive integer K (every K-th frame at full detail), "
                             f"got {self.slowfast!r}")
        return self


@dataclass
class LoadedMedia:
    """Media decoded into arrays. ``kind``: "image" (one), "images" (a set) or "video"."""

    kind: str
    images: list[np.ndarray] | None = None  # uint8 [H, W, 3] each
    video: Video | None = None

    @property
    def is_video(self) -> bool:
        return self.kind == "video"


def _is_video_pair(media: Any) -> bool:
    return (isinstance(media, tuple) and len(media) == 2 and isinstance(media[0], np.ndarray)
            and media[0].ndim == 4)


def _looks_like_video(source: str | os.PathLike | bytes) -> bool | None:
    """True / False when the extension (or the bytes' magic) says so, None when unknown."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        head = bytes(source[:16])
        if head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3" or head[:4] == b"RIFF" and head[8:12] == b"AVI ":
            return True  # mp4/mov, matroska/webm, avi
        return None
    suffix = Path(source).suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return True
    if suffix in IMAGE_EXTENSIONS:
        return False
    return None


def media_kind(media: Any) -> str:
    """"image", "images" or "video" for what ``media`` is (without decoding it where avoidable)."""
    if isinstance(media, Video) or _is_video_pair(media):
        return "video"
    if isinstance(media, (list, tuple)):
        if not media:
            raise MediaError("the image list is empty; pass at least one image")
        for item in media:
            if media_kind(item) != "image":
                raise MediaError("an image set holds images only; ask about a video separately "
                                 "(one video per question)")
        return "images"
    if isinstance(media, np.ndarray):
        if media.ndim == 4:
            raise MediaError("a 4-D array looks like video frames: pass (frames, timestamps) or "
                             "Video.from_frames(frames, fps=...) so that the frames have times")
        return "image"
    if isinstance(media, (str, os.PathLike)):
        path = Path(media).expanduser()
        if not path.exists():
            raise MediaError(f"media file not found: {path}; check the path")
        if not path.is_file():
            raise MediaError(f"{path} is not a file; pass an image or video file")
        guess = _looks_like_video(path)
        if guess is None:
            guess = not _opens_as_image(path)
        return "video" if guess else "image"
    if isinstance(media, (bytes, bytearray, memoryview)):
        if len(media) == 0:
            raise MediaError("the media bytes are empty (0 bytes); pass the complete contents of an image or video file")
        guess = _looks_like_video(media)
        if guess is None:
            guess = not _opens_as_image(bytes(media))
        return "video" if guess else "image"
    if type(media).__module__.startswith("PIL."):
        return "image"
    raise MediaError(f"unsupported media type {type(media).__name__}; pass a path, bytes, a PIL image, an "
                     "[H, W, 3] array, a list of images, a Video or (frames, timestamps)")


def _opens_as_image(source: Path | bytes) -> bool:
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            im.verify()
        return True
    except Exception:  # not an image: try it as a video
        return False


def _digest(*parts: bytes | str) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
    return h.hexdigest()


def _item_key(media: Any) -> Hashable:
    if isinstance(media, (str, os.PathLike)):
        path = Path(media).expanduser().resolve()
        st = path.stat()
        return ("file", str(path), st.st_size, st.st_mtime_ns)
    if isinstance(media, (bytes, bytearray, memoryview)):
        return ("bytes", _digest(bytes(media)))
    if isinstance(media, np.ndarray):
        arr = np.ascontiguousarray(media)
        return ("array", _digest(str(arr.shape), str(arr.dtype), arr.data))
    if isinstance(media, Video) or _is_video_pair(media):
        frames, times = (media.frames, media.timestamps) if isinstance(media, Video) else media
        frames = np.ascontiguousarray(frames)
        offset = float(media.time_offset) if isinstance(media, Video) else 0.0
        return ("frames", _digest(str(frames.shape), str(frames.dtype), frames.data,
                                  np.asarray(times, np.float64).tobytes()), offset)
    if type(media).__module__.startswith("PIL."):
        return ("pil", _digest(media.mode, str(media.size), media.tobytes()))
    raise MediaError(f"unsupported media type {type(media).__name__}")


def media_key(media: Any, kind: str, options: VideoOptions | None) -> Hashable:
    """A hashable identity of ``media`` (as sampled with ``options`` for a video)."""
    if kind == "images":
        return ("images", tuple(_item_key(m) for m in media))
    key = _item_key(media)
    return (kind, key, options) if kind == "video" else (kind, key)


def load_media(media: Any, kind: str, options: VideoOptions | None, resize_to: int | None = None) -> LoadedMedia:
    """Decode ``media`` (whose ``media_kind`` is ``kind``): images to arrays, a video to sampled frames
    (a video file's frames resized to ``resize_to`` while decoding, see ``load_video``)."""
    if kind == "image":
        return LoadedMedia("image", images=[load_image(media)])
    if kind == "images":
        return LoadedMedia("images", images=[load_image(m) for m in media])
    assert options is not None
    if isinstance(media, (str, os.PathLike, bytes, bytearray, memoryview)):
        return LoadedMedia("video", video=load_video(media, options.max_frames, options.max_fps, options.clip,
                                                     resize_to=resize_to))
    if isinstance(media, Video):
        video = media
    else:
        video = Video.from_frames(media[0], timestamps=media[1])
    if options.clip is not None:
        a, b = options.clip
        keep = (video.timestamps >= a - 1e-9) & (video.timestamps <= b + 1e-9)
        if not keep.any():
            raise MediaError(f"no frame lies in the clip {options.clip} (the frames span "
                             f"{video.timestamps[0]:.2f}-{video.timestamps[-1]:.2f} s)")
        video = Video(np.ascontiguousarray(video.frames[keep]), video.timestamps[keep] - a, video.metadata,
                      video.time_offset + a, video.source_size)
    if video.num_frames > options.max_frames:  # frames given with times: keep max_frames, evenly spread
        idx = np.linspace(0, video.num_frames - 1, options.max_frames).round().astype(np.int64)
        video = Video(np.ascontiguousarray(video.frames[idx]), video.timestamps[idx], video.metadata,
                      video.time_offset, video.source_size)
    return LoadedMedia("video", video=video)
