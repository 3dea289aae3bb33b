"""Grounding: Molmo2's points, tracks and counts as typed Python values (no torch needed).

Molmo2 answers pointing, counting and tracking questions with tags inside its text, e.g.
``Counting the <points coords="1 1 231 448 2 502 447">dogs</points> shows a total of 2.`` This package
turns such text into pixel coordinates (``parse``), builds exactly the text the model was trained on
(``format_points``, ``format_tracks``, ``wrap_count``), and exports results (``GroundingResult.to_dict``
for JSON, ``to_coco``, ``to_mot_csv``). Formats: model.md §7; JSON schema: ``molmo2.grounding.types``.

    >>> r = parse('<points coords="1 1 500 250">cat</points>', (640, 480))
    >>> r.points[0].x, r.points[0].y, r.count.pointed
    (320.0, 120.0, 1)
    >>> format_points(r.points, (640, 480), "cat", mode="point_then_count")
    'Counting the <points coords="1 1 500 250">cat</points> shows a total of 1.'
"""

from molmo2.grounding.export import MOT_COLUMNS, to_coco, to_mot_csv
from molmo2.grounding.format import MODES, Mode, format_points, format_tracks, timestamp_key, wrap_count
from molmo2.grounding.parse import parse
from molmo2.grounding.types import Count, GroundingResult, Point, Size, Track

__all__ = [
    "MODES",
    "MOT_COLUMNS",
    "Count",
    "GroundingResult",
    "Mode",
    "Point",
    "Size",
    "Track",
    "format_points",
    "format_tracks",
    "parse",
    "timestamp_key",
    "to_coco",
    "to_mot_csv",
    "wrap_count",
]
