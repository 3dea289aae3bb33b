"""What to draw on which frame, and drawing it: colours, markers, labels and track trails.

Two halves, kept apart so the video writer can paint cheaply and the HTML viewer can mirror the rules:

* ``Overlay`` indexes one ``GroundingResult`` once and answers "which markers are on screen at time
  ``t``" (video) or "on image ``k``" (image sets) as a list of ``Marker`` (position in pixels of the
  result's media, colour, text, trail). The display rules, also implemented in the viewer's JS:

  - a **point** with timestamp ``t_p`` is shown on frames with ``|t - t_p| <= tolerance``; ``tolerance``
    is half the sampling interval (the model sees one frame per interval, so each frame shows the
    points of the nearest sampled instant); a point without a timestamp is shown on every frame;
  - a **track** is linearly interpolated between consecutive keyframes that are at most 1.5 intervals
    apart (the object was seen at every sampled frame in between); across a longer gap (the object was
    not visible) and before the first / after the last keyframe, a keyframe is held for ``tolerance``;
  - a track's **trail** is its last ``trail`` keyframe positions up to the shown one, drawn only while
    its marker is shown.

  The sampling interval defaults to Molmo2's own (``default_interval``: 2 fps, at most 384 frames).

* ``paint`` draws markers on RGBA patches that cover only the markers, one per group of overlapping
  markers (filled disc with a white rim, the trail as a polyline thinning towards its tail, a label box
  "id label"); ``draw_markers`` pastes the patches onto an RGB image, the MP4 writer blends them
  straight into YUV planes
  (``molmo2.viz.writers``). Colours are exact (no anti-aliasing inside the disc), so tests can check the
  pixel under a point. Sizes scale with the image (``Style.for_size``).

Colours come from a fixed palette keyed by object id, or by label when a point has no id, so an object
keeps its colour across frames, tracks, images and the viewer.
"""

from __future__ import annotations

import bisect
import functools
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from molmo2.errors import MediaError
from molmo2.grounding.types import GroundingResult, Point

RGB = tuple[int, int, int]

# Distinct saturated colours (Sasha Trubetskoy's list, greys and pastels dropped): readable on photos
# and different from each other under x264's chroma subsampling.
PALETTE: tuple[RGB, ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (0, 128, 128), (170, 110, 40), (128, 0, 0),
)
RIM: RGB = (255, 255, 255)
# Molmo2's video sampling (molmo2.processing.video DEFAULT_MAX_FPS / DEFAULT_MAX_FRAMES), repeated here
# because importing molmo2.processing pulls in torch.
SAMPLE_FPS = 2.0
SAMPLE_MAX_FRAMES = 384
MAX_LABEL_CHARS = 24


def color_for(object_id: int | None, label: str | None = None) -> RGB:
    """The palette colour of an object: by id (1 -> first colour), else by label (a stable hash), else
    the first colour."""
    if object_id is not None:
        return PALETTE[(int(object_id) - 1) % len(PALETTE)]
    if label:
        return PALETTE[zlib.crc32(label.encode()) % len(PALETTE)]
    return PALETTE[0]


def marker_text(object_id: int | None, label: str | None) -> str:
    """``"2 dog"``, ``"dog"``, ``"2"`` or ``""``; long labels are cut to ``MAX_LABEL_CHARS``."""
    label = (label or "").strip()
    if len(label) > MAX_LABEL_CHARS:
        label = label[: MAX_LABEL_CHARS - 1] + "…"
    return " ".join(s for s in (None if object_id is None else str(object_id), label) if s)


def default_interval(duration: float | None) -> float:
    """Seconds between the frames Molmo2 samples from a video of ``duration`` seconds: 0.5 s up to
    383 / 2 s, then ``duration / 383`` (384 frames spread over the video)."""
    interval = 1.0 / SAMPLE_FPS
    if duration is not None and math.isfinite(duration) and duration > 0:
        interval = max(interval, duration / (SAMPLE_MAX_FRAMES - 1))
    return interval


@dataclass(frozen=True, slots=True)
class Marker:
    """One thing to draw, in pixels of the result's media (``GroundingResult.sizes``)."""

    x: float
    y: float
    color: RGB
    text: str
    trail: tuple[tuple[float, float], ...] = ()  # earlier positions, oldest first, not including (x, y)


