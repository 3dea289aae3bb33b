"""Typed results of grounded answers: points, tracks, counts, and their JSON form.

The model writes coordinates as integers 0..1000 normalized by the media size; everything here is
already converted back to **pixels of the original image or video frame** (x to the right, y down,
origin at the top-left corner), so callers never see the 0..1000 scale.

Which medium a point belongs to:

- single image: ``image == 0``, ``t is None``
- image set: ``image`` is the **0-based** index into the list of images you passed (the model's text
  uses 1-based keys; ``parse`` and ``format_points`` convert), ``t is None``
- video: ``t`` is the timestamp in seconds (as written by the model, 0.1 s resolution), ``image is None``

JSON schema of ``GroundingResult.to_dict()`` (every key is always present; absent values are ``null``)::

    {
      "text":   str,                      # the answer as generated, tags included
      "sizes":  [[width, height], ...],   # pixels; one entry per image (one for a single image/video)
      "points": [Point, ...],             # from <points>/<point> tags and Click(x, y), in text order
      "tracks": [                         # from <tracks> tags, one entry per object
        {"object_id": int, "label": str | null, "alt": str | null, "points": [Point, ...]}  # by time
      ],
      "count":  {"stated": int | null,    # number the text states ("... a total of 3.", "There are 3",
                                          #   a bare "3"; "There are none." -> 0); null if none stated
                 "pointed": int},         # distinct objects pointed at: distinct ids per <points> tag,
                                          #   + one per track, + one per legacy point
      "errors": [str, ...]                # parts that did not parse or were dropped, human readable
    }

    Point = {"x": float, "y": float,      # pixels
             "t": float | null,           # seconds (video only)
             "image": int | null,         # 0-based image index (images only)
             "object_id": int | null,     # the id written by the model (1-based); the n of xn/yn for
                                          #   legacy <points x1= y1=...>; null for <point> and Click
             "label": str | null,         # text between the tags, e.g. "dogs"
             "alt": str | null}           # the tag's alt="..." attribute

``GroundingResult.from_dict`` reads the same structure back.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Size = tuple[float, float]  # (width, height) in pixels


@dataclass(frozen=True, slots=True)
class Point:
    """One grounded point in pixels of the original media. See the module docstring for t/image."""

    x: float
    y: float
    t: float | None = None
    image: int | None = None
    object_id: int | None = None
    label: str | None = None
    alt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "x": self.x,
            "y": self.y,
            "t": self.t,
            "image": self.image,
            "object_id": self.object_id,
            "label": self.label,
            "alt": self.alt,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Point:
        return cls(
            x=float(d["x"]),
            y=float(d["y"]),
            t=None if d.get("t") is None else float(d["t"]),
            image=None if d.get("image") is None else int(d["image"]),
            object_id=None if d.get("object_id") is None else int(d["object_id"]),
            label=d.get("label"),
            alt=d.get("alt"),
        )


@dataclass(slots=True)
class Track:
    """One object followed through a video: its points (one per timestamp it is visible), sorted by t."""

    object_id: int
    label: str | None
    points: list[Point]
    alt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "object_id": self.object_id,
            "label": self.label,
            "alt": self.alt,
            "points": [p.to_dict() for p in self.points],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Track:
        return cls(
            object_id=int(d["object_id"]),
            label=d.get("label"),
            alt=d.get("alt"),
            points=[Point.from_dict(p) for p in d.get("points", [])],
        )


@dataclass(frozen=True, slots=True)
class Count:
    """How many objects an answer reports.

    ``stated`` is the number written in the text (None when the answer states none); ``pointed`` is the
    number of distinct objects actually pointed at or tracked. They differ when the model miscounts, when
    points fall outside the image, or when the output was cut off.
    """

    stated: int | None
    pointed: int

    @property
    def value(self) -> int:
        """The stated count if there is one, else the pointed count."""
        return self.pointed if self.stated is None else self.stated

    def to_dict(self) -> dict[str, Any]:
        return {"stated": self.stated, "pointed": self.pointed}


@dataclass(slots=True)
class GroundingResult:
    """Everything ``parse`` recovered from one answer. ``errors`` lists what it could not use."""

    text: str
    sizes: list[Size]
    points: list[Point] = field(default_factory=list)
    tracks: list[Track] = field(default_factory=list)
    count: Count = field(default_factory=lambda: Count(None, 0))
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; schema in the module docstring of ``molmo2.grounding.types``."""
        return {
            "text": self.text,
            "sizes": [[w, h] for w, h in self.sizes],
            "points": [p.to_dict() for p in self.points],
            "tracks": [t.to_dict() for t in self.tracks],
            "count": self.count.to_dict(),
            "errors": list(self.errors),
        }

    def shift_times(self, seconds: float) -> GroundingResult:
        """Move every video point's and track point's time by ``seconds`` (in place; returns ``self``):
        answers about a clip are timed from the clip's start, this puts them on the video's timeline."""
        def moved(p: Point) -> Point:
            return p if p.t is None else dataclasses.replace(p, t=round(p.t + seconds, 6))

        self.points = [moved(p) for p in self.points]
        for track in self.tracks:
            track.points = [moved(p) for p in track.points]
        return self

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GroundingResult:
        count = d.get("count") or {}
        return cls(
            text=d.get("text", ""),
            sizes=[(float(w), float(h)) for w, h in d.get("sizes", [])],
            points=[Point.from_dict(p) for p in d.get("points", [])],
            tracks=[Track.from_dict(t) for t in d.get("tracks", [])],
            count=Count(
                stated=None if count.get("stated") is None else int(count["stated"]),
                pointed=int(count.get("pointed", 0)),
            ),
            errors=list(d.get("errors", [])),
        )


def normalize_sizes(sizes: Size | Sequence[Size]) -> tuple[list[Size], bool]:
    """``(w, h)`` or ``[(w, h), ...]`` -> (list of (float w, float h), is_image_set).

    Raises ``ValueError`` for anything else, or for a non-positive width/height: sizes come from the
    caller, not the model, so a bad one is a programming error worth stopping on.
    """

    def is_number(v: object) -> bool:
        return isinstance(v, numbers.Real) and not isinstance(v, bool)

    def check(pair: object) -> Size:
        if not hasattr(pair, "__len__") or len(pair) != 2:  # type: ignore[arg-type]
            raise ValueError(f"each size must be (width, height) in pixels, got {pair!r}")
        w, h = pair  # type: ignore[misc]
        if not (is_number(w) and is_number(h)) or not (w > 0 and h > 0):
            raise ValueError(f"width and height must be positive numbers of pixels, got {pair!r}")
        return float(w), float(h)

    try:
        items = list(sizes)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"sizes must be (width, height) or a list of them, got {sizes!r}") from None
    if len(items) == 2 and all(is_number(v) for v in items):
        return [check(items)], False
    if not items:
        raise ValueError("sizes is empty: pass (width, height), or one (width, height) per image")
    return [check(p) for p in items], True
