"""Annotations -> conversations: the prompt templates per task kind and the targets they answer with.

Targets are written with the grounding formatter, so a trained model answers in exactly the
released html-v2 formats (model.md §7) and ``molmo2.grounding.parse`` reads them back. Templates follow
the released SFT prompts (training.md §5.4): demo styles (captions, pointing, counting, tracking, QA)
carry no ``style:`` prefix. The first template of each list is the canonical one the inference
pipeline asks with (the tuples live in ``molmo2.processing.prompts``, shared with inference).
"""

from __future__ import annotations

import numpy as np

from molmo2.data.schema import Annotation, DataError
from molmo2.grounding.format import format_points, format_tracks
from molmo2.grounding.types import Size
from molmo2.processing.prompts import CAPTION_PROMPTS, COUNT_PROMPTS, POINT_PROMPTS, TRACK_PROMPTS

LETTERS = "ABCDEFGHIJ"


def _choose(options: tuple[str, ...], rng: np.random.Generator | None) -> str:
    return options[0] if rng is None else options[int(rng.integers(len(options)))]


def conversation(
    ann: Annotation, sizes: list[Size], media_kind: str, rng: np.random.Generator | None = None
) -> list[dict[str, str]]:
    """One annotation as ``[{"role": "user"|"assistant", "content": str}, ...]``.

    ``sizes``: (width, height) of each image or of the video frames, for point coordinates.
    ``rng`` picks a template; ``None`` picks the canonical one (evaluation, tests).
    """
    if ann.messages is not None:
        msgs = [{"role": m["role"], "content": m["content"]} for m in ann.messages]
        if not msgs or msgs[-1]["role"] != "assistant":
            raise DataError("explicit messages must alternate user/assistant and end with an assistant turn")
        return msgs
    size_arg = sizes if len(sizes) > 1 else sizes[0]
    video = media_kind == "video"
    if ann.kind == "pointing":
        q = _choose(POINT_PROMPTS, rng).format(label=ann.label)
        a = format_points(ann.points, size_arg, ann.label, mode="point")
    elif ann.kind == "counting":
        q = _choose(COUNT_PROMPTS, rng).format(label=ann.label)
        a = format_points(ann.points, size_arg, ann.label, mode="point_then_count")
    elif ann.kind == "tracking":
        if not video:
            raise DataError("a tracking annotation needs a video")
        q = _choose(TRACK_PROMPTS, rng).format(label=ann.label)
        a = format_tracks(ann.tracks, sizes[0], ann.label)
    elif ann.kind == "caption":
        q = _choose(CAPTION_PROMPTS["video" if video else "image"], rng)
        a = ann.answer
    elif ann.kind in ("qa", "temporal"):
        q, a = ann.question, ann.answer
        if ann.options:
            if a not in ann.options:
                raise DataError(f"the answer {a!r} is not one of the options {ann.options}")
            q = q + "\n" + "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(ann.options))
            a = f"{LETTERS[ann.options.index(a)]}. {a}"
    else:
        raise DataError(f"a {ann.kind!r} annotation needs explicit messages")
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