@dataclass(frozen=True, slots=True)
class Style:
    """Marker disc radius, line width and font size in pixels of the image drawn on."""

    radius: int
    line: int
    font_size: int

    @classmethod
    def for_size(cls, width: int, height: int) -> Style:
        """Scaled with the shorter side: 480 px -> radius 6, line 3, font 15; 120 px -> 3, 1, 10."""
        short = min(width, height)
        radius = max(3, round(short / 80))
        return cls(radius=radius, line=max(1, radius // 2), font_size=max(10, round(short / 32)))


@dataclass(slots=True)
class _TrackIndex:
    times: list[float]  # keyframe times, ascending
    xy: list[tuple[float, float]]
    color: RGB
    text: str


class Overlay:
    """The markers of one ``GroundingResult`` per video time or per image (display rules: module doc).

    ``interval`` is the sampling interval in seconds (default ``default_interval(duration)``), ``trail``
    how many keyframe positions a track's trail keeps (0: no trail).
    """

    def __init__(self, result: GroundingResult | dict[str, Any], *, duration: float | None = None,
                 interval: float | None = None, trail: int = 8):
        self.result = as_result(result)
        if interval is None:
            interval = default_interval(duration)
        if not (math.isfinite(interval) and interval > 0):
            raise MediaError(f"interval must be a positive number of seconds, got {interval!r}")
        if trail < 0:
            raise MediaError(f"trail must be a number of positions >= 0, got {trail!r}")
        self.interval = float(interval)
        self.tolerance = self.interval / 2
        self.max_gap = 1.5 * self.interval  # keyframes closer than this are interpolated between
        self.trail = int(trail)

        self._static = [_point_marker(p) for p in self.result.points if p.t is None]  # shown on every frame
        timed = sorted((p for p in self.result.points if p.t is not None), key=lambda p: p.t)
        self._point_times = [p.t for p in timed]  # ascending, for bisect
        self._point_markers = [_point_marker(p) for p in timed]

        self._tracks: list[_TrackIndex] = []
        for tr in self.result.tracks:
            pts = sorted((p for p in tr.points if p.t is not None), key=lambda p: p.t)
            if pts:
                self._tracks.append(_TrackIndex([p.t for p in pts], [(p.x, p.y) for p in pts],
                                                color_for(tr.object_id, tr.label), marker_text(tr.object_id, tr.label)))

    def markers_at(self, t: float) -> list[Marker]:
        """Markers on screen at ``t`` seconds from the start of the video: tracks first, then points."""
        out = []
        for tr in self._tracks:
            m = self._track_marker(tr, t)
            if m is not None:
                out.append(m)
        lo = bisect.bisect_left(self._point_times, t - self.tolerance - 1e-9)
        hi = bisect.bisect_right(self._point_times, t + self.tolerance + 1e-9)
        out.extend(self._point_markers[lo:hi])
        out.extend(self._static)
        return out

    def _track_marker(self, tr: _TrackIndex, t: float) -> Marker | None:
        T, n, eps = tr.times, len(tr.times), 1e-9
        i = bisect.bisect_right(T, t + eps) - 1  # last keyframe at or before t
        if 0 <= i < n - 1 and T[i + 1] - T[i] <= self.max_gap + eps:
            t0, t1 = T[i], T[i + 1]
            w = 0.0 if t1 <= t0 else min(1.0, max(0.0, (t - t0) / (t1 - t0)))
            (x0, y0), (x1, y1) = tr.xy[i], tr.xy[i + 1]
            x, y, last = x0 + w * (x1 - x0), y0 + w * (y1 - y0), i  # the trail ends at keyframe i
            if w == 0.0:
                last = i - 1
        else:
            near = [j for j in (i, i + 1) if 0 <= j < n and abs(T[j] - t) <= self.tolerance + eps]
            if not near:
                return None
            j = min(near, key=lambda j: abs(T[j] - t))
            (x, y), last = tr.xy[j], j - 1
        first = max(0, last - self.trail + 1) if self.trail else last + 1
        return Marker(x, y, tr.color, tr.text, tuple(tr.xy[first:last + 1]))

    def markers_for_image(self, index: int = 0) -> list[Marker]:
        """The points of image ``index`` (``Point.image``; ``None`` counts as image 0). Tracks belong to
        videos and are not drawn on images."""
        return [_point_marker(p) for p in self.result.points if (p.image or 0) == index]


def _point_marker(p: Point) -> Marker:
    return Marker(p.x, p.y, color_for(p.object_id, p.label), marker_text(p.object_id, p.label))


def as_result(result: GroundingResult | dict[str, Any]) -> GroundingResult:
    """A ``GroundingResult`` from itself or its ``to_dict()`` form."""
    if isinstance(result, GroundingResult):
        return result
    if isinstance(result, dict):
        return GroundingResult.from_dict(result)
    raise MediaError(f"result must be a GroundingResult or its to_dict() form, got {type(result).__name__}; "
                     "get one from molmo2.grounding.parse(answer, size)")


# ---------------------------------------------------------------------------------------------------
# Painting
# ---------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed-size bitmap font
        return ImageFont.load_default()


def _text_color(bg: RGB) -> RGB:
    return (0, 0, 0) if 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2] > 150 else (255, 255, 255)


@functools.lru_cache(maxsize=1024)
def _label_sprite(text: str, color: RGB, font_size: int):
    """The label box of ``text`` (opaque RGBA, 2 px padding), rendered once and pasted on every frame."""
    from PIL import Image, ImageDraw

    font = _font(font_size)
    left, top, right, bottom = font.getbbox(text)
    sprite = Image.new("RGBA", (right - left + 4, bottom - top + 4), (*color, 255))
    ImageDraw.Draw(sprite).text((2 - left, 2 - top), text, fill=(*_text_color(color), 255), font=font)
    return sprite


@dataclass(frozen=True, slots=True)
class _Placed:
    marker: Marker
    x: float
    y: float
    trail: tuple[tuple[float, float], ...]
    label_box: tuple[int, int, int, int] | None  # x0, y0, x1, y1 (inclusive-exclusive)
    box: tuple[int, int, int, int]  # everything this marker draws, clipped to the image, aligned


def _layout(markers: Sequence[Marker], scale: tuple[float, float], size: tuple[int, int], style: Style,
            align: int) -> list[_Placed]:
    """Scale markers into image pixels, place their labels, and box what each one draws."""
    sx, sy = scale
    width, height = size
    placed = []
    pad = style.line + 2  # rim and line caps
    r = style.radius
    for m in markers:
        x, y = m.x * sx, m.y * sy
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        trail = tuple((px * sx, py * sy) for px, py in m.trail)
        xs = [x] + [p[0] for p in trail]
        ys = [y] + [p[1] for p in trail]
        x0, y0 = math.floor(min(xs) - r - pad), math.floor(min(ys) - r - pad)
        x1, y1 = math.ceil(max(xs) + r + pad) + 1, math.ceil(max(ys) + r + pad) + 1
        label_box = None
        if m.text:
            tw, th = _label_sprite(m.text, m.color, style.font_size).size
            bx = int(min(max(x + r + 2, 0), max(width - tw, 0)))  # right of the disc, inside the image
            by = int(min(max(y - r - th, 0), max(height - th, 0)))
            label_box = (bx, by, bx + tw, by + th)
            x0, y0, x1, y1 = min(x0, bx), min(y0, by), max(x1, bx + tw), max(y1, by + th)
        x0, y0 = max(0, x0 - x0 % align), max(0, y0 - y0 % align)
        x1, y1 = min(width, -(-x1 // align) * align), min(height, -(-y1 // align) * align)
        if x1 > x0 and y1 > y0:
            placed.append(_Placed(m, x, y, trail, label_box, (x0, y0, x1, y1)))
    return placed


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _group(placed: list[_Placed]) -> list[tuple[tuple[int, int, int, int], list[_Placed]]]:
    """Merge markers whose boxes overlap (transitively) into groups with disjoint boxes, keeping order."""
    groups: list[tuple[tuple[int, int, int, int], list[_Placed]]] = []
    for p in placed:
        box, members = p.box, [p]
        merged = True
        while merged:  # a grown box may now overlap groups it missed before
            merged = False
            for g in list(groups):
                if _overlap(box, g[0]):
                    groups.remove(g)
                    box = (min(box[0], g[0][0]), min(box[1], g[0][1]), max(box[2], g[0][2]), max(box[3], g[0][3]))
                    members = g[1] + members
                    merged = True
        groups.append((box, members))
    order = {id(p): k for k, p in enumerate(placed)}
    return [(box, sorted(members, key=lambda p: order[id(p)])) for box, members in groups]


def paint(markers: Sequence[Marker], size: tuple[int, int], *, scale: tuple[float, float] = (1.0, 1.0),
          style: Style | None = None, align: int = 1) -> list:
    """Draw ``markers`` on transparent RGBA patches: a list of ``(patch, (x0, y0))``, one per group of
    overlapping markers (disjoint boxes, so blending cost follows what is drawn, not how far apart the
    markers are). ``size`` is the (width, height) of the image the patches go on; ``scale`` maps the
    markers' pixels to it; ``align`` rounds the patches' corners to multiples (2 for YUV 4:2:0)."""
    from PIL import Image, ImageDraw

    width, height = size
    style = style or Style.for_size(width, height)
    r = style.radius
    out = []
    for (x0, y0, x1, y1), placed in _group(_layout(markers, scale, size, style, align)):
        patch = Image.new("RGBA", (x1 - x0, y1 - y0), (0, 0, 0, 0))
        draw = ImageDraw.Draw(patch)
        for p in placed:  # trails under every disc
            path = [(px - x0, py - y0) for px, py in (*p.trail, (p.x, p.y))]
            n = len(path) - 1
            for k in range(n):  # newest segment widest
                w = max(1, round(style.line * (k + 1) / n))
                draw.line([path[k], path[k + 1]], fill=(*p.marker.color, 255), width=w)
        for p in placed:
            cx, cy = p.x - x0, p.y - y0
            rim = max(1, r // 3)
            draw.ellipse([cx - r - rim, cy - r - rim, cx + r + rim, cy + r + rim], fill=(*RIM, 255))
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(*p.marker.color, 255))
        for p in placed:
            if p.label_box is not None:  # opaque: a plain paste
                patch.paste(_label_sprite(p.marker.text, p.marker.color, style.font_size),
                            (p.label_box[0] - x0, p.label_box[1] - y0))
        out.append((patch, (x0, y0)))
    return out


def to_pil(image: Any):
    """An RGB PIL image from a PIL image or a uint8 array ``[H, W, 3]`` (copied, never drawn on in place)."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image.copy()
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise MediaError(f"an image to draw on must be uint8 RGB [H, W, 3], got {arr.dtype} {arr.shape}")
    return Image.fromarray(arr, "RGB")


def draw_markers(image: Any, markers: Sequence[Marker], *, media_size: tuple[float, float] | None = None,
                 style: Style | None = None):
    """A copy of ``image`` (PIL or uint8 ``[H, W, 3]``) with ``markers`` drawn; returns an RGB PIL image.

    ``media_size`` is the (width, height) the markers' pixels refer to (``GroundingResult.sizes[k]``);
    when the image has another size the markers are scaled onto it.
    """
    img = to_pil(image)
    scale = (1.0, 1.0) if media_size is None else (img.width / media_size[0], img.height / media_size[1])
    for patch, origin in paint(markers, img.size, scale=scale, style=style):
        img.paste(patch, origin, mask=patch)
    return img


def _media_size(result: GroundingResult, index: int = 0) -> tuple[float, float] | None:
    return result.sizes[index] if index < len(result.sizes) else (result.sizes[0] if result.sizes else None)


def draw_image(image: Any, result: GroundingResult | dict[str, Any] | Overlay, index: int = 0):
    """Image ``index`` of the result's media with its points drawn (RGB PIL image)."""
    overlay = result if isinstance(result, Overlay) else Overlay(result)
    return draw_markers(image, overlay.markers_for_image(index), media_size=_media_size(overlay.result, index))


def draw_frame(frame: Any, result: GroundingResult | dict[str, Any] | Overlay, t: float):
    """A video frame (PIL or uint8 ``[H, W, 3]``) shown at ``t`` seconds with the markers on screen then.
    Pass an ``Overlay`` to choose the interval or trail, or to avoid re-indexing the result per frame."""
    overlay = result if isinstance(result, Overlay) else Overlay(result)
    return draw_markers(frame, overlay.markers_at(t), media_size=_media_size(overlay.result))
