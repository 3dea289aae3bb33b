"""Video: which instants to sample (Molmo2's ``uniform_last_frame`` rule) and decoding only those frames.

Sampling (model.md §6.4) is pure numpy and mirrors the released processor exactly, because the sample
times are written into the prompt (``"0.0 <frame> 0.5 <frame> ..."``) and the model was trained on them:

* ``sample_times(D)``: a video longer than ``(N-1)/max_fps`` seconds gets ``N`` instants spread evenly
  over ``[0, D]`` (both ends included); a shorter one gets one instant every ``1/max_fps`` seconds plus
  the final instant ``D``.
* ``sample_frame_indices``: the same rule on frame indices, for frames that are already decoded.

Decoding (PyAV, imported lazily so this module imports without it) returns, for each instant ``t``, the
frame on screen at ``t``: the last frame whose pts is ``<= t``, with ``t`` clipped to
``[start + 1e-6, end - 1e-6]`` as torchcodec's ``get_frames_played_at`` does in the official loader.
It never holds more than the output: it decodes forward from the keyframe before the first instant,
converts to RGB only the frames it returns (once, even if several close instants share a frame), asks
the codec to drop non-reference frames that no instant needs (``skip_frame=NONREF``: about half the
frames of a typical H.264 stream with B-frames), and seeks ahead whenever the keyframe before the next
instant lies at least ``_SEEK_MIN_SKIP_FRAMES`` past the current position. The container's keyframe
index says where keyframes are (mp4/mov; mkv/webm cues once read); without one it seeks only over gaps
longer than ``_BLIND_SEEK_S`` and than twice the keyframe spacing seen so far. At 2 fps on a 2 s GOP
this is sequential decoding minus the droppable frames; sparse sampling of a long video (384 instants
over an hour) decodes a few frames per instant instead of the whole file. With ``resize_to`` each frame
is also resized to the processor's crop as soon as it is converted (``load_video(resize_to=378)``), so at
most one frame is held at full resolution.

Rotation: a video whose container carries a display matrix (the mp4/mov track matrix phones write for
portrait video) is returned upright, turned as ffmpeg's autorotate and players show it. PyAV exposes the
matrix only on decoded frames (``VideoFrame.rotation``, counter-clockwise degrees), so the turn is read
from the first frame converted and each frame is turned (``np.rot90``) right after conversion, before the
resize; ``VideoMetadata``, ``Video.size`` and ``probe_video`` give the displayed size (width and height
swapped for 90/270). Only multiples of 90 degrees are applied; other angles and mirroring are ignored, as
is a bare ``rotate`` tag (old muxers' mkv), which ffmpeg ignores too.

Clips: ``load_video(..., clip=(a, b))`` samples the window as if it were the whole video, so
``Video.timestamps`` start at 0.0 like the official loader's (training shifts clip timestamps the same
way); ``Video.time_offset`` (= ``a``) maps them back onto the video (``Video.absolute_timestamps``).
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import io
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molmo2.errors import MediaError

DEFAULT_MAX_FRAMES = 384  # released video_preprocessor_config.json "num_frames"
DEFAULT_MAX_FPS = 2.0

VideoSource = str | os.PathLike | bytes

# Instants are clipped this far inside the stream, as the official loader does (torchcodec rejects the
# exact end instant).
_EDGE_S = 1e-6
# A frame at pts p is "on screen at t" if p <= t + _PTS_TOL_S (pts * time_base is not exact in floats).
_PTS_TOL_S = 1e-9
# Seek only if it skips at least this many frames: a seek flushes the decoder and re-reads from the
# keyframe, which costs about as much as decoding a few frames (4..32 were within noise on the bench clip).
_SEEK_MIN_SKIP_FRAMES = 8
# Without a keyframe index, seek only over gaps longer than this and than twice the keyframe spacing
# seen so far (otherwise the seek may land on a keyframe behind the current position).
_BLIND_SEEK_S = 3.0
# FFmpeg decoder threads. On 2 cores, frame threading ("AUTO"/"FRAME") made the 2 fps decode 10-20%
# slower in wall time than slice threading (PyAV's default), and no threads was slower still; frame
# threading (a deeper pipeline, flushed at every seek) is used only with more cores (unmeasured here).
_MIN_CPUS_FOR_THREADS = 3
# Frames decoded at full resolution and waiting for the resize thread (load_video(resize_to=...)).
_MAX_RESIZING = 4
# Still-image demuxers: FFmpeg opens a PNG/JPEG as a one-frame "video"; we refuse it.
_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "jpegls_pipe",
                  "qoi_pipe", "pgm_pipe", "ppm_pipe", "pam_pipe", "svg_pipe")


# ---------------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------------


def _check_sampling_args(max_frames: int, max_fps: float) -> None:
    if int(max_frames) != max_frames or max_frames < 1:
        raise MediaError(f"max_frames must be a positive integer, got {max_frames!r}; the released models use 384")
    if not (math.isfinite(max_fps) and max_fps > 0):
        raise MediaError(f"max_fps must be a positive number of frames per second, got {max_fps!r}; use 2.0")


def sample_times(duration: float, max_frames: int = DEFAULT_MAX_FRAMES, max_fps: float = DEFAULT_MAX_FPS) -> np.ndarray:
    """Sample instants (float64 seconds from the video start, ``[T]``) by Molmo2's ``uniform_last_frame``.

    ``duration > (max_frames-1)/max_fps``: ``linspace(0, duration, max_frames)`` (exactly ``max_frames``);
    else ``arange(0, duration, 1/max_fps)`` then ``duration`` (at most ``max_frames``). With the released
    ``max_fps=2``: 10 s -> 0, 0.5, ..., 9.5, 10.0 (21); 2 s -> 0, 0.5, 1, 1.5, 2; 0.1 s -> 0, 0.1.

    Duplicates: the official code appends ``duration`` unconditionally, so a grid instant just below
    the end is kept (10.01 s -> ..., 10.0, 10.01: two instants that may show the same frame) and so
    are we, to match what the model saw in training. We only drop a grid instant within float error
    (1e-9 relative) of ``duration``, which ``arange`` produces for steps that are not exact in binary
    (``arange(0, 1.0, 1/3)`` ends at 0.99999...); with ``max_fps=2`` the step 0.5 is exact and this never
    fires. ``duration <= 0`` (a one-frame video) gives the single instant 0.
    """
    _check_sampling_args(max_frames, max_fps)
    duration = float(duration)
    if not math.isfinite(duration):
        raise MediaError(f"video duration must be a finite number of seconds, got {duration}")
    if duration <= 0:
        return np.zeros(1)
    if duration > (max_frames - 1) / max_fps:
        return np.linspace(0.0, duration, int(max_frames), dtype=np.float64)
    grid = np.arange(0.0, duration, 1.0 / max_fps, dtype=np.float64)
    grid = grid[grid < duration - 1e-9 * max(1.0, duration)]
    times = np.concatenate([grid, [duration]])
    assert len(times) <= max_frames, (duration, max_frames, max_fps)
    return times


def sample_frame_indices(
    total_frames: int, fps: float, max_frames: int = DEFAULT_MAX_FRAMES, max_fps: float = DEFAULT_MAX_FPS
) -> np.ndarray:
    """Indices (int64 ``[T]``) into ``total_frames`` already-decoded frames at ``fps`` (RC ``sample_frames``).

    ``total/fps > (N-1)/max_fps``: ``linspace(0, total-1, min(N, total))`` truncated to int; else
    ``round(arange(0, total-1, fps/max_fps))`` plus ``total-1`` unless the last grid index already rounds
    to it; ``total <= 2``: all frames. Timestamps are ``index / fps``. As in the official code, a video
    slower than ``max_fps`` (step < 1) repeats indices, and ``round`` is numpy's half-to-even.
    """
    _check_sampling_args(max_frames, max_fps)
    if int(total_frames) != total_frames or total_frames < 1:
        raise MediaError(f"a video needs at least one frame, got total_frames={total_frames!r}")
    if not (math.isfinite(fps) and fps > 0):
        raise MediaError(f"fps must be a positive number (the rate the frames were captured at), got {fps!r}")
    total_frames = int(total_frames)
    if total_frames <= 2:
        return np.arange(total_frames, dtype=np.int64)
    if total_frames / fps > (max_frames - 1) / max_fps:
        return np.linspace(0, total_frames - 1, min(int(max_frames), total_frames)).astype(np.int64)
    grid = np.arange(0.0, total_frames - 1, fps / max_fps)
    if np.round(grid[-1]) != total_frames - 1:
        grid = np.concatenate([grid, [total_frames - 1]])
    indices = np.round(grid).astype(np.int64)
    assert indices[-1] < total_frames and len(indices) <= max_frames, (total_frames, fps, max_frames)
    return indices


# ---------------------------------------------------------------------------------------------------
# Metadata and opening
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoMetadata:
    """What the container says about its first video stream (the whole video, also for a clip).

    Times in seconds; ``start_time`` is the stream's first pts (usually 0) and ``duration`` is measured
    from it: the stream's duration, else the container's, else ``num_frames / fps``, else the end of the
    last packet. ``num_frames`` is the container's count, or ``duration * fps`` where it keeps none (mkv).
    ``width`` and ``height`` are the displayed size: the coded one turned by ``rotation``, the degrees
    (0, 90, 180, 270) the decoded frames are turned counter-clockwise to show upright.
    """

    duration: float
    fps: float
    num_frames: int
    width: int
    height: int
    start_time: float = 0.0
    rotation: int = 0  # counter-clockwise degrees applied to the decoded frames (width, height: after)

    def turned(self, quarter_turns: int) -> VideoMetadata:
        """The metadata of the coded frames turned ``quarter_turns`` times counter-clockwise."""
        assert self.rotation == 0 and 0 <= quarter_turns < 4, (self.rotation, quarter_turns)
        w, h = (self.height, self.width) if quarter_turns % 2 else (self.width, self.height)
        return dataclasses.replace(self, width=w, height=h, rotation=90 * quarter_turns)


@dataclass
class DecodeStats:
    """Work done by one decode, for tests and benchmarks."""

    num_decoded: int = 0  # frames the codec produced (kept or not)
    num_converted: int = 0  # distinct frames converted to RGB
    num_seeks: int = 0


def _import_av():
    try:
        import av
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("decoding video files needs PyAV: pip install 'molmo2[video]' (or pip install av)") from e
    return av


def _open(source: VideoSource):
    """Open ``source`` (a path or the bytes of a file) with PyAV; return ``(container, display name)``."""
    av = _import_av()
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise MediaError("the video bytes are empty (0 bytes); pass the complete contents of a video file")
        name, file = "<video bytes>", io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        name, file = str(path), str(path)
        if not path.exists():
            raise MediaError(f"video file not found: {path}; check the path")
        if not path.is_file():
            raise MediaError(f"{path} is not a file; pass the path of a video file (mp4, webm, mkv, mov, avi)")
        if path.stat().st_size == 0:
            raise MediaError(f"video file is empty (0 bytes): {path}; it was probably not fully written or downloaded")
    else:
        raise MediaError(f"unsupported video input {type(source).__name__}; pass a file path or the file's bytes "
                         "(or use Video.from_frames for decoded frames)")
    try:
        container = av.open(file, mode="r", metadata_errors="ignore")
    except av.FFmpegError as e:
        raise MediaError(f"could not read {name} as a video ({e}); it is corrupt, truncated or not a video "
                         "file; re-encode it (e.g. ffmpeg -i in -c:v libx264 out.mp4)") from e
    return container, name


def _video_stream(container, name: str):
    fmt = container.format.name
    if fmt in _IMAGE_FORMATS:
        container.close()
        raise MediaError(f"{name} is a still image ({fmt}), not a video; pass it as an image")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["nothing"]
        container.close()
        raise MediaError(f"{name} has no video stream (it contains {', '.join(kinds)}); pass a video file")
    stream = container.streams.video[0]
    if stream.time_base is None:
        container.close()
        raise MediaError(f"{name}: the video stream has no time base, so its frames cannot be timed; re-encode it")
    return stream


def _scan_packets(container, stream) -> tuple[int, float | None]:
    """Count packets and find the end time by demuxing (no decoding); for containers without a duration."""
    av = _import_av()
    tb, count, end = float(stream.time_base), 0, None
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            count += 1
            if packet.pts is not None:
                t = (packet.pts + (packet.duration or 0)) * tb
                end = t if end is None else max(end, t)
    except av.FFmpegError:
        pass  # a broken tail: use what was read
    try:
        container.seek(0)  # back to the start for decoding
    except av.FFmpegError:
        pass
    return count, end


def _metadata(container, stream, name: str) -> VideoMetadata:
    tb = stream.time_base
    start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    num_frames = int(stream.frames or 0)
    duration = None
    if stream.duration:
        duration = float(stream.duration * tb)
    elif container.duration:  # AV_TIME_BASE units (microseconds), measured from the container start
        container_start = container.start_time / 1e6 if container.start_time is not None else 0.0
        duration = container.duration / 1e6 - (start - container_start)
    elif num_frames and fps:
        duration = num_frames / fps
    if not duration or duration <= 0:
        count, end = _scan_packets(container, stream)
        num_frames = num_frames or count
        duration = end - start if end is not None and count else None
    if not num_frames and duration and fps:
        num_frames = max(1, round(duration * fps))
    if not num_frames or duration is None:
        raise MediaError(f"{name} contains no video frames (an empty video stream); pass a video with frames")
    if not fps:
        fps = num_frames / duration if duration > 0 else 1.0
    width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    return VideoMetadata(float(max(duration, 0.0)), fps, num_frames, width, height, start)


def display_quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns (0..3) that show a decoded ``av.VideoFrame`` as players do.

    The container's display matrix reaches each frame as DISPLAYMATRIX side data; PyAV reads its angle
    as ``frame.rotation``: counter-clockwise degrees in [-180, 180], truncated to an int (hence the 1
    degree of slack; ffmpeg's autorotate also snaps within a degree). A phone's portrait video says -90
    (the old ``rotate=90`` tag: turn 90 clockwise), which is 3 quarter turns here; ffmpeg (checked with
    the 7.0 command line) shows ``np.rot90(rgb, display_quarter_turns(frame))``. Angles that are not a
    multiple of 90 degrees give 0: they are left as decoded. PyAV before 13 has no ``rotation``: 0.
    """
    degrees = getattr(frame, "rotation", 0) or 0
    k = round(degrees / 90)
    return k % 4 if abs(degrees - 90 * k) <= 1 else 0


