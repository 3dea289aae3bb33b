"""The one example schema shared by training, evaluation and the synthetic data generator.

A dataset is a JSONL manifest: one :class:`Example` per line, media paths relative to the manifest's
folder. An example is one medium (an image, an image set, a video clip, or nothing for text-only)
plus a list of annotations about it. Annotations of one example become the branches of a message
tree in training (they share the visual prefix) and separate questions in evaluation.

An annotation is either *structured* (a task ``kind`` plus the fields that kind needs; the trainer
writes the prompt from a template and the target with the grounding formatter, so targets always
match the released formats) or *explicit* (``messages``, a ready conversation). Structured fields:

=========== ================================================================================
kind        fields
=========== ================================================================================
caption     ``answer`` (the caption text)
qa          ``question``, ``answer``; optional ``options`` (multiple choice, answer is one of them)
pointing    ``label``, ``points`` (may be empty: "There are none.")
counting    ``label``, ``points`` (the objects counted; the answer states ``len(points)``)
tracking    ``label``, ``tracks``
temporal    ``question``, ``answer`` ("when does X happen": answer in seconds, e.g. "2.5 - 4.0")
text        ``messages``
=========== ================================================================================

Points and tracks are in **pixels of the original media** with the conventions of
:mod:`molmo2.grounding.types` (``t`` seconds for video, 0-based ``image`` for image sets). A video's
``t`` values must be instants the frame sampler produces (for the shipped synthetic data, the
video's own frame times).

``ground_truth`` holds evaluation-only data the trainer ignores, e.g. ``{"masks": "gt/x.npz"}``: an
``npz`` whose ``ids`` array ``[T, H, W]`` (uint16) is the visible-instance map per sampled frame
(0 = background, else the object id), with ``times`` ``[T]`` in seconds.

Kept stdlib-only so that any layer (train, eval, data generators) may import it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from molmo2.errors import Molmo2Error
from molmo2.grounding.types import Point, Track

TaskKind = Literal["caption", "qa", "pointing", "counting", "tracking", "temporal", "text"]
TASK_KINDS: tuple[str, ...] = ("caption", "qa", "pointing", "counting", "tracking", "temporal", "text")
MediaKind = Literal["image", "images", "video", "none"]


class DataError(Molmo2Error):
    """A manifest line or annotation that does not follow the schema."""


@dataclass(slots=True)
class Media:
    """``kind`` image/video: one path; images: several; none: text only. ``clip`` = (start, end) s."""

    kind: MediaKind = "none"
    paths: list[str] = field(default_factory=list)
    clip: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "paths": list(self.paths), "clip": list(self.clip) if self.clip else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Media:
        if not d:
            return cls()
        kind = d.get("kind", "none")
        if kind not in ("image", "images", "video", "none"):
            raise DataError(f"media kind must be image, images, video or none, got {kind!r}")
        paths = [str(p) for p in d.get("paths", [])]
        if kind in ("image", "video") and len(paths) != 1:
            raise DataError(f"media kind {kind!r} needs exactly one path, got {len(paths)}")
        if kind == "images" and not paths:
            raise DataError("media kind 'images' needs at least one path")
        clip = d.get("clip")
        return cls(kind, paths, (float(clip[0]), float(clip[1])) if clip else None)


@dataclass(slots=True)
class Annotation:
    kind: TaskKind
    messages: list[dict[str, str]] | None = None
    question: str | None = None
    answer: str | None = None
    options: list[str] | None = None
    label: str | None = None
    points: list[Point] | None = None
    tracks: list[Track] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        for name in ("messages", "question", "answer", "options", "label"):
            if getattr(self, name) is not None:
                d[name] = getattr(self, name)
        if self.points is not None:
            d["points"] = [p.to_dict() for p in self.points]
        if self.tracks is not None:
            d["tracks"] = [t.to_dict() for t in self.tracks]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Annotation:
        kind = d.get("kind")
        if kind not in TASK_KINDS:
            raise DataError(f"annotation kind must be one of {', '.join(TASK_KINDS)}, got {kind!r}")
        ann = cls(
            kind=kind,
            messages=d.get("messages"),
            question=d.get("question"),
            answer=d.get("answer"),
            options=d.get("options"),
            label=d.get("label"),
            points=[Point.from_dict(p) for p in d["points"]] if d.get("points") is not None else None,
            tracks=[Track.from_dict(t) for t in d["tracks"]] if d.get("tracks") is not None else None,
        )
        ann.validate()
        return ann

    def validate(self) -> None:
        need = {
            "caption": ("answer",), "qa": ("question", "answer"), "pointing": ("label", "points"),
            "counting": ("label", "points"), "tracking": ("label", "tracks"),
            "temporal": ("question", "answer"), "text": ("messages",),
        }[self.kind]
        if self.messages is not None:
            return
        missing = [n for n in need if getattr(self, n) is None]
        if missing:
            raise DataError(f"a {self.kind!r} annotation needs {', '.join(missing)} (or explicit 'messages')")


@dataclass(slots=True)
class Example:
    id: str
    media: Media
    annotations: list[Annotation]
    source: str = ""
    ground_truth: dict[str, Any] = field(default_factory=dict)
    root: Path | None = None  # folder that relative media paths are resolved against (not serialized)

    def media_paths(self) -> list[Path]:
        base = self.root or Path(".")
        return [p if p.is_absolute() else base / p for p in map(Path, self.media.paths)]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "media": self.media.to_dict(),
                "annotations": [a.to_dict() for a in self.annotations], "ground_truth": self.ground_truth}

    @classmethod
    def from_dict(cls, d: dict[str, Any], root: Path | None = None) -> Example:
        if "id" not in d:
            raise DataError("an example needs an 'id'")
        anns = d.get("annotations") or []
        if not anns:
            raise DataError(f"example {d['id']!r} has no annotations")
        return cls(id=str(d["id"]), media=Media.from_dict(d.get("media")),
                   annotations=[Annotation.from_dict(a) for a in anns], source=d.get("source", ""),
                   ground_truth=d.get("ground_truth") or {}, root=root)


def read_jsonl(path: str | Path) -> Iterator[Example]:
    """Yield the examples of a manifest; a bad line raises :class:`DataError` naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest not found: {path}")
    with path.open() as f:
        for num, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield Example.from_dict(json.loads(line), root=path.parent)
            except (json.JSONDecodeError, DataError, KeyError, TypeError, ValueError) as e:
                raise DataError(f"{path}:{num}: {e}") from None


def write_jsonl(path: str | Path, examples: Iterable[Example]) -> int:
    """Write examples atomically (tmp file + rename); returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    num = 0
    with tmp.open("w") as f:
        for ex in examples:
            f.write(json.dumps(ex.to_dict()) + "\n")
            num += 1
    tmp.replace(path)
    return num
