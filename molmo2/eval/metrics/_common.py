"""Small shared pieces of the metrics: the P/R/F1 record, Hungarian matching, optional deps, checks.

Every grounding metric of Molmo2 is "one-to-one matching, then count hits", so the matching and the F1
formula live here once. Matching uses scipy's ``linear_sum_assignment`` on purpose: the official code
and TrackEval both use it, and its tie-breaking decides which pairs are formed when costs are equal, so
using the same solver is what makes our numbers identical to theirs (evaluation.md §4, §10, §11).

scipy and pycocotools are the ``[eval]`` extra; they are imported on first use so that
``import molmo2.eval`` stays cheap and a missing one is reported with the install command.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from molmo2.errors import Molmo2Error

Compat = Literal["correct", "official"]
COMPAT_MODES: tuple[str, ...] = ("correct", "official")


def check_compat(compat: str) -> None:
    if compat not in COMPAT_MODES:
        raise Molmo2Error(f"compat must be 'correct' (default) or 'official', got {compat!r}")


def require(module: str) -> Any:
    """Import an optional dependency of the metrics, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pkg = {"scipy.optimize": "scipy", "scipy.spatial": "scipy", "pycocotools.mask": "pycocotools"}
        raise Molmo2Error(
            f"this metric needs {pkg.get(module, module)!r}: pip install 'molmo2[eval]'"
        ) from None


def hungarian(cost: np.ndarray, maximize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the optimal one-to-one assignment (scipy's solver; see module docstring)."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rows, cols = require("scipy.optimize").linear_sum_assignment(cost, maximize=maximize)
    return rows, cols


def f1_score(precision: float, recall: float) -> float:
    """Official F1 (evaluation.md §4 step 6): 0 if P or R is 0, else 2PR/(P+R+1e-10)."""
    if precision == 0 or recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall + 1e-10)


@dataclass(frozen=True, slots=True)
class PRF1:
    """Precision/recall/F1 of one example (image, video, or video frame) with the counts behind them."""

    precision: float
    recall: float
    f1: float
    num_hits: int = 0
    num_pred: int = 0
    num_gt: int = 0

    def to_dict(self) -> dict[str, float]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1}

    def to_row(self) -> dict[str, float]:
        """``to_dict`` plus the counts: a per-item score row that ``from_row`` reads back."""
        return {**self.to_dict(), "num_hits": self.num_hits, "num_pred": self.num_pred, "num_gt": self.num_gt}

    @classmethod
    def from_row(cls, row: dict) -> PRF1:
        return cls(row["precision"], row["recall"], row["f1"], row["num_hits"], row["num_pred"], row["num_gt"])


def prf1_from_hits(num_hits: int, num_pred: int, num_gt: int, recall_denominator: int | None = None) -> PRF1:
    """The official empty-set rules (evaluation.md §13), then P = hits/#pred, R = hits/#gt."""
    if num_gt == 0:
        v = float(num_pred == 0)
        return PRF1(v, v, v, 0, num_pred, 0)
    if num_pred == 0:
        return PRF1(0.0, 0.0, 0.0, 0, 0, num_gt)
    p = num_hits / num_pred
    r = num_hits / (num_gt if recall_denominator is None else recall_denominator)
    return PRF1(p, r, f1_score(p, r), num_hits, num_pred, num_gt)


def mean_prf1(scores: list[PRF1]) -> dict[str, float]:
    """Plain mean over examples, the official aggregation (evaluation.md §2). Empty list -> NaN."""
    if not scores:
        return {"precision": math.nan, "recall": math.nan, "f1": math.nan}
    return {k: float(np.mean([getattr(s, k) for s in scores])) for k in ("precision", "recall", "f1")}


def finite_xy(x: float, y: float, what: str) -> None:
    if not (math.isfinite(x) and math.isfinite(y)):
        raise Molmo2Error(f"{what} must have finite coordinates, got ({x}, {y})")
