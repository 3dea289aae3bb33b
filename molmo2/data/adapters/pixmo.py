"""PixMo (images by URL): Points, Count, Cap, AskModelAnything, CapQA -> one Example per image.

Sources read (released rows on the hub, and the grouped copies the official ``download()`` writes with
``save_to_disk``, where one row holds every annotation of an image as lists):

=========================== ==================================================================================
adapter                     rows (fields used)
=========================== ==================================================================================
pixmo-points                ``allenai/pixmo-points``: ``image_url``, ``label``, ``points`` [{x, y}]; grouped by
                            image, one ``pointing`` annotation per label (empty points: "There are none.")
pixmo-count                 ``allenai/pixmo-count``: ``image_url``, ``label``, ``count``, ``points`` (a
                            ``Sequence`` feature: {x: [...], y: [...]}); one ``counting`` annotation per row
pixmo-cap                   ``allenai/pixmo-cap``: ``image_url``, ``caption`` (``transcripts`` unused); ``caption``
pixmo-ask-model-anything    ``allenai/pixmo-ask-model-anything``: ``image_url``, ``question``, ``answer``; one
                            ``qa`` per row, grouped by image
pixmo-cap-qa                ``allenai/pixmo-cap-qa``: ``image_url``, ``question``, ``answer``; ``question`` holds
                            the dialogue so far as ``[USER] q1 [ASSISTANT] a1 [USER] q2 [ASSISTANT]``:
                            single-turn -> ``qa``, multi-turn -> explicit ``messages``
=========================== ==================================================================================

Images: ``--media-root`` is the download folder of the official ``download_pixmo_urls`` (files named by
the sha256 of their URL, with or without an extension); a grouped local copy's ``image`` column (the
cached file's path) is used first, then its file name under ``--media-root``.

Coordinates (checked against the official loaders, ``olmo/data/pixmo_datasets.py``, allenai/molmo2 and
allenai/molmo): **pixmo-points** are percent of the image (the loader sets ``point_scale=100``; its
dataset card says "pixels", which the code contradicts — a value outside 0-100 makes the row bad, so a
wrong guess cannot pass silently); **pixmo-count** points are pixels (the loader sets no
``point_scale``, so the formatter divides by the image size; the card says pixels too). Pixel points
outside the image are a bad row.

Not converted: PixMo-Cap ``transcripts`` (the pre-training "transcript" branch); the official
"No pointing:" prefixes the loader adds at random to counting questions in QA sets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from molmo2.data.adapters._base import (
    Bad,
    Context,
    Result,
    Row,
    RowError,
    entries,
    find_pixmo_image,
    group_rows,
    peek,
    percent_to_pixels,
    where,
    xy_list,
)
from molmo2.data.schema import Annotation, Example, Media
from molmo2.grounding.types import Point


def _image_example(ctx: Context, key: str, path: Path, anns: list[Annotation]) -> Example:
    return Example(id=key, media=Media("image", [ctx.media_path(path)]), annotations=anns, source=ctx.source)


def _pixel_points(pts: list[tuple[float, float]], size: tuple[int, int], what: str) -> list[Point]:
    w, h = size
    for x, y in pts:
        if not (0 <= x <= w and 0 <= y <= h):
            raise RowError(f"{what} has a point ({x}, {y}) outside the {w}x{h} image")
    return [Point(x, y) for x, y in pts]


def _grouped(rows: Iterable[tuple[int, Row]], ctx: Context, build) -> Iterator[Result]:
    for url, group in group_rows(rows, lambda r: r.get("image_url")).items():
        nums = [n for n, _ in group]
        try:
            if not url:
                raise RowError("no image_url")
            path = find_pixmo_image(ctx, group[0][1])
            size = ctx.image_size(path)
            anns = [a for n, row in group for a in build(row, size, n)]
            if not anns:
                raise RowError("no usable annotation")
            yield _image_example(ctx, f"{ctx.source}/{nums[0]}", path, anns)
        except RowError as e:
            yield Bad(where(nums, f"image {url}"), str(e))


def pixmo_points(rows: Iterable[tuple[int, Row]], ctx: Context) -> Iterator[Result]:
    def build(row: Row, size, num) -> list[Annotation]:
        out = []
        for label, pts in entries(row, ("label", "points")):
            if not isinstance(label, str) or not label.strip():
                raise RowError(f"row {num} has no label")
            px = percent_to_pixels(xy_list(pts, f"points of {label!r}"), size, f"points of {label!r}")
            out.append(Annotation("pointing", label=label.strip(), points=[Point(x, y) for x, y in px]))
        return out

    yield from _grouped(peek(rows, ["image_url", "label", "points"], "pixmo-points"), ctx, build)


def pixmo_count(rows: Iterable[tuple[int, Row]], ctx: Context) -> Iterator[Result]:
    def build(row: Row, size, num) -> list[Annotation]:
        label = row.get("label")
        if not isinstance(label, str) or not label.strip():
            raise RowError(f"row {num} has no label")
        if row.get("points") is None:
            raise RowError(f"row {num} has no points (the released validation/test splits carry only counts; "
                           "convert the train split)")
        pts = _pixel_points(xy_list(row["points"], "points"), size, f"row {num}")
        if row.get("count") is not None and int(row["count"]) != len(pts):
            raise RowError(f"row {num} has count {row['count']} but {len(pts)} points")
        return [Annotation("counting", label=label.strip(), points=pts)]

    yield from _grouped(peek(rows, ["image_url", "label", "points"], "pixmo-count"), ctx, build)


def pixmo_cap(rows: Iterable[tuple[int, Row]], ctx: Context) -> Iterator[Result]:
    def build(row: Row, size, num) -> list[Annotation]:
        cap = row.get("caption")
        if not isinstance(cap, str) or not cap.strip():
            raise RowError(f"row {num} has an empty caption")
        return [Annotation("caption", answer=cap.strip())]

    yield from _grouped(peek(rows, ["image_url", "caption"], "pixmo-cap"), ctx, build)


def pixmo_ask_model_anything(rows: Iterable[tuple[int, Row]], ctx: Context) -> Iterator[Result]:
    def build(row: Row, size, num) -> list[Annotation]:
        out = []
        for q, a in entries(row, ("question", "answer")):
            if not (isinstance(q, str) and q.strip() and isinstance(a, str) and a.strip()):
                raise RowError(f"row {num} has an empty question or answer")
            out.append(Annotation("qa", question=q.strip(), answer=a.strip()))
        return out

    yield from _grouped(peek(rows, ["image_url", "question", "answer"], "pixmo-ask-model-anything"), ctx, build)


_TURN = re.compile(r"\s*(\[USER\]|\[ASSISTANT\])\s*")


def split_dialogue(question: str, answer: str) -> list[dict[str, str]]:
    """``[USER] q1 [ASSISTANT] a1 [USER] q2 [ASSISTANT]`` + answer -> alternating messages (the official
    ``PixMoCapQa.get`` parse); a question without the markers is one user turn."""
    if "[USER]" not in question:
        return [{"role": "user", "content": question.strip()}, {"role": "assistant", "content": answer.strip()}]
    parts = _TURN.split(question)
    if parts[0] != "" or parts[-1] != "" or len(parts[1:-1]) % 4 != 3:
        raise RowError(f"question {question[:80]!r} does not follow '[USER] ... [ASSISTANT]' turns")
    parts = parts[1:-1]
    msgs = []
    for i, part in enumerate(parts):
        expect = {0: "[USER]", 2: "[ASSISTANT]"}.get(i % 4)
        if expect is not None:
            if part != expect:
                raise RowError(f"question {question[:80]!r}: expected {expect} at turn {i // 2}")
            continue
        if not part:
            raise RowError(f"question {question[:80]!r} has an empty turn")
        msgs.append({"role": "user" if i % 4 == 1 else "assistant", "content": part})
    msgs.append({"role": "assistant", "content": answer.strip()})
    return msgs


def pixmo_cap_qa(rows: Iterable[tuple[int, Row]], ctx: Context) -> Iterator[Result]:
    def build(row: Row, size, num) -> list[Annotation]:
        out = []
        for q, a in entries(row, ("question", "answer")):
            if not (isinstance(q, str) and isinstance(a, str) and a.strip()):
                raise RowError(f"row {num} has an empty question or answer")
            msgs = split_dialogue(q, a)
            if len(msgs) == 2:
                out.append(Annotation("qa", question=msgs[0]["content"], answer=msgs[1]["content"]))
            else:
                out.append(Annotation("qa", messages=msgs))
        return out

    yield from _grouped(peek(rows, ["image_url", "question", "answer"], "pixmo-cap-qa"), ctx, build)


ADAPTERS = {
    "pixmo-points": pixmo_points,
    "pixmo-count": pixmo_count,
    "pixmo-cap": pixmo_cap,
    "pixmo-ask-model-anything": pixmo_ask_model_anything,
    "pixmo-cap-qa": pixmo_cap_qa,
}
