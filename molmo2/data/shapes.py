"""Tiny-shapes: a seeded generator of synthetic images and short videos of coloured shapes, with
Molmo2-style grounding tasks, written in the training schema (:mod:`molmo2.data.schema`).

Why it looks like this: a *small* Molmo2-architecture model is trained on it on a CPU in hours, so the
world is simple and the objects are big relative to the pooled visual-token grid (shapes of 32-52 px on
a 128 px image by default: smaller ones were learned for counting but not for pointing). Every knob
that makes it harder (occlusion, objects entering/leaving the frame, textured backgrounds, number and
size of objects, number of frames) is a field of :class:`ShapesConfig`, so a curriculum is a list of
configs (:data:`PRESETS`: single object on a plain background first).

World: shapes ``circle, square, triangle, diamond, star`` in well-separated colours (``red, green,
blue, yellow`` by default; ``purple, cyan`` available), painted without anti-aliasing over a plain or
textured (low-saturation grey) background, so the instance-id map is exact. Objects move linearly and
bounce off the walls; with ``enter_leave`` some start fully outside and enter, or leave for good;
with ``occlusion`` a bigger shape may be sent across a smaller one so that it is hidden for a frame or
more (painter's order = depth). An object "is visible" at an instant when at least ``min_visible`` of
its full (unclipped, unoccluded) area shows; slivers below that are in the masks but in no annotation
(``ground_truth`` keeps the visible fraction per frame so evaluation can ignore them).

Points are at the centroid of the object's **visible** mask (pixel centres, ``+0.5``); when that
centroid falls outside the mask (a crescent left by an occluder), the mask pixel nearest to it among
the deepest ones (by repeated erosion) is used, so every point lies inside its object's mask.

Time: the model samples a video at 2 fps with the final instant appended (``sample_times``: a clip of
duration D gets ``0, 0.5, ..., D``), and the prompt states those instants. A clip of K ground-truth
instants ``0.0, 0.5, ..., (K-1)/2`` is therefore written with duration exactly ``(K-1)/2`` s: at 4 fps,
each rendered scene held for two encoded frames, except that the last scene replaces the last encoded
frame (the sampler reads the final instant at ``D - 1e-6``, which falls in that frame). ``load_video(...,
max_fps=2)`` then returns exactly the K rendered scenes with timestamps ``0.0, 0.5, ...`` -- the same
numbers as the annotations (a plain 2 fps file would add a duplicate instant at ``K/2``). Encoding is
libx264, yuv420p (even sizes), ``crf`` 12 by default with preset ``ultrafast`` (no B-frames, one
thread: fast to write and decode, deterministic, colours survive to within a few levels).

Tasks (:class:`~molmo2.data.schema.Annotation`, structured; the trainer writes prompts and targets):
``pointing`` / ``counting`` (images: every visible match, ``image=0``; videos: each matching object once,
at the first instant it is visible, ``t`` set), ``tracking`` (one :class:`Track` per matching object with
its scene id, a point at every instant it is visible: occluded instants are simply missing),
``temporal`` (enter / leave / visible / hidden questions answered in seconds), ``caption`` (templated,
dense for videos) and ``qa`` (colour, shape, counts, yes/no; some multiple choice). Queries name a
colour, a shape, both, or all shapes ("red circle", "circles", "blue shapes", "shapes"); pointing uses
the singular when exactly one object matches, counting always the plural; a fraction of pointing,
counting and tracking queries name something absent ("There are none.").

Reproducibility: example ``i`` uses ``numpy.random.default_rng([seed, i])`` only, so N and N+k
examples agree on the first N, and the same seed gives a byte-identical manifest, PNGs, npz files and
(with the same FFmpeg build) mp4s. Usage::

    from molmo2.data.shapes import ShapesConfig, generate_dataset, preset
    manifest = generate_dataset("data/shapes", 1000, preset("single", image_size=112))
    python -m molmo2.data.shapes OUT --num 1000 --seed 0 --video
"""

from __future__ import annotations

import argparse
import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from molmo2.data.schema import Annotation, Example, Media, write_jsonl
from molmo2.errors import Molmo2Error
from molmo2.grounding.types import Point, Track

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 80, 235), "yellow": (245, 210, 20),
    "purple": (150, 50, 200), "cyan": (20, 205, 215),
}
KINDS: tuple[str, ...] = ("pointing", "counting", "tracking", "temporal", "caption", "qa")
VIDEO_ONLY_KINDS = ("tracking", "temporal")
FRAME_STEP_S = 0.5  # the model samples video at 2 fps
ENCODE_FPS = 4  # encoded frames per second; each scene is held for ENCODE_FPS * FRAME_STEP_S frames
_HOLD = 2
_MAX_TRIES = 60  # scene resampling attempts before giving up on constraints
_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def _unit_polygon(shape: str) -> np.ndarray:
    """Vertices ``[V, 2]`` of a shape of half-size 1 centred (centroid) on the origin, y down."""
    if shape == "circle":
        a = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return np.stack([np.cos(a), np.sin(a)], 1)
    if shape == "square":
        return np.array([(-0.9, -0.9), (0.9, -0.9), (0.9, 0.9), (-0.9, 0.9)])
    if shape == "diamond":
        return np.array([(0.0, -1.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0)])
    if shape == "triangle":  # apex up, centroid at the origin
        return np.array([(0.0, -1.0), (1.0, 0.5), (-1.0, 0.5)])
    if shape == "star":
        a = -np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([rad * np.cos(a), rad * np.sin(a)], 1)
    raise AssertionError(shape)


_POLYGONS = {s: _unit_polygon(s) for s in SHAPES}
_AREAS = {s: 0.5 * abs(float(np.dot(p[:, 0], np.roll(p[:, 1], -1)) - np.dot(p[:, 1], np.roll(p[:, 0], -1))))
          for s, p in _POLYGONS.items()}
