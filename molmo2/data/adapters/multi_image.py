"""Molmo2 image sets: MultiImageQA and MultiImagePoint -> one Example per image set (media kind ``images``).

=========================== ==================================================================================
adapter                     rows (fields used)
=========================== ==================================================================================
molmo2-multi-image-qa       ``allenai/Molmo2-MultiImageQA``: ``image_urls`` (the set, in order), ``qa_pairs``
                            ({question: [...], answer: [...]}, or a list of {question, answer}); one ``qa`` per
                            pair. The official local copy adds ``image`` (paths relative to the PixMo image
                            folder), used first.
molmo2-multi-image-point    ``allenai/molmo2-pixmo-multi-points``: ``images`` (paths relative to the official
                            data home), and per image ``labels`` (as written), ``normalized_labels`` and
                            ``points`` ([{x, y}], percent of that image); one ``pointing`` annotation per
                            distinct normalized label, its points on every image carrying that label (each
                            point keeps its 0-based image index), worded with the first image's label
=========================== ==================================================================================

Sources: ``PixmoMultiImageQa`` and ``PixMoMultiPoints`` in ``olmo/data/pixmo_datasets.py`` and the
``multi_image_pointing`` branch of ``olmo/preprocessing/data_formatter.py`` (allenai/molmo2), which reads
``normalized_labels``, ``labels`` and ``points`` per image and scales them by ``point_scale=100``.
Uncertain: the hub card of ``molmo2-pixmo-multi-points`` was not seen; the field names are the ones the
formatter reads, and a source without them fails naming the field. The official prompts also ask about a
random subset of the images ("image_1, image_3"); we always ask about the whole set.

``--media-root``: for QA the PixMo image download folder (files named by the sha256 of the URL); for
pointing the official data home that the ``images`` paths are relative to (or a folder holding the files
by name).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from molmo2.data.adapters._base import (
    Bad,
    Context,
    Result,
    Row,
    RowError,
    columns,
    find_by_url,
    peek,
    percent_to_pixels,
    where,
    xy_list,
)
from molmo2.data.schema import Annotation, Example, Media
from molmo2.grounding.types import Point


def _local_image(ctx: Context, path: str) -> Path:
    p = Path(path)
    cands = [p] if p.is_absolute() else []
    if ctx.media_root is not None:
        cands += [ctx.media_root / path, ctx.media_root / p.name]
    for c in cands:
        if c.is_file():
            return c
    raise RowError(f"image {path} not found; looked for {', '.join(map(str, cands)) or path}"
                   + ("" if ctx.media_root else " (pass --media-root)"))


def _example(ctx: Context, num: int, paths: list[Path], anns: list[Annotation]) -> Example:
    kind = "image" if len(paths) == 1 else "images"
    return Example(f"{ctx.source}/{num}", Media(kind, [ctx.media_path(p) for p in paths]), anns, source=ctx.source)


def multi_image_qa(rows: Iterable[tuple[int, Row]], ctx: Context) -> Iterator[Result]:
    for num, row in peek(rows, ["image_urls", "qa_pairs"], "Molmo2-MultiImageQA"):
        try:
            urls = row["image_urls"] or []
            if not urls:
                raise RowError("no image_urls")
            local = row.get("image")
            if isinstance(local, list) and len(local) == len(urls):
                paths = [_local_image(ctx, p) for p in local]
            else:
                paths = [find_by_url(ctx.root("images"), u) for u in urls]
            anns = []
            for qa in columns(row["qa_pairs"], ("question", "answer"), "qa_pairs"):
                q, a = qa["question"], qa["answer"]
                if not (isinstance(q, str) and q.strip() and isinstance(a, str) and a.strip()):
                    raise RowError("a qa pair has an empty question or answer")
                anns.append(Annotation("qa", question=q.strip(), answer=a.strip()))
            if not anns:
                raise RowError("no qa_pairs")
            yield _example(ctx, num, paths, anns)
        except RowError as e:
            yield Bad(where([num]), str(e))


def multi_image_point(rows: Iterable[tuple[int, Row]], ctx: Context) -> Iterator[Result]:
    fields = ["images", "labels", "normalized_labels", "points"]
    for num, row in peek(rows, fields, "molmo2-pixmo-multi-points"):
        try:
            images = row["images"] or []
            if not images or any(len(row[k] or []) != len(images) for k in fields[1:]):
                raise RowError(f"images, labels, normalized_labels and points must have one entry per image; got "
                               f"{', '.join(f'{k}: {len(row[k] or [])}' for k in fields)}")
            paths = [_local_image(ctx, p) for p in images]
            sizes = [ctx.image_size(p) for p in paths]
            by_label: dict[str, Annotation] = {}
            for i, (label, norm, pts) in enumerate(zip(row["labels"], row["normalized_labels"], row["points"])):
                if not isinstance(norm, str) or not norm.strip():
                    raise RowError(f"image {i} has no normalized label")
                ann = by_label.setdefault(norm, Annotation("pointing", label=(label or norm).strip(), points=[]))
                px = percent_to_pixels(xy_list(pts, f"points of image {i}"), sizes[i], f"points of image {i}")
                ann.points.extend(Point(x, y, image=i if len(paths) > 1 else None) for x, y in px)
            yield _example(ctx, num, paths, list(by_label.values()))
        except RowError as e:
            yield Bad(where([num]), str(e))


ADAPTERS = {
    "molmo2-multi-image-qa": multi_image_qa,
    "molmo2-multi-image-point": multi_image_point,
}