def _first_frame_turns(container, stream) -> int:
    """``display_quarter_turns`` of the first frame decoded from here (0 if none decodes); the caller
    decodes nothing after it."""
    av = _import_av()
    try:
        for frame in container.decode(stream):
            return display_quarter_turns(frame)
    except av.FFmpegError:
        pass  # load_video / decode_frames_at report a broken stream; a probe only asked for the size
    return 0


def probe_video(source: VideoSource, *, upright: bool = True) -> VideoMetadata:
    """Duration, fps, frame count, displayed size and start time of the first video stream.

    The display rotation is only on decoded frames (PyAV keeps the stream's display matrix to itself),
    so this decodes the first frame. ``upright=False`` decodes nothing and gives the coded size (and
    ``rotation=0``): enough where only ``width * height`` or the duration matter."""
    container, name = _open(source)
    with container:
        stream = _video_stream(container, name)
        meta = _metadata(container, stream, name)
        return meta.turned(_first_frame_turns(container, stream)) if upright else meta


# ---------------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------------


class _SelectiveDecoder:
    """Decodes the frames on screen at sorted instants ``targets`` (absolute stream seconds).

    The loop reads packets itself (``demux``) so that it knows each packet's pts before decoding it: a
    packet whose frame is on screen at no requested instant is decoded with ``skip_frame=NONREF``, so
    the codec drops it if nothing references it (B-frames, typically a third to a half of H.264 frames)
    and decodes it if it is a reference. A frame's screen interval ends at the next pts in presentation
    order, found among the packets around it (``_REORDER`` either side bounds B-frame reordering).
    """

    _REORDER = 16  # H.264/HEVC allow at most 16 frames of reordering

    def __init__(self, container, stream, meta: VideoMetadata, targets: np.ndarray, stats: DecodeStats):
        self.container, self.stream, self.meta, self.stats = container, stream, meta, stats
        self.tb = float(stream.time_base)
        self.targets = targets.tolist()  # sorted
        stream.thread_type = "AUTO" if (os.cpu_count() or 1) >= _MIN_CPUS_FOR_THREADS else "SLICE"
        self.index = stream.index_entries
        # A one-entry index (e.g. mkv cues only at 0) says nothing; demuxers that grow it while reading
        # only know what is behind us.
        self.has_index = len(self.index) > 1
        # mp4 indexes keyframes by dts, which trails pts by the B-frame delay, while a seek lands on the
        # last keyframe whose pts is <= the instant. Estimate that delay from the first frame.
        self.index_lag = max(0.0, meta.start_time - self.index[0].timestamp * self.tb) if self.has_index else 0.0
        self.min_skip_s = _SEEK_MIN_SKIP_FRAMES / meta.fps
        self.last_key, self.max_gop = None, 0.0  # keyframe spacing seen (for seeking without an index)

    def should_seek(self, pos: float, t: float) -> bool:
        """Is jumping to the keyframe before ``t`` cheaper than decoding on from ``pos``?"""
        if t - pos <= self.min_skip_s:
            return False
        if self.has_index:
            k = self.index.search_timestamp(int(math.floor((t - self.index_lag) / self.tb)), backward=True)
            return k >= 0 and self.index[k].timestamp * self.tb + self.index_lag - pos > self.min_skip_s
        return t - pos > max(_BLIND_SEEK_S, 2 * self.max_gop)

    def _on_screen_somewhere(self, p: float, succ: float | None) -> bool:
        """Is the frame shown over ``[p, succ)`` the answer for some instant?"""
        k = bisect.bisect_left(self.targets, p - _PTS_TOL_S)
        return k < len(self.targets) and (succ is None or self.targets[k] < succ - _PTS_TOL_S)

    def frames(self, seek_to: float | None):
        """Decoded frames in presentation order, from the keyframe before ``seek_to`` (or from here)."""
        stream, ctx, tb = self.stream, self.stream.codec_context, self.tb
        if seek_to is not None:
            self.stats.num_seeks += 1
            self.last_key = None  # a jump is not a keyframe interval
            self.container.seek(int(math.floor(seek_to / tb)), stream=stream, backward=True, any_frame=False)
        pending = collections.deque()  # read, not yet sent: the lookahead
        window = collections.deque(maxlen=2 * self._REORDER + 1)  # pts (s) of packets around the next one

        def send(packet):
            if packet.pts is None:
                ctx.skip_frame = "DEFAULT"
            else:
                p = packet.pts * tb
                succ = min((x for x in window if x > p), default=None)
                ctx.skip_frame = "DEFAULT" if self._on_screen_somewhere(p, succ) else "NONREF"
            return stream.decode(packet)

        for packet in self.container.demux(stream):
            if packet.size == 0:  # end-of-stream marker
                continue
            if packet.pts is not None:
                window.append(packet.pts * tb)
            pending.append(packet)
            if len(pending) > self._REORDER:
                yield from send(pending.popleft())
        while pending:
            yield from send(pending.popleft())
        ctx.skip_frame = "DEFAULT"
        yield from stream.decode(None)

    def frame_time(self, frame, prev_time: float | None) -> float:
        if frame.pts is not None:
            return frame.pts * self.tb
        return self.meta.start_time if prev_time is None else prev_time + 1.0 / self.meta.fps


