"""Counting metrics: video counting (Molmo2-VideoCountEval) and image counting (CountBenchQA, PixMo-Count).

The two official evaluators read the count differently, and so do these functions (evaluation.md §5, §8):

- **video** (``VixMoPointCountEval``): the **stated** number in the answer text. ``parse_count`` tries
  ``int(text)``, then ``a total of N`` / ``the total number ... is: N``, then a "none" fallback.
  ``correct`` = exact match, ``close`` = ``|pred - gt| <= 1 + floor(0.05 * gt)``, ``valid`` = parsed.
- **image** (``PointCountEval``): the number of **pointed** objects (the official code overwrites its text
  parse with ``len(extract_points(...))``), always valid; ``close`` = ``|pred - gt| <= 1``.

Official quirk (``compat="official"``): the video "none" fallback is written ``".*\\bnone\\b.*"`` in a
non-raw string, so ``\\b`` is a backspace and the pattern never matches; "There are none." is therefore
unparsed (``valid=False``, ``correct=0``) even when the GT count is 0. The default ``compat="correct"``
uses a real word boundary, so such answers count as 0; it also rejects negative numbers (``int("-3")``
parses officially). ``summarize_counts`` reports the official keys: ``correct``, ``close``, ``valid``,
``acc_{category}``, the ``correct_{lo}_{hi}`` GT-count bins (video) or ``correct_{k}`` per GT count
(image), and ``per_category_average`` = mean of those bins.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics._common import Compat, check_compat

_TOTAL = re.compile(r"(?:a total of|the total number(?:\s+of\s+.+?)?\s+is:)\s*(\d+)\.?", re.IGNORECASE)
_NONE_OFFICIAL = re.compile(".*\bnone\b.*")  # sic: "\b" is a backspace, as in the official code
_NONE = re.compile(r".*\bnone\b.*", re.DOTALL)

VIDEO_COUNT_BINS: tuple[int, ...] = (0, 5, 10, 15, 20, 25)


def parse_count(text: str, compat: Compat = "correct") -> int | None:
    """The count an answer states (official video rule, see module docstring), or None if none is stated."""
    check_compat(compat)
    if not isinstance(text, str):
        raise Molmo2Error(f"the answer must be a string, got {type(text).__name__}")
    pred = text.strip().lower().rstrip(".").strip()
    try:
        value = int(pred)
    except ValueError:
        value = None
    if value is not None:
        return value if (compat == "official" or value >= 0) else None
    m = _TOTAL.search(pred)
    if m:
        return int(m.group(1))
    none = _NONE_OFFICIAL if compat == "official" else _NONE
    if none.match(pred):
        return 0
    return None


@dataclass(frozen=True, slots=True)
class CountScore:
    correct: bool
    close: bool
    valid: bool
    pred: int | None
    gt: int


def count_score(pred: int | None, gt: int, medium: Literal["video", "image"] = "video") -> CountScore:
    """Exact / close / valid for one example; ``pred=None`` (nothing parsed) is invalid and wrong."""
    if isinstance(gt, bool) or not isinstance(gt, (int, np.integer)) or gt < 0:
        raise Molmo2Error(f"the ground-truth count must be a non-negative int, got {gt!r}")
    if medium not in ("video", "image"):
        raise Molmo2Error(f"medium must be 'video' or 'image', got {medium!r}")
    gt = int(gt)
    if pred is None:
        return CountScore(False, False, False, None, gt)
    margin = 1 + math.floor(0.05 * gt) if medium == "video" else 1
    return CountScore(int(pred) == gt, abs(gt - int(pred)) <= margin, True, int(pred), gt)


def video_count_score(text: str, gt: int, compat: Compat = "correct") -> CountScore:
    """Molmo2-VideoCountEval for one answer: the stated count vs the GT count."""
    return count_score(parse_count(text, compat), gt, "video")


def image_count_score(num_pointed: int, gt: int) -> CountScore:
    """CountBenchQA / PixMo-Count for one answer: the number of points vs the GT count.

    Pass ``len(result.points)`` of a parsed ``GroundingResult`` (every parsed point, as the official
    ``len(extract_points(...))``), not the stated number.
    """
    if isinstance(num_pointed, bool) or not isinstance(num_pointed, (int, np.integer)) or num_pointed < 0:
        raise Molmo2Error(f"num_pointed must be a non-negative int, got {num_pointed!r}")
    return count_score(int(num_pointed), gt, "image")


def summarize_counts(
    scores: Sequence[CountScore],
    categories: Sequence[str] | None = None,
    medium: Literal["video", "image"] = "video",
) -> dict[str, float]:
    """Dataset scores with the official keys (module docstring); empty bins are NaN and skipped in the average."""
    if categories is not None and len(categories) != len(scores):
        raise Molmo2Error(f"{len(scores)} scores but {len(categories)} categories")
    if not scores:
        raise Molmo2Error("no count scores to summarize")
    out = {k: float(np.mean([getattr(s, k) for s in scores])) for k in ("correct", "close", "valid")}
    if categories is not None:
        by_cat: dict[str, list[bool]] = defaultdict(list)
        for s, c in zip(scores, categories):
            by_cat[c].append(s.correct)
        out.update({f"acc_{c}": float(np.mean(v)) for c, v in sorted(by_cat.items())})
    by_gt: dict[int, list[bool]] = defaultdict(list)
    for s in scores:
        by_gt[s.gt].append(s.correct)
    bins: dict[str, float] = {}
    if medium == "video":
        edges = [*VIDEO_COUNT_BINS, max(by_gt) + 1]
        for lo, hi in zip(edges[:-1], edges[1:]):
            vals = [c for g, v in by_gt.items() if lo <= g < hi for c in v]
            bins[f"correct_{lo}_{hi}"] = float(np.mean(vals)) if vals else math.nan
    else:
        bins = {f"correct_{g}": float(np.mean(v)) for g, v in sorted(by_gt.items())}
    out.update(bins)
    finite = [v for v in bins.values() if not math.isnan(v)]
    out["per_category_average"] = float(np.mean(finite)) if finite else math.nan
    return out


__all__ = [
    "VIDEO_COUNT_BINS",
    "CountScore",
    "count_score",
    "image_count_score",
    "parse_count",
    "summarize_counts",
    "video_count_score",
]
