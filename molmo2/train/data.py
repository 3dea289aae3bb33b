"""Training data: manifests -> a deterministic, resumable stream of tokenized message trees.

- ``Source``: one JSONL manifest (``molmo2.data.schema``), optionally treated as a different size.
- ``Mixture``: groups with rates; inside a group each source gets ``sqrt(size)`` (training.md §5.2).
  Stream index k draws its source from ``default_rng([seed, k])`` and walks that source in a
  per-epoch permutation, so the stream is a pure function of (seed, k, per-source counters): the
  state to resume is a few integers.
- ``Preparer``: an ``Example`` -> ``TrainItem`` (media decoded and cut into crops/frames by the
  processor, annotations formatted by ``prompts``, branches linearized by ``trees``). Bad examples
  (missing or corrupt media, points outside the image, examples longer than the row) raise
  ``DataError``; the stream counts and skips them, never truncating a target.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from molmo2.config import Molmo2Config
from molmo2.data.schema import Annotation, DataError, Example, read_jsonl
from molmo2.errors import Molmo2Error
from molmo2.grounding.types import Point, Track
from molmo2.processing import Molmo2Processor
from molmo2.train import prompts
from molmo2.train.trees import TreeSettings, TreeTokens, build_tree, tokenize_conversation


@dataclass
class TrainItem:
    key: tuple[int, int, int]  # (stream index, source, index in source): enough to rebuild the item
    example_id: str
    tree: TreeTokens
    is_visual: np.ndarray  # [L] bool
    pixel_values: torch.Tensor | None  # [N, P, patch_dim]
    pooling: torch.Tensor | None  # [M, K], local to this item

    @property
    def num_tokens(self) -> int:
        return len(self.tree)

    @property
    def num_crops(self) -> int:
        return 0 if self.pixel_values is None else int(self.pixel_values.shape[0])


@dataclass
class Source:
    path: str
    group: str = "default"
    size: int | None = None  # treat as this many examples when sizing the mixture
    examples: list[Example] = field(default_factory=list, repr=False)

    def load(self) -> Source:
        self.examples = list(read_jsonl(self.path))
        if not self.examples:
            raise DataError(f"{self.path} has no examples")
        return self


class Mixture:
    def __init__(self, sources: list[Source], group_rates: dict[str, float] | None = None, seed: int = 0):
        if not sources:
            raise Molmo2Error("a training mixture needs at least one source manifest")
        self.sources = [s if s.examples else s.load() for s in sources]
        self.seed = seed
        groups = sorted({s.group for s in self.sources})
        rates = group_rates or {g: 1.0 for g in groups}
        unknown = set(groups) - set(rates)
        if unknown:
            raise Molmo2Error(f"sources in groups {sorted(unknown)} have no rate; rates given for {sorted(rates)}")
        probs = np.zeros(len(self.sources))
        for g in groups:
            members = [i for i, s in enumerate(self.sources) if s.group == g]
            sizes = np.array([math.sqrt(self.sources[i].size or len(self.sources[i].examples)) for i in members])
            probs[members] = rates[g] * sizes / sizes.sum()
        self.probs = probs / probs.sum()
        self.counts = [0] * len(self.sources)
        self.next_index = 0

    def _permutation(self, source: int, epoch: int) -> np.ndarray:
        n = len(self.sources[source].examples)
        return np.random.default_rng([self.seed, source, epoch]).permutation(n)

    def draw(self) -> tuple[tuple[int, int, int], Example]:
        """The next ((stream index, source, index in source), example)."""
        k = self.next_index
        src = int(np.random.default_rng([self.seed, k]).choice(len(self.sources), p=self.probs))
        n = len(self.sources[src].examples)
        c = self.counts[src]
        idx = int(self._permutation(src, c // n)[c % n])
        self.counts[src] += 1
        self.next_index += 1
        return (k, src, idx), self.sources[src].examples[idx]

    def state_dict(self) -> dict:
        return {"next_index": self.next_index, "counts": list(self.counts)}

    def load_state_dict(self, state: dict) -> None:
        self.next_index = int(state["next_index"])
        self.counts = [int(c) for c in state["counts"]]

    def example(self, source: int, index: int) -> Example:
        return self.sources[source].examples[index]


@dataclass
class DataSettings:
    max_seq_len: int = 4096
    max_crops: int = 8  # per image (the processor's max_crops); rows have their own budget
    max_frames: int = 16
    max_fps: float = 2.0
    weighting: str = "none"


class Preparer:
    def __init__(self, processor: Molmo2Processor, cfg: Molmo2Config, settings: DataSettings, seed: int = 0):
        self.processor = processor
        self.settings = settings
        self.seed = seed
        self.tree_settings = TreeSettings(max_seq_len=settings.max_seq_len, weighting=settings.weighting)
        self.visual_ids = np.array(cfg.visual_token_ids, np.int64)

    def __call__(self, key: tuple[int, int, int], ex: Example) -> TrainItem:
        rng = np.random.default_rng([self.seed, key[0], 1])
        proc = self.processor
        kind = ex.media.kind
        paths = ex.media_paths()
        for p in paths:
            if not p.is_file():
                raise DataError(f"media file not found: {p}")
        frames = timestamps = None
        images: list = []
        if kind == "video":
            from molmo2.processing.video import load_video

            video = load_video(paths[0], max_frames=self.settings.max_frames, max_fps=self.settings.max_fps,
                               clip=ex.media.clip)
            frames, timestamps = video.frames, video.timestamps
            placeholder = "<|video|>"
        elif kind in ("image", "images"):
            images = paths
            placeholder = "<|image|>" if len(paths) == 1 else "".join(f"Image {i + 1}<|image|>" for i in range(len(paths)))
        else:
            placeholder = ""
        enc = proc.encode(placeholder, images, video_frames=frames, timestamps=timestamps)
        sizes = enc.media_sizes or [(1.0, 1.0)]
        offset = ex.media.clip[0] if ex.media.clip else 0.0
        branches = []
        for ann in ex.annotations:
            ann = _fit_annotation(ann, sizes, timestamps, offset)
            msgs = prompts.conversation(ann, sizes, kind, rng)
            b = tokenize_conversation(msgs, proc.tokenizer.encode, proc.tokenizer.eos_id)
            b.kind = ann.kind
            branches.append(b)
        tree = build_tree(enc.input_ids.tolist(), branches, self.tree_settings, rng)
        is_visual = np.isin(tree.input_ids, self.visual_ids)
        return TrainItem(key, ex.id, tree, is_visual, enc.pixel_values, enc.pooling)


def _fit_annotation(ann: Annotation, sizes, timestamps, offset: float) -> Annotation:
    """Check points against the media and move video times onto the sampled clip's timeline.

    Points outside the image raise (the example is skipped and counted). Video points at instants the
    sampler did not produce are dropped (training.md §5.5: only annotation frames within 0.01 s of a
    sampled frame are kept)."""
    if ann.points is None and ann.tracks is None:
        return ann
    sampled = None if timestamps is None else np.asarray(timestamps)

    def fix(p: Point) -> Point | None:
        w, h = sizes[p.image or 0] if p.image is not None and p.image < len(sizes) else sizes[0]
        if not (0 <= p.x <= w and 0 <= p.y <= h):
            raise DataError(f"point ({p.x}, {p.y}) lies outside the {w}x{h} media")
        if p.t is None:
            return p
        if sampled is None:
            raise DataError("a point has a timestamp but the example has no video")
        t = p.t - offset
        j = int(np.argmin(np.abs(sampled - t)))
        if abs(sampled[j] - t) > 0.01:
            return None
        return Point(p.x, p.y, float(sampled[j]), p.image, p.object_id, p.label, p.alt)

    points = None if ann.points is None else [q for q in map(fix, ann.points) if q is not None]
    tracks = None
    if ann.tracks is not None:
        tracks = [Track(t.object_id, t.label, [q for q in map(fix, t.points) if q is not None], t.alt)
                  for t in ann.tracks]
    return Annotation(ann.kind, ann.messages, ann.question, ann.answer, ann.options, ann.label, points, tracks)


class Stream:
    """Mixture -> prepared items, skipping bad examples with a counted warning.

    With several ranks, rank r prepares the examples whose stream index is r modulo the world size,
    so the union over ranks is exactly the single-process stream."""

    def __init__(self, mixture: Mixture, prepare: Preparer, fits=None, log=print, rank: int = 0, world: int = 1):
        self.mixture = mixture
        self.rank, self.world = rank, world
        self.prepare = prepare
        self.fits = fits or (lambda item: True)
        self.skipped: Counter[str] = Counter()
        self.log = log

    def item_at(self, key: tuple[int, int, int], ex: Example | None = None) -> TrainItem | None:
        ex = ex if ex is not None else self.mixture.example(key[1], key[2])
        try:
            item = self.prepare(key, ex)
        except (Molmo2Error, OSError) as e:  # MediaError, DataError, TooLong, unreadable files
            self._skip(ex, type(e).__name__, str(e))
            return None
        if not self.fits(item):
            self._skip(ex, "TooLong", f"{item.num_tokens} tokens / {item.num_crops} crops exceed one row")
            return None
        return item

    def _skip(self, ex: Example, reason: str, msg: str) -> None:
        self.skipped[reason] += 1
        n = sum(self.skipped.values())
        if n <= 10 or n % 100 == 0:
            self.log(f"warning: skipped example {ex.id!r} ({reason}: {msg}); {n} skipped so far")

    def __iter__(self) -> Iterator[TrainItem]:
        while True:
            key, ex = self.mixture.draw()  # every rank walks the whole stream (cheap) ...
            if key[0] % self.world != self.rank:  # ... and prepares its own share only
                continue
            item = self.item_at(key, ex)
            if item is not None:
                yield item