def _resize_frame(rgb_HWC: np.ndarray, size: int, quarter_turns: int) -> np.ndarray:
    """One decoded frame -> uint8 ``[size, size, 3]``, turned upright first: the bytes the processor's
    resize gives for the upright frame."""
    import torch

    from molmo2.processing.image import resize_uint8

    if quarter_turns:
        rgb_HWC = np.ascontiguousarray(np.rot90(rgb_HWC, quarter_turns))  # torch takes no negative strides
    return resize_uint8(torch.from_numpy(rgb_HWC).permute(2, 0, 1)[None], size, size)[0].permute(1, 2, 0).numpy()


def _decode_at(
    container, stream, meta: VideoMetadata, times: np.ndarray, name: str, stats: DecodeStats,
    resize_to: int | None = None,
) -> tuple[np.ndarray, tuple[int, int], int]:
    """Frames on screen at ``times`` (seconds from the video start) -> (uint8 ``[T, H, W, 3]`` upright,
    (W, H) of the upright frames before any resize, ``display_quarter_turns``). ``meta`` is as coded. With
    ``resize_to`` each frame is turned and resized to ``resize_to`` x ``resize_to`` as soon as it is
    converted, so only one frame is ever held at full resolution."""
    av = _import_av()
    n = len(times)
    if n == 0:
        meta = meta.turned(_first_frame_turns(container, stream))
        side = (resize_to, resize_to) if resize_to else (meta.height, meta.width)
        return np.empty((0, *side, 3), dtype=np.uint8), (meta.width, meta.height), meta.rotation // 90
    start = meta.start_time
    hi = max(start + meta.duration - _EDGE_S, start + _EDGE_S)
    targets = np.clip(start + np.asarray(times, dtype=np.float64), start + _EDGE_S, hi)
    order = np.argsort(targets, kind="stable")
    dec = _SelectiveDecoder(container, stream, meta, targets[order], stats)

    out = None if resize_to is None else np.empty((n, resize_to, resize_to, 3), dtype=np.uint8)
    src_shape = None  # (H, W, 3) of the first converted frame: every frame is brought to it
    turns = 0  # display_quarter_turns of the first converted frame: every frame is turned by it
    # (frame, its RGB array or, with resize_to, the future of its resized array): close instants share one
    cached = (None, None)
    # Resizing runs on one worker thread while this one decodes (both release the GIL); at most
    # _MAX_RESIZING frames wait for it at full resolution.
    pool = ThreadPoolExecutor(1, thread_name_prefix="molmo2-resize") if resize_to is not None else None
    resizing = collections.deque()  # (output slot, future)

    def store(limit: int) -> None:
        while len(resizing) > limit:
            j, future = resizing.popleft()
            out[j] = future.result()

    def emit(j: int, frame) -> None:
        nonlocal out, src_shape, turns, cached
        if cached[0] is not frame:
            rgb = frame.to_ndarray(format="rgb24")
            if src_shape is None:
                src_shape, turns = rgb.shape, display_quarter_turns(frame)
            elif rgb.shape != src_shape:  # the stream changed resolution mid-way
                rgb = frame.reformat(width=src_shape[1], height=src_shape[0]).to_ndarray(format="rgb24")
            # np.rot90 is a view: out[j] = ... below makes the one copy
            upright = np.rot90(rgb, turns) if pool is None else pool.submit(_resize_frame, rgb, resize_to, turns)
            cached = (frame, upright)
            stats.num_converted += 1
        if pool is not None:
            resizing.append((j, cached[1]))
            store(_MAX_RESIZING)
            return
        if out is None:
            out = np.empty((n, *cached[1].shape), dtype=np.uint8)
        out[j] = cached[1]

    def target(k: int) -> float:
        return targets[order[k]]

    try:
        i = 0  # next instant to serve, in time order
        pos = start  # time of the last decoded frame
        seek_to = target(0) if dec.should_seek(pos, target(0)) else None
        seeked_for = 0 if seek_to is not None else -1  # one seek (plus back-offs) per instant at most
        frames = dec.frames(seek_to)
        back_off = 1.0
        prev = None  # the last decoded frame: on screen until the next frame's pts
        while i < n:
            try:
                frame = next(frames, None)
            except av.FFmpegError as e:
                raise MediaError(f"could not decode {name} ({e}); the file is corrupt; re-encode it") from e
            if frame is None:  # end of stream: the last frame stays on screen
                if prev is None and seek_to is not None and seek_to > start:
                    seek_to = max(start, seek_to - back_off)  # seeked past the last reachable keyframe
                    back_off *= 2
                    frames = dec.frames(seek_to)
                    continue
                if prev is None:
                    raise MediaError(f"{name} has no decodable video frames; the video stream is empty or corrupt")
                for j in order[i:]:
                    emit(j, prev)
                break
            stats.num_decoded += 1
            t_frame = dec.frame_time(frame, None if prev is None else pos)
            if frame.key_frame:
                if dec.last_key is not None and t_frame > dec.last_key:
                    dec.max_gop = max(dec.max_gop, t_frame - dec.last_key)
                dec.last_key = t_frame
            if prev is None and seek_to is not None and t_frame > target(i) + _PTS_TOL_S and seek_to > start:
                seek_to = max(start, seek_to - back_off)  # the seek overshot the instant: go further back
                back_off *= 2
                frames = dec.frames(seek_to)
                continue
            while i < n and target(i) < t_frame - _PTS_TOL_S:
                emit(order[i], prev if prev is not None else frame)  # before the first frame: the first frame
                i += 1
            prev, pos = frame, t_frame
            if i < n and i != seeked_for and dec.should_seek(pos, target(i)):
                seek_to, seeked_for, back_off, prev = target(i), i, 1.0, None
                frames = dec.frames(seek_to)
        store(0)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    height, width = src_shape[:2] if turns % 2 == 0 else src_shape[1::-1]
    return out, (width, height), turns


