"""ReasonVOS (``molmo2 eval --task reasonvos``): track the object an implicit, reasoning query refers to.

The official eval's ``reasonvos_track_eval_1fps:test`` (evaluation.md §2): Molmo2's rows of the hub
dataset ``allenai/molmo2-reasonvos`` (config ``track``, split ``test``, 458 queries, one target object
each) with the masks of the ReasonVOS benchmark release (VideoLISA, "One Token to Seg Them All").
Layout (``--data DIR``, the official ``VIDEO_DATA_HOME``; or ``DIR/video_track`` itself)::

    DIR/video_track/tracking/reasonvos/track/test/data-*.arrow   Molmo2's rows (official cache); or
    DIR/video_track/molmo2-reasonvos/track/test-*.parquet        the hub files (or .../test.jsonl)
    DIR/video_track/ReasonVOS/videos/{video}.mp4                 encoded from JPEGImages at the row's fps
    DIR/video_track/ReasonVOS/ReasonVOS/JPEGImages/{video}/00000.jpg ...
    DIR/video_track/ReasonVOS/ReasonVOS/Annotations/{anno_id}/00000.png ...  binary PNG per frame

``{anno_id}`` is the row's single ``anno_id`` (``{source}_{video}_{object}``, the release's annotation
folder); the object is grey level 255 (the official ``>= 255``), one PNG per frame in file-name order.

Prompt, sampling, parsing and score: see :mod:`molmo2.eval.tasks._vos` (point-in-mask P/R/F1 and HOTA
at 1 fps, headline ``f1``; J&F is not computed, as a points-only answer has no masks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from molmo2.errors import Molmo2Error
from molmo2.eval.tasks._common import field_of
from molmo2.eval.tasks._vos import PngMask, ReferringTrackEval, png_frames


class ReasonVOS(ReferringTrackEval):
    name = "reasonvos"
    hf_repo = "allenai/molmo2-reasonvos"
    dataset_name = "reasonvos"
    split = "test"
    video_dir = "ReasonVOS/videos"
    frames_dir = "ReasonVOS/ReasonVOS/JPEGImages"
    layout = __doc__.split("::\n\n")[1].split("\n\n")[0]

    def masks_of(self, base: Path, row: Mapping[str, Any], where: str) -> list[Sequence[Any]]:
        annos = list(field_of(row, "anno_id", where))
        if len(annos) != 1:
            raise Molmo2Error(f"{where}: row {row.get('id')!r}: ReasonVOS queries have one anno_id, got {annos}")
        size = (int(row["width"]), int(row["height"]))
        pngs = png_frames(base / "ReasonVOS" / "ReasonVOS" / "Annotations" / str(annos[0]), where)
        return [[PngMask(p, size) for p in pngs]]


__all__ = ["ReasonVOS"]
