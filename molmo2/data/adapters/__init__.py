"""Adapters from the released Molmo2 and PixMo datasets to our JSONL manifests (``molmo2.data.schema``).

::

    python -m molmo2.data.adapters NAME SRC OUT.jsonl [--media-root DIR] [--split S] [--limit N]

``SRC`` is a local copy of the dataset: parquet shards as on the hub, a ``datasets`` ``save_to_disk``
folder, or a JSON/JSONL export (``_base.open_rows``); ``--media-root`` is where its images or videos were
downloaded. Each adapter module documents the fields it reads, the coordinate convention it converts to
pixels and the media layout it expects:

* ``pixmo``: pixmo-points, pixmo-count, pixmo-cap, pixmo-ask-model-anything, pixmo-cap-qa
* ``multi_image``: molmo2-multi-image-qa, molmo2-multi-image-point
* ``video``: molmo2-video-point, molmo2-cap, molmo2-ask-model-anything, molmo2-cap-qa, molmo2-subtitle-qa
* ``video_track``: molmo2-video-track

A row that cannot be used (its media missing, points outside the image, a count that disagrees with its
points) is skipped and counted; the summary names each one's row and reason (all of them in
``OUT.skipped.txt``). A source that is not the dataset (a field the adapter needs is absent) stops the run
with the field's name.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from molmo2.data.adapters import multi_image, pixmo, video, video_track
from molmo2.data.adapters._base import Adapter, AdapterError, Bad, Context, open_rows
from molmo2.data.schema import Example, write_jsonl

ADAPTERS: dict[str, Adapter] = {**pixmo.ADAPTERS, **multi_image.ADAPTERS, **video.ADAPTERS, **video_track.ADAPTERS}


@dataclass
class Summary:
    source: str  # what was read
    num_rows: int = 0
    num_examples: int = 0
    skipped: list[Bad] = field(default_factory=list)

    def reasons(self) -> Counter[str]:
        """Skips by kind of reason (numbers, quoted names and paths blanked out)."""
        return Counter(re.sub(r"'[^']*'|\"[^\"]*\"|\S*/\S*|\(?-?\d[\d.,]*\)?", "…", b.reason) for b in self.skipped)

    def report(self) -> str:
        lines = [f"read {self.num_rows} rows of {self.source}: wrote {self.num_examples} examples, "
                 f"skipped {len(self.skipped)}"]
        for reason, n in self.reasons().most_common(10):
            lines.append(f"  {n} x {reason}")
        for b in self.skipped[:10]:
            lines.append(f"  e.g. {b.where}: {b.reason}")
        return "\n".join(lines)


def convert(name: str, src: str | Path, out: str | Path, media_root: str | Path | None = None,
            split: str | None = None, limit: int | None = None, progress: bool = True,
            log: Callable[[str], None] = print) -> Summary:
    """Convert the rows of ``src`` with adapter ``name`` and write the manifest ``out`` (atomically)."""
    if name not in ADAPTERS:
        raise AdapterError(f"unknown dataset adapter {name!r}; known: {', '.join(sorted(ADAPTERS))}")
    if limit is not None and limit < 1:
        raise AdapterError(f"--limit must be a positive number of rows, got {limit}")
    out = Path(out)
    if media_root is not None and not Path(media_root).is_dir():
        raise AdapterError(f"--media-root {media_root} is not a folder")
    total, rows, what = open_rows(src, split)
    if limit is not None:
        total = min(total, limit)
    summary = Summary(what)
    ctx = Context(out_dir=out.parent, media_root=Path(media_root) if media_root else None, source=name)

    def numbered():
        from tqdm import tqdm

        with tqdm(total=total, desc=name, unit="row", disable=not progress, dynamic_ncols=True) as bar:
            for num, row in enumerate(rows):
                if limit is not None and num >= limit:
                    break
                summary.num_rows += 1
                bar.update(1)
                yield num, row

    def examples():
        for res in ADAPTERS[name](numbered(), ctx):
            if isinstance(res, Bad):
                summary.skipped.append(res)
            else:
                summary.num_examples += 1
                yield res

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_jsonl(out, examples())
    finally:
        out.with_suffix(out.suffix + ".tmp").unlink(missing_ok=True)
    skipped_path = out.with_name(out.name + ".skipped.txt")
    if summary.skipped:
        skipped_path.write_text("".join(f"{b.where}: {b.reason}\n" for b in summary.skipped))
    elif skipped_path.exists():
        skipped_path.unlink()
    log(summary.report())
    if summary.num_examples == 0:
        out.unlink()
        raise AdapterError(f"{name}: no example could be converted from {what}" + (
            f"; first reason: {summary.skipped[0].where}: {summary.skipped[0].reason}" if summary.skipped else
            " (no rows)"))
    return summary


__all__ = ["ADAPTERS", "AdapterError", "Bad", "Context", "Example", "Summary", "convert", "open_rows"]
