"""Writing annotated media: PNG (and other still formats), GIF, MP4, and ``render`` which picks by suffix.

The video path is built for speed, since a user renders whole videos at their own frame rate: frames are
streamed from the decoder to the encoder (never all in memory), stay in the decoder's YUV 4:2:0 planes
(no RGB round trip: that conversion and back cost more than the drawing), and only small RGBA patches
under the markers are painted with Pillow and blended into the Y and U/V planes, pixel by drawn pixel,
with the frame's own colour matrix (BT.601/709, limited/full range). Frames without markers go to the encoder untouched.
Sources that are not yuv420p are converted once; odd widths/heights, which libx264's 4:2:0 cannot
encode, are padded by one replicated row/column (points keep their pixel coordinates). Timestamps are
copied from the source, so variable frame rates survive; audio is dropped.

``save_mp4`` / ``save_gif`` / ``save_png`` are the plain writers for frames you drew yourself (any
iterable of PIL images or uint8 ``[H, W, 3]`` arrays; ``save_mp4`` streams it). Encoder defaults:
libx264, ``crf=23``, ``preset="veryfast"`` (on the 480p benchmark, the default "medium" preset alone
costs about as much as everything else together, for a file of similar quality at this crf).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from molmo2.errors import MediaError
from molmo2.grounding.types import GroundingResult
from molmo2.viz.draw import Overlay, as_result, draw_image, draw_markers, paint, to_pil
from molmo2.viz.media import (
    IMAGE_SUFFIXES,
    VideoReader,
    import_av,
    is_image_set,
    is_video_path,
    load_image,
)

MP4_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv"})
DEFAULT_CRF = 23
DEFAULT_PRESET = "veryfast"
DEFAULT_GIF_FPS = 10.0


def _out_path(path: str | os.PathLike) -> Path:
    path = Path(path).expanduser()
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------------------------------------------
# Plain writers
# ---------------------------------------------------------------------------------------------------


def save_png(image: Any, path: str | os.PathLike) -> Path:
    """Save one image (PIL or uint8 ``[H, W, 3]``); the format follows the suffix (.png, .jpg, .webp...)."""
    path = _out_path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES - {".gif"}:
        raise MediaError(f"cannot save an image as {path.name!r}; use a .png, .jpg or .webp name")
    to_pil(image).save(path)
    return path


def save_gif(frames: Iterable[Any], path: str | os.PathLike, *, fps: float = DEFAULT_GIF_FPS, loop: int = 0) -> Path:
    """Save frames (PIL or uint8 ``[H, W, 3]``, all one size) as an animated GIF at ``fps``.

    Each frame is quantized to its own 256-colour palette. GIF holds every frame (1 byte per pixel) until
    the file is written, so keep GIFs short or at a low ``fps``; use MP4 for whole videos.
    """
    from PIL import Image

    path = _out_path(path)
    if not (fps > 0):
        raise MediaError(f"fps must be positive, got {fps!r}")
    quantized = []
    for frame in frames:
        img = to_pil(frame)
        if quantized and img.size != quantized[0].size:
            raise MediaError(f"GIF frames must all have one size: got {img.size} after {quantized[0].size}")
        quantized.append(img.quantize(colors=256, method=Image.Quantize.FASTOCTREE))
    if not quantized:
        raise MediaError("no frames to write; pass at least one frame")
    duration_ms = max(20, round(1000 / fps))  # browsers treat < 20 ms as 100 ms
    quantized[0].save(path, save_all=True, append_images=quantized[1:], duration=duration_ms, loop=loop,
                      optimize=False, disposal=1)
    return path


def _even_rgb(arr_HW3: np.ndarray) -> np.ndarray:
    h, w = arr_HW3.shape[:2]
    if h % 2 or w % 2:
        arr_HW3 = np.pad(arr_HW3, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return arr_HW3


class _Mp4Writer:
    """libx264 yuv420p into an MP4 (or .mov/.mkv) file; frames must be even-sized yuv420p ``av.VideoFrame``."""

    def __init__(self, path: Path, width: int, height: int, rate: Fraction, *, time_base: Fraction | None = None,
                 crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET, color_from: Any = None):
        av = import_av()
        assert width % 2 == 0 and height % 2 == 0, (width, height)
        if path.suffix.lower() not in MP4_SUFFIXES:
            raise MediaError(f"cannot write a video to {path.name!r}; use a .mp4 name")
        self.container = av.open(str(path), mode="w")
        self.stream = self.container.add_stream("libx264", rate=rate)
        cc = self.stream.codec_context
        cc.width, cc.height, cc.pix_fmt = width, height, "yuv420p"
        if time_base is not None:
            cc.time_base = time_base
            self.stream.time_base = time_base
        if color_from is not None:  # tag the output like the source, so players pick the same matrix
            cc.colorspace, cc.color_range = color_from.colorspace, color_from.color_range
            cc.color_primaries, cc.color_trc = color_from.color_primaries, color_from.color_trc
        self.stream.options = {"crf": str(int(crf)), "preset": preset}
        self.num_frames = 0

    def write(self, frame) -> None:
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.num_frames += 1

    def close(self) -> None:
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()


def save_mp4(frames: Iterable[Any], path: str | os.PathLike, *, fps: float = 30.0, crf: int = DEFAULT_CRF,
             preset: str = DEFAULT_PRESET) -> Path:
    """Encode frames (PIL or uint8 RGB ``[H, W, 3]``, all one size) to H.264 yuv420p MP4 at ``fps``,
    one at a time (the iterable may be a generator). Odd sizes are padded to even by edge replication."""
    av = import_av()
    path = _out_path(path)
    if not (fps > 0):
        raise MediaError(f"fps must be positive, got {fps!r}")
    rate = Fraction(fps).limit_denominator(1001)
    writer, size = None, None
    try:
        for frame in frames:
            arr = _even_rgb(np.asarray(to_pil(frame)))
            if writer is None:
                size = arr.shape[:2]
                writer = _Mp4Writer(path, arr.shape[1], arr.shape[0], rate, crf=crf, preset=preset)
            elif arr.shape[:2] != size:
                raise MediaError(f"video frames must all have one size: got {arr.shape[:2]} after {size}")
            vf = av.VideoFrame.from_ndarray(arr, format="rgb24").reformat(format="yuv420p")
            vf.pts = writer.num_frames
            vf.time_base = 1 / rate
            writer.write(vf)
        if writer is None:
            raise MediaError("no frames to write; pass at least one frame")
    finally:
        if writer is not None:
            writer.close()
    return path


# ---------------------------------------------------------------------------------------------------
# Annotating a video file
# ---------------------------------------------------------------------------------------------------


def _yuv_matrix(frame) -> tuple[np.ndarray, np.ndarray]:
    """RGB (0..255) -> YUV coefficients ``[3, 3]`` and offsets ``[3]`` for the frame's colour space."""
    # AVColorSpace: 1 = BT.709; 5, 6 = BT.601; anything else: 709 for HD, 601 below (what players do)
    cs = int(frame.colorspace)
    bt709 = cs == 1 or (cs not in (5, 6) and frame.height >= 720)
    kr, kb = (0.2126, 0.0722) if bt709 else (0.299, 0.114)
    full = int(frame.color_range) == 2  # AVCOL_RANGE_JPEG
    ys, cs_ = (255.0, 255.0) if full else (219.0, 224.0)
    y = np.array([kr, 1 - kr - kb, kb])
    cb = (np.array([0.0, 0.0, 1.0]) - y) / (2 * (1 - kb))
    cr = (np.array([1.0, 0.0, 0.0]) - y) / (2 * (1 - kr))
    m = np.stack([y * ys, cb * cs_, cr * cs_]) / 255.0
    off = np.array([0.0 if full else 16.0, 128.0, 128.0])
    return m.astype(np.float32), off.astype(np.float32)


