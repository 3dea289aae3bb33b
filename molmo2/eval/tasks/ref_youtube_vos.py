"""Ref-YouTube-VOS (``molmo2 eval --task ref-youtube-vos``): track the object a referring expression names.

The official eval's ``ref_yt_vos_track_eval_1fps:test`` (evaluation.md §2): Molmo2's rows of the hub
dataset ``allenai/molmo2-ref-yt-vos`` (config ``track``, split ``valid``, 834 queries, one target object
each) with per-expression masks. Layout (``--data DIR``, the official ``VIDEO_DATA_HOME``; or
``DIR/video_track`` itself)::

    DIR/video_track/tracking/ref-yt-vos/track/valid/data-*.arrow  Molmo2's rows (official cache); or
    DIR/video_track/molmo2-ref-yt-vos/track/valid-*.parquet       the hub files (or .../valid.jsonl)
    DIR/video_track/Ref-YT-VOS/valid/videos/{video}.mp4           encoded from JPEGImages at the row's fps
    DIR/video_track/Ref-YT-VOS/valid/JPEGImages/{video}/00000.jpg ...    (the release's valid.zip)
    DIR/video_track/Ref-YT-VOS/valid/Annotations/{video}/{qid}/00000.png ... one binary PNG per frame

Masks are per expression (``{qid}`` is the row's ``qid``, the expression id of ``meta_expressions.json``),
one PNG per JPEG frame in the same order; the object is grey level 255 (the official ``>= 255``). This
is the layout the official loader reads and the one Codalab submissions use. Note: the public
``valid.zip`` ships frames only — the challenge keeps the ``valid`` masks — so this needs the ground
truth in that layout from elsewhere.

Prompt, sampling, parsing and score: see :mod:`molmo2.eval.tasks._vos` (point-in-mask P/R/F1 and HOTA
at 1 fps, headline ``f1``; J&F is not computed, as a points-only answer has no masks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from molmo2.eval.tasks._common import field_of
from molmo2.eval.tasks._vos import PngMask, ReferringTrackEval, png_frames


class RefYouTubeVOS(ReferringTrackEval):
    name = "ref-youtube-vos"
    hf_repo = "allenai/molmo2-ref-yt-vos"
    dataset_name = "ref-yt-vos"
    split = "valid"
    video_dir = "Ref-YT-VOS/valid/videos"
    frames_dir = "Ref-YT-VOS/valid/JPEGImages"
    layout = __doc__.split("::\n\n")[1].split("\n\n")[0]

    def masks_of(self, base: Path, row: Mapping[str, Any], where: str) -> list[Sequence[Any]]:
        video, qid = str(field_of(row, "video", where)), str(field_of(row, "qid", where))
        size = (int(row["width"]), int(row["height"]))
        pngs = png_frames(base / "Ref-YT-VOS" / self.split / "Annotations" / video / qid, where)
        return [[PngMask(p, size) for p in pngs]]


__all__ = ["RefYouTubeVOS"]
