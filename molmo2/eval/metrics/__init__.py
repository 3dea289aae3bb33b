"""Pure evaluation metrics of Molmo2's benchmarks: numpy/python in, numbers out, no torch.

One module per family, each stating its formulas against ``/work/shared/reference/evaluation.md``:
``pointing`` (image/video pointing, Point-Bench), ``counting``, ``tracking`` (point-in-mask F1, HOTA),
``mot`` (CLEAR-MOT, IDF1), ``segmentation`` (J&F), ``masks`` (RLE, IoU, boundary F), ``qa``
(multiple choice, VQA score). Where the official code has a known quirk, the correct behaviour is the
default and the official one is ``compat="official"``.
"""

from molmo2.eval.metrics._common import PRF1, f1_score, mean_prf1
from molmo2.eval.metrics.counting import (
    CountScore,
    count_score,
    image_count_score,
    parse_count,
    summarize_counts,
    video_count_score,
)
from molmo2.eval.metrics.masks import (
    InstanceMasks,
    as_mask,
    boundary_f,
    mask_iou,
    point_in_mask,
    polygons_to_mask,
    rle_decode,
    rle_encode,
    time_key,
)
from molmo2.eval.metrics.mot import MOTCHALLENGE_KEYS, box_iou_distance, clear_mot, point_track_mot
from molmo2.eval.metrics.pointing import (
    POINT_BENCH_CATEGORIES,
    image_pointing_prf1,
    mean_pointing,
    point_bench_mask,
    point_bench_scores,
    point_bench_success,
    video_pointing_prf1,
)
from molmo2.eval.metrics.qa import (
    MC_RULES,
    clean_short_answer,
    extract_choice,
    mc_correct,
    normalize_answer,
    official_choice,
    summarize_mc,
    vqa_score,
)
from molmo2.eval.metrics.segmentation import mean_j_and_f, multi_object_j_and_f, referring_j_and_f
from molmo2.eval.metrics.tracking import (
    HOTA_ALPHAS,
    TrackPRF1,
    hota,
    mean_tracking,
    track_hota,
    track_point_prf1,
    track_scores,
)

__all__ = [
    "HOTA_ALPHAS",
    "MC_RULES",
    "MOTCHALLENGE_KEYS",
    "POINT_BENCH_CATEGORIES",
    "PRF1",
    "CountScore",
    "InstanceMasks",
    "TrackPRF1",
    "as_mask",
    "boundary_f",
    "box_iou_distance",
    "clean_short_answer",
    "clear_mot",
    "count_score",
    "extract_choice",
    "f1_score",
    "hota",
    "image_count_score",
    "image_pointing_prf1",
    "mask_iou",
    "mc_correct",
    "mean_j_and_f",
    "mean_pointing",
    "mean_prf1",
    "mean_tracking",
    "multi_object_j_and_f",
    "normalize_answer",
    "official_choice",
    "parse_count",
    "point_bench_mask",
    "point_bench_scores",
    "point_bench_success",
    "point_in_mask",
    "point_track_mot",
    "polygons_to_mask",
    "referring_j_and_f",
    "rle_decode",
    "rle_encode",
    "summarize_counts",
    "summarize_mc",
    "time_key",
    "track_hota",
    "track_point_prf1",
    "track_scores",
    "video_count_score",
    "video_pointing_prf1",
    "vqa_score",
]
