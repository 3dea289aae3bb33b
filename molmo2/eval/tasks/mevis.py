"""MeViS (``molmo2 eval --task mevis``): track the objects a motion expression refers to, ``valid_u`` split.

The official eval's ``mevis_track_eval_1fps:test`` (evaluation.md §2): Molmo2's rows of the hub dataset
``allenai/molmo2-mevis`` (config ``track``, split ``valid_u``, 793 queries at 1 fps) with the masks of the
public MeViS release (henghuiding/MeViS, hub ``FudanCVL/MeViS``: ``MeViS_release.zip``). ``valid_u`` is
the split with public ground truth; ``valid`` (the Codalab split) has none. Layout (``--data DIR``, the
official ``VIDEO_DATA_HOME``; or ``DIR/video_track`` itself)::

    DIR/video_track/tracking/mevis/track/valid_u/data-*.arrow   Molmo2's rows (official cache); or
    DIR/video_track/molmo2-mevis/track/valid_u-*.parquet        the hub files (or molmo2-mevis/valid_u.jsonl)
    DIR/video_track/MeViS/valid_u/videos/{video}.mp4            encoded from JPEGImages at the row's fps
    DIR/video_track/MeViS/MeViS_release/valid_u/mask_dict.json  {anno_id: [COCO RLE | null per frame]}
    DIR/video_track/MeViS/MeViS_release/valid_u/JPEGImages/{video}/00000.jpg ...

A row's ``anno_id`` list names its target objects in ``mask_dict.json``, in ``mask_id`` order (the
official loader writes ``{index: mask_dict[str(anno_id)]}`` per query). ``mask_dict.json`` is read once.

Prompt, sampling, parsing and score: see :mod:`molmo2.eval.tasks._vos` (point-in-mask P/R/F1 and HOTA
at 1 fps, headline ``f1``). MeViS' own metric is J&F on masks (``tools/eval_mevis.py``); a points-only
answer has no masks, so J&F is not computed (``_vos`` docstring).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from molmo2.errors import Molmo2Error
from molmo2.eval.tasks._common import field_of, need_file, read_json
from molmo2.eval.tasks._vos import ReferringTrackEval


class MeViS(ReferringTrackEval):
    name = "mevis"
    hf_repo = "allenai/molmo2-mevis"
    dataset_name = "mevis"
    split = "valid_u"
    video_dir = "MeViS/valid_u/videos"
    frames_dir = "MeViS/MeViS_release/valid_u/JPEGImages"
    layout = __doc__.split("::\n\n")[1].split("\n\n")[0]

    def prepare(self, base: Path) -> None:
        path = need_file(base / "MeViS" / "MeViS_release" / self.split / "mask_dict.json",
                         f"{self.name}: the release's mask file")
        self._mask_dict = read_json(path)
        if not isinstance(self._mask_dict, Mapping):
            raise Molmo2Error(f"{path}: expected {{anno_id: [RLE per frame]}}")
        self._mask_path = path

    def masks_of(self, base: Path, row: Mapping[str, Any], where: str) -> list[Sequence[Any]]:
        out = []
        for anno in field_of(row, "anno_id", where):
            masks = self._mask_dict.get(str(anno))
            if masks is None:
                raise Molmo2Error(f"{where}: row {row.get('id')!r} names anno_id {anno!r}, which is not in "
                                  f"{self._mask_path}")
            out.append(masks)
        return out


__all__ = ["MeViS"]