def _check_times(times) -> np.ndarray:
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(times)):
        raise MediaError("sample times must be finite numbers of seconds")
    return times


def decode_frames_at(source: VideoSource, times) -> np.ndarray:
    """The frames on screen at ``times`` (seconds from the first frame), uint8 RGB ``[T, H, W, 3]``.

    Each instant gets the last frame whose pts is ``<= t`` (``t`` clipped inside the stream); instants
    may be in any order and may repeat. Only the frames needed are converted to RGB.
    """
    frames, _ = _decode_with_stats(source, times)
    return frames


def _decode_with_stats(source: VideoSource, times) -> tuple[np.ndarray, DecodeStats]:
    times = _check_times(times)
    container, name = _open(source)
    with container:
        stream = _video_stream(container, name)
        meta = _metadata(container, stream, name)
        stats = DecodeStats()
        return _decode_at(container, stream, meta, times, name, stats)[0], stats


# ---------------------------------------------------------------------------------------------------
# Video
# ---------------------------------------------------------------------------------------------------


@dataclass
class Video:
    """Sampled frames and the instants they were sampled at.

    ``timestamps`` are the requested instants (seconds from the start of the clip, or of the video
    without a clip), not the decoded frames' pts: they are what the prompt says (``"{t:.1f}"``), as in
    the official processor. ``time_offset`` is where the clip starts in the video (0.0 without a clip).
    ``frames`` may be resized already (``load_video(resize_to=...)``); ``size`` is the decoded size,
    upright (as displayed, see ``VideoMetadata.rotation``).
    """

    frames: np.ndarray  # uint8 [T, H, W, 3]
    timestamps: np.ndarray  # float64 [T]
    metadata: VideoMetadata
    time_offset: float = 0.0
    source_size: tuple[int, int] | None = None  # (W, H) before load_video(resize_to=...); None: not resized

    def __post_init__(self) -> None:
        assert self.frames.ndim == 4 and self.frames.shape[-1] == 3 and self.frames.dtype == np.uint8, self.frames.shape
        assert len(self.timestamps) == len(self.frames), (len(self.timestamps), len(self.frames))

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the video's frames as decoded and turned upright, also when ``frames`` were
        resized: the pixel grid points map back to."""
        return self.source_size or (self.frames.shape[2], self.frames.shape[1])

    @property
    def absolute_timestamps(self) -> np.ndarray:
        """The sample instants on the video's own timeline (``timestamps + time_offset``)."""
        return self.timestamps + self.time_offset

    @classmethod
    def from_frames(
        cls,
        frames,
        fps: float | None = None,
        timestamps=None,
        max_frames: int = DEFAULT_MAX_FRAMES,
        max_fps: float = DEFAULT_MAX_FPS,
    ) -> Video:
        """A video from decoded frames (uint8 ``[T, H, W, 3]`` or a list of ``[H, W, 3]``).

        With ``fps`` (the rate the frames were captured at) the frames are sampled by
        ``sample_frame_indices`` and stamped ``index / fps``. With ``timestamps`` (one per frame, seconds)
        they are taken as already sampled and kept as given (``metadata.fps`` is then their mean rate).
        """
        if (fps is None) == (timestamps is None):
            raise MediaError("Video.from_frames needs exactly one of fps= (to sample the frames at Molmo2's rate) "
                             "or timestamps= (one per frame, for frames you already sampled)")
        try:
            frames = np.asarray(frames)
        except ValueError as e:  # a list of frames of different sizes
            raise MediaError(f"video frames must all have the same size ({e})") from e
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0 or 0 in frames.shape[1:3]:
            raise MediaError(f"video frames must be a non-empty uint8 array [T, H, W, 3] (RGB), got shape {frames.shape}")
        if frames.dtype != np.uint8:
            raise MediaError(f"video frames must be uint8 RGB (0..255), got {frames.dtype}; convert them first")
        num, height, width = frames.shape[:3]
        if fps is not None:
            indices = sample_frame_indices(num, fps, max_frames, max_fps)
            meta = VideoMetadata(num / fps, float(fps), num, width, height)
            return cls(np.ascontiguousarray(frames[indices]), indices / float(fps), meta)
        times = _check_times(timestamps)
        if len(times) != num:
            raise MediaError(f"got {len(times)} timestamps for {num} frames; give one timestamp (seconds) per frame")
        if np.any(np.diff(times) < 0):
            raise MediaError("timestamps must be in increasing order, one per frame")
        span = float(times[-1] - times[0])
        meta = VideoMetadata(span, (num - 1) / span if span > 0 else 1.0, num, width, height)
        return cls(frames, times, meta)