_RADII = {s: float(np.linalg.norm(p, axis=1).max()) for s, p in _POLYGONS.items()}


# ---------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapesConfig:
    """Every knob of the generator. Ranges are inclusive ``(min, max)``; sizes in pixels."""

    seed: int = 0
    media: str = "image"  # "image", "video" or "mixed" (video with probability video_fraction)
    video_fraction: float = 0.5
    image_size: int | tuple[int, int] = 128  # square side, or (width, height); even for video
    object_size: tuple[int, int] = (32, 52)  # side of the shape's bounding box
    num_objects: tuple[int, int] = (1, 3)
    num_frames: tuple[int, int] = (4, 8)  # video: ground-truth instants, 0.5 s apart
    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow")
    occlusion: bool = True  # objects may overlap; videos may get an occluder passing over an object
    occlusion_prob: float = 0.5  # video: chance of a deliberate occlusion event
    enter_leave: bool = True  # video: objects enter/leave the frame; image: objects cut by the border
    enter_leave_prob: float = 0.4  # per object
    textured_background: bool = True  # else a plain grey
    speed: tuple[float, float] = (6.0, 20.0)  # pixels per 0.5 s step
    min_visible: float = 0.3  # visible fraction of the full area needed to count as visible
    negative_prob: float = 0.15  # pointing/counting/tracking queries naming something absent
    queries_per_kind: int = 2  # annotations per task kind per example (at most; fewer if not possible)
    crf: int = 12  # libx264 quality for videos (lower = closer to lossless)

    def __post_init__(self) -> None:
        for name in ("image_size", "object_size", "num_objects", "num_frames", "shapes", "colours", "speed"):
            if isinstance(getattr(self, name), list):  # e.g. read back from shapes_config.json
                object.__setattr__(self, name, tuple(getattr(self, name)))

        def bad(msg: str) -> Molmo2Error:
            return Molmo2Error(f"ShapesConfig: {msg}")

        def check_range(name: str, lo: float, hi: float) -> None:
            v = getattr(self, name)
            if not (isinstance(v, (tuple, list)) and len(v) == 2 and lo <= v[0] <= v[1] <= hi):
                raise bad(f"{name} must be (min, max) with {lo} <= min <= max <= {hi}, got {v!r}")

        if self.media not in ("image", "video", "mixed"):
            raise bad(f"media must be 'image', 'video' or 'mixed', got {self.media!r}")
        w, h = self.size
        if w < 16 or h < 16 or w > 4096 or h > 4096:
            raise bad(f"image_size must be between 16 and 4096 pixels, got {self.image_size!r}")
        if self.media != "image" and (w % 2 or h % 2):
            raise bad(f"videos are yuv420p and need even width and height, got {w}x{h}")
        check_range("object_size", 4, min(w, h))
        check_range("num_objects", 1, 10)
        check_range("num_frames", 2, 256)
        check_range("speed", 0, 10 * max(w, h))
        if not self.shapes or any(s not in SHAPES for s in self.shapes) or len(set(self.shapes)) != len(self.shapes):
            raise bad(f"shapes must be distinct names from {SHAPES}, got {self.shapes!r}")
        if not self.colours or any(c not in COLOURS for c in self.colours) or len(set(self.colours)) != len(self.colours):
            raise bad(f"colours must be distinct names from {tuple(COLOURS)}, got {self.colours!r}")
        for name in ("video_fraction", "occlusion_prob", "enter_leave_prob", "negative_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise bad(f"{name} must be a probability in [0, 1], got {getattr(self, name)!r}")
        if not 0.0 < self.min_visible <= 1.0:
            raise bad(f"min_visible must be in (0, 1], got {self.min_visible!r}")
        if self.queries_per_kind < 1:
            raise bad(f"queries_per_kind must be at least 1, got {self.queries_per_kind!r}")
        if not 0 <= self.crf <= 51:
            raise bad(f"crf must be 0..51 (libx264), got {self.crf!r}")
        if int(self.seed) != self.seed or self.seed < 0:
            raise bad(f"seed must be a non-negative integer, got {self.seed!r}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        s = self.image_size
        if isinstance(s, (tuple, list)):
            if len(s) != 2:
                raise Molmo2Error(f"ShapesConfig: image_size must be an int or (width, height), got {s!r}")
            return int(s[0]), int(s[1])
        return int(s), int(s)


# A curriculum, easiest first. preset(name, **overrides) builds the config.
PRESETS: dict[str, dict] = {
    "single": dict(num_objects=(1, 1), occlusion=False, enter_leave=False, textured_background=False),
    "few": dict(num_objects=(1, 3), occlusion=False, enter_leave=False, textured_background=False),
    "images": dict(num_objects=(1, 4)),
    "video-easy": dict(media="video", num_objects=(1, 2), occlusion=False, enter_leave=False,
                       textured_background=False),
    "video": dict(media="video", num_objects=(1, 3)),
    "mixed": dict(media="mixed", num_objects=(1, 3)),
}


def preset(name: str, **overrides) -> ShapesConfig:
    """A curriculum stage of :data:`PRESETS` with field overrides, e.g. ``preset("single", seed=1)``."""
    if name not in PRESETS:
        raise Molmo2Error(f"unknown tiny-shapes preset {name!r}; use one of {', '.join(PRESETS)}")
    known = {f.name for f in fields(ShapesConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise Molmo2Error(f"unknown ShapesConfig field(s) {unknown}; known: {sorted(known)}")
    return ShapesConfig(**{**PRESETS[name], **overrides})


# ---------------------------------------------------------------------------------------------------
# Scene
# ---------------------------------------------------------------------------------------------------


@dataclass
class ShapeObject:
    """One object through time. Arrays are per ground-truth instant ``[T]``."""

    id: int  # 1-based, the value in the instance map
    shape: str
    colour: str
    rgb: tuple[int, int, int]
    size: float  # bounding-box side in pixels
    z: int  # paint order: higher is in front
    motion: str  # "static" (image), "bounce", "enter", "leave"
    side: str | None  # the edge entered from / left through
    xy: np.ndarray  # [T, 2] centre positions
    visible_fraction: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [T]
    in_frame_fraction: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [T] unoccluded, clipped
    points: list[tuple[float, float] | None] = field(default_factory=list)  # [T] None when not visible
    occluded_by: list[int | None] = field(default_factory=list)  # [T] main occluder when hidden by one

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def r(self) -> float:
        return self.size / 2

    def visible(self, min_visible: float) -> np.ndarray:
        return self.visible_fraction >= min_visible


@dataclass
class Scene:
    """A rendered scene: frames, the visible-instance map and the objects with their ground truth."""

    width: int
    height: int
    times: np.ndarray  # [T] seconds
    frames: np.ndarray  # uint8 [T, H, W, 3]
    ids: np.ndarray  # uint16 [T, H, W], 0 = background
    objects: list[ShapeObject]
    background: str
    min_visible: float
    is_video: bool

    def visible(self, obj: ShapeObject) -> np.ndarray:
        return obj.visible(self.min_visible)

    def seen(self) -> list[ShapeObject]:
        """Objects visible at some instant."""
        return [o for o in self.objects if self.visible(o).any()]


def _background(rng: np.random.Generator, w: int, h: int, textured: bool) -> tuple[np.ndarray, str]:
    grey = rng.uniform(70, 190)
    tone = "dark grey" if grey < 105 else "light grey" if grey > 155 else "grey"
    base = grey + rng.uniform(-12, 12, 3)  # a faint tint; low saturation keeps shape colours unique
    if not textured:
        return np.broadcast_to(np.clip(base, 0, 255).astype(np.uint8), (h, w, 3)).copy(), f"plain {tone}"
    kind = str(rng.choice(["noisy", "checkered", "striped", "gradient"]))
    amp = rng.uniform(18, 40)
    yy, xx = np.ogrid[0:h, 0:w]
    yy, xx = yy.astype(np.float32), xx.astype(np.float32)
    if kind == "noisy":
        cells = rng.uniform(-1, 1, (max(2, h // 10), max(2, w // 10))).astype(np.float32)
        pattern = np.asarray(Image.fromarray(cells, mode="F").resize((w, h), Image.BILINEAR))
    elif kind == "checkered":
        cell = int(rng.integers(6, 20))
        pattern = ((xx // cell + yy // cell) % 2) * 2 - 1
    elif kind == "striped":
        a, period = rng.uniform(0, np.pi), rng.uniform(8, 24)
        pattern = np.sin(2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / period)
    else:
        a = rng.uniform(0, 2 * np.pi)
        proj = xx * np.cos(a) + yy * np.sin(a)
        pattern = 2 * (proj - proj.min()) / max(float(np.ptp(proj)), 1.0) - 1
    img = base.astype(np.float32) + np.float32(amp) * pattern[..., None].astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), f"{kind} {tone}"


def _mask(obj: ShapeObject, k: int, w: int, h: int) -> np.ndarray:
    """The object's full (unoccluded) mask at instant k, clipped to the frame: bool [H, W]."""
    pts = _POLYGONS[obj.shape] * obj.r + obj.xy[k]
    im = Image.new("L", (w, h), 0)
    ImageDraw.Draw(im).polygon([(float(x), float(y)) for x, y in pts], fill=1)
    return np.asarray(im, dtype=bool)


def _point_in_mask(mask: np.ndarray) -> tuple[float, float]:
    """Centroid of a non-empty mask (pixel centres); if it falls outside, the nearest deepest pixel."""
    ys, xs = np.nonzero(mask)
    cx, cy = xs.mean() + 0.5, ys.mean() + 0.5
    if mask[int(cy), int(cx)]:
        return round(float(cx), 2), round(float(cy), 2)
    core = mask
    while True:  # erode (4-neighbourhood) until one more step would empty it
        e = core.copy()
        e[1:] &= core[:-1]
        e[:-1] &= core[1:]
        e[:, 1:] &= core[:, :-1]
        e[:, :-1] &= core[:, 1:]
        if not e.any():
            break
        core = e
    ys, xs = np.nonzero(core)
    i = int(np.argmin((xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2))
    return float(xs[i]) + 0.5, float(ys[i]) + 0.5


def _simulate(p0: np.ndarray, v: np.ndarray, r: float, w: int, h: int, num: int, walls: bool,
              max_speed: float) -> np.ndarray:
    """Linear motion with reflection off the walls (once ``walls`` is on, or the shape is fully inside):
    positions ``[num, 2]``. An object switching its walls on is slowed to ``max_speed``."""
    lo, hi = np.array([r, r]), np.array([w - r, h - r])
    p, v, out = p0.astype(float).copy(), v.astype(float).copy(), [p0.astype(float).copy()]
    for _ in range(1, num):
        p = p + v
        if not walls and np.all(p >= lo - 1e-9) and np.all(p <= hi + 1e-9):
            walls = True
            speed = float(np.linalg.norm(v))
            if speed > max_speed > 0:
                v *= max_speed / speed
        if walls:
            for a in range(2):
                if lo[a] > hi[a]:  # larger than the frame: stay centred
                    p[a] = (lo[a] + hi[a]) / 2
                    continue
                if p[a] < lo[a]:
                    p[a], v[a] = 2 * lo[a] - p[a], -v[a]
                elif p[a] > hi[a]:
                    p[a], v[a] = 2 * hi[a] - p[a], -v[a]
                p[a] = min(max(p[a], lo[a]), hi[a])
        out.append(p.copy())
    return np.stack(out)


def _random_velocity(rng: np.random.Generator, speed: tuple[float, float]) -> np.ndarray:
    a = rng.uniform(0, 2 * np.pi)
    return rng.uniform(*speed) * np.array([np.cos(a), np.sin(a)])


def _enter_path(rng: np.random.Generator, r: float, w: int, h: int, num: int, cfg: ShapesConfig
                ) -> tuple[np.ndarray, str]:
    """A path that starts fully outside one edge and is fully inside at some instant 1..3."""
    side = str(rng.choice(["left", "right", "top", "bottom"]))
    along, across = (w, h) if side in ("left", "right") else (h, w)
    k_full = int(rng.integers(1, min(3, num - 1) + 1))
    p_in = r + rng.uniform(0, along / 4)  # position across the entry edge when fully inside
    start = -r * (1 + rng.uniform(0.05, 0.5))
    v_in = (p_in - start) / k_full
    q_full = rng.uniform(r, max(r, across - r))
    v_q = rng.uniform(-0.5, 0.5) * cfg.speed[1]
    p0, v = np.array([start, q_full - v_q * k_full]), np.array([v_in, v_q])
    if side in ("right", "bottom"):
        p0[0], v[0] = along - p0[0], -v[0]
    if side in ("top", "bottom"):
        p0, v = p0[::-1].copy(), v[::-1].copy()
    return _simulate(p0, v, r, w, h, num, False, cfg.speed[1]), side


def _sample_objects(rng: np.random.Generator, cfg: ShapesConfig, num_objects: int, num_frames: int,
                    is_video: bool) -> list[ShapeObject]:
    w, h = cfg.size
    # A per-scene palette of shapes and colours makes repeated types (and counts above 1) common.
    shapes = list(rng.choice(cfg.shapes, size=int(rng.integers(1, min(3, len(cfg.shapes)) + 1)), replace=False))
    colours = list(rng.choice(cfg.colours, size=int(rng.integers(1, min(3, len(cfg.colours)) + 1)), replace=False))
    objects = []
    for i in range(num_objects):
        shape, colour = str(rng.choice(shapes)), str(rng.choice(colours))
        rgb = tuple(int(c) for c in np.clip(np.array(COLOURS[colour]) + rng.integers(-12, 13, 3), 0, 255))
        size = float(rng.uniform(*cfg.object_size))
        r = size / 2
        motion, side = ("bounce" if is_video else "static"), None
        if is_video:
            if cfg.enter_leave and rng.random() < cfg.enter_leave_prob:
                xy, side = _enter_path(rng, r, w, h, num_frames, cfg)
                motion = str(rng.choice(["enter", "leave"]))
                if motion == "leave":
                    xy = xy[::-1].copy()
            else:
                p0 = np.array([rng.uniform(r, max(r, w - r)), rng.uniform(r, max(r, h - r))])
                xy = _simulate(p0, _random_velocity(rng, cfg.speed), r, w, h, num_frames, True, cfg.speed[1])
        else:
            if cfg.enter_leave and rng.random() < cfg.enter_leave_prob:  # cut by the border
                p0 = np.array([rng.uniform(0, w), rng.uniform(0, h)])
            else:
                p0 = np.array([rng.uniform(r, max(r, w - r)), rng.uniform(r, max(r, h - r))])
            xy = p0[None]
        objects.append(ShapeObject(i + 1, shape, colour, rgb, size, i, motion, side, xy))
    return objects


def _add_occlusion_event(rng: np.random.Generator, cfg: ShapesConfig, objects: list[ShapeObject],
                         num_frames: int) -> None:
    """Send a bigger shape across a smaller one so that it covers it at one middle instant."""
    w, h = cfg.size
    movers = [o for o in objects if o.motion == "bounce"]
    if len(movers) < 2 or num_frames < 3:
        return
    a, b = (movers[int(i)] for i in rng.choice(len(movers), 2, replace=False))
    if a.size > b.size:
        a, b = b, a
    b.size = min(max(b.size, a.size * 1.5), 0.75 * min(w, h))
    covering = [s for s in ("square", "circle") if s in cfg.shapes]
    if covering and b.shape not in covering:
        b.shape = str(rng.choice(covering))
    if b.colour == a.colour and len(cfg.colours) > 1:
        b.colour = str(rng.choice([c for c in cfg.colours if c != a.colour]))
        b.rgb = COLOURS[b.colour]
    b.z = max(o.z for o in objects) + 1
    k = int(rng.integers(1, num_frames - 1))
    at = np.clip(a.xy[k], [b.r, b.r], [max(b.r, w - b.r), max(b.r, h - b.r)])
    v = _random_velocity(rng, cfg.speed)
    forward = _simulate(at, v, b.r, w, h, num_frames - k, True, cfg.speed[1])
    backward = _simulate(at, -v, b.r, w, h, k + 1, True, cfg.speed[1])
    b.xy = np.concatenate([backward[::-1], forward[1:]])


def _too_close(objects: list[ShapeObject], cfg: ShapesConfig) -> bool:
    """Bounding circles closer than 2 px at some instant: any two objects (no occlusion) or two of the
    same colour (they would merge into one blob). Objects off the frame are ignored."""
    w, h = cfg.size
    for i, a in enumerate(objects):
        for b in objects[i + 1:]:
            if cfg.occlusion and a.colour != b.colour:
                continue
            ra, rb = a.r * _RADII[a.shape], b.r * _RADII[b.shape]
            for pa, pb in zip(a.xy, b.xy):
                on_a = -ra < pa[0] < w + ra and -ra < pa[1] < h + ra
                on_b = -rb < pb[0] < w + rb and -rb < pb[1] < h + rb
                if on_a and on_b and np.hypot(*(pa - pb)) < ra + rb + 2:
                    return True
    return False


def _render(objects: list[ShapeObject], bg: np.ndarray, num_frames: int, min_visible: float
            ) -> tuple[np.ndarray, np.ndarray]:
    h, w = bg.shape[:2]
    frames = np.repeat(bg[None], num_frames, axis=0)  # [T, H, W, 3]
    ids = np.zeros((num_frames, h, w), np.uint16)  # [T, H, W]
    full: dict[int, list[np.ndarray]] = {}
    for obj in sorted(objects, key=lambda o: o.z):
        full[obj.id] = []
        for k in range(num_frames):
            m = _mask(obj, k, w, h)
            frames[k][m] = obj.rgb
            ids[k][m] = obj.id
            full[obj.id].append(m)
    for obj in objects:
        area = _AREAS[obj.shape] * obj.r ** 2
        obj.visible_fraction = np.zeros(num_frames)
        obj.in_frame_fraction = np.zeros(num_frames)
        obj.points, obj.occluded_by = [], []
        for k in range(num_frames):
            m = full[obj.id][k]
            vis = ids[k] == obj.id
            obj.visible_fraction[k] = min(1.0, vis.sum() / area)
            obj.in_frame_fraction[k] = min(1.0, m.sum() / area)
            obj.points.append(_point_in_mask(vis) if obj.visible_fraction[k] >= min_visible else None)
            covered = ids[k][m & ~vis]
            hidden = obj.visible_fraction[k] < min_visible <= obj.in_frame_fraction[k]
            obj.occluded_by.append(int(np.bincount(covered).argmax()) if hidden and covered.size else None)
    return frames, ids


def make_scene(rng: np.random.Generator, cfg: ShapesConfig, is_video: bool) -> Scene:
    """Sample and render one scene under the config's constraints (resampling up to a limit)."""
    w, h = cfg.size
    num_frames = int(rng.integers(cfg.num_frames[0], cfg.num_frames[1] + 1)) if is_video else 1
    num_objects = int(rng.integers(cfg.num_objects[0], cfg.num_objects[1] + 1))
    bg, bg_name = _background(rng, w, h, cfg.textured_background)
    for attempt in range(_MAX_TRIES):
        if attempt and attempt % 15 == 0 and num_objects > 1:
            num_objects -= 1  # the constraints are too tight for this many objects
        objects = _sample_objects(rng, cfg, num_objects, num_frames, is_video)
        if is_video and cfg.occlusion and rng.random() < cfg.occlusion_prob:
            _add_occlusion_event(rng, cfg, objects, num_frames)
        if _too_close(objects, cfg) and attempt < _MAX_TRIES - 1:
            continue
        frames, ids = _render(objects, bg, num_frames, cfg.min_visible)
        if is_video:
            ok = all(o.visible(cfg.min_visible).any() for o in objects)
        else:  # every object of an image is clearly visible or clearly absent
            ok = all(f >= cfg.min_visible or f == 0 for o in objects for f in o.visible_fraction)
        if ok or attempt == _MAX_TRIES - 1:
            times = np.arange(num_frames) * FRAME_STEP_S
            return Scene(w, h, times, frames, ids, objects, bg_name, cfg.min_visible, is_video)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------------
# Annotations
# ---------------------------------------------------------------------------------------------------

Query = tuple[str | None, str | None]  # (colour, shape); None = any


def query_label(query: Query, plural: bool) -> str:
    """("red", "circle") -> "red circle(s)"; (None, "star") -> "star(s)"; ("blue", None) -> "blue
    shape(s)"; (None, None) -> "shape(s)"."""
    colour, shape = query
    noun = (shape or "shape") + ("s" if plural else "")
    return f"{colour} {noun}" if colour else noun


def _matches(query: Query, obj: ShapeObject) -> bool:
    return (query[0] is None or obj.colour == query[0]) and (query[1] is None or obj.shape == query[1])


def _fmt_t(t: float) -> str:
    return f"{t:.1f}"


def _intervals(times: Sequence[float]) -> str:
    """Sorted instants 0.5 s apart -> "0.0 - 1.0, 2.5" (runs of consecutive instants)."""
    runs: list[list[float]] = []
    for t in times:
        if runs and abs(t - runs[-1][-1] - FRAME_STEP_S) < 1e-6:
            runs[-1].append(t)
        else:
            runs.append([t])
    return ", ".join(_fmt_t(r[0]) if len(r) == 1 else f"{_fmt_t(r[0])} - {_fmt_t(r[-1])}" for r in runs)


def _spoken_intervals(times: Sequence[float]) -> str:
    """Instants -> "at 0.5 s and from 1.5 to 2.5 s" (for captions)."""
    parts = []
    for run in _intervals(times).split(", "):
        a, _, b = run.partition(" - ")
        parts.append(f"from {a} to {b} s" if b else f"at {a} s")
    return " and ".join(parts)


def _where(x: float, y: float, w: int, h: int) -> str:
    col = ("left", "centre", "right")[min(2, int(3 * x / w))]
    row = ("top", "middle", "bottom")[min(2, int(3 * y / h))]
    if row == "middle":
        return "in the centre" if col == "centre" else f"on the {col}"
    return f"at the {row}" if col == "centre" else f"at the {row} {col}"


def _direction(d: np.ndarray, scale: float) -> str:
    if np.hypot(*d) < 0.02 * scale:
        return "stays almost still"
    horiz = "right" if d[0] > 0 else "left"
    vert = "down" if d[1] > 0 else "up"
    if abs(d[0]) > 2.5 * abs(d[1]):
        return f"moves {horiz}"
    if abs(d[1]) > 2.5 * abs(d[0]):
        return f"moves {vert}"
    return f"moves {vert} and to the {horiz}"


def _bounces(xy: np.ndarray) -> list[str]:
    """Edges bounced off, in order, from sign flips of the per-step displacement."""
    d = np.diff(xy, axis=0)
    out = []
    for k in range(1, len(d)):
        for a, (neg, pos) in enumerate((("left", "right"), ("top", "bottom"))):
            if d[k - 1, a] * d[k, a] < 0:
                out.append(pos if d[k - 1, a] > 0 else neg)
    return out


class _Annotator:
    def __init__(self, scene: Scene, cfg: ShapesConfig, rng: np.random.Generator):
        self.scene, self.cfg, self.rng = scene, cfg, rng
        self.seen = scene.seen()
        labels = [o.label for o in scene.objects]
        # Objects a singular label names unambiguously (the only one of its kind in the whole scene).
        self.unique = [o for o in self.seen if labels.count(o.label) == 1]

    def sample(self, items: list, n: int | None = None) -> list:
        n = self.cfg.queries_per_kind if n is None else n
        if len(items) <= n:
            return [items[int(i)] for i in self.rng.permutation(len(items))]
        return [items[int(i)] for i in self.rng.choice(len(items), n, replace=False)]

    def queries(self) -> list[Query]:
        """Distinct queries: mostly naming visible objects, some (negative_prob) naming absent ones."""
        cfg = self.cfg
        every = [(c, s) for c in cfg.colours for s in cfg.shapes] + [(c, None) for c in cfg.colours]
        every += [(None, s) for s in cfg.shapes] + [(None, None)]
        weights = {2: 0.45, 1: 0.2, 0: 0.15}  # by the number of attributes named; 1 = colour or shape
        out: list[Query] = []
        for _ in range(cfg.queries_per_kind):
            negative = self.rng.random() < cfg.negative_prob
            pool = [q for q in every if q not in out and any(_matches(q, o) for o in self.seen) != negative]
            if not pool:
                continue
            p = np.array([weights[sum(x is not None for x in q)] for q in pool])
            out.append(pool[int(self.rng.choice(len(pool), p=p / p.sum()))])
        return out

    def matches(self, query: Query) -> list[ShapeObject]:
        return [o for o in self.seen if _matches(query, o)]

    # -- grounding ------------------------------------------------------------------------------------

    def first_point(self, obj: ShapeObject) -> Point:
        k = int(np.argmax(self.scene.visible(obj)))
        x, y = obj.points[k]
        if self.scene.is_video:
            return Point(x, y, t=float(self.scene.times[k]), object_id=obj.id)
        return Point(x, y, image=0, object_id=obj.id)

    def pointing(self) -> list[Annotation]:
        out = []
        for q in self.queries():
            objs = self.matches(q)
            out.append(Annotation("pointing", label=query_label(q, plural=len(objs) != 1),
                                  points=[self.first_point(o) for o in objs]))
        return out

    def counting(self) -> list[Annotation]:
        return [Annotation("counting", label=query_label(q, plural=True),
                           points=[self.first_point(o) for o in self.matches(q)]) for q in self.queries()]

    def tracking(self) -> list[Annotation]:
        out = []
        for q in self.queries():
            objs = self.matches(q)
            label = query_label(q, plural=len(objs) != 1)
            tracks = [Track(o.id, label, [Point(*o.points[k], t=float(t), object_id=o.id)
                                          for k, t in enumerate(self.scene.times) if o.points[k] is not None])
                      for o in objs]
            out.append(Annotation("tracking", label=label, tracks=tracks))
        return out

    # -- time -----------------------------------------------------------------------------------------

    def visible_times(self, obj: ShapeObject) -> list[float]:
        return [float(t) for t, v in zip(self.scene.times, self.scene.visible(obj)) if v]

    def hidden_times(self, obj: ShapeObject) -> list[float]:
        return [float(t) for t, occ in zip(self.scene.times, obj.occluded_by) if occ is not None]

    def temporal(self) -> list[Annotation]:
        items = []
        for o in self.unique:
            vis = self.visible_times(o)
            if o.motion == "enter":
                items.append((f"When does the {o.label} enter the frame?", _fmt_t(vis[0])))
            if o.motion == "leave":
                items.append((f"When does the {o.label} leave the frame?", _fmt_t(vis[-1])))
            hidden = self.hidden_times(o)
            if hidden:
                items.append((f"When is the {o.label} hidden behind another shape?", _intervals(hidden)))
            items.append((f"When is the {o.label} visible?", _intervals(vis)))
        # Prefer event questions over the always-available "visible" ones.
        events = [i for i in items if "visible?" not in i[0]]
        chosen = self.sample(events)
        chosen += self.sample([i for i in items if i not in events], self.cfg.queries_per_kind - len(chosen))
        return [Annotation("temporal", question=q, answer=a) for q, a in chosen]

    # -- language -------------------------------------------------------------------------------------

    def qa(self) -> list[Annotation]:
        cfg, seen = self.cfg, self.seen
        where = " in the video" if self.scene.is_video else ""
        # Short-answer counts are worded apart from the counting prompts ("How many X are there?"), whose
        # answers point: the same question with two answer formats would teach the model to mix them.
        items: list[tuple[str, str, list[str] | None]] = [
            (f"Give the number of shapes{where} as a single number.", str(len(seen)), None)]
        q = (None, str(self.rng.choice(cfg.shapes))) if self.rng.random() < 0.5 else (str(self.rng.choice(cfg.colours)), None)
        items.append((f"Give the number of {query_label(q, True)}{where} as a single number.",
                       str(len(self.matches(q))), None))
        for shape in cfg.shapes:
            objs = [o for o in seen if o.shape == shape]
            if len(objs) == 1 and sum(o.shape == shape for o in self.scene.objects) == 1:
                items.append((f"What colour is the {shape}?", objs[0].colour, list(cfg.colours)))
        for colour in cfg.colours:
            objs = [o for o in seen if o.colour == colour]
            if len(objs) == 1 and sum(o.colour == colour for o in self.scene.objects) == 1:
                items.append((f"What shape is the {colour} object?", objs[0].shape, list(cfg.shapes)))
        label = query_label((str(self.rng.choice(cfg.colours)), str(self.rng.choice(cfg.shapes))), False)
        present = any(o.label == label for o in seen)
        items.append((f"Is there a {label}{where}?", "yes" if present else "no", None))
        for o in self.unique if self.scene.is_video else []:
            if o.motion == "enter":
                items.append((f"From which side does the {o.label} enter?", o.side, ["left", "right", "top", "bottom"]))
            items.append((f"Does the {o.label} leave the frame?", "yes" if o.motion == "leave" else "no", None))
            items.append((f"Is the {o.label} ever hidden behind another shape?",
                          "yes" if self.hidden_times(o) else "no", None))
        out = []
        for question, answer, options in self.sample(items):
            if options is not None and self.rng.random() < 0.3:
                options = [options[int(i)] for i in self.rng.permutation(len(options))]
                out.append(Annotation("qa", question=question, answer=answer, options=options))
            else:
                out.append(Annotation("qa", question=question, answer=answer))
        return out

    def names(self) -> dict[int, str]:
        """How captions call each object: "red circle", or "first red circle" when the label repeats."""
        order = sorted(self.scene.objects, key=lambda o: (int(np.argmax(self.scene.visible(o))), o.id))
        labels = [o.label for o in order]
        names = {}
        for o in order:
            same = [p for p in order if p.label == o.label]
            names[o.id] = o.label if len(same) == 1 else f"{_ORDINALS[same.index(o)]} {o.label}"
        assert len(labels) == len(names)
        return names

    def caption(self) -> list[Annotation]:
        sc = self.scene
        n = len(self.seen)
        count = f"{_NUMBERS[n] if n < len(_NUMBERS) else n} shape{'s' if n != 1 else ''}"
        if not sc.is_video:
            parts = [f"a {o.label} {_where(*o.points[0], sc.width, sc.height)}" for o in
                     sorted(self.seen, key=lambda o: (o.points[0][1] // (sc.height / 3), o.points[0][0]))]
            listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
            text = f"{count.capitalize()} on a {sc.background} background: {listed}."
            names = {o.id: o.label for o in sc.objects}
            for o in self.seen:
                if o.in_frame_fraction[0] < 0.97:
                    text += f" The {o.label} is cut off by the edge of the image."
                elif o.visible_fraction[0] < 0.97 * o.in_frame_fraction[0]:
                    front = np.bincount(sc.ids[0][_mask(o, 0, sc.width, sc.height)]).argsort()[::-1]
                    occ = next((int(i) for i in front if i not in (0, o.id)), None)
                    if occ is not None:
                        text += f" The {names[occ]} partly covers the {o.label}."
            return [Annotation("caption", answer=text)]
        dur = float(sc.times[-1])
        names = self.names()
        sentences = [f"A {dur:.1f}-second clip of {count} on a {sc.background} background."]
        order = sorted(self.seen, key=lambda o: (int(np.argmax(sc.visible(o))), o.id))
        for o in order:
            vis = self.visible_times(o)
            k0 = int(np.argmax(sc.visible(o)))
            name = names[o.id]
            if o.motion == "enter":
                s = f"The {name} enters from the {o.side} at {_fmt_t(vis[0])} s"
            else:
                s = f"The {name} starts {_where(*o.points[k0], sc.width, sc.height)}"
            step = o.xy[-1] - o.xy[-2] if o.motion == "leave" else o.xy[min(k0 + 1, len(o.xy) - 1)] - o.xy[k0]
            s += f" and {_direction(step, max(sc.width, sc.height))}"
            bounces = _bounces(o.xy) if o.motion == "bounce" else []
            if bounces:
                edges = list(dict.fromkeys(bounces))
                s += ", bouncing off the " + " and ".join(edges) + (" edge" if len(edges) == 1 else " edges")
            sentences.append(s + ".")
            hidden = self.hidden_times(o)
            if hidden:
                occ = next(i for i in o.occluded_by if i is not None)
                sentences.append(f"It is hidden behind the {names[occ]} {_spoken_intervals(hidden)}.")
            if o.motion == "leave":
                sentences.append(f"It leaves through the {o.side} edge, last seen at {_fmt_t(vis[-1])} s.")
        return [Annotation("caption", answer=" ".join(sentences))]


def annotate(scene: Scene, cfg: ShapesConfig, rng: np.random.Generator, kinds: Sequence[str] = KINDS
             ) -> list[Annotation]:
    """The annotations of a scene for the requested task kinds (video-only kinds skipped on images)."""
    ann = _Annotator(scene, cfg, rng)
    out: list[Annotation] = []
    for kind in kinds:
        if kind in VIDEO_ONLY_KINDS and not scene.is_video:
            continue
        out.extend(getattr(ann, kind)())
    for a in out:
        a.validate()
    return out


# ---------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` with fixed zip timestamps, so the same arrays give the same bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def write_video(path: Path, frames: np.ndarray, crf: int = 12) -> None:
    """Frames ``[K, H, W, 3]`` shown at instants 0, 0.5, ... -> an mp4 of duration exactly (K-1)/2 s
    that ``load_video(max_fps=2)`` samples back to the same K frames (see the module docstring)."""
    try:
        import av
    except ImportError as e:
        raise Molmo2Error("writing tiny-shapes videos needs PyAV: pip install 'molmo2[video]'") from e
    num = len(frames)
    assert num >= 2, num
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=ENCODE_FPS)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": str(crf), "preset": "ultrafast", "threads": "1"}
        total = _HOLD * (num - 1)
        for j in range(total):
            k = num - 1 if j == total - 1 else j // _HOLD
            for packet in stream.encode(av.VideoFrame.from_ndarray(frames[k], format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _ground_truth(scene: Scene, masks_path: str) -> dict:
    return {
        "masks": masks_path, "width": scene.width, "height": scene.height,
        "times": [float(t) for t in scene.times], "background": scene.background,
        "min_visible": scene.min_visible,
        "objects": [{
            "id": o.id, "shape": o.shape, "colour": o.colour, "label": o.label, "rgb": list(o.rgb),
            "size": round(o.size, 2), "motion": o.motion, "side": o.side,
            "visible": [bool(v) for v in scene.visible(o)],
            "visible_fraction": [round(float(f), 3) for f in o.visible_fraction],
            "points": [list(p) if p is not None else None for p in o.points],
            "occluded_by": list(o.occluded_by),
        } for o in scene.objects],
    }


def _check_kinds(kinds: Sequence[str] | None) -> tuple[str, ...]:
    kinds = tuple(KINDS if kinds is None else kinds)
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise Molmo2Error(f"unknown or no task kinds {bad or kinds!r}; use some of {', '.join(KINDS)}")
    return kinds


def make_example(out_dir: str | Path, index: int, config: ShapesConfig, kinds: Sequence[str] | None = None,
                 *, stream: int = 0, example_id: str | None = None) -> Example:
    """Generate example ``index`` (RNG ``default_rng([seed, index, stream])``), write its media and masks
    under ``out_dir`` and return it (paths relative to ``out_dir``)."""
    kinds = _check_kinds(kinds)
    out_dir = Path(out_dir)
    rng = np.random.default_rng([config.seed, index] + ([stream] if stream else []))
    is_video = config.media == "video" or (config.media == "mixed" and rng.random() < config.video_fraction)
    usable = [k for k in kinds if is_video or k not in VIDEO_ONLY_KINDS]
    if not usable:
        raise Molmo2Error(f"task kinds {kinds} need videos but this example is an image; add image kinds "
                          f"({', '.join(k for k in KINDS if k not in VIDEO_ONLY_KINDS)}) or use media='video'")
    for _ in range(20):  # a scene may admit no question of the requested kinds (e.g. no unique object)
        scene = make_scene(rng, config, is_video)
        annotations = annotate(scene, config, rng, usable)
        if annotations:
            break
    else:
        raise Molmo2Error(f"could not make any {'/'.join(usable)} annotation with this config in 20 scenes; "
                          "allow more shapes/colours or other task kinds")
    ex_id = example_id or f"shapes_s{config.seed}_{index:07d}"
    (out_dir / "media").mkdir(parents=True, exist_ok=True)
    (out_dir / "gt").mkdir(parents=True, exist_ok=True)
    if is_video:
        media_path = f"media/{ex_id}.mp4"
        write_video(out_dir / media_path, scene.frames, config.crf)
    else:
        media_path = f"media/{ex_id}.png"
        Image.fromarray(scene.frames[0]).save(out_dir / media_path, compress_level=1)
    masks_path = f"gt/{ex_id}.npz"
    save_npz(out_dir / masks_path, ids=scene.ids, times=scene.times)
    return Example(id=ex_id, media=Media("video" if is_video else "image", [media_path]), annotations=annotations,
                   source="tiny-shapes", ground_truth=_ground_truth(scene, masks_path), root=out_dir)


def generate_dataset(out_dir: str | Path, num_examples: int, config: ShapesConfig | None = None,
                     kinds: Sequence[str] | None = None, *, progress: bool = True) -> Path:
    """Write ``num_examples`` examples: ``out_dir/data.jsonl`` + ``media/`` + ``gt/``, and the settings used
    in ``out_dir/shapes_config.json`` (``ShapesConfig(**d["config"])`` rebuilds the config). Returns the
    manifest path."""
    config = config or ShapesConfig()
    kinds = _check_kinds(kinds)
    if int(num_examples) != num_examples or num_examples < 1:
        raise Molmo2Error(f"num_examples must be a positive integer, got {num_examples!r}")
    out_dir = Path(out_dir)
    indices = range(int(num_examples))
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=f"tiny-shapes ({config.media})", unit="ex")
    manifest = out_dir / "data.jsonl"
    write_jsonl(manifest, (make_example(out_dir, i, config, kinds) for i in indices))
    settings = {"generator": "molmo2.data.shapes", "num_examples": int(num_examples), "kinds": list(kinds),
                "config": asdict(config)}
    (out_dir / "shapes_config.json").write_text(json.dumps(settings, indent=1) + "\n")
    return manifest


def make_demo_clip(out_dir: str | Path, config: ShapesConfig | None = None, kinds: Sequence[str] | None = None
                   ) -> Example:
    """One held-out video (an RNG stream no training example uses) with its ground truth, written to
    ``out_dir`` with a one-line ``demo.jsonl``. Default: 8 instants, 2-3 objects, occlusion and
    entering/leaving on."""
    config = config or ShapesConfig(media="video", num_frames=(8, 8), num_objects=(2, 3),
                                    occlusion_prob=1.0, enter_leave_prob=0.5)
    if config.media != "video":
        config = replace(config, media="video")
    ex = make_example(out_dir, 0, config, kinds, stream=1, example_id=f"shapes_demo_s{config.seed}")
    write_jsonl(Path(out_dir) / "demo.jsonl", [ex])
    return ex


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m molmo2.data.shapes", description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="output folder (data.jsonl, media/, gt/)")
    p.add_argument("--num", type=int, default=100, help="number of examples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", choices=sorted(PRESETS), help="a curriculum stage (default: full-difficulty images)")
    g = p.add_mutually_exclusive_group()
    for m in ("image", "video", "mixed"):
        g.add_argument(f"--{m}", dest="media", action="store_const", const=m)
    p.add_argument("--size", type=int, help="image side in pixels (default 128)")
    p.add_argument("--kinds", help=f"comma-separated task kinds (default: all of {','.join(KINDS)})")
    args = p.parse_args(argv)
    overrides: dict = {"seed": args.seed}
    if args.media:
        overrides["media"] = args.media
    if args.size:
        overrides["image_size"] = args.size
    config = preset(args.preset, **overrides) if args.preset else ShapesConfig(**overrides)
    kinds = args.kinds.split(",") if args.kinds else None
    print(generate_dataset(args.out, args.num, config, kinds))


if __name__ == "__main__":
    main()
