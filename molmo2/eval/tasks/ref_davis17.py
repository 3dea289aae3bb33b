"""Ref-DAVIS17 (``molmo2 eval --task ref-davis17``): track the objects a referring expression names.

The official eval's ``ref_davis17_track_eval_1fps:test`` (evaluation.md §2): Molmo2's rows of the hub
dataset ``allenai/molmo2-ref-davis17`` (config ``track``, split ``valid``, 244 queries) with the masks of
the public DAVIS 2017 release (``DAVIS-2017-trainval-480p.zip``). Layout (``--data DIR``, the official
``VIDEO_DATA_HOME``; or ``DIR/video_track`` itself)::

    DIR/video_track/tracking/ref-davis17/track/valid/data-*.arrow  Molmo2's rows (official cache); or
    DIR/video_track/molmo2-ref-davis17/track/valid-*.parquet       the hub files (or .../valid.jsonl)
    DIR/video_track/Ref-DAVIS17/valid/videos/{video}.mp4           encoded from JPEGImages at the row's fps
    DIR/video_track/Ref-DAVIS17/DAVIS/JPEGImages/480p/{video}/00000.jpg ...
    DIR/video_track/Ref-DAVIS17/DAVIS/Annotations/480p/{video}/00000.png ... palette PNG per frame

A DAVIS annotation is one palette PNG per frame whose pixel value is the DAVIS object id (0 =
background); a row's ``obj_id`` list gives the id of each target in ``mask_id`` order. A PNG of another
size than the row's ``width`` x ``height`` is resized with nearest neighbour, as the official step does.

Prompt, sampling, parsing and score: see :mod:`molmo2.eval.tasks._vos` (point-in-mask P/R/F1 and HOTA
at 1 fps, headline ``f1``; J&F is not computed, as a points-only answer has no masks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from molmo2.eval.tasks._common import field_of
from molmo2.eval.tasks._vos import VIDEO_EXTS, PngMask, ReferringTrackEval, png_frames


class RefDAVIS17(ReferringTrackEval):
    name = "ref-davis17"
    hf_repo = "allenai/molmo2-ref-davis17"
    dataset_name = "ref-davis17"
    split = "valid"
    video_dir = "Ref-DAVIS17/valid/videos"
    frames_dir = "Ref-DAVIS17/DAVIS/JPEGImages/480p"
    layout = __doc__.split("::\n\n")[1].split("\n\n")[0]

    def masks_of(self, base: Path, row: Mapping[str, Any], where: str) -> list[Sequence[Any]]:
        video = str(field_of(row, "video", where))
        if video.endswith(VIDEO_EXTS):
            video = video.rsplit(".", 1)[0]
        size = (int(row["width"]), int(row["height"]))
        pngs = png_frames(base / "Ref-DAVIS17" / "DAVIS" / "Annotations" / "480p" / video, where)
        return [[PngMask(p, size, value=int(obj)) for p in pngs] for obj in field_of(row, "obj_id", where)]


__all__ = ["RefDAVIS17"]