def load_video(
    source: VideoSource,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_fps: float = DEFAULT_MAX_FPS,
    clip: tuple[float, float] | None = None,
    resize_to: int | None = None,
) -> Video:
    """Decode the frames Molmo2 sees: ``sample_times`` over the video (or over ``clip=(start, end)``,
    seconds from the first frame; ``end`` past the video's end is cut to it), one frame per instant.

    ``resize_to=crop_size`` (378 for the released models) resizes each frame as it is decoded, with the
    processor's exact resize, so the full-resolution frames are never held together (a 384-frame 1080p
    video: 2.4 GB of RGB frames, 165 MB resized); the processor then only patchifies them and
    ``Video.size`` keeps the decoded size for mapping points back."""
    _check_sampling_args(max_frames, max_fps)
    if resize_to is not None and (isinstance(resize_to, bool) or not isinstance(resize_to, int) or resize_to < 1):
        raise MediaError(f"resize_to must be a positive number of pixels (the crop size, 378), got {resize_to!r}")
    container, name = _open(source)
    with container:
        stream = _video_stream(container, name)
        meta = _metadata(container, stream, name)
        offset, duration = 0.0, meta.duration
        if clip is not None:
            try:
                a, b = (float(x) for x in clip)
            except (TypeError, ValueError) as e:
                raise MediaError(f"clip must be (start, end) in seconds, got {clip!r}") from e
            if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b <= a:
                raise MediaError(f"clip must be (start, end) seconds with 0 <= start < end, got {clip}")
            if a >= meta.duration:
                raise MediaError(f"clip starts at {a} s but {name} is only {meta.duration:.3f} s long")
            offset, duration = a, min(b, meta.duration) - a
        times = sample_times(duration, max_frames, max_fps)
        frames, size, turns = _decode_at(container, stream, meta, offset + times, name, DecodeStats(), resize_to)
    return Video(frames, times, meta.turned(turns), offset, size if resize_to is not None else None)
