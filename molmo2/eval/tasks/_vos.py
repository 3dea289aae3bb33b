"""What the referring video object segmentation adapters share (MeViS, Ref-YouTube-VOS, Ref-DAVIS17,
ReasonVOS): Molmo2's own annotation rows, the public release's masks, the 1 fps point-tracking score.

The official eval (evaluation.md §2, §6a; ``olmo/data/academic_video_track_datasets.py``) reads, per
benchmark, the hub dataset ``allenai/molmo2-<name>`` (config ``track``) and keeps the rows with
``sampling_fps == 1``. A row is one (video, expression) query: ``id``, ``video``, ``qid``,
``expression``, ``width``, ``height``, ``fps`` (the frame rate of the video made from the release's
JPEG frames), ``sampling_fps``, ``mask_id`` (the target objects), ``frame_trajectories`` (the GT points
at 1 fps: ``[{"frame", "time", "points": [{"id", "point": [x, y], "occluded"}]}]``, pixels, ``frame``
indexes the video at ``fps``), and per benchmark ``anno_id`` / ``obj_id``, which name the objects in the
public release's masks. The masks are read from the public release as it ships them (RLE JSON for
MeViS, PNG files for the others; each adapter's docstring gives its layout) — the official download
step re-encodes the same files into ``MasksRLE/*.json``; here they are decoded lazily, only at the
frames a point is checked on.

Rows are read from the official local cache (``video_track/tracking/<name>/track/<split>/``, what
``datasets``' ``save_to_disk`` wrote: ``data-*.arrow``), else from a hub snapshot
``<repo name>/`` (parquet shards under ``track/``, any name containing the split) or its JSONL export
``<repo name>/<split>.jsonl``. ``--data`` is the official ``VIDEO_DATA_HOME`` (holding
``video_track/``) or ``VIDEO_TRACK_DATA_HOME`` itself. Videos are the ``.mp4`` files the official
download step encodes from the release's JPEG frames at the row's ``fps`` (one frame per image, in file
name order); a missing one is an error that says how to make it with ffmpeg.

Prompt: ``Track {expression} in 1 FPS.`` (the first ``video_point_track_per_frame`` template, style
without prefix; ``prompt_seed`` draws one of the ten official templates per item instead, see
:func:`~molmo2.eval.tasks._common.pick_template`), frames sampled at most 1 fps, greedy, at most 4096
new tokens. The answer's tracks are parsed at ``width`` x ``height`` and each predicted time is snapped
to its frame, ``round(t * fps) / fps``, as the official ``extract_tracks`` does (so a point at 0.95 s on
a 6 fps video lands on frame 6, the GT frame at 1 s).

Score: :func:`~molmo2.eval.metrics.track_scores` — per GT frame (and per frame with predictions),
Hungarian-match the predicted points to the GT points on pixel distance, a hit is a matched point inside
the GT object's mask; P/R/F1 averaged over frames, then over queries; HOTA with binary point-in-mask
similarity. Annotated frames where every target is absent count (1 if nothing is predicted there, else
0), as in the official loop. Headline ``f1`` (the official evaluator's keys are ``precision, recall,
f1, HOTA, DetA, AssA``). ``compat = "official"`` (class attribute) reproduces the official absent-object
mask lookup (``metrics/tracking.py``).

Not computed: **J&F**, the metric these benchmarks are known by (and the paper's tracking headline,
evaluation.md §6b). It needs a mask per frame; Molmo2 answers with points, and the step that turns them
into masks (a promptable segmenter such as SAM 2, seeded with the points) is not in the official code
and its weights are not installable here. Given masks, :func:`~molmo2.eval.metrics.referring_j_and_f`
scores them with the MeViS protocol. So these numbers are the official repo's point-in-mask numbers,
not the paper's J&F.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics import InstanceMasks, track_scores
from molmo2.eval.tasks._common import (
    Item,
    ask,
    check_dir,
    check_limit,
    field_of,
    grounded_example,
    mean_of,
    pick_template,
    read_arrow,
    read_records,
    score_items,
    text_of,
)
from molmo2.eval.tasks._templates import TRACK_TEMPLATES
from molmo2.eval.tasks.video_track import merge_tracks
from molmo2.grounding import Point, Track, parse

TRACK_KEYS = ("f1", "precision", "recall", "HOTA", "DetA", "AssA")
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".webm", ".mov")


# ------------------------------------------------------------------------------------ mask files


class PngMask:
    """One object's mask in one PNG file, read when first needed (a :data:`MaskLike` callable).

    ``value=None``: a binary PNG, object = grey level 255 (the official ``cv2.imread(GRAYSCALE) >= 255``;
    a palette PNG is converted to grey first, as OpenCV does). ``value=k``: a DAVIS palette PNG, object
    = palette index k. A PNG of another size is resized to ``size`` with OpenCV's ``INTER_NEAREST`` rule
    (source pixel ``floor(i * src / dst)``), as the official mask encoding does.
    """

    __slots__ = ("path", "size", "value")

    def __init__(self, path: Path, size: tuple[int, int], value: int | None = None):
        self.path, self.size, self.value = path, size, value

    def __call__(self) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(self.path) as im:
                arr = np.asarray(im.convert("L")) if self.value is None else np.asarray(im)
        except OSError as e:
            raise Molmo2Error(f"cannot read mask {self.path}: {e}") from None
        if arr.ndim != 2:
            raise Molmo2Error(f"{self.path}: expected a palette (index) PNG, got {arr.ndim}-channel pixels")
        arr = arr >= 255 if self.value is None else arr == self.value
        w, h = self.size
        if arr.shape != (h, w):
            ys = np.minimum((np.arange(h) * arr.shape[0] / h).astype(np.int64), arr.shape[0] - 1)
            xs = np.minimum((np.arange(w) * arr.shape[1] / w).astype(np.int64), arr.shape[1] - 1)
            arr = arr[ys[:, None], xs[None, :]]
        return arr

    def __repr__(self) -> str:
        return f"PngMask({str(self.path)!r}, value={self.value})"


def png_frames(folder: Path, what: str) -> list[Path]:
    """The PNG masks of a folder in file-name order: entry i is frame i (the official ``sorted(glob)``)."""
    if not folder.is_dir():
        raise Molmo2Error(f"{what}: mask folder not found: {folder}")
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise Molmo2Error(f"{what}: no PNG masks in {folder}")
    return paths


# ----------------------------------------------------------------------------------------- adapter


class ReferringTrackEval:
    """Base of the four adapters; a subclass names its files (class attributes) and its masks (``masks_of``)."""

    name = ""
    hf_repo = ""  # the hub dataset of Molmo2's annotation rows, e.g. "allenai/molmo2-mevis"
    dataset_name = ""  # the official cache folder: video_track/tracking/<dataset_name>/track/<split>/
    split = ""
    video_dir = ""  # relative to video_track/: where <video>.mp4 are
    frames_dir = ""  # relative to video_track/: where the release's JPEG frame folders are (for the error)
    layout = ""
    max_new_tokens = 4096
    sampling_fps = 1
    compat = "correct"
    prompt_seed: int | None = None

    # -- files

    def base(self, data: str | Path) -> Path:
        root = check_dir(data, self.name, self.layout)
        return root / "video_track" if (root / "video_track").is_dir() else root

    def rows(self, base: Path) -> tuple[list[dict[str, Any]], str]:
        cache = base / "tracking" / self.dataset_name / "track" / self.split
        arrows = sorted(cache.glob("*.arrow")) if cache.is_dir() else []
        if arrows:
            return read_arrow(arrows), ", ".join(str(p.relative_to(base)) for p in arrows)
        repo = self.hf_repo.split("/")[-1]
        for folder in (base / repo / "track", base / repo):
            if folder.is_dir():
                try:
                    rows, source = read_records(folder, self.split, self.name)
                except Molmo2Error:
                    continue
                return rows, f"{folder.relative_to(base)}/{source}"
        raise Molmo2Error(f"{self.name}: no annotation rows for split {self.split!r} under {base}; expected the "
                          f"official cache tracking/{self.dataset_name}/track/{self.split}/data-*.arrow, or the hub "
                          f"dataset {self.hf_repo} (config 'track') as {repo}/track/{self.split}-*.parquet or "
                          f"{repo}/{self.split}.jsonl. Layout:\n{self.layout}")

    def video_path(self, base: Path, video: str, fps: float) -> Path:
        path = base / self.video_dir / f"{video}.mp4"
        if not path.is_file():
            frames = base / self.frames_dir / video
            raise Molmo2Error(
                f"{self.name}: video not found: {path}. The official download step encodes it from the release's "
                f"frames at the row's fps: ffmpeg -framerate {fps:g} -pattern_type glob -i '{frames}/*.jpg' "
                f"-c:v libx264 -pix_fmt yuv420p {path}")
        return path

    def prepare(self, base: Path) -> None:
        """Read what every row shares (MeViS: ``mask_dict.json``); nothing by default."""

    def masks_of(self, base: Path, row: Mapping[str, Any], where: str) -> list[Sequence[Any]]:
        """Per target object (``mask_id`` order): its masks indexed by frame (``MaskLike`` or None)."""
        raise NotImplementedError

    # -- task protocol

    def load(self, data: str | Path, limit: int | None = None) -> list[Item]:
        check_limit(limit)
        base = self.base(data)
        rows, source = self.rows(base)
        where = f"{self.name} ({source})"
        self.prepare(base)
        items = []
        for row in rows:
            if "sampling_fps" in row and int(field_of(row, "sampling_fps", where)) != self.sampling_fps:
                continue  # the official eval keeps the 1 fps rows
            fps = float(field_of(row, "fps", where))
            if not math.isfinite(fps) or int(fps) <= 0:
                continue  # the official loader drops rows whose fps gives no sampling rate
            video = str(field_of(row, "video", where))
            if video.endswith(VIDEO_EXTS):
                video = video.rsplit(".", 1)[0]
            size = (int(field_of(row, "width", where)), int(field_of(row, "height", where)))
            expression = str(field_of(row, "expression", where))
            item_id = str(field_of(row, "id", where))
            template = pick_template(TRACK_TEMPLATES, item_id, self.prompt_seed)
            tracks, masks, times = self._ground_truth(base, row, where, fps, size, expression)
            items.append(Item(
                id=item_id, media=self.video_path(base, video, fps), medium="video",
                prompt=template.format(label=expression, fps=self.sampling_fps), max_new_tokens=self.max_new_tokens,
                size=size, max_fps=float(self.sampling_fps),
                gt={"tracks": tracks, "masks": masks, "times": times, "fps": fps}))
            if limit is not None and len(items) >= limit:
                break
        if not items:
            raise Molmo2Error(f"{where}: no rows with sampling_fps == {self.sampling_fps}")
        return items

    def _ground_truth(self, base: Path, row: Mapping[str, Any], where: str, fps: float, size: tuple[int, int],
                      label: str) -> tuple[list[Track], dict[int, dict[float, Any]], list[float]]:
        mask_ids = [str(m) for m in field_of(row, "mask_id", where)]
        index = {m: k + 1 for k, m in enumerate(mask_ids)}  # object k of the row is track/mask id k + 1
        points: dict[int, list[Point]] = {oid: [] for oid in index.values()}
        frames: list[int] = []
        for entry in field_of(row, "frame_trajectories", where) or []:
            frame = int(entry["frame"])
            frames.append(frame)
            for p in entry.get("points") or []:
                oid = index.get(str(p["id"]))
                if oid is not None and p.get("point") is not None:
                    points[oid].append(Point(float(p["point"][0]), float(p["point"][1]), t=frame / fps, object_id=oid))
        per_object = self.masks_of(base, row, where)
        if len(per_object) != len(mask_ids):
            raise Molmo2Error(f"{where}: row {row.get('id')!r} names {len(mask_ids)} objects in mask_id but "
                              f"{len(per_object)} in its mask annotation")
        masks = {}
        for k, seq in enumerate(per_object):
            masks[k + 1] = {f / fps: seq[f] for f in frames if f < len(seq) and seq[f] is not None}
        tracks = [Track(oid, label, sorted(pts, key=lambda p: p.t)) for oid, pts in points.items() if pts]
        return tracks, masks, sorted({f / fps for f in frames})

    def predict(self, pipe: Any, item: Item, **options: Any) -> dict[str, Any]:
        return ask(pipe, item, **options)

    @staticmethod
    def predicted_tracks(item: Item, record: Mapping[str, Any]) -> list[Track]:
        """The answer's tracks with each time snapped to its frame (the official ``extract_tracks``)."""
        fps = item.gt["fps"]
        pred = []
        for tr in merge_tracks(parse(text_of(item, record), item.size, video=True).tracks):
            pts = [Point(p.x, p.y, t=round(p.t * fps) / fps, object_id=p.object_id) for p in tr.points]
            pred.append(Track(tr.object_id, tr.label, pts))
        return pred

    def example(self, item: Item, record: Mapping[str, Any], row: Mapping[str, Any]) -> Any:
        pred = [p for tr in self.predicted_tracks(item, record) for p in tr.points]
        return grounded_example(item, record, [p for tr in item.gt["tracks"] for p in tr.points], item.prompt,
                                pred=pred, masks=InstanceMasks(item.size, item.gt["masks"]))

    def score_one(self, item: Item, record: Mapping[str, Any]) -> dict[str, Any]:
        pred = self.predicted_tracks(item, record)
        masks = InstanceMasks(item.size, item.gt["masks"])
        out = track_scores(pred, item.gt["tracks"], masks, compat=self.compat, gt_times=item.gt["times"])
        return {k: out[k] for k in TRACK_KEYS}

    @staticmethod
    def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
        return mean_of(rows, TRACK_KEYS)

    def score(self, items: Iterable[Item], predictions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        return score_items(self.name, items, predictions, self.score_one, self.summarize, "f1")


__all__ = ["TRACK_KEYS", "PngMask", "ReferringTrackEval", "png_frames"]