def _plane_flat(frame, k: int) -> tuple[np.ndarray, int]:
    """Plane ``k`` of a frame as a writable flat uint8 view, and its row stride (``line_size``)."""
    p = frame.planes[k]
    return np.frombuffer(p, np.uint8), p.line_size


def blend_yuv420(frame, patch, origin: tuple[int, int]) -> None:
    """Alpha-blend an RGBA PIL ``patch`` at ``origin`` (even x, y; even patch size) into a writable
    yuv420p ``av.VideoFrame``, in place. Only drawn pixels are touched (a patch is mostly transparent:
    trails are thin lines), so the blending follows the ink, not the patch area."""
    x0, y0 = origin
    w, h = patch.size
    assert x0 % 2 == 0 and y0 % 2 == 0 and h % 2 == 0 and w % 2 == 0, (origin, patch.size)
    idx = np.flatnonzero(np.asarray(patch.getchannel("A")))  # drawn pixels, [N] flat indices into the patch
    if len(idx) == 0:
        return
    m_33, off_3 = _yuv_matrix(frame)
    px_p4 = np.asarray(patch).reshape(-1, 4)  # [h * w, RGBA]
    ys, xs = np.divmod(idx, w)
    # luma, per drawn pixel
    ink_n4 = px_p4[idx].astype(np.float32)
    a_n = ink_n4[:, 3] * (1 / 255)
    Y, stride = _plane_flat(frame, 0)
    at = (ys + y0) * stride + (xs + x0)
    Y[at] = (Y[at] * (1 - a_n) + (ink_n4[:, :3] @ m_33[0] + off_3[0]) * a_n + 0.5).astype(np.uint8)
    # chroma, per 2x2 block with any drawn pixel: blend the block's premultiplied mean colour
    touched = np.zeros((h >> 1) * (w >> 1), dtype=bool)
    touched[(ys >> 1) * (w >> 1) + (xs >> 1)] = True
    by, bx = np.divmod(np.flatnonzero(touched), w >> 1)  # [B] the 2x2 blocks with ink
    corners_b4 = ((2 * by) * w + 2 * bx)[:, None] + np.array([0, 1, w, w + 1])  # the 4 pixels of each block
    px_b44 = px_p4[corners_b4].astype(np.float32)  # [B, 4 pixels, RGBA]
    a_b4 = px_b44[..., 3] * (1 / 255)
    a_b = a_b4.mean(axis=1)  # [B]
    for k in (1, 2):
        C, stride = _plane_flat(frame, k)
        at = (by + y0 // 2) * stride + (bx + x0 // 2)
        c_b = ((px_b44[..., :3] @ m_33[k] + off_3[k]) * a_b4).mean(axis=1)
        C[at] = (C[at] * (1 - a_b) + c_b + 0.5).astype(np.uint8)


def _as_yuv420_even(frame):
    """The frame as a writable, even-sized yuv420p ``av.VideoFrame`` (padding odd sizes by one pixel).

    Converted frames come out of swscale in limited range with the source's matrix (BT.601 for RGB
    sources); their colour tags are set to say so, since the MP4 is tagged from them."""
    av = import_av()
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        frame.make_writable()  # the decoder may still hold it as a reference frame
        return frame
    rgb_source = not frame.format.name.startswith(("yuv", "nv", "gray"))
    if frame.width % 2 or frame.height % 2:
        padded = av.VideoFrame.from_ndarray(_even_rgb(frame.to_ndarray(format="rgb24")), format="rgb24")
        out, rgb_source = padded.reformat(format="yuv420p"), True
    else:
        out = frame.reformat(format="yuv420p")
    out.pts, out.time_base = frame.pts, frame.time_base
    out.color_range = 1  # AVCOL_RANGE_MPEG
    out.colorspace = 5 if rgb_source else frame.colorspace  # AVCOL_SPC_BT470BG (BT.601) for RGB
    if rgb_source:
        out.color_primaries = out.color_trc = 2  # unspecified
    return out


def annotate_video_mp4(video: str | os.PathLike, overlay: Overlay, out_path: str | os.PathLike, *,
                       crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET) -> Path:
    """Stream ``video`` through the decoder, draw ``overlay`` on each frame at its time, encode to MP4."""
    av = import_av()
    out_path = _out_path(out_path)
    if out_path.suffix.lower() not in MP4_SUFFIXES:
        raise MediaError(f"cannot write a video to {out_path.name!r}; use a .mp4 name")
    with VideoReader(video) as reader:
        info = reader.info
        width, height = info.width + info.width % 2, info.height + info.height % 2
        media_size = overlay.result.sizes[0] if overlay.result.sizes else (info.width, info.height)
        scale = (info.width / media_size[0], info.height / media_size[1])
        writer = None
        try:
            last_pts = None
            for t, frame in reader.frames():
                pts = frame.pts - info.start_pts if frame.pts is not None else None
                if pts is None or (last_pts is not None and pts <= last_pts):  # missing or repeated pts
                    pts = (last_pts + 1) if last_pts is not None else 0
                last_pts = pts
                frame = _as_yuv420_even(frame)
                if writer is None:
                    writer = _Mp4Writer(out_path, width, height, info.rate, time_base=info.time_base, crf=crf,
                                        preset=preset, color_from=frame)
                markers = overlay.markers_at(t)
                if markers:
                    for patch, origin in paint(markers, (width, height), scale=scale, align=2):
                        blend_yuv420(frame, patch, origin)
                frame.pts, frame.time_base = pts, info.time_base
                frame.pict_type = av.video.frame.PictureType.NONE  # else x264 copies the source's frame types
                writer.write(frame)
        finally:
            if writer is not None:
                writer.close()
    return out_path


def _video_gif_frames(video: str | os.PathLike, overlay: Overlay, fps: float):
    """Annotated RGB frames of ``video`` sampled at ``fps`` (the frame on screen at each tick)."""
    with VideoReader(video) as reader:
        media_size = overlay.result.sizes[0] if overlay.result.sizes else None
        next_t = 0.0
        for t, frame in reader.frames():
            if t + 1e-6 < next_t:
                continue
            next_t += 1.0 / fps
            while next_t <= t:
                next_t += 1.0 / fps
            yield draw_markers(frame.to_image(), overlay.markers_at(t), media_size=media_size)


# ---------------------------------------------------------------------------------------------------
# render
# ---------------------------------------------------------------------------------------------------


def render(media: Any, result: GroundingResult | dict[str, Any], out_path: str | os.PathLike, *,
           interval: float | None = None, trail: int = 8, gif_fps: float | None = None, crf: int = DEFAULT_CRF,
           preset: str = DEFAULT_PRESET, **viewer_kwargs: Any) -> Path | list[Path]:
    """Draw ``result`` on ``media`` and write it to ``out_path``, choosing the output by its suffix.

    ============================  ===========================================================
    media                         out_path suffix
    ============================  ===========================================================
    image (path, PIL, uint8 arr)  .png/.jpg/.webp: the image; .html: the viewer
    list of images (image set)    .png/.jpg/.webp: one file per image, ``name-0.png``, ...;
                                  .html: the viewer
    video file path               .mp4 (.m4v/.mov/.mkv): H.264 at the video's own frame rate;
                                  .gif: at ``gif_fps`` (default min(10, video fps));
                                  .html: the viewer
    ============================  ===========================================================

    ``interval`` is the sampling interval that sets how long points stay on screen (default: Molmo2's,
    from the video's duration; see ``molmo2.viz.draw``); ``trail`` the number of positions in a track's
    trail. Extra keyword arguments go to ``write_viewer``. Returns the path(s) written.
    """
    out_path = Path(out_path).expanduser()
    suffix = out_path.suffix.lower()
    result = as_result(result)
    if suffix in (".html", ".htm"):
        from molmo2.viz.viewer import write_viewer

        return write_viewer(out_path, media, result, interval=interval, trail=trail, **viewer_kwargs)
    if viewer_kwargs:
        raise MediaError(f"unexpected arguments {sorted(viewer_kwargs)} (they are only for .html output)")
    still = suffix in IMAGE_SUFFIXES - {".gif"}
    if is_video_path(media):
        if suffix in MP4_SUFFIXES:
            with VideoReader(media, threads=False) as r:
                duration = r.info.duration
            overlay = Overlay(result, duration=duration, interval=interval, trail=trail)
            return annotate_video_mp4(media, overlay, out_path, crf=crf, preset=preset)
        if suffix == ".gif":
            with VideoReader(media, threads=False) as r:
                duration, fps = r.info.duration, r.info.fps
            overlay = Overlay(result, duration=duration, interval=interval, trail=trail)
            gif_fps = gif_fps or min(DEFAULT_GIF_FPS, fps)
            return save_gif(_video_gif_frames(media, overlay, gif_fps), out_path, fps=gif_fps)
        raise MediaError(f"a video renders to .mp4, .gif or .html, not {out_path.name!r}")
    if not still:
        raise MediaError(f"an image renders to .png, .jpg, .webp or .html, not {out_path.name!r}"
                         + (" (is the media a video? its path must end in .mp4, .webm, .mkv, .mov ...)"
                            if isinstance(media, (str, os.PathLike)) else ""))
    overlay = Overlay(result, interval=interval, trail=trail)
    if is_image_set(media):
        if len(result.sizes) > 1 and len(result.sizes) != len(media):
            raise MediaError(f"the result is for {len(result.sizes)} images but {len(media)} were given; pass the "
                             "same images, in the same order, as to the model")
        return [save_png(draw_image(load_image(img), overlay, k), out_path.with_name(f"{out_path.stem}-{k}{suffix}"))
                for k, img in enumerate(media)]
    return save_png(draw_image(load_image(media), overlay, 0), out_path)
